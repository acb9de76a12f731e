"""Keep the notebooks' Colab badges and install lines, colab_badge.md and the README's
notebooks table in step with ``REPO``, the one place that names the GitHub repository.

Run ``python tools/sync_notebooks.py`` from anywhere: it rewrites what is out of date in the
repository it lies in and prints each file it changed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = "llm-optimizer/llm-optimizer"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# The gpu extra brings bitsandbytes, which Colab does not preinstall and which must be in
# place before transformers is imported; every other dependency's floor is at or below
# Colab's preinstalled version, so the install changes none of them (no restart).
INSTALL = f'%pip install -q "llm-optimizer[gpu] @ git+https://github.com/{REPO}"'
LESSONS = {
    "01_linear_regression.ipynb": "the task: a line through noisy points, the mean squared "
    "error, its landscape, the exact answer, and the article's sign bug",
    "02_gradient_descent.ipynb": "the classical baseline: the gradient by hand, a learning-rate "
    "slider, paths on the landscape, and what too large a rate does",
    "03_llm_as_optimizer.ipynb": "OPRO itself: the meta-prompt, raw replies and parsing, the "
    "loop, whether the model beats a mimic that only copies, and a live panel with temperature "
    "and iteration sliders",
    "04_experiments.ipynb": "measurements: temperature as a step size, the LLM against the "
    "mimic, random search, hill climbing and gradient descent, the paper's set-up beside "
    "published runs of large models, and replies forced into a pair by a grammar",
}
# Worked answers to every lecture's exercises: badged and synced like a lecture, listed apart.
SOLUTIONS = "solutions.ipynb"
NOTEBOOKS = [*LESSONS, SOLUTIONS]
ANSWERS = "a worked answer to every exercise of the four lectures"
README_START, README_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
ROOT = Path(__file__).resolve().parent.parent


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{notebook}"


def badge(notebook: str) -> str:
    """Markdown for the 'Open in Colab' badge of ``notebook``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def badge_table() -> str:
    """The contents of colab_badge.md."""
    lines = ["# Open the notebooks in Colab", "",
             "Pick a GPU runtime first: Runtime > Change runtime type > T4 GPU.", "",
             "| notebook | open | what it teaches |", "|---|---|---|"]
    for name, lesson in LESSONS.items():
        lines.append(f"| [{name}](notebooks/{name}) | {badge(name)} | {lesson} |")
    lines.append(f"| [{SOLUTIONS}](notebooks/{SOLUTIONS}) | {badge(SOLUTIONS)} | {ANSWERS} |")
    return "\n".join(lines) + "\n"


def _install_line(line: str) -> str:
    """``line`` with its package URL pointed at ``REPO``, if it installs this package."""
    if '%pip install -q "llm-optimizer' not in line:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return indent + INSTALL + ("\n" if line.endswith("\n") else "")


def readme_section() -> str:
    """The notebooks table and picture that README.md holds between its markers."""
    rows = "\n".join(f"| {i}. [{name[3:-6].replace('_', ' ')}](notebooks/{name}) | "
                     f"{badge(name)} | {lesson} |" for i, (name, lesson) in
                     enumerate(LESSONS.items(), start=1))
    return f"""{README_START}
## The notebooks

| lecture | open | what it teaches |
|---|---|---|
{rows}

Solutions: [{SOLUTIONS}](notebooks/{SOLUTIONS}) {badge(SOLUTIONS)}, {ANSWERS}.

The same links, one per line, are in [colab_badge.md](colab_badge.md).

![An optimization run](docs/images/demo_run.png)

*One offline run of `make demo`: SmolLM2-135M-Instruct (the bundled model, on a CPU),
the article's data, 30 steps of 8 proposals at temperature 0.8. Left, the best line found
against the least-squares line; middle, the loss of every proposal (log scale) against the
best possible, with a tick for each reply that held no pair; right, the proposals on the
loss landscape, the most repeated pair ringed. Drawn from the run saved in `docs/demo_run/`
by `python -m tools.readme_picture`, which redraws this picture and the animation above
whenever the plotting code changes (a test checks).*
{README_END}"""


def sync_badges(root: Path) -> list[Path]:
    """Rewrite each notebook's badge cell and install line, colab_badge.md and the
    notebooks section of README.md."""
    changed = []
    for name in NOTEBOOKS:
        path = root / "notebooks" / name
        book = json.loads(path.read_text())
        first = book["cells"][0]
        first["source"] = [badge(name)]
        for cell in book["cells"]:
            lines = cell["source"]
            if isinstance(lines, str):
                lines = lines.splitlines(keepends=True)
            cell["source"] = [_install_line(line) for line in lines]
        text = json.dumps(book, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        if text != path.read_text():
            _write_inside(root, path, text)
            changed.append(path)
    table = root / "colab_badge.md"
    if not table.exists() or table.read_text() != badge_table():
        _write_inside(root, table, badge_table())
        changed.append(table)
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    if text[start:end] != readme_section():
        _write_inside(root, readme, text[:start] + readme_section() + text[end:])
        changed.append(readme)
    return changed


def _write_inside(root: Path, path: Path, text: str) -> None:
    """Write ``path``, refusing a symbolic link or a place outside ``root``."""
    inside = path.parent.resolve().is_relative_to(root.resolve())
    if path.is_symlink() or not inside:
        raise ValueError(f"{path} is a symbolic link or lies outside {root}; this script "
                         "writes only the repository's own files, so replace it with a file")
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8",
                                     prefix=f".{path.name}.") as temp:  # a new file, no link
        temp.write(text)
    os.chmod(temp.name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    os.replace(temp.name, path)


def main() -> int:
    """Sync the badges; a file that cannot be written is a one-line error (exit 2)."""
    try:
        changed = sync_badges(ROOT)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
