"""The one list of papers: every model the package trains is a `Paper` found here.

A paper is a package that exposes one object implementing `Paper` (its settings, training
recipe, run loading, encoder, data contract and the Keras modules its archives name). This
module is the only place that lists them; everything else (run-folder validation and legacy
upgrades, Keras class registration, ``bin/embed``, ``profile-moa --run``, the tests) asks it.

Papers come from three places, in this order:

1. the built-in papers below (`BUILTIN`);
2. installed plugins: any distribution declaring an entry point in the group
   ``statcell_tf.papers`` whose object is a `Paper` (``setup.py``:
   ``entry_points={"statcell_tf.papers": ["mymodel = mylab.mymodel:PAPER"]}``);
3. `register(paper)` at run time (tests, notebooks).

A lab adds its own model without forking: implement `Paper` in its own package, declare the
entry point, and ``bin/embed``, ``profile-moa --run``, SavedModel export and the run
lifecycle (kill-anywhere resume) work on its runs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable

from statcell_tf.errors import UserError

ENTRY_POINT_GROUP = "statcell_tf.papers"

# name → "module:attribute" of the built-in papers; imported only when asked for.
BUILTIN = {
    "cytoself": "statcell_tf.cytoself.paper:PAPER",
    "statcell": "statcell_tf.statcell.paper:PAPER",
    "integrated_cell": "statcell_tf.integrated_cell.paper:PAPER",
    "vaeplus": "statcell_tf.vaeplus.paper:PAPER",
}


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What every paper's `Paper.train` returns.

    Attributes:
        run: RunDirectory. The run folder.
        history: pandas.DataFrame. One row per committed epoch (history.csv).
    """

    run: object
    history: object


class Paper:
    """The interface one paper implements (subclass it; one instance per paper).

    Class attributes:
        name: str. The ``paper`` key of its runs' config.json (also the entry-point name).
        title: str. Human-readable name with the reference, for messages and --help.
        keras_modules: tuple of str. Modules whose import registers the Keras classes a
            ``best.keras`` of this paper names (imported before any archive is loaded).
        settings_class: str. ``"module:Class"`` of the settings dataclass (``from_dict(values,
            source)`` / ``to_dict()``, validated in ``__post_init__``; ``data`` names the
            training data); read through the `settings` property.
        training_module: str. The module whose ``train`` is the recipe (`train`).
        encoder_options: tuple of str. Extra keyword options `encoder` accepts (e.g.
            ``reference``); any other option given to ``bin/embed`` is refused.

    Methods to implement: `train`, `load_run`, `encoder`. Optional: `upgrade_legacy_config`
    (read run folders written before the one config.json schema).
    """

    name: str = ""
    title: str = ""
    keras_modules: tuple[str, ...] = ()
    encoder_options: tuple[str, ...] = ()
    # "module:Class" of the settings dataclass and the module whose ``train`` is the recipe;
    # a paper may instead override `settings` and `train` itself.
    settings_class: str = ""
    training_module: str = ""

    @property
    def settings(self):
        """The settings dataclass (imported on first use)."""
        module, _, attribute = self.settings_class.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def train(self, settings, out, *, resume: bool = False, strategy=None, verbose: int = 1) -> TrainResult:
        """Train (or resume) one run in `out` through `training.lifecycle.train_run`: by default
        ``<training_module>.train(settings, out, resume=, strategy=, verbose=)``."""
        recipe = importlib.import_module(self.training_module).train
        return recipe(settings, out, resume=resume, strategy=strategy, verbose=verbose)

    def load_run(self, run):
        """``(model, settings, RunDirectory)`` of a trained run folder of this paper."""
        raise NotImplementedError

    def encoder(self, run, cells, *, split: str = "all", **options):
        """A `data.embedding_files.CellEncoder` of `cells` (CellImages) with the run's model;
        `split` picks the run's split of its own data (`RunDirectory.rows_of`)."""
        raise NotImplementedError

    def upgrade_legacy_config(self, raw: dict) -> dict | None:
        """A config.json written before the one schema, upgraded; None when not this paper's."""
        return None

    def __repr__(self) -> str:
        return f"<Paper {self.name}>"


_registered: dict[str, Paper] = {}
_discovered = False


def register(paper: Paper) -> Paper:
    """Add `paper` (a `Paper` instance) to the registry; returns it.

    Raises:
        ValueError: when `paper` is not a Paper, has no name, or its name is taken by
            another paper.
    """
    if not isinstance(paper, Paper):
        raise ValueError(f"register() takes a statcell_tf.registry.Paper. Received: {type(paper).__name__}")
    if not paper.name or not isinstance(paper.name, str):
        raise ValueError(f"a Paper needs a non-empty name. Received: name={paper.name!r}")
    known = _registered.get(paper.name)
    if known is not None and known is not paper and type(known) is not type(paper):
        raise ValueError(f"a paper named {paper.name!r} is already registered ({known!r})")
    _registered[paper.name] = paper
    return paper


def unregister(name: str) -> None:
    """Remove a paper registered with `register` (tests)."""
    _registered.pop(name, None)


def _load(target: str) -> Paper:
    module, _, attribute = target.partition(":")
    paper = getattr(importlib.import_module(module), attribute)
    if not isinstance(paper, Paper):
        raise ValueError(f"{target} is not a statcell_tf.registry.Paper. Received: {type(paper).__name__}")
    return paper


def _discover() -> None:
    """Load the built-in papers and the installed entry points once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for name, target in BUILTIN.items():
        _registered.setdefault(name, _load(target))
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _registered:
            continue
        try:
            paper = point.load()
        except Exception as error:  # a broken plugin must not break the built-in papers
            import warnings

            warnings.warn(f"statcell_tf paper plugin {point.name!r} ({point.value}) failed to load: {error}",
                          stacklevel=2)
            continue
        if isinstance(paper, Paper):
            _registered.setdefault(point.name, paper)


def names() -> list[str]:
    """Names of every known paper (built-in first, then plugins and registered ones)."""
    _discover()
    return list(_registered)


def papers() -> list[Paper]:
    """Every known paper."""
    _discover()
    return list(_registered.values())


def is_known(name) -> bool:
    _discover()
    return isinstance(name, str) and name in _registered


def get(name, source: str = "paper") -> Paper:
    """The paper called `name`, or a UserError naming `source` and the known papers."""
    _discover()
    if not isinstance(name, str) or name not in _registered:
        raise UserError(f"{source}: paper must be one of {', '.join(_registered)}. Received: {name!r}")
    return _registered[name]


def keras_modules() -> Iterable[str]:
    """Every module whose import registers Keras classes of some paper."""
    for paper in papers():
        yield from paper.keras_modules


def upgrade_legacy_config(raw: dict) -> dict | None:
    """A pre-schema config.json upgraded by the paper it belongs to, or None."""
    for paper in papers():
        upgraded = paper.upgrade_legacy_config(raw)
        if upgraded is not None:
            return upgraded
    return None
