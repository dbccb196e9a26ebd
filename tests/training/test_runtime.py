import json

import pytest

from statcell_tf.backend import keras, tf
from statcell_tf.errors import UserError
from statcell_tf.training import runtime


def test_auto_strategy_on_cpu_is_one_device():
    strategy = runtime.select_strategy("auto")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1
    assert runtime.is_chief(strategy)


def test_unknown_strategy_and_precision_are_user_errors():
    with pytest.raises(UserError, match="--strategy must be one of .* Received: 'gpu'"):
        runtime.select_strategy("gpu")
    with pytest.raises(UserError, match="--precision must be one of .* Received: 'fp8'"):
        runtime.set_precision("fp8")


def test_multi_worker_needs_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="TF_CONFIG"):
        runtime.select_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(UserError, match="cluster.worker and task.index"):
        runtime.select_strategy("multi-worker")


def test_precision_auto_is_float32_on_cpu_and_policies_apply():
    try:
        assert runtime.set_precision("auto") == "float32"
        assert runtime.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_wraps_optimizers_in_loss_scaling():
    from statcell_tf.training.model import wrap_for_precision

    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        wrapped = wrap_for_precision(keras.optimizers.Adam(1e-3))
        assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert not isinstance(wrap_for_precision(keras.optimizers.Adam(1e-3)), keras.optimizers.LossScaleOptimizer)


def test_auto_precision_is_what_the_device_computes_fastest():
    assert runtime.auto_precision() == "float32"  # this CPU-only test machine
    assert runtime.auto_precision([]) == "float32"
    assert runtime.auto_precision([(9, 0)]) == "mixed_bfloat16"  # H100
    assert runtime.auto_precision([(8, 0), (8, 6)]) == "mixed_bfloat16"  # A100, RTX 30xx
    assert runtime.auto_precision([(7, 0)]) == "mixed_float16"  # V100: float16 tensor cores only
    assert runtime.auto_precision([(8, 0), (7, 5)]) == "mixed_float16"  # one T4 decides
