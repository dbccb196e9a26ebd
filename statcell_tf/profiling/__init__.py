"""Image-based profiling of cell embeddings from any model (no paper package is imported here).

`moa` holds per-plate ZCA whitening on control cells, well and treatment profiles and the
BBBC021 mechanism-of-action benchmark (1-nearest neighbour under the NSC / NSCB hold-outs,
Table 1 of VAE+); `cells` validates cell tables read by
`statcell_tf.data.embedding_files.read_embeddings` (the one reader). Importing the package
loads nothing heavy (no TensorFlow).
"""
