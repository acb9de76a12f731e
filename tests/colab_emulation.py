"""A local stand-in for Google Colab's Python runtime, built from Colab's published package list.

Colab itself cannot be reached from here, so the closest thing a test can run is a virtual
environment holding the versions Colab preloads (``colab/pip-freeze.gpu.txt``), a Jupyter
kernel started from it, and the notebooks' own set-up lines run in it as a learner would.
Python and torch stay this machine's (its CPU build of torch stands in for Colab's CUDA one).

What the emulation keeps from Colab, and why:

- every package that the notebooks' set-up can install or touch is first installed at Colab's
  version, so a set-up line that would upgrade or downgrade one shows up as a changed version;
- ``google.colab`` is importable and imported when the kernel starts (``colab/startup.py``), so
  notebook code takes its Colab branch, as it does there;
- widget messages sent from a thread other than the kernel's main thread are dropped, because
  Colab's front end never shows them (googlecolab/colabtools#3373).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "colab"
FREEZE = HERE / "pip-freeze.gpu.txt"
STARTUP = HERE / "startup.py"
ROOT = HERE.parent.parent
# This machine's CPU build stands in for Colab's torch; pip must never pick torch itself.
TORCH = "torch==2.13.0"
# Preloaded on Colab and used by every notebook there, whatever the notebooks install.
KERNEL_STACK = ["ipykernel", "ipython", "ipywidgets", "widgetsnbextension", "jupyter_client",
                "traitlets", "pyzmq", "tornado", "matplotlib-inline"]


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions() -> dict[str, str]:
    """Colab's preinstalled packages and versions, from ``pip-freeze.gpu.txt``.

    Packages installed from a URL and CUDA builds (``+cu128``) are left out: they cannot
    be installed here, and torch is replaced by this machine's build.
    """
    versions = {}
    for line in FREEZE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or " @ " in line or "==" not in line:
            continue
        name, version = line.split("==", 1)
        if "+" not in version:
            versions[canonical(name)] = version
    return versions


def setup_commands(notebook: Path, checkout: Path) -> list[list[str]]:
    """The ``%pip install`` lines of a notebook's set-up cell, as pip arguments.

    The GitHub address of this package is pointed at ``checkout``, so the lines install
    the code under test instead of the published one.
    """
    from tools.sync_notebooks import REPO

    cell = json.loads(notebook.read_text())["cells"][2]
    commands = []
    for line in "".join(cell["source"]).splitlines():
        line = line.strip()
        if line.startswith("%pip install"):
            line = line.replace(f"git+https://github.com/{REPO}", checkout.resolve().as_uri())
            commands.append(shlex.split(line)[1:])
    return commands


def unique_setup_commands(notebooks: list[Path]) -> list[list[str]]:
    """The set-up commands of all ``notebooks``, each once, in order."""
    commands: list[list[str]] = []
    for notebook in notebooks:
        commands += [c for c in setup_commands(notebook, ROOT) if c not in commands]
    return commands


def pip(python: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run pip of the environment ``python`` belongs to; raise with its output if it fails."""
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True,
                          **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def installed(python: Path) -> dict[str, str]:
    """Every distribution in the environment of ``python``, by canonical name."""
    out = pip(python, "list", "--format=json").stdout
    return {canonical(p["name"]): p["version"] for p in json.loads(out)}


def torch_requirements(python: Path) -> set[str]:
    """Names of the packages the installed torch requires (its extras left out)."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps([r for r in m.requires('torch') if 'extra ==' not in r]))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return {canonical(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in json.loads(out.stdout)}


def colab_preloads(python: Path) -> dict[str, str]:
    """Colab's versions of the packages the emulation takes from Colab: all but torch,
    the packages this machine's torch requires (a newer setuptools, say) and pip's own."""
    own = {"torch", "pip", "setuptools", "wheel"} | torch_requirements(python)
    return {name: v for name, v in colab_versions().items() if name not in own}


def build(venv: Path, notebooks: list[Path]) -> Path:
    """Create ``venv`` holding Colab's versions of every package the set-up can touch.

    Which packages those are is asked of pip itself: a dry run of the notebooks' set-up
    lines (and the kernel stack) on a bare environment lists everything they would bring
    in; each one that Colab preloads is installed first, at Colab's version. The set-up
    lines themselves are not run. Returns the environment's Python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip(python, "install", "-q", "--upgrade", "pip")
    pip(python, "install", "-q", TORCH)
    commands = unique_setup_commands(notebooks)
    wanted: set[str] = set()
    for number, command in enumerate([*commands, ["install", *KERNEL_STACK]]):
        report = venv / f"dry-run-{number}.json"
        pip(python, *command, "--dry-run", "--quiet", "--report", str(report))
        wanted |= {canonical(item["metadata"]["name"])
                   for item in json.loads(report.read_text())["install"]}
    colab = colab_preloads(python)
    constraints = venv / "colab-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in colab.items()))
    preload = sorted((wanted | {canonical(n) for n in KERNEL_STACK}) & colab.keys())
    # The constraints hold every Colab version, so what these bring in comes at Colab's too.
    pip(python, "install", "-q", "-c", str(constraints), *preload)
    return python


def write_kernelspec(folder: Path, python: Path) -> str:
    """A Jupyter kernel spec that starts the emulated runtime; returns its name."""
    name = "colab-emulation"
    spec = folder / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab emulation", "language": "python",
        "env": {"PYTHONSTARTUP": str(STARTUP), "PYTHONPATH": str(HERE),
                "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    }))
    return name
