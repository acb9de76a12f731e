"""The robustness audit, repeatable: bad arguments, bad command lines, hostile replies.

- every bad-argument call in tests/test_arguments.py's table (each public name of
  ``llm_optimizer.__all__``): how many give a ``ValueError`` that names the argument;
- bad command lines (conflicting ``--resume`` flags, damaged or unwritable folders, an
  unknown Hugging Face id, out-of-range flags): how many end with exit status 2 and one
  line on stderr, and how many of those before a model was loaded;
- the slowest parse of a 100 KB hostile reply (tests/test_prompt.py's ``HOSTILE``);
- a hostile server's bad answers, damaged run folders and planted links
  (benchmarks/audit_hostile.py).

The command runs in this process; ``smollm2``/``auto`` get a stand-in with the bundled
model's name (the audit is about errors, not about the model), any other name the real
loader, with the hub offline (``HF_HUB_OFFLINE=1``: unreachable without waiting for
retries). ``python -m benchmarks.audit`` writes ``benchmarks/results/audit.json`` and the
AUDIT section of ``docs/benchmarks.md``; ``--no-write`` only prints (to audit an older
checkout, run it with that checkout first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.audit_hostile import audit_folders, audit_server  # noqa: E402


class StandIn:
    """Answers like the bundled model would be named; fixed replies."""

    name, reply_tokens, prompt_style = "SmolLM2-135M-Instruct", 16, "completion"

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        return ["[2.5, 0.5]"] * n


def audit_arguments() -> dict:
    from test_arguments import ALL, check

    outcomes = {"clear": 0, "value error not naming the argument": 0, "other exception": 0,
                "accepted": 0}
    failures = []
    for name, i, call, argument in ALL:
        problem = check(call, argument)
        if problem is None:
            outcomes["clear"] += 1
            continue
        kind = ("accepted" if problem == "accepted" else "other exception"
                if "instead of ValueError" in problem else "value error not naming the argument")
        outcomes[kind] += 1
        failures.append(f"{name}[{i}] {argument}: {problem[:160]}")
    return {"tried": len(ALL), **outcomes, "failures": failures}


def _cli_cases(folder: Path) -> list[tuple[str, list[str]]]:
    run, resume = ["run", "--out", str(folder / "run")], ["run", "--out", str(folder / "run"),
                                                           "--resume", "--steps", "4"]
    fresh = ["run", "--out", str(folder / "fresh")]
    return [
        ("resume with another --preset", [*resume, "--preset", "opro"]),
        ("resume with another --data-seed", [*resume, "--data-seed", "3"]),
        ("resume with another --model", [*resume, "--model", "org/other"]),
        ("resume with another --temperature", [*resume, "--temperature", "0.9"]),
        ("resume with another --proposals", [*resume, "--proposals", "4"]),
        ("resume with another --seed", [*resume, "--seed", "2"]),
        ("resume with another --stop", [*resume, "--stop", "none"]),
        ("resume with another --max-new-tokens", [*resume, "--max-new-tokens", "9"]),
        ("plain rerun into a run folder", [*run, "--steps", "2"]),
        ("resume of a folder without a run", ["run", "--out", str(folder / "empty"),
                                              "--resume"]),
        ("damaged settings.json", ["run", "--out", str(folder / "damaged"), "--resume"]),
        ("settings.json without its keys", ["run", "--out", str(folder / "partial"),
                                            "--resume"]),
        ("journal damaged before its last line", ["run", "--out", str(folder / "cut"),
                                                  "--resume"]),
        ("--out under a file", ["run", "--out", str(folder / "file" / "x")]),
        ("--out where nothing may be written (/sys)", ["run", "--out", "/sys/llm-opt-audit"]),
        ("unknown Hugging Face id (hub unreachable)", [*fresh, "--model", "no-org/no-model"]),
        ("unknown model name", [*fresh, "--model", "gpt-17"]),
        ("missing .gguf file", [*fresh, "--model", str(folder / "missing.gguf")]),
        ("mistral without a GPU", [*fresh, "--model", "mistral"]),
        ("--max-new-tokens 0", [*fresh, "--max-new-tokens", "0"]),
        ("--temperature 0", [*fresh, "--temperature", "0"]),
        ("--temperature 1e-300", [*fresh, "--temperature", "1e-300"]),
        ("--temperature nan", [*fresh, "--temperature", "nan"]),
        ("--steps 0", [*fresh, "--steps", "0"]),
        ("--steps not a number", [*fresh, "--steps", "many"]),
        ("--proposals -1", [*fresh, "--proposals", "-1"]),
        ("--max-pairs 0", [*fresh, "--max-pairs", "0"]),
        ("--decimals -2", [*fresh, "--decimals", "-2"]),
        ("--seed -1", [*fresh, "--seed", "-1"]),
        ("--data-seed -1", [*fresh, "--data-seed", "-1"]),
        ("--stop unknown", [*fresh, "--stop", "sometimes"]),
        ("--stop target:nan", [*fresh, "--stop", "target:nan"]),
        ("--preset unknown", [*fresh, "--preset", "paper"]),
        ("no --out", ["run", "--steps", "2"]),
    ]


def _prepare(folder: Path, load) -> None:
    """A saved run and its damaged copies, written by the command itself."""
    from llm_optimizer import cli

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["run", "--out", str(folder / "run"), "--model", "smollm2",
                         "--steps", "2", "--temperature", "0.5"]) == 0
    for name in ("damaged", "partial", "cut"):
        shutil.copytree(folder / "run", folder / name)
    (folder / "damaged" / "settings.json").write_text("{")
    (folder / "partial" / "settings.json").write_text('{"dataset": "article"}')
    lines = (folder / "cut" / "steps.jsonl").read_text().splitlines()
    (folder / "cut" / "steps.jsonl").write_text("\n".join([lines[0], lines[1][:30], *lines[2:]])
                                                + "\n")
    (folder / "empty").mkdir()
    (folder / "file").write_text("")


def audit_cli() -> dict:
    import llm_optimizer.models as models
    from llm_optimizer import cli

    real = models.load_model
    loads = []

    def load(name=None, **kwargs):
        loads.append(name)
        return StandIn() if name in (None, "auto", "smollm2") else real(name, **kwargs)

    models.load_model = load  # the command imports it from here (older versions at call time)
    if hasattr(cli, "load_model"):
        cli.load_model = load
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _prepare(folder, load)
        for label, argv in _cli_cases(folder):
            loads.clear()
            err, out = io.StringIO(), io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    code = cli.main(argv)
                except SystemExit as exit_:
                    code = exit_.code
                except Exception as error:  # noqa: BLE001 (a traceback is what is counted)
                    code = f"traceback: {type(error).__name__}"
            lines = [line for line in err.getvalue().splitlines()
                     if line.strip() and not line.startswith("optimizing")]
            one_line = code == 2 and len(lines) == 1 and lines[0].startswith("error")
            results.append({"case": label, "exit": code, "one_line_error": one_line,
                            "model_loaded": bool(loads), "seconds":
                            round(time.perf_counter() - started, 2),
                            "stderr": " | ".join(lines)[:300]})
    models.load_model = real
    clear = [r for r in results if r["one_line_error"]]
    return {"tried": len(results), "one_line_exit_2": len(clear),
            "one_line_before_model_load": sum(not r["model_loaded"] for r in clear),
            "cases": results}


def audit_parse(chars: int) -> dict | None:
    if not chars:
        return None
    from test_prompt import HOSTILE

    from llm_optimizer import parse_reply

    timings = {}
    for text in HOSTILE:
        text = text[:chars]
        started = time.perf_counter()
        parse_reply(text)
        timings[repr(text[:12]) + f"... ({len(text)} chars)"] = time.perf_counter() - started
    return {"chars": chars, "inputs": len(timings), "slowest_seconds": max(timings.values()),
            "seconds": {k: round(v, 4) for k, v in timings.items()}}


def report(results: dict) -> str:
    a, c, p = results["arguments"], results["cli"], results["parse"]
    s, f = results["server"], results["folders"]
    lines = [
        "## Robustness audit", "",
        f"`python -m benchmarks.audit` on {results['machine']} (shared, timings vary).", "",
        f"- Bad-argument calls to the public API: **{a['clear']} of {a['tried']}** give a "
        f"ValueError naming the argument ({a['value error not naming the argument']} a "
        f"ValueError not naming it, {a['other exception']} another exception, "
        f"{a['accepted']} accepted).",
        f"- Bad command lines: **{c['one_line_exit_2']} of {c['tried']}** end with exit 2 and "
        f"one line on stderr, {c['one_line_before_model_load']} of them before a model loads.",
    ]
    lines += [
        f"- Hostile server answers (tests/hostile_server.py: HTML, invalid JSON or UTF-8, "
        f"missing fields, a 10 MB answer, a byte every 0.2 s, a stall, a cut connection, a "
        f"redirect to another port, a key echoed near the cut): **{s['one_line']} of "
        f"{s['tried']}** end in one line naming the URL within the 1 s deadline (one retry "
        f"included), none followed elsewhere; the command ends {s['cli_clear']} of them "
        f"with exit 1 or 2 and one or two lines. Key leaks found: **{s['key_leaks']}**.",
        f"- Damaged run folders resumed by the command, and links to a file outside planted "
        f"under each name the package writes: **{f['handled']} of {f['tried']}** refused "
        f"with one line and nothing changed, or recovered with every complete step kept. "
        f"Files written outside the folder: **{f['written_outside']}**.",
    ]
    if p is not None:
        lines.append(f"- Slowest parse of a {p['chars'] // 1000} KB hostile reply "
                     f"({p['inputs']} kinds): **{p['slowest_seconds']:.3f} s**.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--parse-chars", type=int, default=100_000)
    args = parser.parse_args(argv)
    import llm_optimizer

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                          f"{platform.python_version()}",
               "package": str(Path(llm_optimizer.__file__).parent),
               "arguments": audit_arguments(), "cli": audit_cli(),
               "server": audit_server(), "folders": audit_folders(StandIn),
               "parse": audit_parse(args.parse_chars)}
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("cases", "failures")}
                      if isinstance(v, dict) else v for k, v in results.items()}, indent=2))
    for case in results["cli"]["cases"]:
        if not case["one_line_error"]:
            print(f"not one line: {case['case']}: exit {case['exit']}: {case['stderr'][:200]}")
    for case in results["server"]["cases"]:
        if not case["one_line"] or case["key_leaks"]:
            print(f"server: {case['answer']}: {case['message'][:200]}")
    for case in results["folders"]["cases"]:
        if not case["handled"]:
            print(f"folder: {case['folder']}: exit {case['exit']}: {case['stderr']}")
    for failure in results["arguments"]["failures"]:
        print(f"unclear: {failure}")
    if not args.no_write:
        from benchmarks.sections import write_section

        out = ROOT / "benchmarks" / "results" / "audit.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        write_section(ROOT / "docs" / "benchmarks.md", "AUDIT", report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
