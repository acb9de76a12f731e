"""A record of one model against the bar: ``python -m benchmarks.capable --model NAME``.

Runs the article's and the paper's comparisons at an equal budget of loss evaluations,
over several seeds: the model, the mimic (no language model: it copies and perturbs the
pairs it is shown, see ``llm_optimizer/models/mimic.py``), hill climbing, gradient
descent and random search, each from the same start for a seed
(``llm_optimizer.experiments.compare_optimizers``). Writes
``benchmarks/results/capable-<model>.json`` and the model's own section of
``docs/benchmarks.md``: model, machine, date, settings, the tables, and whether the model
did better than the mimic, read off the numbers.

    python -m benchmarks.capable --model smollm2                 # a local model
    python -m benchmarks.capable --model mistral-4bit            # on a CUDA GPU
    OPENAI_API_KEY=... python -m benchmarks.capable \\
        --base-url https://api.example.com/v1 --model NAME       # a served model
    python -m benchmarks.capable --model smollm2 --quick --out DIR   # a smoke run

A record made on random weights (``benchmarks/gpu_mistral_random.py --capable``) is
timing only: such a model writes no pairs.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llm_optimizer import load_model, make_dataset
from llm_optimizer.experiments import compare_optimizers, ranking
from llm_optimizer.models import ServerError
from llm_optimizer.models.server import public_url

from .run import TimedModel, machine
from .sections import write_section

ROOT = Path(__file__).resolve().parent.parent
FULL = {"seeds": 5, "evaluations": 80, "proposals_per_step": 8}
QUICK = {"seeds": 1, "evaluations": 16, "proposals_per_step": 8}
PRESETS = {"article": {"lr": 0.05}, "opro": {"lr": 5e-4}}  # gradient descent's stable rate
TARGETS = {"article": "an MSE of 1 (the article's stop rule)",
           "opro": "the SSE of the true line w = 15, b = 14 (the paper's optimum)"}


def target(preset: str) -> float:
    """MSE 1 on the article's data; the true line's SSE on the paper's."""
    if preset == "article":
        return 1.0
    data = make_dataset(preset)
    return float(np.sum((data.y - (data.w * data.x + data.b)) ** 2))


def slug(label: str) -> str:
    """``label`` as a file and section name: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-").lower() or "model"


def measure(model, settings: dict) -> dict:
    """Both presets' comparisons for ``model`` next to the mimic and the classical methods."""
    timed = TimedModel(model)
    mimic = load_model("mimic", prompt_style=getattr(model, "prompt_style", None))
    rows, seconds, steps = [], {}, {}
    for preset, options in PRESETS.items():
        calls = timed.calls
        started = timed.seconds
        table = compare_optimizers(
            make_dataset(preset), timed, evaluations=settings["evaluations"],
            seeds=range(settings["seeds"]), target=target(preset),
            proposals_per_step=settings["proposals_per_step"], others={"mimic": mimic},
            **options)
        seconds[preset] = (timed.seconds - started) / max(timed.calls - calls, 1)
        steps[preset] = timed.calls - calls
        rows += table.assign(preset=preset, target=target(preset)).to_dict("records")
    return {"model": model.name, "prompt_style": getattr(model, "prompt_style", None),
            "settings": settings, "seconds_per_model_step": seconds, "model_steps": steps,
            "rows": rows}


def verdict(results: dict, preset: str) -> str:
    """Whether the model did better than the mimic on ``preset``, read off the rows."""
    table = pd.DataFrame(results["rows"])
    table = table[table["preset"] == preset]
    mine, mimic = (table[table["method"] == m] for m in ("LLM", "mimic"))
    hits = [int(t["evaluations_to_target"].notna().sum()) for t in (mine, mimic)]
    best = [float(t["best_loss"].median()) for t in (mine, mimic)]
    runs = len(mine)
    better = hits[0] > hits[1] or (hits[0] == hits[1] and best[0] < best[1])
    worse = hits[0] < hits[1] or (hits[0] == hits[1] and best[0] > best[1])
    word = "better than" if better else "worse than" if worse else "the same as"
    few = (" With so few runs this ranks nothing; a full record has more seeds."
           if runs < 3 else "")
    return (f"{results['model']} reached the target in {hits[0]} of {runs} runs, the mimic in "
            f"{hits[1]} of {runs}; median best loss {best[0]:.4g} against {best[1]:.4g}: "
            f"{word} copying and perturbing the shown pairs.{few}")


def report(results: dict) -> str:
    """The model's section of docs/benchmarks.md."""
    m, s = results["machine"], results["settings"]
    table = pd.DataFrame(results["rows"])
    table["method"] = table["method"].replace({"LLM": f"{results['model']} (the model)"})
    note = f"\n\n**{results['note']}**" if results.get("note") else ""
    served = f", served at {results['base_url']}" if results.get("base_url") else ""
    seeds = f"{s['seeds']} seed{'s' if s['seeds'] > 1 else ''}"
    timing = results["seconds_per_model_step"]
    parts = [f"""## Capable-model record: {results['model']}

Written by `{_command(results['command'])}` on {results['date']}; do not edit by hand.

- Model: {results['model']}{served}; {results['prompt_style'] or 'its own'} prompts,
  free-text replies.
- Machine: {m['cpu']}, {m['cores']} threads, GPU: {m['gpu'] or 'none'}; torch {m['torch']},
  transformers {m['transformers']}.
- Settings: {seeds} per method and set-up, {s['evaluations']} loss evaluations each (the
  starting pairs included), {s['proposals_per_step']} proposals per model step at the
  preset's temperature. The mimic (`load_model("mimic")`, no language model) runs the same
  loop from the same start; hill climbing, gradient descent and random search as in
  "Optimization at an equal budget" at the top of this page.
- A model step took {timing['article']:.3g} s on the article's set-up and
  {timing['opro']:.3g} s on the paper's (means over {results['model_steps']['article']} and
  {results['model_steps']['opro']} steps).{note}
"""]
    for preset, name in (("article", "The article's set-up"), ("opro", "The paper's set-up")):
        rows = table[table["preset"] == preset].drop(columns="preset")
        parts.append(f"""### {name}: target {TARGETS[preset]}

{ranking(rows).to_markdown(index=False, floatfmt='.4g')}

{verdict(results, preset)}
""")
    return "\n".join(parts)


def _command(command: str) -> str:
    """The command that wrote a record, without its note (printed apart)."""
    words = shlex.split(command)
    if "--note" in words:
        at = words.index("--note")
        del words[at:at + 2]
    return shlex.join(words)


def write(results: dict, out: Path | None) -> Path:
    """The JSON and the report section, in the repository or under ``out``."""
    key = f"capable-{slug(results['model'])}"
    if out is None:
        json_path = ROOT / "benchmarks" / "results" / f"{key}.json"
        report_path = ROOT / "docs" / "benchmarks.md"
    else:
        out.mkdir(parents=True, exist_ok=True)
        json_path, report_path = out / f"{key}.json", out / "benchmarks.md"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    write_section(report_path, key, report(results))
    return json_path


def record(model, settings: dict, *, command: str, out: Path | None, note: str | None = None,
           base_url: str | None = None) -> dict:
    """Measure ``model``, stamp the result with machine, date and command, and write it."""
    results = measure(model, settings)
    results.update({"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                    "command": command, "note": note,
                    "base_url": public_url(base_url) if base_url else None})
    path = write(results, out)
    for preset in PRESETS:
        print(verdict(results, preset))
    print(f"wrote {path}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capable",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None,
                        help="a name load_model takes (smollm2, mistral-4bit, mimic, a folder, "
                        "a .gguf file, a Hugging Face id) or, with --base-url, the served name")
    parser.add_argument("--base-url", default=None,
                        help="an OpenAI-compatible server, such as http://HOST:8000/v1; its key "
                        "from the OPENAI_API_KEY environment variable")
    parser.add_argument("--seeds", type=int, default=None, help="runs per method and preset")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 seed, 16 evaluations (needs --out)")
    parser.add_argument("--note", default=None,
                        help="a sentence printed with the record, such as how busy the machine was")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON and the report here instead of into the repository")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="rewrite the section from a saved JSON, measuring nothing")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        write(json.loads(args.from_json.read_text()), args.out)
        return 0
    if args.model is None:
        parser.error("--model is required: the model to record")
    if args.quick and args.out is None:
        parser.error("--quick writes only under --out: give a folder")
    settings = dict(QUICK if args.quick else FULL)
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error("--seeds must be at least 1")
        settings["seeds"] = args.seeds
    try:
        if args.base_url is not None:
            model = load_model(args.base_url, model=args.model)
        else:
            model = load_model(args.model)
    except (ValueError, OSError, ServerError) as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
    shown = ["python", "-m", "benchmarks.capable", *(
        public_url(a) if a == args.base_url else a for a in (argv or sys.argv[1:]))]
    record(model, settings, command=shlex.join(shown), out=args.out, note=args.note,
           base_url=args.base_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
