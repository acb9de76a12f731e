"""Execution time of every notebook in a fresh kernel: ``python -m benchmarks.time_notebooks``.

``--quick`` sets ``LLM_OPTIMIZER_QUICK=1`` as CI does. Prints one line per notebook.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode, as in CI")
    args = parser.parse_args(argv)
    os.environ["LLM_OPTIMIZER_QUICK"] = "1" if args.quick else "0"
    print(f"{'quick' if args.quick else 'full'} mode, {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cores")
    total = 0.0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        NotebookClient(book, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds = time.perf_counter() - started
        total += seconds
        print(f"{path.name:32s} {seconds:7.1f} s", flush=True)
    print(f"{'all':32s} {total:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
