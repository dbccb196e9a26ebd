"""Named hyperparameter sets of `CytoselfModel`, and the ablations of the paper's Supp. Table 1.

``paper`` is the published model (Kobayashi et al. 2022; shapes from the authors' TF code, see
REFERENCE-NOTES): EfficientNet-B0 split in two encoders, 2048 codes of 64 values per level,
split quantisation of the global level into 9 sub-vectors, Dense(1000) identification heads.
``demo`` keeps the architecture and the 100×100 → 25×25 → 4×4 shape trace but with narrow
layers, 128-code codebooks and one block per stage, so it trains in about a minute on two CPU
cores for ~1300 images × a few epochs.

Ablations (the rows of Supp. Table 1) are either model switches (``no_vq``, ``no_id``,
``no_split``, ``no_decoder``) or a choice of input channels (``no_nuclear``: protein only;
``no_distance``: protein + raw nucleus instead of protein + nuclear distance).
"""

from __future__ import annotations

import copy

from statcell_tf.layers.efficientnet_encoder import CYTOSELF_ENCODER1_STAGES, CYTOSELF_ENCODER2_STAGES

PRESETS: dict[str, dict] = {
    "paper": {
        "stem_filters": 32,
        "encoder1_stages": [list(s) for s in CYTOSELF_ENCODER1_STAGES],
        "local_filters": 64,
        "encoder2_stages": [list(s) for s in CYTOSELF_ENCODER2_STAGES],
        "global_filters": 576,
        "local_num_embeddings": 2048,
        "global_num_embeddings": 2048,
        "global_num_splits": 9,
        "decoder_filters": 64,
        "decoder_min_filters": 32,
        "decoder_units_per_block": 2,
        "classifier_units": 1000,
        "dropout_rate": 0.5,
        "batchnorm_momentum": 0.99,
        "learning_rate": 4e-4,
    },
    "demo": {
        "stem_filters": 8,
        "encoder1_stages": [[1, 3, 1, 8, 1], [3, 3, 2, 12, 1], [3, 5, 1, 16, 1]],
        "local_filters": 16,
        "encoder2_stages": [[3, 3, 2, 24, 1], [3, 5, 2, 32, 1], [3, 5, 2, 48, 1]],
        "global_filters": 144,
        "local_num_embeddings": 128,
        "global_num_embeddings": 128,
        "global_num_splits": 9,
        "decoder_filters": 16,
        "decoder_min_filters": 8,
        "decoder_units_per_block": 0,
        "classifier_units": 64,
        "dropout_rate": 0.5,
        "batchnorm_momentum": 0.9,
        "learning_rate": 1e-3,
    },
}

# Epoch budget of each preset (paper: early stopping ends the run; demo: about a minute on 2 CPU cores).
DEFAULT_EPOCHS = {"paper": 100, "demo": 4}

MODEL_ABLATIONS = {
    "no_vq": {"use_vq": False},
    "no_id": {"use_classifier": False},
    "no_split": {"split_quantization": False},
    "no_decoder": {"use_decoder": False},
}
# Input-level ablations: the channels the model sees instead of the default protein + distance.
CHANNEL_ABLATIONS = {"no_nuclear": ("pro",), "no_distance": ("pro", "nuc")}
ABLATIONS = tuple(MODEL_ABLATIONS) + tuple(CHANNEL_ABLATIONS)
DEFAULT_CHANNELS = ("pro", "nucdist")


def preset_config(name: str, ablation: str | None = None, **overrides) -> dict:
    """Constructor arguments of `CytoselfModel` for preset `name` (+ ablation + overrides).

    Args:
        name: str. ``"paper"`` or ``"demo"``.
        ablation: str or None. One of `ABLATIONS`; channel ablations change nothing here
            (choose the channels when reading the data).
        **overrides: constructor arguments that replace the preset's (e.g. ``num_classes``,
            ``image_shape``, ``data_variance``).
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown cytoself preset; expected one of {', '.join(PRESETS)}. Received: {name!r}")
    if ablation is not None and ablation not in ABLATIONS:
        raise ValueError(f"Unknown ablation; expected one of {', '.join(ABLATIONS)}. Received: {ablation!r}")
    config = copy.deepcopy(PRESETS[name])
    config.update(MODEL_ABLATIONS.get(ablation, {}))
    config.update(overrides)
    return config
