"""Named sizes of the Statistical Cell models (``--preset``) and the paper's image sizes."""

# Channel widths and latent size per preset. "paper" is Table 3 (both ranks: the 2D model is
# "the same in all regards" to the 3D one, section 4.3); the smaller ones make CPU demos
# and tests possible.
PRESETS = {
    "paper": {"filters": (32, 64, 128, 256, 512), "latent_dim": 512},
    "demo": {"filters": (16, 32, 64, 128), "latent_dim": 64},
    "tiny": {"filters": (8, 16), "latent_dim": 16},
}
# Paper image sizes (section 6.1.2): 128×96 (Y, X) × 64 (Z) voxels; 2D = max projection along z.
# Our volumes are (Z, Y, X) like the TIFFs (CZYX), so the 3D default is (64, 128, 96).
DEFAULT_IMAGE_SHAPE = {2: (128, 96), 3: (64, 128, 96)}
