"""The one training loop of statcell_tf.

`fit` trains any `TrainableModel` under any `tf.distribute` strategy (one device, mirrored,
multi-worker) with one loop: each step runs ``model.train_step_fn`` on every replica through
``strategy.run``; per-replica loss terms are combined as batch-size-weighted means. After each
epoch it validates, applies the keep-best, plateau and early-stopping rules and commits the
epoch; then it publishes it (``history.csv``, ``best.keras``, TensorBoard, figures).

Commit: weights, optimizer slots, learning rates, the epoch and step counters, the
plateau/early-stopping state and the best epoch live in one TF checkpoint
(``checkpoints/ckpt-N``), written after the epoch's history (``ckpt-N.history.json``, every
row so far). The checkpoint is the commit point: a run killed at any instant resumes from its
last committed epoch, and whatever that epoch published before the kill (or failed to) is
rewritten from the checkpoint on resume (history.csv, TensorBoard scalars, best.keras when the
last epoch was the best one, and that epoch's figures). A damaged newest checkpoint falls back
to the previous one (two are kept), with a message.

Data streams are positioned from the checkpoint: the training data may be a function of the
epoch (``epoch -> tf.data.Dataset``, the way every paper recipe supplies it), so a resumed
run reads exactly what an uninterrupted one would have read.

Keras `fit` is not used: under MultiWorkerMirroredStrategy it fails on scalar logs and tuple
batches with Keras 3.15 (tensorflow issue #72388; ARCHITECTURE.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.backend import keras, tf
from statcell_tf.errors import UserError
from statcell_tf.training import runtime
from statcell_tf.training.export import save_keras
from statcell_tf.training.run_dir import RunDirectory


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How long to train and the rules applied after each epoch.

    Args:
        epochs: int. Total number of epochs (a resumed run continues up to it).
        steps_per_epoch: int or None. Steps per epoch; None = one pass over a finite dataset.
            With a number, the training dataset should repeat; one iterator runs across epochs.
        validation_steps: int or None. Validation batches per epoch; None = the whole set.
        monitor: str. Log key that decides the best model, plateau and early stopping.
        mode: str. ``"min"`` or ``"max"``: whether smaller or larger `monitor` is better.
        plateau_patience: int or None. Epochs without improvement before the learning
            rates are multiplied by `plateau_factor`; None disables it.
        plateau_factor: float. Learning-rate factor on a plateau. Defaults to 0.1.
        min_lr: float. Floor of the learning rates. Defaults to 1e-8.
        early_stopping_patience: int or None. Epochs without improvement before training
            stops; None disables it.
        min_delta: float. Smallest change that counts as an improvement.
        verbose: int. 0 silent, 1 progress bar and one line per epoch.
    """

    epochs: int = 10
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    monitor: str = "val_loss"
    mode: str = "min"
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    min_lr: float = 1e-8
    early_stopping_patience: int | None = None
    min_delta: float = 0.0
    verbose: int = 1

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"`epochs` must be >= 1. Received: epochs={self.epochs}")
        for name in ("steps_per_epoch", "validation_steps", "plateau_patience", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be None or >= 1. Received: {name}={value}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: mode={self.mode!r}")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ValueError(
                f"`plateau_factor` must be in (0, 1). Received: plateau_factor={self.plateau_factor}"
            )


EpochCallback = Callable[[int, dict, keras.Model], None]


class _State:
    """Counters that must survive a restart; tf.Variables so the checkpoint holds them."""

    def __init__(self, mode: str):
        worst = math.inf if mode == "min" else -math.inf
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best = tf.Variable(worst, dtype=tf.float64, trainable=False, name="best")
        self.plateau_wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="plateau_wait")
        self.stop_wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="stop_wait")
        self.stopped = tf.Variable(False, trainable=False, name="stopped")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")

    def trackables(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "plateau_wait": self.plateau_wait,
            "stop_wait": self.stop_wait,
            "stopped": self.stopped,
            "best_epoch": self.best_epoch,
        }


def _learning_rates(model) -> dict:
    return {name: float(opt.learning_rate.numpy()) for name, opt in model.optimizers_by_name.items()}


def _first_batch(dataset):
    for batch in dataset.take(1):
        return batch
    raise ValueError("the training dataset is empty")


def _batch_size(batch) -> tf.Tensor:
    first = tf.nest.flatten(batch)[0]
    return tf.cast(tf.shape(first)[0], tf.float32)


def _make_step(strategy, step_fn, element_spec):
    """A tf.function running `step_fn` on every replica of a distributed batch (of
    `element_spec`); returns batch-weighted loss sums."""

    def replica_fn(batch):
        losses = step_fn(batch)
        count = _batch_size(batch)
        weighted = {key: tf.cast(value, tf.float32) * count for key, value in losses.items()}
        return weighted, count

    # The batch is fetched outside the function: a step that hit the end of the data inside it
    # would still run every op that does not depend on the batch (spectral-norm and weight-decay
    # assignments), on some replicas only, and the replicas' weights would drift apart.
    @tf.function(input_signature=[element_spec])
    def step(batch):
        weighted, count = strategy.run(replica_fn, args=(batch,))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)
        sums = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in weighted.items()}
        return sums, total

    return step


def _run_epoch(step, iterator, steps, progbar=None, prefix=""):
    """Run `steps` steps (None = until the iterator ends); return means of every term."""
    sums: dict = {}
    count = 0.0
    done = 0
    while steps is None or done < steps:
        batch = iterator.get_next_as_optional()  # agreed on by every replica and worker
        if not batch.has_value():
            break
        batch_sums, batch_count = step(batch.get_value())
        batch_count = float(batch_count.numpy())
        for key, value in batch_sums.items():
            sums[key] = sums.get(key, 0.0) + float(value.numpy())
        count += batch_count
        done += 1
        if progbar is not None:
            progbar.update(done, [(prefix + k, v / batch_count) for k, v in batch_sums.items() if k == "loss"])
    if done == 0:
        raise ValueError(f"no {prefix or 'training '}batches were produced")
    return {prefix + key: value / count for key, value in sums.items()}, done


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if not np.isfinite(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


def fit(
    model,
    train_dataset,
    val_dataset: tf.data.Dataset | None,
    run_directory,
    settings: TrainSettings,
    strategy: tf.distribute.Strategy | None = None,
    epoch_callbacks: Iterable[EpochCallback] = (),
    resume: bool = True,
    on_start: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Train `model` and return its history (one row per epoch, all epochs of the run).

    Args:
        model: TrainableModel. Built inside ``strategy.scope()`` (its variables must be
            created there); `fit` creates variables and optimizers from the first batch.
        train_dataset: tf.data.Dataset of dict batches (global batch size), or a function
            ``epoch -> tf.data.Dataset`` (epochs count from 1) giving that epoch's batches
            (exactly `settings.steps_per_epoch` of them when that is set). A function is
            how a resumed run reads exactly the data an uninterrupted run reads; a plain
            dataset is replayed (finite) or skipped forward (repeated) instead.
        val_dataset: tf.data.Dataset or None. Validation batches; their loss terms are
            logged with a ``val_`` prefix.
        run_directory: RunDirectory or path. Receives checkpoints/, history.csv,
            tensorboard/ and best.keras.
        settings: TrainSettings.
        strategy: tf.distribute.Strategy or None (the default strategy).
        epoch_callbacks: callables ``fn(epoch, logs, model)`` run on the chief after each
            committed epoch (figures, extra metrics), and again for the last committed epoch
            when a run resumes (so they must be idempotent). `epoch` counts from 1.
        resume: bool. Continue from the newest intact checkpoint in the run directory if any.
        on_start: callable or None. Called once the checkpoint is restored, before training.

    Returns:
        pandas.DataFrame with columns epoch, every loss term, every ``val_`` term, the
        learning rate(s) and the epoch time.
    """
    strategy = strategy or tf.distribute.get_strategy()
    run = run_directory if isinstance(run_directory, RunDirectory) else RunDirectory(run_directory)
    run.path.mkdir(parents=True, exist_ok=True)
    chief = runtime.is_chief(strategy)
    if settings.monitor.startswith("val_") and val_dataset is None:
        raise ValueError(f"monitor={settings.monitor!r} needs a validation dataset")
    epoch_data = train_dataset if callable(train_dataset) else None

    with strategy.scope():
        model.prepare(_first_batch(epoch_data(1) if epoch_data else train_dataset))
        state = _State(settings.mode)
        optimizers = {f"optimizer_{name}": opt for name, opt in model.optimizers_by_name.items()}
        checkpoint = tf.train.Checkpoint(
            model=model, model_variables=_named_variables(model.variables),
            **{f"{key}_variables": _named_variables(opt.variables) for key, opt in optimizers.items()},
            **optimizers, **state.trackables(), **_seed_states(model)
        )

    # Non-chief workers must save too (the save is collective) but into a throw-away folder.
    checkpoint_dir = run.checkpoints if chief else Path(tempfile.mkdtemp(prefix="statcell_worker_ckpt_"))
    history = _restore(run, checkpoint, state, resume, chief, settings.verbose)
    if resume:
        _check_workers_restored_alike(strategy, run, int(state.epoch.numpy()))
    callbacks = list(epoch_callbacks)
    if chief and len(history):
        _republish(run, model, state, history, callbacks)
    if on_start is not None:
        on_start()

    distributed_val = strategy.experimental_distribute_dataset(val_dataset) if val_dataset is not None else None
    test_step = _make_step(strategy, model.test_step_fn, distributed_val.element_spec) if distributed_val else None
    persistent_iterator = None
    if epoch_data is None:
        if settings.steps_per_epoch:
            done = int(state.step.numpy())  # a repeated stream continues where the run stopped
            persistent_iterator = iter(strategy.experimental_distribute_dataset(train_dataset.skip(done)))
        else:
            # A finite dataset draws its epoch's shuffle order and augmentation keys when an
            # iterator is made; replay the draws of the epochs already done.
            fixed = strategy.experimental_distribute_dataset(train_dataset)
            for _ in range(int(state.epoch.numpy())):
                iter(fixed)
    train_step = None
    average_replica_statistics = _replica_statistics_averager(strategy, model)
    writer = tf.summary.create_file_writer(str(run.tensorboard)) if chief else None

    try:
        while int(state.epoch.numpy()) < settings.epochs and not bool(state.stopped.numpy()):
            epoch = int(state.epoch.numpy()) + 1
            started = time.time()
            if persistent_iterator is not None:
                iterator, steps_hint = persistent_iterator, settings.steps_per_epoch
            else:
                dataset = epoch_data(epoch) if epoch_data else train_dataset
                steps_hint = settings.steps_per_epoch or _cardinality(dataset)
                distributed = strategy.experimental_distribute_dataset(dataset) if epoch_data else fixed
                iterator = iter(distributed)
            if train_step is None:
                train_step = _make_step(strategy, model.train_step_fn, iterator.element_spec)
            progbar = None
            if chief and settings.verbose:
                print(f"Epoch {epoch}/{settings.epochs}", flush=True)
                progbar = keras.utils.Progbar(steps_hint, verbose=1, stateful_metrics=["loss"])
            logs, steps = _run_epoch(train_step, iterator, settings.steps_per_epoch, progbar)
            state.step.assign_add(steps)
            average_replica_statistics()
            if distributed_val is not None:
                val_logs, _ = _run_epoch(test_step, iter(distributed_val), settings.validation_steps, prefix="val_")
                logs.update(val_logs)
            lrs = _learning_rates(model)
            for name, value in lrs.items():
                logs["lr" if name == "main" else f"lr_{name}"] = value
            logs = {"epoch": epoch, "step": int(state.step.numpy()), **logs, "time_s": time.time() - started}
            if settings.monitor not in logs:
                raise ValueError(
                    f"monitor={settings.monitor!r} is not a logged value; logged: {', '.join(logs)}"
                )
            improved = _apply_rules(model, logs, state, settings, chief)
            if improved:
                state.best_epoch.assign(epoch)
            state.epoch.assign(epoch)
            history = pd.concat([history, pd.DataFrame([logs])], ignore_index=True)
            failpoint("before_commit", epoch)
            _commit(checkpoint, checkpoint_dir, epoch, history, chief)
            failpoint("after_commit", epoch)
            if chief:  # publish the committed epoch
                atomic.write_csv(run.history, history)
                failpoint("after_history", epoch)
                if improved:
                    save_keras(model, run.best_model)
                with writer.as_default(step=epoch):
                    _write_scalars(logs)
                writer.flush()
                if settings.verbose:
                    shown = ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if k not in ("epoch", "step"))
                    print(f"epoch {epoch}: {shown}", flush=True)
                for callback in callbacks:
                    callback(epoch, logs, model)
                failpoint("after_publish", epoch)
    finally:
        if writer is not None:
            writer.close()
        if not chief:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return history


def _write_scalars(logs: dict) -> None:
    for key, value in logs.items():
        if key != "epoch" and isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value):
            tf.summary.scalar(key, float(value))


CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)\.index$")
KEEP_CHECKPOINTS = 2


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, prefix) of every checkpoint in `folder`, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = CHECKPOINT_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), folder / f"ckpt-{match.group(1)}"))
    return sorted(found, reverse=True)


def committed_epochs(run) -> int:
    """The newest epoch with a checkpoint in `run` (0 when none)."""
    found = _checkpoints(run.checkpoints)
    return found[0][0] if found else 0


def failpoint(name: str, epoch: int) -> None:
    """Test hook: SIGKILL this process at the named instant of `epoch` when the environment
    variable ``STATCELL_TF_KILL_AT`` is ``<name>:<epoch>`` (the kill-anywhere tests)."""
    wanted = os.environ.get("STATCELL_TF_KILL_AT")
    if wanted and wanted == f"{name}:{epoch}":
        os.kill(os.getpid(), signal.SIGKILL)


def _history_file(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".history.json")


def _commit(checkpoint, folder: Path, epoch: int, history: pd.DataFrame, chief: bool) -> None:
    """Commit `epoch`: its history sidecar, then the checkpoint (the commit point), then
    prune checkpoints older than the `KEEP_CHECKPOINTS` newest."""
    prefix = Path(folder) / f"ckpt-{epoch}"
    if chief:
        table = json.loads(history.to_json(orient="split", index=False))  # keeps the column order
        atomic.write_json(_history_file(prefix), table)
    failpoint("mid_commit", epoch)
    try:
        checkpoint.write(str(prefix))
    except (tf.errors.OpError, OSError) as error:  # a full disk: ResourceExhaustedError
        # This epoch's partial files go: the newest intact checkpoint stays the commit point.
        for path in prefix.parent.glob(f"ckpt-{epoch}.*"):
            path.unlink(missing_ok=True)
        reason = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
        raise UserError(
            f"cannot save the checkpoint {prefix} of epoch {epoch} ({reason.splitlines()[0]}); the run keeps its "
            "last saved epoch: free space and continue it with --resume"
        ) from None
    if chief:
        kept = _checkpoints(Path(folder))
        for old_epoch, old in kept[KEEP_CHECKPOINTS:]:
            for path in old.parent.glob(f"ckpt-{old_epoch}.*"):
                path.unlink(missing_ok=True)
        # TensorFlow's state file, for tools that use tf.train.latest_checkpoint (not needed here).
        names = [prefix.name for _, prefix in reversed(kept[:KEEP_CHECKPOINTS])]
        state = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names)
        atomic.write_text(Path(folder) / "checkpoint", state)


def _republish(run, model, state, history, callbacks) -> None:
    """After a resume, rewrite what the last committed epoch may not have published before
    the run was killed: history.csv, the TensorBoard scalars (rebuilt from the history),
    best.keras when that epoch was the best, and its figures."""
    atomic.write_csv(run.history, history)
    shutil.rmtree(run.tensorboard, ignore_errors=True)
    writer = tf.summary.create_file_writer(str(run.tensorboard))
    with writer.as_default():
        for row in history.to_dict(orient="records"):
            with writer.as_default(step=int(row["epoch"])):
                _write_scalars(row)
    writer.close()
    epoch = int(state.epoch.numpy())
    if int(state.best_epoch.numpy()) == epoch:
        save_keras(model, run.best_model)
    last = history.iloc[-1].to_dict()
    for callback in callbacks:
        callback(epoch, last, model)
def _replica_statistics_averager(strategy, model) -> Callable[[], None]:
    """A function that sets every replica's copy of the model's floating-point non-trainable
    variables (batch-norm moving statistics, spectral-norm vectors) to their mean over replicas.

    Keras 3 updates these in each replica from its own part of the batch, so under several
    replicas the copies drift apart and a checkpoint would keep only the first replica's.
    Averaging once per epoch (one all-reduce) keeps them identical, and the saved estimate uses
    every replica's batches.
    """
    variables = [
        v for v in model.non_trainable_variables
        if v.dtype in ("float16", "bfloat16", "float32", "float64")
    ]
    if strategy.num_replicas_in_sync == 1 or not variables:
        return lambda: None

    @tf.function
    def replica_means():
        def mean():  # in replica context a variable reads as that replica's copy
            context = tf.distribute.get_replica_context()
            return [context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value)) for v in variables]

        return strategy.run(mean)

    def average() -> None:
        for variable, value in zip(variables, replica_means()):
            variable.assign(strategy.experimental_local_results(value)[0])

    return average


def _named_variables(variables) -> dict:
    """Every variable, keyed by its position (the order is fixed by the model's code; names
    are not: Keras numbers the layers of every new model in a process).

    Keras 3 layers held in Python lists inside custom layers (MBConv stages, residual blocks)
    are not reachable through `tf.train.Checkpoint`'s object graph: without this their
    batch-norm statistics (and any weight no optimizer holds) were silently left out of the
    checkpoint, so a resumed run validated differently from an uninterrupted one."""
    return {f"v{i:05d}": variable for i, variable in enumerate(variables)}


def _seed_states(model) -> dict:
    """The state variables of every SeedGenerator in `model` (dropout masks, sampling), so a
    resumed run draws the same random numbers as an uninterrupted one."""
    states = {}
    for layer in [model, *model._flatten_layers(include_self=False)]:
        for generator in getattr(layer, "_seed_generators", []):
            states[f"seed_state_{len(states)}"] = generator.state
    return states


def _cardinality(dataset) -> int | None:
    value = int(dataset.cardinality().numpy())
    return value if value >= 0 else None


def _restore(run, checkpoint, state, resume, chief, verbose) -> pd.DataFrame:
    """Restore the newest intact checkpoint; return the history committed with it.

    Every worker restores from the run's checkpoints folder (the chief's; non-chief workers
    save into a throw-away folder), so a multi-worker run resumes on all workers together.
    A damaged newest checkpoint falls back to the previous one with a message; a run that
    committed epochs but has no intact checkpoint stops with one line (never a silent
    restart that would overwrite its history and best model).
    """
    found = _checkpoints(run.checkpoints) if resume else []
    if not found:
        if resume and chief and (run.best_model.exists() or _history_rows(run.history)):
            raise UserError(
                f"cannot resume {run.path}: it has trained epochs (history.csv, best.keras) but "
                f"{run.checkpoints} holds no checkpoint; train into a new --out instead"
            )
        return pd.DataFrame()
    failures = []
    for epoch, prefix in found:
        try:
            table = json.loads(_history_file(prefix).read_text())
            history = pd.DataFrame(table["data"], columns=table["columns"])
            checkpoint.read(str(prefix)).assert_existing_objects_matched()
            if int(state.epoch.numpy()) != epoch or len(history) != epoch:
                raise ValueError(f"it records epoch {int(state.epoch.numpy())} and {len(history)} history rows")
            break
        except Exception as error:  # TF raises OpError, IndexError, ValueError... for bad files
            text = str(error).strip()
            first = text.splitlines()[0][:160] if text else type(error).__name__
            failures.append(f"{prefix.name}: {first}")
    else:
        raise UserError(
            f"cannot resume {run.path}: no intact checkpoint in {run.checkpoints} "
            f"({'; '.join(failures)}); they are damaged or from a different model"
        )
    if chief and failures:
        print(f"Warning: {'; '.join(failures)} -- resuming from {prefix.name} instead", file=sys.stderr, flush=True)
    if chief and verbose:
        print(f"Resuming {run.path} after epoch {epoch} (step {int(state.step.numpy())})", flush=True)
    return history


def _history_rows(path: Path) -> int:
    try:
        return len(pd.read_csv(path))
    except Exception:
        return 0


def _check_workers_restored_alike(strategy, run, epoch: int) -> None:
    """Multi-worker resume: stop every worker with one message unless all restored the same
    epoch (a worker that could not see the chief's checkpoints would start over and the
    collective steps of the workers would no longer pair up: a hang, not an error)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function
    def gather():
        def replica_epochs():
            context = tf.distribute.get_replica_context()
            return context.all_gather(tf.constant([float(epoch)], tf.float32), axis=0)

        return strategy.run(replica_epochs)

    epochs = sorted({int(e) for e in strategy.experimental_local_results(gather())[0].numpy()})
    if len(epochs) > 1:
        raise UserError(
            f"--resume: the workers restored different epochs ({', '.join(map(str, epochs))}; this worker "
            f"{epoch} from {run.checkpoints}). Every worker must see the chief's checkpoints: give all "
            "workers the same --out on a shared filesystem, or copy RUN/checkpoints to each machine"
        )


def _apply_rules(model, logs, state, settings, chief) -> bool:
    """Keep-best, plateau and early stopping, in that order (Keras callback semantics);
    True when this epoch is the new best (its model is saved once the epoch is committed)."""
    value = float(logs[settings.monitor])
    if _improved(value, float(state.best.numpy()), settings.mode, settings.min_delta):
        state.best.assign(value)
        state.plateau_wait.assign(0)
        state.stop_wait.assign(0)
        return True
    state.plateau_wait.assign_add(1)
    state.stop_wait.assign_add(1)
    if settings.plateau_patience and int(state.plateau_wait.numpy()) >= settings.plateau_patience:
        for optimizer in model.optimizers_by_name.values():
            current = float(optimizer.learning_rate.numpy())
            if current > settings.min_lr:
                optimizer.learning_rate.assign(max(current * settings.plateau_factor, settings.min_lr))
        state.plateau_wait.assign(0)
        if chief and settings.verbose:
            print(f"plateau: learning rates now {_learning_rates(model)}", flush=True)
    if settings.early_stopping_patience and int(state.stop_wait.numpy()) >= settings.early_stopping_patience:
        state.stopped.assign(True)
        if chief and settings.verbose:
            print(f"early stopping: no {settings.monitor} improvement for "
                  f"{settings.early_stopping_patience} epochs", flush=True)
    return False
