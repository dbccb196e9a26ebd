"""Analyses of trained representations: embeddings, feature spectra, UMAP atlases, clustering scores, latent statistics."""
