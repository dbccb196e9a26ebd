"""The Integrated Cell (Johnson, Donovan-Maiye & Maleckar 2017): a two-stage conditional AAE.

A reference adversarial autoencoder of cell and nuclear shape, then a conditional one that
predicts a structure's localisation from the reference channels and the structure's label.
`model` holds `IntegratedCellReference` and `IntegratedCellConditional`; `data` the paper's
preprocessing of Allen-style cells into the model's view; `training` the settings, the two
training stages, run folders and the classification / integration of cells; `analysis`
the read-outs (structure classification, Table S9; compartments of integrated structures,
Fig. 3) and figures. Importing the package loads nothing heavy (no TensorFlow).
"""
