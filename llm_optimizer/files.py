"""Files written only inside their folder, and read and written strictly.

Every file is opened without following a symbolic link (``O_NOFOLLOW``), so a link
planted in a folder never sends a write elsewhere; summaries are written to a
temporary name and renamed. JSON is strict: numbers that are not finite are written
as ``null``, numpy and other number-like scalars as plain numbers. Text bound for a
spreadsheet is escaped where it could start a formula.
"""

from __future__ import annotations

import errno
import json
import math
import numbers
import os
import unicodedata
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".partial"
# What a spreadsheet runs as a formula when a cell starts with it (OWASP's list), also
# after blanks or invisible characters, and in full-width forms (compared after NFKC).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON: NaN and infinities become ``null``; numpy scalars plain numbers."""
    return json.dumps(_strict(value), allow_nan=False, **kwargs)


def _strict(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy scalar: bool_, int64, float32...
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not strict JSON")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON (``NaN`` and ``Infinity`` are errors)."""
    return json.loads(text, parse_constant=_reject_constant)


def _open_inside(path: Path, flags: int) -> int:
    """``os.open`` that refuses a symbolic link (nothing is written through one)."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                       0o644)
    except OSError as error:
        if error.errno == errno.ELOOP or path.is_symlink():
            raise link_error(path) from None
        raise


def link_error(path: Path) -> OSError:
    return OSError(f"{path} is a symbolic link: a run folder's files are written only inside "
                   "it, never through a link; remove the link and run again")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``
    (a link at ``path`` is replaced, not followed)."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = _open_inside(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def open_for_append(path: Path):
    """``path`` opened to append text lines, a missing last line break added first."""
    fd = _open_inside(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    file = os.fdopen(fd, "a+b")
    size = file.seek(0, os.SEEK_END)
    if size:
        file.seek(size - 1)
        if file.read(1) != b"\n":
            file.write(b"\n")  # a complete last line whose line break was lost
    return file


def safe_cell(text: object) -> object:
    """``text`` with a leading ``'`` if a spreadsheet could read it as a formula: it
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a line break, also after blanks
    or invisible characters and in full-width forms."""
    if not isinstance(text, str):
        return text
    visible = next((c for c in text if not _blank(c)), "")
    if text.startswith(FORMULA_STARTS) or unicodedata.normalize("NFKC", visible).startswith(
            FORMULA_STARTS):
        return "'" + text
    return text


def _blank(char: str) -> bool:
    """White space, or a character that shows nothing (controls, format characters
    such as a byte order mark or a zero-width space)."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp")
