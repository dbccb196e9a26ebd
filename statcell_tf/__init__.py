"""statcell_tf: representation learning for single-cell microscopy (TF 2 / Keras 3).

Re-implements cytoself (Kobayashi 2022), the Statistical Cell (Donovan-Maiye 2022),
the Integrated Cell (Johnson 2017) and VAE+ (Lafarge 2019) on one shared runtime.
"""

__version__ = "0.1.0"
