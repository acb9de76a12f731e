"""The shared notebook runs (tests/notebook_runs.py): one execution per run, for every
reader in every test process, and a failed run fails every reader without running again."""

import nbformat
import pytest
from notebook_runs import NotebookRuns


def _notebook(folder, name, code):
    """A notebook laid out as the course's are: badge, title, set-up cell, then ``code``."""
    book = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("badge"), nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("import os"), nbformat.v4.new_code_cell(code)])
    nbformat.write(book, folder / name)


def test_a_notebook_is_executed_once_for_every_reader_and_process(tmp_path):
    log = tmp_path / "runs.log"
    _notebook(tmp_path, "count.ipynb",
              f"open({str(log)!r}, 'a').write(os.environ['MODE'] + '\\n')\n"
              "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()")
    kept = tmp_path / "kept"
    runs = NotebookRuns(kept, notebooks=tmp_path)
    first = runs("count.ipynb", MODE="a")
    assert runs("count.ipynb", MODE="a") is first
    other_process = NotebookRuns(kept, notebooks=tmp_path)  # as another xdist worker sees it
    assert other_process("count.ipynb", MODE="a").book == first.book
    assert log.read_text() == "a\n"
    runs("count.ipynb", MODE="b")  # another environment is another run
    assert log.read_text() == "a\nb\n"
    assert first.setup.source == "import os" and not first.errors and first.images == 1
    assert first.plots == [{"title": "", "points": 3, "field": False}]


def test_a_failed_run_fails_every_reader_and_is_not_run_again(tmp_path):
    log = tmp_path / "runs.log"
    _notebook(tmp_path, "fails.ipynb",
              f"open({str(log)!r}, 'a').write('ran\\n')\nraise ValueError('boom')")
    runs = NotebookRuns(tmp_path / "kept", notebooks=tmp_path)
    for reader in (runs, NotebookRuns(tmp_path / "kept", notebooks=tmp_path)):
        with pytest.raises(pytest.fail.Exception, match="(?s)fails.ipynb failed to run.*boom"):
            reader("fails.ipynb")
    assert log.read_text() == "ran\n"
