"""cytoself (Kobayashi et al., Nature Methods 2022): self-supervised protein localisation encodings.

A two-level VQ-VAE with split quantisation and protein-identification heads, trained on
OpenCell crops. `paper` is its registry entry (`PAPER`); `model` holds `CytoselfModel` and
`load_run`; `presets` the named hyperparameter sets and the ablations of Supp. Table 1; `training` the run config and
`train`; `runs` the helpers the analysis commands share (finding a run, reading the
data, ``RUN/embeddings.h5``, split rows, the cached spectrum); `embeddings` embedding cells to
HDF5 and reading them back; `feature_spectrum` the feature spectra (Fig. 4);
`interpretation` decoding without a feature (Fig. 5); `umap_atlas` the UMAP atlas (Fig. 2)
and `clustering_score` the paper's clustering score. Importing the package loads nothing
heavy (no TensorFlow).
"""
