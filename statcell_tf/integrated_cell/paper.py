"""The Integrated Cell as a `registry.Paper`: the one object the rest of the package knows it by."""

from __future__ import annotations

from statcell_tf.registry import Paper


class IntegratedCell(Paper):
    """The Integrated Cell (Johnson et al. 2017). Encoder vectors: ``z_r`` (reference stage),
    or ``z_r``, ``z_s`` and structure ``probabilities`` (conditional stage)."""

    name = "integrated_cell"
    title = "Integrated Cell (Johnson et al. 2017)"
    keras_modules = ("statcell_tf.integrated_cell.model",)

    settings_class = "statcell_tf.integrated_cell.training:IntegratedCellSettings"
    training_module = "statcell_tf.integrated_cell.training"

    def load_run(self, run):
        from statcell_tf.integrated_cell.training import load_model
        from statcell_tf.training.run_dir import open_run

        run_dir = open_run(run, "RUN", paper=self.name)
        config = run_dir.read_config()
        settings = self.settings.from_dict(config, str(run_dir.config))
        return load_model(run_dir, settings.stage), settings, run_dir

    def encoder(self, run, cells, *, split="all"):
        from statcell_tf.integrated_cell.embeddings import integrated_cell_encoder

        return integrated_cell_encoder(run, cells, split=split)

    def upgrade_legacy_config(self, raw):
        if raw.get("kind") != self.name:
            return None
        settings = {k: v for k, v in raw.items() if k not in ("kind", "class_names")}
        return {"format": 2, "paper": self.name, "role": settings.get("stage"), "preset": None,
                "version": "legacy", "settings": settings, "data": {"class_names": raw.get("class_names")}}


PAPER = IntegratedCell()
