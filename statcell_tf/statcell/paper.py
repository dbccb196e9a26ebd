"""The Statistical Cell as a `registry.Paper`: the one object the rest of the package knows it by."""

from __future__ import annotations

from statcell_tf.registry import Paper


class StatisticalCell(Paper):
    """The Statistical Cell (Donovan-Maiye et al. 2022). Encoder vectors: ``z_ref`` (and
    ``z_target`` for a target run, with its paired reference run)."""

    name = "statcell"
    title = "Statistical Cell (Donovan-Maiye et al. 2022)"
    keras_modules = ("statcell_tf.statcell.model",)
    encoder_options = ("reference",)

    settings_class = "statcell_tf.statcell.training:StatcellTrainConfig"
    training_module = "statcell_tf.statcell.training"

    def load_run(self, run):
        from statcell_tf.statcell.training import load_run

        return load_run(run)

    def encoder(self, run, cells, *, split="all", reference=None):
        from statcell_tf.statcell.embeddings import statcell_encoder

        return statcell_encoder(run, cells, reference=reference, split=split)

    def upgrade_legacy_config(self, raw):
        if raw.get("model") not in ("reference", "target") or "beta" not in raw:
            return None
        settings = dict(raw)
        role = settings.pop("model")
        data = {"structure_types": settings.pop("structure_types", [])}
        return {"format": 2, "paper": self.name, "role": role, "preset": settings.get("preset"),
                "version": "legacy", "settings": settings, "data": data}


PAPER = StatisticalCell()
