"""Execution time of every notebook in a fresh kernel: ``python -m benchmarks.time_notebooks``.

``--quick`` sets ``LLM_OPTIMIZER_QUICK=1`` as CI does. Prints one line per notebook, saves
``benchmarks/results/notebook_times_{mode}_{state}.json`` (state: ``quiet``, or ``busy`` when
the load average per core exceeded ``BUSY`` as the run began, because other work shared the
machine; the load at the end includes the run's own) and rewrites the notebook-timings
section of ``docs/benchmarks.md`` from every saved result, so a quiet and a busy run of one
mode stand side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .run import machine
from .sections import write_section

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "docs" / "benchmarks.md"
# A load average per core above this means other work shared the machine.
BUSY = 0.5


def state(result: dict) -> str:
    """``busy`` if other work loaded the machine as ``result`` began, else ``quiet``."""
    return "busy" if result["load_average"][0] / result["cpus"] > BUSY else "quiet"


def time_notebooks(quick: bool) -> dict:
    """Run every notebook top to bottom; seconds per notebook, machine and load."""
    os.environ["LLM_OPTIMIZER_QUICK"] = "1" if quick else "0"
    load_before = os.getloadavg()[0]
    seconds = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        NotebookClient(book, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds[path.name] = round(time.perf_counter() - started, 1)
        print(f"{path.name:32s} {seconds[path.name]:7.1f} s", flush=True)
    return {"mode": "quick" if quick else "full", "date": time.strftime("%Y-%m-%d"),
            "machine": machine(), "cpus": os.cpu_count(), "seconds": seconds,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def report(results: list[dict]) -> str:
    """The notebook-timings section from the saved results of each mode."""
    rows = ["| notebook | " + " | ".join(f"{r['mode']} mode, {state(r)}, s" for r in results)
            + " |",
            "|:--|" + "--:|" * len(results)]
    for name in results[0]["seconds"]:
        rows.append(f"| {name} | " + " | ".join(f"{r['seconds'].get(name, float('nan')):.0f}"
                                                 for r in results) + " |")
    rows.append("| all | " + " | ".join(f"{sum(r['seconds'].values()):.0f}"
                                         for r in results) + " |")
    notes = [f"- {r['mode']} mode, {state(r)}, {r['date']}: {r['machine']['cpu']}, "
             f"{r['cpus']} cores, load average {r['load_average'][0]:.1f} before and "
             f"{r['load_average'][1]:.1f} after." for r in results]
    notes.append(f"\nA run counts as busy when the load average per core exceeded {BUSY} "
                 "as it began: other work shared the machine. The load after a run includes "
                 "the run's own.")
    return ("## Notebook timings\n\nEach notebook run top to bottom in a fresh kernel by "
            "`python -m benchmarks.time_notebooks` (add `--quick` for quick mode), on the "
            "bundled model.\n\n" + "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode, as in CI")
    args = parser.parse_args(argv)
    result = time_notebooks(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"notebook_times_{result['mode']}_{state(result)}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))
    saved = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("notebook_times_*.json"))]
    write_section(REPORT, "notebook-times", report(saved))
    print(f"all: {sum(result['seconds'].values()):.1f} s; wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
