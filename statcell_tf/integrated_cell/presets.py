"""Named starting points of an Integrated Cell run's settings (``--preset``), per stage:
what each preset fixes; flags and ``--config`` override it (`cli._settings.resolve_settings`)."""

PAPER_EPOCHS = {"reference": 150, "conditional": 220}  # Johnson et al. 2017, section 3.3


def presets(stage: str) -> dict:
    """``{preset name: settings it fixes}`` for one stage (``reference`` or ``conditional``)."""
    return {
        "paper": {"epochs": PAPER_EPOCHS[stage]},
        "demo": {"epochs": 5, "image_size": (64, 64), "filters": 16},
    }
