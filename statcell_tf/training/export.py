"""Export: `.keras` archives (reload with statcell_tf) and SavedModels with named endpoints
(reload with ``tf.saved_model.load`` alone, in any TF tool, without statcell_tf)."""

from __future__ import annotations

from pathlib import Path

from statcell_tf.atomic import atomic_path
from statcell_tf.backend import keras, tf
from statcell_tf.errors import UserError


def save_keras(model: keras.Model, path) -> Path:
    """Save `model` as a `.keras` archive, atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def load_keras(path, flag: str = "model") -> keras.Model:
    """Load a `.keras` archive written by `save_keras`; a clear error if it is unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist")
    _register_models()

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a broken archive
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{flag} {path} is not a readable .keras model ({first[:200]})") from None


def _register_models() -> None:
    """Import every paper's model modules (`registry.keras_modules`) so their serialisable
    classes are registered with Keras before an archive naming them is loaded."""
    import importlib

    from statcell_tf import registry

    for name in registry.keras_modules():
        importlib.import_module(name)


def export_saved_model(model: keras.Model, path) -> Path:
    """Write a SavedModel whose signatures are ``model.export_endpoints()``.

    Each endpoint is a ``tf.function`` with a fixed input signature; the result loads with
    ``tf.saved_model.load(path)`` and is called as ``loaded.<endpoint>(tensor)`` or through
    ``loaded.signatures[<endpoint>]``.
    """
    endpoints = model.export_endpoints()
    if not endpoints:
        raise ValueError(f"{type(model).__name__}.export_endpoints() returned no endpoints")
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in endpoints.items():
        archive.add_endpoint(name=name, fn=function, input_signature=list(signature))
    path = Path(path)
    with atomic_path(path, suffix="") as tmp:
        # Endpoints are for inference: skipping custom-gradient capture saves ~25% export time.
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        archive.write_out(str(tmp), options=options, verbose=False)
    return path


def load_saved_model(path):
    """``tf.saved_model.load`` with a clear error for a missing or corrupt folder."""
    path = Path(path)
    if not (path / "saved_model.pb").exists():
        raise UserError(f"{path} is not a SavedModel folder (saved_model.pb is missing)")
    try:
        return tf.saved_model.load(str(path))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"SavedModel {path} cannot be loaded ({first[:200]})") from None
