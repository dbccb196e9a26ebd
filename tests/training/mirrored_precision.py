"""Tiny cytoself (fused batch norm, swish, VQ by one matmul, fused Adam) trained two steps under
MirroredStrategy over two logical CPU devices under each mixed policy.

Run as a script (the logical devices must exist before TensorFlow starts):
``python mirrored_precision.py OUT_JSON``. Writes, per policy, the losses and the trainable
variables whose two replica copies differ (there must be none).
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from statcell_tf.backend import keras, tf

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

from tests.training import tiny_papers  # noqa: E402  (after the logical devices: run with PYTHONPATH=<root>)


def main(out_json: str) -> None:
    from statcell_tf.training import trainer

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {}
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        make, batch = tiny_papers.cytoself(n=8)
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = make()
        data = tf.data.Dataset.from_tensor_slices(batch).batch(4, drop_remainder=True)
        settings = trainer.TrainSettings(epochs=2, verbose=0, monitor="loss")
        history = trainer.fit(model, data, None, Path(tempfile.mkdtemp()) / policy, settings, strategy=strategy)
        keras.mixed_precision.set_global_policy("float32")
        losses = history[[c for c in history.columns if c not in ("epoch", "step", "time_s")]].to_numpy(float)
        differ = [v.path for v in model.trainable_variables
                  if not np.array_equal(*(x.numpy() for x in v.value.values[:2]))]
        report[policy] = {"finite": bool(np.isfinite(losses).all()), "steps": int(history["step"].iloc[-1]),
                          "replica_mismatches": differ, "variables": len(model.trainable_variables)}
    Path(out_json).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
