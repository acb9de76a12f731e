"""Notebooks executed once per test run, read by every check that needs them.

Running a notebook is the slowest thing the tests do, so each (notebook, kernel,
environment) is executed once per test run and the executed notebook is kept; every test
that checks something about that run reads the kept one. Use the ``executed`` fixture
(tests/conftest.py)::

    def test_something(executed):
        run = executed("03_llm_as_optimizer.ipynb", **QUICK)
        assert not run.errors

``QUICK`` is the run most checks read: quick mode with the default model. Another model is
another run: ``executed(name, **QUICK, LLM_OPTIMIZER_MODEL="mimic")``; a variable given as
None is unset for the run.

The kept runs live in the test run's shared temporary folder and are guarded by a file
lock, so under pytest-xdist a notebook is still executed once: a second worker asking
for the same run waits for the first and reads its result (tests that read the same run
should carry the same ``pytest.mark.xdist_group``, so that no worker sits waiting). A run
that failed is kept as failed: every test reading it fails with the same error, nobody
runs it again.

Each run gets ``AUDIT_START`` as its first cell after the set-up cell and ``AUDIT_END``
as its last: they record what every drawn figure holds (``Execution.plots``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock
from nbclient import NotebookClient

from llm_optimizer.runtime import MODEL_ENV, QUICK_ENV, SERVED_MODEL_ENV
from tools.sync_notebooks import REPO

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The address the set-up cells install this package from; a run points it at the checkout.
GITHUB = f"git+https://github.com/{REPO}"
# Figures are drawn inline, as in Jupyter, whatever the test process uses.
INLINE = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
SETUP_CELL = 2
# Quick mode, the default model: the run most checks read.
QUICK = {QUICK_ENV: "1", MODEL_ENV: None, SERVED_MODEL_ENV: None}
TIMEOUT = 900

# Records what every drawn figure holds.
AUDIT_START = """
import json as _json
from matplotlib.backend_bases import FigureCanvasBase as _Canvas
_PLOTS, _print_figure = [], _Canvas.print_figure
def _audit(canvas, *args, **kwargs):
    for ax in canvas.figure.axes:
        if ax.get_label() == "<colorbar>" or not ax.has_data():
            continue
        lines = [len(line.get_xdata()) for line in ax.lines if len(line.get_xdata()) > 2]
        dots = [len(c.get_offsets()) for c in ax.collections
                if type(c).__name__ == "PathCollection"]
        _PLOTS.append({"title": ax.get_title(), "points": max(lines + dots + [len(ax.patches)]),
                       "field": bool(ax.images) or any("Contour" in type(c).__name__
                                                      for c in ax.collections)})
    return _print_figure(canvas, *args, **kwargs)
_Canvas.print_figure = _audit
"""
AUDIT_END = 'print("PLOT-AUDIT", _json.dumps(_PLOTS))'


@dataclass
class Execution:
    """One executed notebook: its cells with their outputs, and how long the run took."""

    name: str
    book: nbformat.NotebookNode
    seconds: float

    @property
    def cells(self) -> list:
        """The notebook's own cells, executed (the audit cells left out)."""
        return [c for c in self.book.cells if c.get("id") not in ("audit-start", "audit-end")]

    @property
    def setup(self) -> nbformat.NotebookNode:
        """The set-up cell, executed."""
        return self.cells[SETUP_CELL]

    @property
    def outputs(self) -> list:
        """Every output of every code cell, in order."""
        return [o for c in self.book.cells if c.cell_type == "code" for o in c.outputs]

    @property
    def errors(self) -> list:
        return [o for o in self.outputs if o.output_type == "error"]

    @property
    def text(self) -> str:
        """Everything the cells printed, stdout and stderr."""
        return "".join(o.get("text", "") for o in self.outputs)

    def stream(self, name: str) -> str:
        """What the cells wrote to ``name`` ("stdout" or "stderr")."""
        return "".join(o.get("text", "") for o in self.outputs
                       if o.output_type == "stream" and o.get("name") == name)

    @property
    def tables(self) -> list[str]:
        """The plain-text form of every rich (HTML) table shown."""
        return [o["data"]["text/plain"] for o in self.outputs
                if o.output_type in ("execute_result", "display_data")
                and "text/html" in o.get("data", {})]

    @property
    def images(self) -> int:
        """How many PNG images the cells showed."""
        return sum("image/png" in o.get("data", {}) for o in self.outputs)

    @property
    def plots(self) -> list[dict]:
        """Every drawn axes: its title, the most points one of its series has, and whether
        it shows a field (image or contour) rather than points."""
        audit = self.book.cells[-1]
        text = "".join(o.get("text", "") for o in audit.outputs)
        return json.loads(text.split("PLOT-AUDIT ", 1)[1].splitlines()[0])


def prepared(path: Path, checkout: Path = ROOT) -> nbformat.NotebookNode:
    """``path`` with the audit cells added and its install line pointed at ``checkout``."""
    book = nbformat.read(path, as_version=4)
    setup = book.cells[SETUP_CELL]
    setup.source = setup.source.replace(GITHUB, checkout.resolve().as_uri())
    start, end = (nbformat.v4.new_code_cell(AUDIT_START), nbformat.v4.new_code_cell(AUDIT_END))
    start.id, end.id = "audit-start", "audit-end"
    book.cells = [*book.cells[:SETUP_CELL + 1], start, *book.cells[SETUP_CELL + 1:], end]
    return book


NUDGE_EVERY = 30  # seconds


@contextmanager
def nudging(client: NotebookClient) -> Iterator[None]:
    """Connect a fresh client to ``client``'s kernel every ``NUDGE_EVERY`` seconds.

    Now and then a kernel finishes a cell and then leaves nbclient's next request unread,
    idle, until the cell's timeout: seen with ipykernel 7.4 and with Colab's 6.17.1, after
    notebook 02's ``widgets.interact`` cell. A new connection makes it read the request
    (ipython/ipykernel#1554 describes the mechanism); the fresh client's ``kernel_info``
    has its own message id, so nbclient records none of its messages.
    """
    stop = threading.Event()

    def nudge() -> None:
        while not stop.wait(NUDGE_EVERY):
            manager = client.km
            if manager is None or not manager.has_kernel:
                continue
            fresh = manager.blocking_client()
            try:
                fresh.start_channels()
                fresh.kernel_info()
                fresh.get_shell_msg(timeout=5)
            except Exception:  # a busy or closing kernel: the next nudge tries again
                pass
            finally:
                fresh.stop_channels()

    thread = threading.Thread(target=nudge, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def execute(path: Path, *, kernel: str = "python3", env: dict[str, str | None] | None = None,
            jupyter_path: str | None = None) -> Execution:
    """Run ``path`` top to bottom in a fresh ``kernel`` with ``env`` added to this process's
    environment (a None value unsets the variable); raise nbclient's ``CellExecutionError``
    at the first failing cell."""
    book = prepared(path)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**INLINE, **(env or {})}.items():
            if value is None:
                patch.delenv(key, raising=False)
            else:
                patch.setenv(key, value)
        if jupyter_path:
            patch.setenv("JUPYTER_PATH", jupyter_path)
        started = time.perf_counter()
        client = NotebookClient(book, timeout=TIMEOUT, kernel_name=kernel,
                                resources={"metadata": {"path": str(path.parent)}})
        with nudging(client):
            client.execute()
    return Execution(path.name, book, time.perf_counter() - started)


class NotebookRuns:
    """Executed notebooks kept in ``folder`` for the whole test run; call it to get one."""

    def __init__(self, folder: Path, notebooks: Path = NOTEBOOKS):
        self.folder, self.notebooks = folder, notebooks
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seen: dict[str, Execution] = {}

    def _key(self, name: str, kernel: str, env: dict[str, str | None]) -> str:
        described = json.dumps([name, kernel, sorted(env.items())])
        return f"{Path(name).stem}-{kernel}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"

    def __call__(self, name: str, *, kernel: str = "python3", jupyter_path: str | None = None,
                 **env: str | None) -> Execution:
        """The run of notebook ``name`` in ``kernel`` with ``env`` set, executed on first use."""
        key = self._key(name, kernel, env)
        if key not in self.seen:
            path = self.notebooks / name
            self.seen[key] = self._load_or_run(key, path, kernel, jupyter_path, env)
        return self.seen[key]

    def _load_or_run(self, key, path, kernel, jupyter_path, env) -> Execution:
        kept, failed, timing = (self.folder / f"{key}{ext}"
                                for ext in (".ipynb", ".error", ".seconds"))
        with FileLock(self.folder / f"{key}.lock"):
            if not kept.exists() and not failed.exists():
                try:
                    run = execute(path, kernel=kernel, env=env, jupyter_path=jupyter_path)
                except Exception as error:  # a failing cell, a dead kernel, a timeout
                    failed.write_text(f"{type(error).__name__}: {error}")
                else:
                    nbformat.write(run.book, kept)
                    timing.write_text(f"{run.seconds:.1f}")
            if failed.exists():
                pytest.fail(f"{path.name} failed to run ({kernel}, {env}):\n"
                            + failed.read_text(), pytrace=False)
            book = nbformat.read(kept, as_version=4)
            return Execution(path.name, book, float(timing.read_text()))


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (the workers'
    temporary folders share a parent)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / name
