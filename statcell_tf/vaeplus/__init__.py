"""VAE+ (Lafarge et al., MIDL 2019): a VAE whose reconstructions are also compared by a discriminator.

Trained on BBBC021 single-cell crops, with the VAE and AE baselines. `model` holds `VAEPlus`
(encoder, decoder, progressively switched discriminator-feature losses); `training` the run
config, crop reading, treatment-balanced sampling, the grouped validation split, `train`,
and the helpers the VAE+ commands share (SavedModel endpoints, batching, normalisation,
RGB rendering); `interpolation` the latent path of Fig. 3. Importing the package loads nothing heavy (no TensorFlow).
"""
