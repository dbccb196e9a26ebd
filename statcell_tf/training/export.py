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


SERVING = "serving_default"


def serving_function(name: str, function, signature):
    """``(function, specs)`` of the ``serving_default`` signature made from endpoint `name`.

    TF Serving's REST API (``{"instances": [...]}`` → ``{"predictions": [...]}``) needs every
    input and output batched along their first axis, and names them by the signature's keys:
    here inputs keep their ``TensorSpec`` names (``input_<i>`` where a spec has none; a single
    input takes ``images``), and outputs are a dict (a single tensor is named `name`).
    """
    specs = list(signature)
    for spec in specs:
        if spec.shape.rank is None or spec.shape.rank < 1:
            raise ValueError(f"the serving endpoint {name!r} must take batched inputs. Received: {spec}")
    names = [spec.name or ("images" if len(specs) == 1 else f"input_{i}") for i, spec in enumerate(specs)]
    specs = [tf.TensorSpec(spec.shape, spec.dtype, name=n) for spec, n in zip(specs, names)]

    def serve(*inputs):
        out = function(*inputs)
        return dict(out) if isinstance(out, dict) else {name: out}

    return serve, specs


def export_saved_model(model: keras.Model, path) -> Path:
    """Write a SavedModel whose signatures are ``model.export_endpoints()``.

    Each endpoint is a ``tf.function`` with a fixed input signature; the result loads with
    ``tf.saved_model.load(path)`` and is called as ``loaded.<endpoint>(tensor)`` or through
    ``loaded.signatures[<endpoint>]``. The first endpoint (each paper's encoder) is also
    ``serving_default``, with named inputs and outputs (`serving_function`: TF Serving, and
    ``keras.layers.TFSMLayer``'s default endpoint). Custom gradients (the swish that keeps
    its sigmoid) are saved with the graph, so other tools can train through the endpoints
    (``TFSMLayer(..., trainable=True)``) and loading warns of no unsaved gradient.
    """
    endpoints = model.export_endpoints()
    if not endpoints:
        raise ValueError(f"{type(model).__name__}.export_endpoints() returned no endpoints")
    if SERVING in endpoints:
        raise ValueError(f"{type(model).__name__}.export_endpoints(): {SERVING!r} is made from the first endpoint")
    archive = keras.export.ExportArchive()
    archive.track(model)
    first = next(iter(endpoints))
    serve, serve_specs = serving_function(first, *endpoints[first])
    archive.add_endpoint(name=SERVING, fn=serve, input_signature=serve_specs)
    for name, (function, signature) in endpoints.items():
        archive.add_endpoint(name=name, fn=function, input_signature=list(signature))
    path = Path(path)
    with atomic_path(path, suffix="") as tmp:
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=True)
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
