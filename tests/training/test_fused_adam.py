"""FusedAdam: the same updates as keras.optimizers.Adam, and interchangeable checkpoints."""

import numpy as np

from statcell_tf.backend import keras, tf
from statcell_tf.training.fused_adam import FusedAdam


def _run(optimizer, steps=5):
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=(6, 4)).astype("float32")),
                 keras.Variable(rng.normal(size=(4,)).astype("float32"))]
    optimizer.build(variables)
    step = tf.function(lambda grads: optimizer.apply(grads, variables))
    for _ in range(steps):
        step([tf.constant(rng.normal(size=v.shape).astype("float32")) for v in variables])
    return variables, optimizer


def test_same_trajectory_and_state_as_keras_adam():
    kwargs = dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6)
    (want, reference), (got, fused) = _run(keras.optimizers.Adam(**kwargs)), _run(FusedAdam(**kwargs))
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    def kinds(optimizer):
        return [v.path.split("/")[-1].split("_")[-1] for v in optimizer.variables]

    assert kinds(fused) == kinds(reference)  # iteration, learning_rate, momentum/velocity per variable
    for a, b in zip(fused.variables, reference.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_amsgrad_falls_back_to_keras_and_config_round_trip():
    (want, _), (got, _) = _run(keras.optimizers.Adam(0.01, amsgrad=True)), _run(FusedAdam(0.01, amsgrad=True))
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    clone = FusedAdam.from_config(FusedAdam(0.003, beta_1=0.5).get_config())
    assert isinstance(clone, FusedAdam) and clone.beta_1 == 0.5
