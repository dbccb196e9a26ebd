"""THE run lifecycle, shared by every trainer: validate → lock → create or resume → train → export.

A paper supplies a small recipe: a function ``prepare(saved_config, run) -> RunPlan`` that reads
and checks its data, works out the split, the config and the datasets, and writes nothing.
`train_run` does the rest, the same way for every paper:

1. **validate** — `check_out` on ``--out`` (not under a file, not the input, writable), the
   run folder's state (a run needs ``--resume``; a non-run folder is refused), the saved
   config (one line naming ``config.json`` when it is damaged), then the recipe's data;
2. **lock** — ``RUN/.lock`` (`RunLock`): a second process stops with one line naming the
   holder; a lock left by a dead process is taken over, and said so;
3. **create or resume** — a new run writes ``config.json`` and ``splits.csv``; a resumed run
   keeps its saved settings (only the epoch count may grow, written once the checkpoint has
   been restored) and removes stale temporaries of killed processes;
4. **train** — `trainer.fit` (commit per epoch, exact resume, data positioned per epoch);
5. **export** — the recipe's export (SavedModel of the best model).

A new run that fails before its first epoch is committed leaves nothing behind (the folder
is removed if this call created it, emptied back otherwise), so the same command can simply
be run again. Only the chief of a multi-worker run writes; other workers read.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from statcell_tf.errors import UserError
from statcell_tf.atomic import check_out
from statcell_tf.training.run_dir import RunDirectory


@dataclasses.dataclass
class RunPlan:
    """Everything a recipe prepared for one run; nothing has been written yet.

    Args:
        config: dict. The run's config.json (`make_config`); on resume the saved one with the
            settings that may change (epochs) updated.
        splits: DataFrame or None. splits.csv of a new run (row, cell_id, group, split).
        train_data: function ``epoch -> tf.data.Dataset`` (epochs count from 1).
        val_data: tf.data.Dataset or None.
        build_model: function returning the model; called inside ``strategy.scope()``.
        fit_settings: TrainSettings.
        callbacks: function ``RunDirectory -> list`` of epoch callbacks (figures).
        export: function ``(RunDirectory, trained model) -> None`` run on the chief after
            training (e.g. load best.keras and write the SavedModel).
        precision: str. Precision policy name (`runtime.set_precision`).
        seed: int. Global seed (`runtime.set_seed`).
        cells: CellImages or None. The data the run trains on: a new run records its
            identity in config.json (``data.identity``, `data.identity.data_identity`); a
            resumed run refuses other data in one line.
    """

    config: dict
    splits: pd.DataFrame | None
    train_data: Callable
    val_data: object
    build_model: Callable
    fit_settings: object
    callbacks: Callable[[RunDirectory], Iterable] = lambda run: []
    export: Callable | None = None
    precision: str = "auto"
    seed: int = 0
    cells: object = None


def train_run(
    paper: str,
    out,
    prepare: Callable[[dict | None, RunDirectory], RunPlan],
    resume: bool = False,
    strategy=None,
    inputs: Iterable = (),
    flag: str = "--out",
    verbose: int = 1,
):
    """Run the lifecycle for one run folder; returns ``(RunDirectory, history, model)``.

    Args:
        paper: str. The paper whose run this is (checked against a resumed config.json).
        out: str or Path. The run folder.
        prepare: the recipe: ``(saved config or None for a new run, RunDirectory) -> RunPlan``;
            a resumed run reads its recorded split with ``run.split_rows(n)``.
        resume: bool. Continue the run in `out` (a missing or empty `out` starts a new one).
        strategy: tf.distribute.Strategy, created by the caller before any other TF op.
        inputs: paths the run reads (data files/folders); `out` may not overlap them.
        flag: str. The flag naming `out`, for messages.
        verbose: int. 0 = silent.
    """
    from statcell_tf.backend import keras
    from statcell_tf.training import runtime, trainer
    from statcell_tf.training.lock import RunLock

    strategy = strategy or runtime.select_strategy("auto")
    chief = runtime.is_chief(strategy)
    run = RunDirectory(out)
    say = print if verbose else None
    lock = None
    saved = None
    created_folder = False
    new_run = False
    try:
        if chief:
            check_out(run.path, flag, inputs)
            if run.path.is_dir() and not run.exists() and any(p.name != ".lock" for p in run.path.iterdir()):
                raise UserError(
                    f"{flag} {run.path} exists and is not a run folder (no config.json); choose an empty or new folder"
                )
            if run.exists():
                if not resume:
                    raise UserError(
                        f"{flag} {run.path} already holds a run; pass --resume to continue it or choose another {flag}"
                    )
                lock = RunLock(run.lock_file, flag, announce=say).acquire()
        if resume and run.exists():
            saved = run.check(paper, flag)
        plan = prepare(saved, run)
        new_run = saved is None
        if plan.cells is not None:
            if new_run:
                from statcell_tf.data.identity import data_identity

                plan.config = {**plan.config, "data": {**plan.config["data"], "identity": data_identity(plan.cells)}}
            elif run.data_identity() is not None:
                run.check_same_data(plan.cells, "--resume", "--data")
                plan.config = {**plan.config, "data": {**plan.config["data"], "identity": run.data_identity()}}
        if chief and new_run:
            created_folder = not run.path.exists()
            run.path.mkdir(parents=True, exist_ok=True)
            lock = lock or RunLock(run.lock_file, flag, announce=say).acquire()
            if run.exists():  # another process created it since we looked
                raise UserError(f"{flag} {run.path} already holds a run; pass --resume to continue it")
        if chief:
            run.remove_stale_temporaries()
            if new_run:
                run.write_config(plan.config)
                if plan.splits is not None:
                    run.write_splits(plan.splits)
                run.figures.mkdir(exist_ok=True)

        def started():  # the checkpoint was restored: now the extended epoch count may be saved
            if chief and not new_run and plan.config != saved:
                run.write_config(plan.config)

        runtime.set_precision(plan.precision)
        runtime.set_seed(plan.seed)
        with strategy.scope():
            model = plan.build_model()
        history = trainer.fit(
            model, plan.train_data, plan.val_data, run, plan.fit_settings, strategy=strategy,
            epoch_callbacks=list(plan.callbacks(run)), resume=not new_run, on_start=started,
        )
        keras.mixed_precision.set_global_policy("float32")
        if chief and plan.export is not None:
            plan.export(run, model)
        return run, history, model
    except BaseException:
        if chief and new_run and lock is not None and not trainer.committed_epochs(run):
            _discard(run, created_folder)
        raise
    finally:
        if lock is not None:
            lock.release()


def _discard(run: RunDirectory, created_folder: bool) -> None:
    """Remove what a new run wrote before its first committed epoch (the lock stays)."""
    if created_folder:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for entry in run.path.iterdir():
        if entry.name == ".lock":
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def require_best_model(run: RunDirectory, monitor: str) -> Path:
    """best.keras of a finished run, or one line saying why training produced none."""
    if run.best_model.exists():
        return run.best_model
    raise UserError(
        f"training produced no usable model in {run.path}: {monitor} was never finite (the loss diverged); "
        "lower --learning-rate or check the data"
    )


def resumed_settings(saved: dict, requested, cls, extendable: Iterable[str] = ("epochs",)):
    """The settings of a resumed run: the saved ones (``cls.from_dict(saved config)``), with
    the `extendable` fields (how long to train) taken from `requested`. Returns (settings,
    config with them saved). Every paper's recipe resumes through this."""
    settings = cls.from_dict(saved, "config.json")
    changes = {name: getattr(requested, name) for name in extendable if getattr(requested, name) != getattr(settings, name)}
    if changes:
        settings = dataclasses.replace(settings, **changes)
    config = {**saved, "settings": {**saved["settings"], **_jsonable(changes)}}
    return settings, config


def _jsonable(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
