"""Train every model a few steps under MirroredStrategy over two logical CPU devices.

Run as a script (the logical devices must be configured before TensorFlow starts):
``python mirrored_models.py OUT_JSON [MODEL ...]`` (default: every model). For each model it writes whether training ran, whether
the losses are finite, and which trainable variables differ between the two replicas
(there must be none: the replicas apply the same all-reduced gradients), and which batch-norm
moving statistics differ after the trainer's end-of-epoch averaging (none either).
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from statcell_tf.backend import keras, tf

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)


def _batches(batch: dict, count: int = 2) -> tf.data.Dataset:
    """`count` copies of the arrays in `batch` split into global batches of 4 (2 per replica)."""
    rng = np.random.default_rng(0)
    n = 4 * count
    arrays = {k: np.resize(v, (n, *v.shape[1:])) for k, v in batch.items()}
    arrays = {k: (v + 0.1 * rng.random(v.shape)).astype(v.dtype) if v.dtype.kind == "f" else v
              for k, v in arrays.items()}
    return tf.data.Dataset.from_tensor_slices(arrays).batch(4, drop_remainder=True)


def _models():
    from statcell_tf.cytoself.model import CytoselfModel
    from statcell_tf.cytoself.presets import preset_config
    from statcell_tf.integrated_cell.model import IntegratedCellConditional, IntegratedCellReference
    from statcell_tf.statcell.model import ConditionalBetaVAE
    from statcell_tf.vaeplus.model import VAEPlus

    rng = np.random.default_rng(1)
    labels = np.arange(4, dtype="int32") % 3
    yield "cytoself", lambda: CytoselfModel(**preset_config("demo", num_classes=3)), {
        "image": rng.random((4, 100, 100, 2), "float32"), "label": labels}
    target = lambda: ConditionalBetaVAE("target", 2, (16, 16), num_types=3, filters=(4, 8), latent_dim=8,  # noqa: E731
                                        beta=0.1, eval_samples=2)
    yield "statcell", target, {"image": rng.random((4, 16, 16, 1), "float32"),
                               "reference": rng.random((4, 16, 16, 2), "float32"), "target_type": labels}
    yield "integrated_cell_reference", lambda: IntegratedCellReference(image_size=(32, 32), filters=4), {
        "image": rng.random((4, 32, 32, 3), "float32"), "label": labels}
    yield "integrated_cell_conditional", lambda: IntegratedCellConditional(
        3, image_size=(32, 32), filters=4, class_names=["a", "b", "c"]), {
        "image": rng.random((4, 32, 32, 3), "float32"), "label": labels}
    yield "vaeplus", lambda: VAEPlus(latent_dim=6, filters=3, discriminator_filters=4, seed=0), {
        "image": rng.random((4, 68, 68, 3), "float32"), "image_d": rng.random((4, 68, 68, 3), "float32")}


def _averaged_moving_means(strategy) -> list:
    """Known answer: replicas whose batches are all 1s and all 5s average their moving means to 3."""
    from statcell_tf.training.trainer import _replica_statistics_averager

    with strategy.scope():
        norm = keras.layers.BatchNormalization(momentum=0.0)
        model = keras.Sequential([keras.Input((3,)), norm])
    rows = np.array([[1, 1, 1], [5, 5, 5]], "float32")  # one row per replica
    batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(rows).batch(2))))
    tf.function(lambda b: strategy.run(lambda t: model(t, training=True), args=(b,)))(batch)
    _replica_statistics_averager(strategy, model)()
    return [v.numpy().tolist() for v in norm.moving_mean.value.values]


def main(out_json: str, names=()) -> None:
    from statcell_tf.training import trainer

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"replicas": strategy.num_replicas_in_sync}
    if not names or "averaging" in names:
        report["averaging"] = _averaged_moving_means(strategy)
    for name, build, batch in _models():
        if names and name not in names:
            continue
        started = time.time()
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build()
        settings = trainer.TrainSettings(epochs=2, verbose=0, monitor="loss")
        history = trainer.fit(model, _batches(batch), None, Path(tempfile.mkdtemp()) / name, settings,
                              strategy=strategy)
        losses = history[[c for c in history.columns if c not in ("epoch", "step", "time_s")]].to_numpy(float)
        # Trainable weights, and the float statistics the trainer averages after every epoch.
        checked = model.trainable_variables + [
            v for v in model.non_trainable_variables if v.dtype.startswith(("float", "bfloat"))
        ]
        differ = [
            variable.path
            for variable in checked
            if not np.array_equal(*(v.numpy() for v in variable.value.values[:2]))
        ]
        report[name] = {"steps": int(history["step"].iloc[-1]), "finite": bool(np.isfinite(losses).all()),
                        "replica_mismatches": differ, "num_checked": len(checked),
                        "seconds": round(time.time() - started, 1)}
        print(name, report[name], flush=True)
    Path(out_json).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
