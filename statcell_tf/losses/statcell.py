"""Statistical Cell objective (Donovan-Maiye et al. 2022, Eq. 1 and Eq. 3), per example.

``reconstruction`` is the distortion D = −E_q[log p(x|z)] up to a constant (squared error of
the decoder output), ``kl`` the rate R = KL(q(z|x) ‖ N(0, I)). Inputs are (B,) tensors;
outputs are (B,) tensors.
"""

from __future__ import annotations

from statcell_tf.backend import keras

OBJECTIVES = ("reparameterised", "classic")


def check_beta(beta: float, objective: str) -> None:
    """Raise ValueError for an unknown objective or a β outside its range."""
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {', '.join(OBJECTIVES)}. Received: objective={objective!r}")
    if objective == "reparameterised" and not 0.0 <= beta <= 1.0:
        raise ValueError(f"the reparameterised objective (Eq. 3) needs 0 <= beta <= 1. Received: beta={beta}")
    if objective == "classic" and beta < 0.0:
        raise ValueError(f"the classic β-VAE objective needs beta >= 0. Received: beta={beta}")


def beta_vae_loss(reconstruction, kl, beta: float, objective: str = "reparameterised"):
    """Loss minimised per example: the negative weighted ELBO.

    ``"reparameterised"`` (paper Eq. 3): (1 − β)·D + β·R, β in [0, 1], which keeps the
    objective's magnitude constant across β. ``"classic"`` (Higgins et al. 2017): D + β·R.
    """
    check_beta(beta, objective)
    reconstruction = keras.ops.cast(reconstruction, "float32")
    kl = keras.ops.cast(kl, "float32")
    if objective == "reparameterised":
        return (1.0 - beta) * reconstruction + beta * kl
    return reconstruction + beta * kl


def elbo(reconstruction, kl):
    """Unweighted ELBO (Eq. 1) up to the likelihood's constant: −(D + R)."""
    return -(keras.ops.cast(reconstruction, "float32") + keras.ops.cast(kl, "float32"))


def weighted_elbo(reconstruction, kl, beta: float, objective: str = "reparameterised"):
    """The ELBO the model is trained on (Eq. 3 or the classic form): −loss."""
    return -beta_vae_loss(reconstruction, kl, beta, objective)
