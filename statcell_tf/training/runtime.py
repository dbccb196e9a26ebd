"""Distribution strategy, numeric precision and seeds, chosen once per run.

`select_strategy` must run before any other TensorFlow op when multi-worker training is
wanted (MultiWorkerMirroredStrategy configures the collective runtime at creation).
"""

from __future__ import annotations

import json
import os

from statcell_tf.backend import keras, tf
from statcell_tf.errors import UserError

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def gpus() -> list:
    """Visible GPUs."""
    return tf.config.list_physical_devices("GPU")


def describe_device() -> str:
    """The accelerator a benchmark runs on, in words (GPU name, else the CPU core count)."""
    found = gpus()
    if found:
        return tf.config.experimental.get_device_details(found[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores visible)"


def benchmark_settings() -> list[tuple[str, bool]]:
    """(precision, XLA) pairs worth timing here: float32 on a CPU; bf16 and XLA too on a GPU."""
    settings = [("float32", False)]
    if gpus():
        settings += [("mixed_bfloat16", False), ("float32", True), ("mixed_bfloat16", True)]
    return settings


def gpu_rows_note() -> str | None:
    """None on a GPU; else the line a benchmark prints: its GPU rows need a device."""
    if gpus():
        return None
    return ("no GPU on this machine: the GPU rows (float32, mixed_bfloat16, XLA with each) are not "
            "measured; run `make bench` where a GPU is visible to get them")


def select_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Return the distribution strategy called `name`.

    Args:
        name: str. ``"auto"`` (mirrored over all GPUs when there are several, else one
            device), ``"one"`` (the first GPU, else the CPU), ``"mirrored"`` (all local GPUs)
            or ``"multi-worker"`` (MultiWorkerMirroredStrategy; cluster from ``TF_CONFIG``).
    """
    if name not in STRATEGIES:
        raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    devices = gpus()
    if name == "auto":
        name = "mirrored" if len(devices) > 1 else "one"
    if name == "one":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if devices else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError(
            "--strategy multi-worker needs the TF_CONFIG environment variable "
            '({"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}). Received: unset'
        )
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"TF_CONFIG must be JSON with cluster.worker and task.index. Received: {raw[:200]!r}"
        ) from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True on the worker that writes outputs (always true without multi-worker)."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def auto_precision(capabilities: list | None = None) -> str:
    """The dtype policy the device computes fastest with: float32 on a CPU (mixed precision
    measured 1.6–4.4× slower on this project's CPU, ARCHITECTURE.md), mixed_bfloat16 on GPUs with
    bfloat16 tensor cores (compute capability 8.0 and up: A100, H100, RTX 30xx/40xx), and
    mixed_float16 (with loss scaling) on older GPUs, whose tensor cores take float16 only (V100, T4).
    """
    if capabilities is None:  # the visible GPUs' (major, minor) compute capabilities
        capabilities = [tf.config.experimental.get_device_details(d).get("compute_capability") for d in gpus()]
    if not capabilities:
        return "float32"
    if all(c is not None and tuple(c) >= (8, 0) for c in capabilities):
        return "mixed_bfloat16"
    return "mixed_float16"


def set_precision(name: str = "auto") -> str:
    """Set the global Keras dtype policy and return its name (``auto``: `auto_precision`)."""
    if name not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}. Received: {name!r}")
    if name == "auto":
        name = auto_precision()
    keras.mixed_precision.set_global_policy(name)
    return name


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow."""
    keras.utils.set_random_seed(int(seed))
