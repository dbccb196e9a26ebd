"""`TrainableModel`: the contract between every paper model and the one training runtime.

A model owns its maths: `compute_losses` returns named scalar terms (``"loss"`` is the
total minimised), `make_optimizers` returns its optimizers by name, and `train_step_fn`
applies one update. The runtime (`statcell_tf.training.trainer`) owns everything else:
distribution, precision, checkpoints, history, callbacks and export. Adversarial models
override `train_step_fn` with one tape and one `apply_loss` per network.

Batches are dicts (``{"image": (B, H, W, C) float32, "label": (B,) int32, ...}``); this is
what works under MultiWorkerMirroredStrategy (tuple batches do not, see ARCHITECTURE.md).
"""

from __future__ import annotations

from statcell_tf.backend import keras, tf


class TrainableModel(keras.Model):
    """Base class of statcell_tf models.

    Subclasses implement `compute_losses(batch, training)` and, when they need more than one
    optimizer or a non-default learning rate, `make_optimizers()` and `optimizer_variables`.
    Loss values must be means over the replica's local batch; `apply_loss` divides by the
    number of replicas because gradients are summed across replicas.

    Args:
        learning_rate: float. Learning rate of the default Adam optimizer. Defaults to 1e-3.
        **kwargs: forwarded to `keras.Model`.
    """

    def __init__(self, learning_rate: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.learning_rate = float(learning_rate)
        self.optimizers_by_name: dict[str, keras.optimizers.Optimizer] = {}

    # ----- to implement -------------------------------------------------------------------
    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        """Return ``{"loss": total, term: value, ...}``: scalar means over the local batch."""
        raise NotImplementedError

    def make_optimizers(self) -> dict:
        """Return the optimizers by name; the default is one Adam at `learning_rate` (`FusedAdam`:
        Keras' Adam, updated by one fused kernel per variable)."""
        from statcell_tf.training.fused_adam import FusedAdam

        return {"main": FusedAdam(self.learning_rate)}

    def optimizer_variables(self, name: str) -> list:
        """Variables updated by optimizer `name`; the default is every trainable variable."""
        return list(self.trainable_variables)

    def export_endpoints(self) -> dict:
        """Return ``{endpoint: (function, [tf.TensorSpec, ...])}`` for SavedModel export; the
        first one (the encoder, batched inputs) is also exported as ``serving_default``."""
        return {}

    # ----- provided -----------------------------------------------------------------------
    def prepare(self, batch: dict) -> None:
        """Create every variable and optimizer slot from one example batch, eagerly.

        Must run before training under a distribution strategy (variables created inside
        `strategy.run` fail) and before restoring a checkpoint.
        """
        self.compute_losses(batch, training=False)
        if not self.optimizers_by_name:
            self.optimizers_by_name = {
                name: wrap_for_precision(optimizer) for name, optimizer in self.make_optimizers().items()
            }
        for name, optimizer in self.optimizers_by_name.items():
            optimizer.build(self.optimizer_variables(name))

    def apply_loss(self, tape, loss, name: str = "main", variables=None) -> None:
        """Differentiate `loss` recorded on `tape` and apply optimizer `name`.

        Handles the replica scaling (gradients are summed over replicas) and the loss
        scaling of `mixed_float16`.
        """
        optimizer = self.optimizers_by_name[name]
        variables = self.optimizer_variables(name) if variables is None else list(variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tape:  # re-enter so the scaling is recorded too
            scaled = optimizer.scale_loss(tf.cast(loss, "float32") / replicas)
        gradients = tape.gradient(scaled, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        if not pairs:
            raise ValueError(f"optimizer {name!r}: the loss does not depend on any of its variables")
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    def train_step_fn(self, batch: dict) -> dict:
        """One update of the default single-optimizer model; returns the loss terms."""
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
        self.apply_loss(tape, losses["loss"], "main")
        return losses

    def test_step_fn(self, batch: dict) -> dict:
        """Loss terms on a validation batch (no update)."""
        return self.compute_losses(batch, training=False)

    def get_config(self):
        config = super().get_config()
        config.update({"learning_rate": self.learning_rate})
        return config


def wrap_for_precision(optimizer):
    """Wrap `optimizer` in a `LossScaleOptimizer` when the global policy is mixed_float16.

    Keras only wraps the optimizer given to `compile`; ours are applied in our own step.
    """
    if keras.mixed_precision.global_policy().name == "mixed_float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
