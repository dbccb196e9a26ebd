"""Requests the data cannot meet in full, and parameters whose cost explodes: each rule written once.

- `check_request`: a count asked for (cells, clusters, neighbours, crops) that the data cannot
  supply in full is refused in one line saying what was asked, what is possible and why; it is
  never capped silently.
- `check_range`: a parameter whose cost grows without bound (a texture distance, a crop side, a
  cluster count) has a documented range, validated before any work starts.
"""

from __future__ import annotations

from statcell_tf.errors import UserError


def check_request(flag: str, asked: int, available: int, why: str) -> int:
    """`asked` when the data can supply it, else a UserError: asked, possible, why.

    Args:
        flag: str. The option that asked (``--cells``).
        asked: int. What was asked for.
        available: int. The most the data allows.
        why: str. What bounds it (``"cells in the manifest"``).

    Returns:
        `asked`.
    """
    if asked > available:
        raise UserError(
            f"{flag} {asked} cannot be met: at most {available} ({why}); ask for {available} or fewer. "
            f"Received: {flag} {asked}"
        )
    return asked


def check_range(flag: str, value: float, low: float, high: float, why: str = "") -> float:
    """`value` when ``low <= value <= high``, else a UserError naming the documented range (and why)."""
    if not low <= value <= high:
        reason = f" ({why})" if why else ""
        raise UserError(f"{flag} must be in [{low:g}, {high:g}]{reason}. Received: {flag} {value:g}")
    return value
