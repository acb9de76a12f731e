"""One report, several writers: each benchmark script owns a marked section of
``docs/benchmarks.md`` and rewrites only that section."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"<!-- section:(?P<key>[\w-]+) -->\n.*?<!-- /section:(?P=key) -->\n", re.S)


def sections(text: str) -> dict[str, str]:
    """The marked sections of a report, by key, markers included."""
    return {m["key"]: m[0] for m in _BLOCK.finditer(text)}


def block(key: str, text: str) -> str:
    """``text`` wrapped in the markers of section ``key``."""
    return f"<!-- section:{key} -->\n{text.rstrip()}\n<!-- /section:{key} -->\n"


def write_section(path: Path, key: str, text: str) -> None:
    """Put ``text`` in section ``key`` of the report at ``path``; the rest stays as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    new = block(key, text)
    if key in sections(old):
        path.write_text(old.replace(sections(old)[key], new))
    else:
        path.write_text(old.rstrip() + "\n\n" + new if old else new)


def write_main(path: Path, text: str) -> None:
    """Write the main report at ``path``, keeping the sections other scripts wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    kept = "".join("\n" + s for s in sections(old).values())
    path.write_text(text.rstrip() + "\n" + kept)
