"""Named starting points of a VAE+ run's settings (``--preset``): what each preset fixes;
flags and ``--config`` override it (`cli._settings.resolve_settings`)."""

PRESETS = {
    "paper": {},  # Lafarge et al. 2019, Sect. 4.1: the settings' defaults
    "demo": {"iterations": 600, "batch_size": 32, "latent_dim": 64, "schedule_period": 100.0},
}
