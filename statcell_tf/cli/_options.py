"""Click options shared by several commands (one definition, one meaning)."""

from __future__ import annotations

from pathlib import Path

import click


def commits_progress(command: click.Command) -> click.Command:
    """Mark a command whose outputs must survive its own later failure (training commits
    every epoch so that ``--resume`` continues); every other command is all-or-nothing."""
    command.commits_progress = True
    return command


existing_path = click.Path(exists=True, path_type=Path)
existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)
class _OutPath(click.Path):
    """An output path, checked when parsed (`statcell_tf.atomic.check_out`): not under a file,
    on a writable filesystem. Each command adds what only it knows (its inputs, new folder)."""

    def convert(self, value, param, ctx):
        from statcell_tf.atomic import check_out

        path = super().convert(value, param, ctx)
        return check_out(path, param.opts[0] if param is not None and param.opts else "--out")


out_path = _OutPath(path_type=Path)

strategy_option = click.option(
    "--strategy",
    type=click.Choice(["auto", "one", "mirrored", "multi-worker"]),
    default="auto",
    show_default=True,
    help="Distribution: auto = mirrored over all GPUs if >1 else one device; "
    "multi-worker reads TF_CONFIG.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "mixed_bfloat16", "mixed_float16"]),
    default="auto",
    show_default=True,
    help="auto = float32 on CPU, mixed_bfloat16 on GPUs with bfloat16 tensor cores (compute capability "
    ">= 8.0), mixed_float16 on older GPUs.",
)


def shuffle_option(command):
    """``--shuffle auto|full|block`` of the trainers (`statcell_tf.data.pipeline.make_dataset`)."""
    from statcell_tf.data.source import SHUFFLES

    return click.option(
        "--shuffle", type=click.Choice(SHUFFLES), default="auto", show_default=True,
        help="How training rows are shuffled each epoch: full = any order; block = contiguous blocks in "
        "random order mixed in a bounded buffer (sequential reads: data larger than memory stream at disk "
        "speed); auto = block when the training images exceed a quarter of the memory.",
    )(command)


def workers_option(items: str):
    """``--workers N``: processes working on `items` in parallel (`statcell_tf.parallel.map_ordered`)."""
    return click.option(
        "--workers", type=click.IntRange(min=1), default=1, show_default=True,
        help=f"Processes working on {items} in parallel (the output does not depend on it).",
    )


class _ShardType(click.ParamType):
    name = "K/N"

    def convert(self, value, param, ctx):
        from statcell_tf.data.shards import Shard, parse_shard
        from statcell_tf.errors import UserError

        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(value)
        except UserError as error:
            self.fail(str(error).removeprefix("--shard "), param, ctx)


def shard_option(items: str):
    """``--shard K/N``: this job does the K-th of N contiguous slices of `items` and writes it as
    one part inside --out (`statcell_tf.data.shards`)."""
    return click.option(
        "--shard", type=_ShardType(), default=None,
        help=f"Do slice K of N of the {items} (K = 1..N) and write it as --out/part-K-of-N: N jobs with the "
        "same --out fan the work out over machines (SLURM array, Kubernetes indexed Job); readers take the "
        "folder as one output once every part is there.",
    )


seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
allow_pickle_option = click.option(
    "--allow-pickle",
    is_flag=True,
    default=False,
    help="Allow reading pickled label .npy files (runs code from the file: only for trusted data).",
)
# train-statcell and beta-sweep: stored as `reconstruction_reduction` in config.json.
reconstruction_option = click.option(
    "--reconstruction",
    "reconstruction",
    type=click.Choice(["sum", "mean"]),
    default="sum",
    show_default=True,
    help="Squared error of the reconstruction term: sum over pixels (the authors' code) or mean "
    "over pixels (pixel-wise MSE, the paper's wording, §6.3). mean shrinks the term by the pixel "
    "count, which moves the Eq. 3 balance towards the KL term at the same β.",
)
