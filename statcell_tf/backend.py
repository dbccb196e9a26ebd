"""Import TensorFlow and Keras once, quietly, with the TF backend selected.

Every module that needs TensorFlow does ``from statcell_tf.backend import keras, tf``.
The C++ start-up chatter (CUDA probes, CPU feature banners) is silenced by
``TF_CPP_MIN_LOG_LEVEL=3`` and by muting file descriptor 2 only while TensorFlow imports;
``TF_ENABLE_ONEDNN_OPTS`` is deliberately left alone (disabling oneDNN halves CPU speed).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _quiet_import():
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow

        return tensorflow, keras
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        # Initialise the device list while stderr is muted (cuInit chatter on GPU-less hosts).
        tensorflow.config.list_physical_devices()
        import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow, keras


tf, keras = _quiet_import()

__all__ = ["keras", "tf"]
