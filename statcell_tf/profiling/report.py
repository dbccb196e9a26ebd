"""Side-by-side reports of several embeddings: mAP tables (Markdown) and figures (PNG).

Input tables are `mean_ap.phenotypic_activity` / `phenotypic_consistency` results of every
embedding stacked with a ``method`` column.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from statcell_tf import atomic


def _cell(row: pd.Series, flag: str) -> str:
    if pd.isna(row["mean_average_precision"]):
        return f"– ({row['note']})" if row.get("note") else "–"
    mark = " ✓" if row[flag] else ""
    return f"{row['mean_average_precision']:.3f} (p {row['p_value']:.2g}, FDR {row['corrected_p_value']:.2g}){mark}"


def _wide(table: pd.DataFrame, keys: list, labels: list, flag: str) -> list[str]:
    methods = list(dict.fromkeys(table["method"]))
    lines = ["| " + " | ".join(labels + methods) + " |", "|" + "---|" * (len(labels) + len(methods))]
    for key, group in table.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        by_method = {row["method"]: _cell(row, flag) for _, row in group.iterrows()}
        shown = [f"{k:g}" if isinstance(k, float) else str(k) for k in key]
        lines.append("| " + " | ".join(shown + [by_method.get(m, "") for m in methods]) + " |")
    fractions = []
    for method in methods:
        scored = table[(table["method"] == method) & table["mean_average_precision"].notna()]
        scored = scored[scored["kind"] != "null check"] if "kind" in scored.columns else scored
        fractions.append(f"{method}: {int(scored[flag].sum())}/{len(scored)}")
    checks = table[table["kind"] == "null check"] if "kind" in table.columns else table.iloc[:0]
    if len(checks):
        lines += ["", "The random half of the controls is the null check: it must not be active."]
    return lines + ["", f"Fraction {'active' if flag == 'active' else 'consistent'} (FDR < threshold): "
                    + "; ".join(fractions) + "."]


def activity_markdown(activity: pd.DataFrame, level: str, control: str, threshold: float) -> str:
    """One row per treatment, one column per embedding: mAP (p, FDR) and ✓ when active."""
    lines = [f"### Phenotypic activity (mAP of {level} replicates against {control}; ✓ = FDR < {threshold:g})", ""]
    lines += _wide(activity, ["Metadata_compound", "Metadata_concentration"], ["Compound", "Concentration"], "active")
    return "\n".join(lines) + "\n"


def consistency_markdown(consistency: pd.DataFrame, threshold: float) -> str:
    """One row per mechanism, one column per embedding."""
    lines = [f"### Phenotypic consistency (mAP of treatment profiles sharing a MoA; ✓ = FDR < {threshold:g})", ""]
    lines += _wide(consistency, ["Metadata_moa"], ["MoA"], "consistent")
    return "\n".join(lines) + "\n"


def plot_activity(activity: pd.DataFrame, path: str | os.PathLike, threshold: float) -> None:
    """mAP vs −log10(FDR-corrected p), one colour per embedding (× = the control half-split
    null check), the FDR threshold dashed."""
    from statcell_tf import figures

    fig, axes = figures.new_figure(panel=(4.8, 3.8))
    ax = axes[0, 0]
    scored = activity[activity["mean_average_precision"].notna()]
    kinds = scored["kind"] if "kind" in scored.columns else pd.Series("treatment", index=scored.index)
    colours = figures.category_colours(scored["method"].astype(str))
    for method, group in scored.groupby("method", sort=False):
        for kind, marker, suffix in (("treatment", "o", ""), ("null check", "x", " (control half: null check)")):
            part = group[kinds[group.index] == kind]
            if len(part):
                ax.scatter(part["mean_average_precision"], -np.log10(part["corrected_p_value"].astype(float)),
                           label=method + suffix, alpha=0.8, s=30, marker=marker, color=colours[str(method)])
    ax.axhline(-np.log10(threshold), color="black", linestyle="--", lw=0.8, label=f"FDR = {threshold:g}")
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("mAP (replicates vs controls)")
    ax.set_ylabel("−log10 FDR-corrected p")
    ax.set_title(f"Phenotypic activity: one point per treatment, n = {len(scored)}")
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
    atomic.save_figure(path, fig)


def plot_consistency(consistency: pd.DataFrame, path: str | os.PathLike) -> None:
    """Per-mechanism mAP bars, grouped by mechanism, one bar per embedding."""
    from statcell_tf import figures

    moas = list(dict.fromkeys(consistency["Metadata_moa"]))
    methods = list(dict.fromkeys(consistency["method"]))
    colours = figures.category_colours([str(m) for m in methods])
    fig, axes = figures.new_figure(figsize=(max(4.0, 0.9 * len(moas) * max(1, len(methods)) ** 0.5 + 2), 4))
    ax = axes[0, 0]
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        scores = consistency[consistency["method"] == method].set_index("Metadata_moa")["mean_average_precision"]
        values = [float(scores.get(m, np.nan)) for m in moas]
        ax.bar(np.arange(len(moas)) + (j - (len(methods) - 1) / 2) * width, np.nan_to_num(values), width, label=method,
               color=colours[str(method)])
    ax.set_xticks(np.arange(len(moas)), moas, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("mechanism of action")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("mAP (treatments of the MoA)")
    ax.set_title("Phenotypic consistency (missing bars: not evaluable)")
    if methods:
        fig.legend(loc="outside right upper", frameon=False, title="embedding")
    atomic.save_figure(path, fig)
