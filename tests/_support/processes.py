"""Child Python processes of the tests: they import this checkout's `statcell_tf` and `tests`."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_env(**extra: str) -> dict[str, str]:
    """`os.environ` for a child ``python``: the project root first on PYTHONPATH (so ``import
    tests.…`` works in the child too), TensorFlow quiet and on the CPU, plus `extra`."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join(paths), **extra}
