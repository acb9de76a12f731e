"""Every notebook: committed clean, badged, and run top to bottom in a fresh kernel (once
per test run, shared by every check of that run: tests/notebook_runs.py)."""

import json
import re
from pathlib import Path

import pytest
from notebook_runs import QUICK

from tools.sync_notebooks import INSTALL, LESSONS, SOLUTIONS, badge, badge_table, sync_badges

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The notebooks that load a language model, the only ones that ask Colab for a GPU.
USES_A_GPU = {"03_llm_as_optimizer.ipynb", "04_experiments.ipynb", SOLUTIONS}


def test_every_notebook_is_listed_with_a_lesson():
    assert [p.name for p in NOTEBOOKS] == [*LESSONS, SOLUTIONS]


def test_every_exercise_of_every_lecture_has_a_solution():
    """An exercise is a numbered line of a lecture's last cell; its answer is headed
    ``### NN.k`` in the solutions notebook."""
    solutions = json.loads((ROOT / "notebooks" / SOLUTIONS).read_text())["cells"]
    headings = {m for c in solutions if c["cell_type"] == "markdown"
                for m in re.findall(r"^### (\d\d\.\d+) ", "".join(c["source"]), re.M)}
    asked = set()
    for name in LESSONS:
        last = "".join(json.loads((ROOT / "notebooks" / name).read_text())["cells"][-1]["source"])
        exercises = last.split("## Exercises", 1)[1]
        asked |= {f"{name[:2]}.{k}" for k in re.findall(r"^(\d+)\. ", exercises, re.M)}
    assert asked - headings == set(), "exercises without a solution in notebooks/solutions.ipynb"
    assert headings - asked == set(), "solutions to exercises no lecture asks"


def test_colab_badges_are_in_step_with_the_notebooks(tmp_path):
    assert (ROOT / "colab_badge.md").read_text() == badge_table()
    for path in NOTEBOOKS:
        assert f"/blob/main/notebooks/{path.name})" in badge(path.name)
        assert f"(notebooks/{path.name})" in badge_table()
    copy = tmp_path / "repo"
    (copy / "notebooks").mkdir(parents=True)
    for path in NOTEBOOKS:
        (copy / "notebooks" / path.name).write_text(path.read_text())
    for name in ("colab_badge.md", "README.md"):
        (copy / name).write_text((ROOT / name).read_text())
    assert sync_badges(copy) == []  # nothing to rewrite: badges, links and README agree


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_opens_with_its_badge(path):
    book = json.loads(path.read_text())
    assert "widgets" not in book["metadata"]
    if path.name in USES_A_GPU:  # Colab opens these on a T4; the others spend no GPU quota
        assert book["metadata"]["accelerator"] == "GPU"
        assert book["metadata"]["colab"]["gpuType"] == "T4"
    else:
        assert "accelerator" not in book["metadata"]
        assert "gpuType" not in book["metadata"].get("colab", {})
    cells = book["cells"]
    assert "".join(cells[0]["source"]) == badge(path.name)
    assert "".join(cells[1]["source"]).startswith("# ")  # title and goals next
    if path.name == SOLUTIONS:  # ends by saying how to add an answer, not with exercises
        assert "Exercises" not in "".join(cells[-1]["source"])
    else:
        assert "Exercises" in "".join(cells[-1]["source"])
    setup = "".join(cells[2]["source"])
    assert INSTALL in setup and "setup()" in setup and '"google.colab" in sys.modules' in setup
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            assert len("".join(cell["source"]).splitlines()) <= 15, cell["source"]


# A plot or table a class can read: a handful of points at least, and no NaN shown.
MIN_POINTS = 5


@pytest.mark.notebook
@pytest.mark.xdist_group("notebooks-quick")  # with the other checks of these runs
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_in_quick_mode_and_every_output_is_readable(path, executed):
    run = executed(path.name, **QUICK)
    print(f"{path.name}: {run.seconds:.1f} s")
    assert not run.errors
    warnings = [o["text"] for o in run.outputs
                if o.output_type == "stream" and o.name == "stderr" and "Warning" in o["text"]]
    assert not warnings, f"a cell shows a warning: {warnings}"
    assert "quick mode: on" in run.text.replace("   ", "").replace("  ", " ")
    assert not [t for t in run.tables if re.search(r"\bNaN\b", t)], "a table shows NaN"
    assert run.plots, "no plot was drawn"
    sparse = [p for p in run.plots if not p["field"] and p["points"] < MIN_POINTS]
    assert not sparse, f"plots with fewer than {MIN_POINTS} points: {sparse}"
