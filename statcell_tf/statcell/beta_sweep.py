"""Rate–distortion sweep over β (Donovan-Maiye et al. 2022, §4.3, Fig. 3a, Fig. S6).

One reference model per β (the paper: 25 values evenly spaced in [0, 1], 2D data), each
kept at its best validation ELBO; on the test set we record the mean rate R = KL(q(z|x) ‖
p(z)) and the mean distortion D = squared error averaged over 10 posterior samples, plus the
per-dimension KLD by rank (Fig. S6b). Finished β values are skipped on rerun, unfinished
ones resume from their checkpoints. The distortion is in the units of the run's
``reconstruction_reduction``: summed over pixels (authors' code) or averaged (pixel-wise MSE).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from statcell_tf import atomic
from statcell_tf.errors import UserError

RESULT_FILE = "rate_distortion.json"


def parse_betas(spec: str) -> list[float]:
    """``start:stop:count`` (evenly spaced, both ends included) or a comma list."""
    spec = spec.strip()
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            betas = np.linspace(start, stop, count).tolist()
        else:
            betas = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--betas must be start:stop:count or a comma list of numbers. Received: {spec!r}") from None
    if not betas:
        raise UserError(f"--betas names no value. Received: {spec!r}")
    bad = [b for b in betas if not np.isfinite(b) or b < 0]
    if bad:
        raise UserError(f"--betas must all be finite numbers >= 0. Received: {bad[0]} in {spec!r}")
    betas = [round(b, 10) for b in betas]
    names = [run_name(b) for b in betas]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"--betas names the same model twice ({', '.join(repeated)}). Received: {spec!r}")
    return betas


def run_name(beta: float) -> str:
    """Folder name of the model for `beta`."""
    return f"beta_{beta:.4f}"


def rate_distortion(model, data, rows, n_samples: int = 10, batch_size: int = 32) -> dict:
    """Mean rate, distortion and ELBO over `rows`, and the per-dimension KLD sorted by rank."""
    from statcell_tf.statcell.latent_stats import kld_per_dimension, rank_dimensions

    rates, distortions, mus, log_vars = [], [], [], []
    for _, batch in data.iterate(rows, batch_size):
        terms = model.per_cell_terms(batch, n_samples=n_samples)
        rates.append(np.asarray(terms["kl"]))
        distortions.append(np.asarray(terms["reconstruction"]))
        mus.append(np.asarray(terms["mu"]))
        log_vars.append(np.asarray(terms["log_var"]))
    if not rates:
        raise UserError("the test split is empty: no cells to measure rate and distortion on")
    rate = float(np.mean(np.concatenate(rates)))
    distortion = float(np.mean(np.concatenate(distortions)))
    mu, log_var = np.concatenate(mus), np.concatenate(log_vars)
    order, _ = rank_dimensions(mu)
    kld = kld_per_dimension(mu, log_var)[order]
    return {
        "rate": rate,
        "distortion": distortion,
        "elbo": -(rate + distortion),
        "n_cells": int(len(mu)),
        "active_dims": int(np.sum(kld > 0.01)),
        "kld_by_rank": [float(v) for v in kld],
    }


def sweep(base_config, cells, betas, out_dir: Path, verbose: int = 1, n_samples: int = 10, log=print) -> pd.DataFrame:
    """Train (or resume) one model per β and measure rate and distortion on the test split.

    Args:
        base_config: `StatcellTrainConfig` shared by every β (its `beta` is replaced).
        cells: CellImages of the data set.
        betas: list of float.
        out_dir: folder; each β gets ``beta_<β>/`` (a run folder) with ``rate_distortion.json``.
        verbose: training verbosity.
        n_samples: posterior samples of the test distortion.
        log: callable for progress lines.

    Returns:
        DataFrame with one row per β: beta, rate, distortion, elbo, n_cells, active_dims, run.
        (The sweep's run folders skip the SavedModel export; their best.keras is kept.)
    """
    from statcell_tf.statcell.data import StatcellData
    from statcell_tf.statcell.training import load_run, train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for beta in betas:
        run_path = out_dir / run_name(beta)
        result_path = run_path / RESULT_FILE
        if (run_path / "config.json").exists():
            _check_same_reconstruction(run_path, base_config)
        if result_path.exists():
            result = json.loads(result_path.read_text())
            log(f"beta={beta:.4f}: done before (rate={result['rate']:.4g}, distortion={result['distortion']:.4g})")
        else:
            config = dataclasses.replace(base_config, beta=float(beta))
            resume = (run_path / "config.json").exists()
            log(f"beta={beta:.4f}: {'resuming' if resume else 'training'} {run_path}")
            train(config, run_path, resume=resume, verbose=verbose, export=False)
            model, config, run = load_run(run_path)
            data = StatcellData(cells, config.model, config.image_shape, config.structure_types or None, config.background)
            test = run.rows_of(cells, "test")
            result = {"beta": float(beta), **rate_distortion(model, data, test, n_samples, config.batch_size)}
            atomic.write_json(result_path, result)
            log(f"beta={beta:.4f}: rate={result['rate']:.4g}, distortion={result['distortion']:.4g}")
        rows.append({k: v for k, v in result.items() if k != "kld_by_rank"} | {"run": str(run_path)})
    frame = pd.DataFrame(rows).sort_values("beta").reset_index(drop=True)
    write_outputs(frame, out_dir)
    return frame


def _check_same_reconstruction(run_path: Path, config) -> None:
    """A resumed β keeps its saved config: refuse one whose distortion is in other units."""
    from statcell_tf.training.run_dir import RunDirectory

    saved = RunDirectory(run_path).read_config()["settings"].get("reconstruction_reduction", "sum")
    if saved != config.reconstruction_reduction:
        raise UserError(
            f"--reconstruction {config.reconstruction_reduction} does not match {run_path}, which was "
            f"trained with --reconstruction {saved}; use another --out"
        )


def write_outputs(frame: pd.DataFrame, out_dir: Path) -> None:
    """rate_distortion.csv, rate_distortion.png (Fig. 3a) and kld_by_rank.png (Fig. S6b)."""
    out_dir = Path(out_dir)
    atomic.write_csv(out_dir / "rate_distortion.csv", frame)
    atomic.save_figure(out_dir / "rate_distortion.png", rate_distortion_figure(frame))
    curves = {}
    for run in frame["run"]:
        path = Path(run) / RESULT_FILE
        if path.exists():
            result = json.loads(path.read_text())
            curves[result["beta"]] = result["kld_by_rank"]
    if curves:
        atomic.save_figure(out_dir / "kld_by_rank.png", kld_by_rank_figure(curves))


def rate_distortion_figure(frame: pd.DataFrame):
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(frame["beta"], frame["distortion"], "o-", color="tab:red", label="distortion")
    left.set_xlabel("β")
    left.set_ylabel("distortion (test)", color="tab:red")
    twin = left.twinx()
    twin.plot(frame["beta"], frame["rate"], "s-", color="tab:blue", label="rate")
    twin.set_ylabel("rate (test KL, nats)", color="tab:blue")
    left.set_title("rate and distortion vs β (Fig. 3a)")
    points = right.scatter(frame["rate"], frame["distortion"], c=frame["beta"], cmap="viridis")
    right.plot(frame["rate"], frame["distortion"], color="0.7", lw=0.8, zorder=0)
    right.set_xlabel("rate")
    right.set_ylabel("distortion")
    figure.colorbar(points, ax=right, label="β")
    figure.tight_layout()
    return figure


def kld_by_rank_figure(curves: dict):
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 3.4))
    cmap = plt.get_cmap("viridis")
    betas = sorted(curves)
    for i, beta in enumerate(betas):
        values = curves[beta]
        ax.plot(np.arange(1, len(values) + 1), values, color=cmap(i / max(1, len(betas) - 1)), lw=1, label=f"{beta:.2f}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("dimension rank")
    ax.set_ylabel("mean KLD per dimension")
    ax.set_title("KLD by rank per β (Fig. S6b)")
    if len(betas) <= 12:
        ax.legend(fontsize=6, title="β", title_fontsize=7)
    return figure
