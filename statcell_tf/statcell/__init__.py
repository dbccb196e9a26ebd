"""The Statistical Cell (Donovan-Maiye et al., PLoS Comput Biol 2022): conditional β-VAEs of cells.

A reference model of cell and nuclear shape and a target model of structure localisation
conditioned on it. `model` holds `ConditionalBetaVAE` and its presets; `data` turns any
Allen-style `CellImages` into the models' batches (background, normalisation, shape);
`paper` its registry entry (`PAPER`); `presets` the model sizes;
`training` the run config, `train` and reloading runs;
`latent_stats` latent-space statistics, walks and image grids (Fig. 2, S1–S3, S6);
`beta_sweep` the rate–distortion sweep over β (Fig. 3a); `coupling` the coupling of a
structure to membrane and nucleus (§4.4); `perturbation` embedding drug-treated cells
(Fig. 6). Importing the package loads nothing heavy (no TensorFlow).
"""
