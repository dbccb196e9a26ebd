"""Run folders the CLI tests need without training."""

from pathlib import Path


def untrained_vaeplus_run(path: Path, variant: str = "vaeplus", **model_kwargs) -> Path:
    """A VAE+ run folder (config.json in the current format, SavedModel) of an untrained tiny
    model: enough for the commands that only call the endpoints. `model_kwargs` go to `VAEPlus`
    (default: latent_dim 5, filters 2, discriminator_filters 2, seed 0)."""
    from statcell_tf.training.export import export_saved_model
    from statcell_tf.training.run_dir import RunDirectory, make_config
    from statcell_tf.vaeplus.model import VAEPlus

    run = RunDirectory(path)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(make_config("vaeplus", variant, None, {}))
    settings = {"latent_dim": 5, "filters": 2, "discriminator_filters": 2, "seed": 0, **model_kwargs}
    export_saved_model(VAEPlus(variant, **settings), run.saved_model)
    return run.path
