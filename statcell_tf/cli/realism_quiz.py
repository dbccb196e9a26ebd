"""`realism-quiz`: the blinded real-vs-reconstructed assessment of VAE+ (Sect. 4.3.2)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from statcell_tf.cli._options import existing_dir, existing_path, out_path
from statcell_tf.errors import UserError

KEY_NAME = ".answer_key.csv"  # hidden from the raters (dot file)
TEMPLATE_NAME = "answers.csv"
REAL_WORDS = {"real", "r", "true", "1", "yes"}
SYNTHETIC_WORDS = {"synthetic", "s", "fake", "reconstructed", "reconstruction", "generated", "0", "no"}


def pick_balanced(metadata: pd.DataFrame, count: int, rng) -> np.ndarray:
    """`count` distinct rows spread evenly over treatments (compound, concentration), controls
    included: treatments are visited in random order, round-robin, one random unused cell each."""
    if count > len(metadata):
        raise UserError(f"-n asks for {count} cells in all but the data has {len(metadata)}. Received: -n {count // 2}")
    columns = [c for c in ("compound", "concentration") if c in metadata.columns]
    keys = metadata[columns].astype(str).agg("|".join, axis=1) if columns else pd.Series(["all"] * len(metadata))
    pools = [list(rng.permutation(np.flatnonzero((keys == key).to_numpy()))) for key in rng.permutation(keys.unique())]
    chosen: list[int] = []
    while len(chosen) < count:
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop()))
    return np.array(chosen)


def parse_answer(value, image: str, rater: str) -> bool:
    """True when a rater called the image real."""
    word = str(value).strip().lower()
    if word in REAL_WORDS:
        return True
    if word in SYNTHETIC_WORDS:
        return False
    raise UserError(
        f"answers: rater {rater!r} gave {value!r} for {image}; write 'real' or 'synthetic'. Received: {value!r}"
    )


def score(answers: pd.DataFrame, key: pd.DataFrame, source: str = "answers") -> pd.DataFrame:
    """Per rater (and their mean): how often reconstructions passed as real.

    Args:
        answers: DataFrame with column ``image`` and one answer column per rater.
        key: the hidden answer key (``image``, ``truth`` = real / reconstructed).
    """
    if "image" not in answers.columns or len(answers.columns) < 2:
        raise UserError(f"{source} needs a column 'image' and one answer column per rater. Received: {list(answers.columns)}")
    unknown = sorted(set(answers["image"].astype(str)) - set(key["image"]))
    missing = sorted(set(key["image"]) - set(answers["image"].astype(str)))
    if unknown or missing:
        raise UserError(
            f"{source} must answer every quiz image exactly once. Received: unknown {unknown[:3]}, missing {missing[:3]}"
        )
    merged = key.merge(answers, on="image", how="left")
    is_reconstruction = (merged["truth"] == "reconstructed").to_numpy()
    rows = []
    for rater in [c for c in answers.columns if c != "image"]:
        said_real = np.array([parse_answer(v, i, rater) for v, i in zip(merged[rater], merged["image"])])
        rows.append(
            {
                "rater": rater,
                "reconstructions_called_real": float(said_real[is_reconstruction].mean()),
                "real_called_real": float(said_real[~is_reconstruction].mean()),
                "accuracy": float((said_real == ~is_reconstruction).mean()),
                "images": len(merged),
            }
        )
    table = pd.DataFrame(rows)
    if len(table) > 1:
        mean = table.drop(columns=["rater", "images"]).mean().to_dict()
        table = pd.concat([table, pd.DataFrame([{"rater": "mean", **mean, "images": len(merged)}])], ignore_index=True)
    return table


def _save_png(path: Path, rgb: np.ndarray, scale: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from statcell_tf.atomic import atomic_path

    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)  # nearest: no smoothing of either kind
    with atomic_path(path) as tmp:
        plt.imsave(tmp, big, format="png")


@click.command()
@click.argument("run", type=existing_dir, required=False)
@click.option("--data", type=existing_dir, default=None, help="Crops to sample real cells from (BBBC021 layout).")
@click.option("-n", "count", type=click.IntRange(1), default=50, show_default=True, help="Real images, and as many reconstructions.")
@click.option("--out", "quiz", type=out_path, required=True, help="Quiz folder (written, or read with --score).")
@click.option("--score", "answers", type=existing_path, default=None, help="Score a filled-in answers CSV against the quiz's key.")
@click.option("--scale", type=click.IntRange(1, 16), default=3, show_default=True, help="Pixel upscaling of the PNGs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cell choice and shuffling.")
def command(run, data, count, quiz, answers, scale, seed):
    """Make (or score) a blinded real-vs-reconstructed quiz for biologists (VAE+ Sect. 4.3.2).

    Making: RUN --data DIR -n 50 --out QUIZ picks 2n distinct cells balanced across
    treatments (controls included); n are shown as real crops and n as their VAE+
    reconstructions, identically normalised and rendered, under shuffled anonymous names
    QUIZ/images/image_XXX.png. The key is hidden in QUIZ/.answer_key.csv; raters fill in
    QUIZ/answers.csv (one column per rater: real or synthetic).

    Scoring: --score ANSWERS.csv --out QUIZ reports, per rater and on average, how often
    reconstructions passed as real (the paper: 40.7%), how often real crops were called
    real, and the accuracy; written to QUIZ/score.csv.
    """
    from statcell_tf import atomic

    quiz = Path(quiz)
    if answers is not None:
        if run is not None or data is not None:
            raise click.UsageError("--score only needs --out QUIZ (the folder holding the answer key)")
        key_path = quiz / KEY_NAME
        if not key_path.exists():
            raise UserError(f"--out {quiz} holds no answer key ({KEY_NAME}); make the quiz first")
        table = score(pd.read_csv(answers), pd.read_csv(key_path), f"--score {answers}")
        atomic.write_csv(quiz / "score.csv", table)
        for _, row in table.iterrows():
            click.echo(
                f"{row['rater']}: reconstructions called real {100 * row['reconstructions_called_real']:.1f}%, "
                f"real called real {100 * row['real_called_real']:.1f}%, accuracy {100 * row['accuracy']:.1f}%"
            )
        click.echo(f"Wrote {quiz / 'score.csv'}")
        return
    if run is None or data is None:
        raise click.UsageError("making a quiz needs RUN and --data DIR (or --score ANSWERS.csv to score one)")
    if (quiz / KEY_NAME).exists():
        raise UserError(f"--out {quiz} already holds a quiz; choose another folder (its key would be overwritten)")

    from statcell_tf.vaeplus.training import batched, load_cells, load_endpoints, normalize, to_rgb

    _, loaded = load_endpoints(run)
    cells = load_cells(data)
    rng = np.random.default_rng(seed)
    rows = pick_balanced(cells.metadata, 2 * count, rng)
    images = normalize(cells.images[rows])
    reconstructed = rng.permutation(len(rows)) < count  # n of the 2n shown as reconstructions
    shown = images.copy()
    shown[reconstructed] = batched(loaded.reconstruct, images[reconstructed])
    order = rng.permutation(len(rows))  # anonymous names in shuffled order
    width = len(str(len(rows)))
    key_rows = []
    for position, index in enumerate(order, start=1):
        name = f"image_{position:0{width}d}.png"
        _save_png(quiz / "images" / name, to_rgb(shown[index], cells.channel_names), scale)
        meta = cells.metadata.iloc[rows[index]]
        key_rows.append(
            {"image": name, "truth": "reconstructed" if reconstructed[index] else "real",
             "cell": str(meta.get("file", rows[index])), "compound": meta.get("compound", ""),
             "concentration": meta.get("concentration", "")}
        )
    key = pd.DataFrame(key_rows)
    atomic.write_csv(quiz / KEY_NAME, key)
    atomic.write_csv(quiz / TEMPLATE_NAME, pd.DataFrame({"image": key["image"], "rater_1": ""}))
    atomic.write_text(
        quiz / "README.txt",
        f"{len(key)} single-cell images (DNA red, beta-tubulin green, F-actin blue). Some are real microscopy crops,\n"
        "some were synthesised by a model. For every image write 'real' or 'synthetic' in answers.csv\n"
        "(one column per rater; add columns rater_2, rater_3, ... as needed). Do not open .answer_key.csv.\n",
    )
    click.echo(f"Wrote {len(key)} images to {quiz / 'images'}, the answer template {quiz / TEMPLATE_NAME} "
               f"and the hidden key {quiz / KEY_NAME}")
