"""Image-based profiling of cell embeddings from any model (no paper package is imported here).

`moa` holds the embedding tables (CSV or HDF5, incl. ``embed-cytoself`` output), per-plate
ZCA whitening on control cells, well and treatment profiles and the BBBC021
mechanism-of-action benchmark (1-nearest neighbour under the NSC / NSCB hold-outs, Table 1
of VAE+), plus the latent-space helpers of the VAE+ interpolation. Importing the package
loads nothing heavy (no TensorFlow).
"""
