"""VAE+ as a `registry.Paper`: the one object the rest of the package knows it by."""

from __future__ import annotations

from statcell_tf.registry import Paper

VARIANTS = ("vaeplus", "vae", "ae")


class VAEPlus(Paper):
    """VAE+ (Lafarge et al. 2019). Encoder vector: ``mu`` (posterior means)."""

    name = "vaeplus"
    title = "VAE+ (Lafarge et al. 2019)"
    keras_modules = ("statcell_tf.vaeplus.model",)

    settings_class = "statcell_tf.vaeplus.training:VAEPlusTrainConfig"
    training_module = "statcell_tf.vaeplus.training"

    def load_run(self, run):
        from statcell_tf.training.run_dir import open_run

        run_dir = open_run(run, "RUN", paper=self.name)
        config, model = run_dir.load(self.name)
        return model, self.settings.from_dict(config, str(run_dir.config)), run_dir

    def encoder(self, run, cells, *, split="all"):
        from statcell_tf.vaeplus.embeddings import vaeplus_encoder

        return vaeplus_encoder(run, cells, split=split)

    def upgrade_legacy_config(self, raw):
        if raw.get("variant") not in VARIANTS:
            return None
        settings = {k: v for k, v in raw.items() if k not in ("epochs", "steps_per_epoch")}
        settings["steps_per_epoch"] = raw.get("steps_per_epoch")
        return {"format": 2, "paper": self.name, "role": raw["variant"], "preset": None,
                "version": "legacy", "settings": settings, "data": {}}


PAPER = VAEPlus()
