"""File names made from user strings (protein, structure, cell and column names).

One rule for every command: a name made only of letters (any script: ``α-TUB`` stays
``α-TUB``), digits, ``_``, ``-`` and inner dots is used as it is; any other name gets its
unsafe characters replaced by ``_`` and a short hash of the original appended, so two
different names never map to one file (``a/b`` → ``a_b-5d41402a``, ``a b`` → ``a_b-…``).
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"^[\w][\w.-]*$")  # \w: Unicode letters and digits, and "_"
_UNSAFE = re.compile(r"[^\w.-]+")


def file_stem(text) -> str:
    """A readable file-name stem for `text`, distinct for distinct texts (module doc)."""
    text = str(text)
    if _SAFE.match(text) and not text.endswith(".") and len(text) <= 120:
        return text
    readable = _UNSAFE.sub("_", text).strip("._")[:80] or "unnamed"
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
