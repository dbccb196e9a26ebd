"""The four papers' models at tiny sizes, with one example batch each (precision, XLA and
export tests). Build under the dtype policy / strategy to test: ``build()`` reads the global
policy, as the trainers do.

Kept apart from `mirrored_models` (which splits the CPU into two logical devices when
imported); the paper registry will replace both lists.
"""

import numpy as np

from statcell_tf.backend import keras


def _labels(n):
    return (np.arange(n) % 3).astype("int32")


def cytoself(n=4, seed=0):
    from statcell_tf.cytoself.model import CytoselfModel

    config = dict(
        num_classes=3, image_shape=(16, 16, 2), stem_filters=4, encoder1_stages=[[1, 3, 1, 4, 1], [2, 3, 2, 6, 1]],
        local_filters=8, encoder2_stages=[[2, 3, 2, 8, 1]], global_filters=16, local_num_embeddings=8,
        global_num_embeddings=8, global_num_splits=2, decoder_filters=4, decoder_min_filters=4,
        decoder_units_per_block=1, classifier_units=8, dropout_rate=0.0, seed=0,
    )
    rng = np.random.default_rng(seed)
    return lambda: CytoselfModel(**config), {"image": rng.random((n, 16, 16, 2), "float32"), "label": _labels(n)}


def statcell(n=4, seed=0, role="target"):
    from statcell_tf.statcell.model import ConditionalBetaVAE

    rng = np.random.default_rng(seed)
    build = lambda: ConditionalBetaVAE(role, 2, (16, 16), num_types=3, filters=(4, 8), latent_dim=8,  # noqa: E731
                                       beta=0.1, eval_samples=2, seed=0)
    if role == "reference":
        return build, {"image": rng.random((n, 16, 16, 2), "float32")}
    return build, {"image": rng.random((n, 16, 16, 1), "float32"), "reference": rng.random((n, 16, 16, 2), "float32"),
                   "target_type": _labels(n)}


def integrated_cell(n=4, seed=0):
    from statcell_tf.integrated_cell.model import IntegratedCellReference

    rng = np.random.default_rng(seed)
    build = lambda: IntegratedCellReference(image_size=(16, 16), latent_dim=4, filters=2, seed=0)  # noqa: E731
    return build, {"image": rng.random((n, 16, 16, 3), "float32"), "label": _labels(n)}


def vaeplus(n=4, seed=0):
    from statcell_tf.vaeplus.model import VAEPlus

    rng = np.random.default_rng(seed)
    build = lambda: VAEPlus(latent_dim=6, filters=3, discriminator_filters=4, seed=0)  # noqa: E731
    images = lambda: rng.random((n, 68, 68, 3), "float32")  # noqa: E731
    return build, {"image": images(), "image_d": images()}


PAPERS = {"cytoself": cytoself, "statcell": statcell, "integrated_cell": integrated_cell, "vaeplus": vaeplus}


def build(name, policy="float32", **options):
    """(model, batch) of paper `name`, built under dtype `policy` with seeded weights."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        make, batch = PAPERS[name](**options)
        keras.utils.set_random_seed(0)
        return make(), batch
    finally:
        keras.mixed_precision.set_global_policy(previous)
