"""Which rows a plate is normalised (or whitened) against: the one fallback rule.

Profiles are normalised against the negative controls (DMSO) of their own plate: that
removes plate effects. A plate can hold too few controls for that (BBBC021 subsets with one
control cell or one DMSO well per plate; plates without DMSO): a mean needs one control, a
standard deviation, a MAD or a whitening at least two. For every plate the reference is
the first of these that holds at least ``min_controls`` control rows:

1. the plate's own controls (scope ``plate``);
2. the controls of every plate of its experimental batch (scope ``batch``);
3. the controls of every plate (scope ``pooled``);
4. every row of the plate, treated or not (``all samples``): the weakest reference, used
   only when the whole table holds fewer than ``min_controls`` controls.

Starting at ``batch`` or ``pooled`` skips the narrower scopes (normalise per batch, or
against all controls at once). Every plate's choice is returned as a table, so commands can
say which plates fell back and to what; nothing here raises for a plate with 0 or 1
controls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from statcell_tf.errors import UserError

SCOPES = ("plate", "batch", "pooled")
REPORT_COLUMNS = ("plate", "batch", "controls", "reference", "reference_rows", "fallback")


def control_references(
    plates, batches, is_control, scope: str = "plate", min_controls: int = 2
) -> tuple[dict, pd.DataFrame]:
    """The reference rows of every plate under the fallback rule of the module docstring.

    Args:
        plates: (N,) plate of every row.
        batches: (N,) experimental batch of every row.
        is_control: (N,) bool, True for control rows.
        scope: ``"plate"``, ``"batch"`` or ``"pooled"``: the first scope tried.
        min_controls: int. Fewest control rows a reference may hold.

    Returns:
        (rows, report): ``rows[plate]`` = int indices of the reference rows; ``report`` one
        row per plate with ``plate``, ``batch``, ``controls`` (on the plate), ``reference``
        (``plate``, ``batch <name>``, ``pooled`` or ``all samples``), ``reference_rows``
        and ``fallback`` (True when the reference is wider than `scope`).
    """
    if scope not in SCOPES:
        raise ValueError(f"`scope` must be one of {', '.join(SCOPES)}. Received: scope={scope!r}")
    plates = np.asarray(plates).astype(str)
    batches = np.asarray(batches).astype(str)
    is_control = np.asarray(is_control, dtype=bool)
    if len(plates) < min_controls:
        raise UserError(f"normalisation needs at least {min_controls} rows. Received: {len(plates)}")
    everything = np.arange(len(plates))
    pooled = everything[is_control]
    rows, report = {}, []
    for plate in sorted(set(plates)):
        on_plate = plates == plate
        batch = str(batches[on_plate][0])
        candidates = [
            ("plate", everything[on_plate & is_control]),
            (f"batch {batch}", everything[(batches == batch) & is_control]),
            ("pooled", pooled),
        ][SCOPES.index(scope):]
        name, chosen = next(((n, r) for n, r in candidates if len(r) >= min_controls), (None, None))
        if chosen is None:
            name, chosen = "all samples", everything[on_plate] if on_plate.sum() >= min_controls else everything
        rows[plate] = chosen
        report.append({"plate": plate, "batch": batch, "controls": int((on_plate & is_control).sum()),
                       "reference": name, "reference_rows": len(chosen),
                       "fallback": name != candidates[0][0]})
    return rows, pd.DataFrame(report, columns=list(REPORT_COLUMNS))


def describe_fallbacks(report: pd.DataFrame, unit: str = "cell", what: str = "normalised") -> list[str]:
    """One line per plate that fell back (empty when none did)."""
    lines = []
    for _, row in report[report["fallback"]].iterrows():
        against = (f"all {row['reference_rows']} {unit}s of the plate (too few controls anywhere)"
                   if row["reference"] == "all samples"
                   else f"the {row['reference_rows']} control {unit}s of {row['reference']}"
                   if row["reference"] != "pooled" else f"all {row['reference_rows']} control {unit}s (pooled)")
        lines.append(f"plate {row['plate']} has {row['controls']} control {unit}(s): {what} against {against}")
    return lines
