"""cytoself as a `registry.Paper`: the one object the rest of the package knows it by."""

from __future__ import annotations

from statcell_tf.registry import Paper


class Cytoself(Paper):
    """cytoself (Kobayashi et al., Nature Methods 2022). Encoder vectors: ``global``,
    ``local``, their VQ indices and histograms, and the ID head's ``probabilities``."""

    name = "cytoself"
    title = "cytoself (Kobayashi et al. 2022)"
    keras_modules = ("statcell_tf.cytoself.model",)
    encoder_options = ("dtype", "include_local")

    settings_class = "statcell_tf.cytoself.training:CytoselfTrainConfig"
    training_module = "statcell_tf.cytoself.training"

    def load_run(self, run):
        from statcell_tf.cytoself.model import load_run
        from statcell_tf.training.run_dir import open_run

        run_dir = open_run(run, "RUN", paper=self.name)
        model, _ = load_run(run_dir.path)
        return model, self.settings.from_dict(run_dir.read_config(), str(run_dir.config)), run_dir

    def encoder(self, run, cells, *, split="all", dtype="float32", include_local=True):
        from statcell_tf.cytoself.embeddings import cytoself_encoder
        from statcell_tf.training.run_dir import open_run

        run_dir = open_run(run, "RUN", paper=self.name)
        return cytoself_encoder(run_dir.path, cells, run_dir.rows_of(cells, split), dtype, include_local)

    def upgrade_legacy_config(self, raw):
        if raw.get("model") != self.name or not isinstance(raw.get("train", {}), dict):
            return None
        settings = dict(raw.get("train", {}))
        if "epochs" in raw:
            settings["epochs"] = raw["epochs"]
        data = {k: v for k, v in raw.items() if k not in ("model", "train", "epochs")}
        return {"format": 2, "paper": self.name, "role": self.name, "preset": settings.get("preset"),
                "version": "legacy", "settings": settings, "data": data}


PAPER = Cytoself()
