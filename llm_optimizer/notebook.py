"""Notebook helpers: the set-up cell, quick mode for CI, and the Colab badges.

``python -m llm_optimizer.notebook`` rewrites every notebook's badge and install line
and ``colab_badge.md`` from ``REPO``, the one place that names the GitHub repository.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = "llm-optimizer/llm-optimizer"
BRANCH = "main"
QUICK_ENV = "LLM_OPTIMIZER_QUICK"
MODEL_ENV = "LLM_OPTIMIZER_MODEL"  # what load_model("auto") loads, when set
SERVED_MODEL_ENV = "LLM_OPTIMIZER_SERVED_MODEL"  # the model's name on that server
API_KEY_ENV = "OPENAI_API_KEY"
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
README_START, README_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
PACKAGES = ["torch", "transformers", "bitsandbytes", "numpy", "pandas", "matplotlib",
            "ipywidgets", "llm-optimizer"]


def quick() -> bool:
    """True when ``LLM_OPTIMIZER_QUICK=1``: notebooks shrink their runs for CI."""
    return os.environ.get(QUICK_ENV) == "1"


def pick(full, quick_value):
    """``quick_value`` in quick mode, else ``full``."""
    return quick_value if quick() else full


def on_colab() -> bool:
    return "google.colab" in sys.modules


def setup() -> dict[str, str]:
    """Print the versions this notebook runs on and what hardware it has; return them."""
    import torch

    info = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    else:
        info["gpu"] = "none (CPU only)"
    info["quick mode"] = "on" if quick() else "off"
    for key, value in info.items():
        print(f"{key:>13}: {value}")
    if on_colab() and not torch.cuda.is_available():
        from .models.loading import NO_GPU_ON_COLAB

        print("\n" + NO_GPU_ON_COLAB)
    return info


def use_server(url: str | None = None, *, served_model: str | None = None,
               secret: str = API_KEY_ENV) -> str:
    """The notebooks' switch cell: point ``load_model("auto")`` at a served or hosted
    model that speaks the OpenAI API, and return (and print) what it will load.

    ``url`` (such as ``"http://HOST:8000/v1"``) goes into ``LLM_OPTIMIZER_MODEL`` and
    ``served_model``, the model's name there, into ``LLM_OPTIMIZER_SERVED_MODEL``; with
    ``url=None`` nothing changes, so a teacher's or a test's setting stands. The key is
    never an argument: it stays in ``OPENAI_API_KEY`` if that is set, and on Colab it is
    otherwise read from the notebook secret named ``secret`` (the key icon in the sidebar).
    """
    from .models.server import is_url, public_url

    if url is not None:
        if not is_url(url):
            raise ValueError(f"url must be a server address starting with http:// or https://, "
                             f"such as 'http://HOST:8000/v1', or None; got {url!r}")
        if served_model is not None and not (isinstance(served_model, str) and served_model):
            raise ValueError("served_model must be the model's name on the server or None for "
                             f"the only one it serves, got {served_model!r}")
        os.environ[MODEL_ENV] = url
        os.environ.pop(SERVED_MODEL_ENV, None)
        if served_model:
            os.environ[SERVED_MODEL_ENV] = served_model
    chosen = os.environ.get(MODEL_ENV, "")
    if is_url(chosen):
        name = os.environ.get(SERVED_MODEL_ENV) or "the only model it serves"
        said = f"{name} at {public_url(chosen)} ({_key_found(secret)})"
    else:
        said = chosen or "chosen by the hardware (Mistral-7B on a GPU, else SmolLM2-135M)"
    print(f'load_model("auto") loads: {said}')
    return said


def _key_found(secret: str) -> str:
    """Where the served model's key comes from; copies a Colab secret into the
    environment. Never returns or prints the key itself."""
    if os.environ.get(API_KEY_ENV):
        return f"key from {API_KEY_ENV}"
    if not on_colab():
        return f"no key: set {API_KEY_ENV} if the server needs one"
    from google.colab import userdata

    refused = tuple(getattr(userdata, name) for name in
                    ("SecretNotFoundError", "NotebookAccessError", "TimeoutException")
                    if hasattr(userdata, name))
    try:
        key = userdata.get(secret)
    except refused:
        return (f"no key: add a secret named {secret} under the key icon and let this "
                "notebook read it, if the server needs one")
    os.environ[API_KEY_ENV] = key
    return f"key from the Colab secret {secret}"


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

The same links, one per line, are in [colab_badge.md](colab_badge.md).

![An optimization run](docs/images/demo_run.png)

*One offline run of `make demo`: SmolLM2-135M-Instruct (the bundled model, on a CPU),
the article's data, 30 steps of 8 proposals at temperature 0.8. Left, the best line found
against the least-squares line; middle, the loss of every proposal (log scale); right, the
proposals on the loss landscape.*
{README_END}"""


def sync_badges(root: Path) -> list[Path]:
    """Rewrite each notebook's badge cell and install line, colab_badge.md and the
    notebooks section of README.md."""
    changed = []
    for name in LESSONS:
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
        raise ValueError(f"{path} is a symbolic link or lies outside {root}; this helper "
                         "writes only the repository's own files, so replace it with a file")
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8",
                                     prefix=f".{path.name}.") as temp:  # a new file, no link
        temp.write(text)
    os.chmod(temp.name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    os.replace(temp.name, path)


def main() -> int:
    """Sync the badges; a file that cannot be written is a one-line error (exit 2)."""
    try:
        changed = sync_badges(Path(__file__).resolve().parent.parent)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
