"""Import TensorFlow and Keras once, quietly, with the TF backend selected.

Every module that needs TensorFlow does ``from statcell_tf.backend import keras, tf``.
The C++ start-up chatter (CUDA probes, CPU feature banners) is silenced by
``TF_CPP_MIN_LOG_LEVEL=3`` and by muting file descriptor 2 only while TensorFlow imports;

oneDNN: TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI,
AVX-512 BF16 or AMX; on the others (AMD EPYC, older Intel) it runs convolutions through Eigen.
``TF_ENABLE_ONEDNN_OPTS=1`` is set here unless the user set it: on a 2-core AMD EPYC (AVX2,
no AVX-512) the cytoself paper model trains 1.42× faster with it (8.21 against 5.80 images/s,
``bench/vs_pytorch.py``, medians of 2 alternating rounds), as PyTorch, which uses oneDNN on
every x86 CPU; its embedding pass is about 10% slower (120 against 134 images/s, within the
rounds' spread of 119-145), and training is where the CPU time goes. Results agree with
Eigen's to float32 rounding, not bit for bit (``tests/training/test_precision.py``). It must be set before TensorFlow is
imported; ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment keeps Eigen.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


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
