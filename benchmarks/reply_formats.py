"""What forcing the reply format does to the optimizer: ``python -m benchmarks.reply_formats``.

Three measurements on the bundled model, for the reply formats ``free``, ``pair``
and ``reason+pair`` (see ``llm_optimizer.grammar``):

1. the cost of the grammar's mask: seconds per step and the share spent computing masks;
2. the loop at an equal budget of replies on the article's and the paper's presets:
   parse rate, tokens per proposal, seconds per step, repeats of shown pairs, best loss;
3. the article's temperature sweep redone with ``pair``, where every reply counts: the
   median distance of a proposal from the best shown pair (the step) per temperature.

Writes ``benchmarks/results/reply_formats.json`` (or ``--out``), the ``reply-formats``
section of ``docs/benchmarks.md`` and ``docs/images/reply_formats.png``. About 30 min
on a quiet 2-core CPU; ``--quick`` is a smoke run in about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from llm_optimizer import load_model, make_dataset, optimize  # noqa: E402
from llm_optimizer.experiments import (  # noqa: E402
    compare_formats,
    format_table,
    temperature_sweep,
)
from llm_optimizer.grammar import REPLY_FORMATS, ReplyGrammar  # noqa: E402

from .run import machine  # noqa: E402
from .sections import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FULL = {"overhead_steps": 8, "evaluations": 48, "seeds": 10,
        "temperatures": [0.2, 0.6, 1.0, 1.4, 1.8, 2.0], "sweep_seeds": 5, "sweep_steps": 6}
QUICK = {"overhead_steps": 1, "evaluations": 8, "seeds": 1,
         "temperatures": [0.4, 1.6], "sweep_seeds": 1, "sweep_steps": 1}
# The targets: MSE 1 on the article's data (its stop rule), the true line's SSE on the paper's.
PRESETS = ("article", "opro")


def target(preset: str) -> float:
    data = make_dataset(preset)
    if preset == "article":
        return 1.0
    return float(np.sum((data.y - (data.w * data.x + data.b)) ** 2))


class _TimedMask:
    """Adds up the seconds ``ReplyGrammar.mask`` takes while installed."""

    def __init__(self):
        self.seconds, self._original = 0.0, ReplyGrammar.mask

    def __enter__(self):
        timer, original = self, self._original

        def mask(grammar, logits, matchers):
            started = time.perf_counter()
            try:
                return original(grammar, logits, matchers)
            finally:
                timer.seconds += time.perf_counter() - started

        ReplyGrammar.mask = mask
        return self

    def __exit__(self, *exc):
        ReplyGrammar.mask = self._original


def overhead(llm, steps: int) -> list[dict]:
    """Seconds per step (article preset, n = 8) per format and the share spent in masks."""
    data = make_dataset("article")
    rows = []
    llm.grammar()  # built once per model (about a second), outside the timed steps
    for reply_format in REPLY_FORMATS:
        optimize(data, llm, steps=1, stop=[], proposals_per_step=8,
                 reply_format=reply_format)  # warm-up
        with _TimedMask() as timer:
            run = optimize(data, llm, steps=steps, stop=[], seed=1, proposals_per_step=8,
                           reply_format=reply_format)
        step = float(np.mean([r["seconds"] for r in run.records[1:]]))
        rows.append({"reply_format": reply_format, "seconds_per_step": step,
                     "mask_seconds_per_step": timer.seconds / steps,
                     "mask_share": timer.seconds / steps / step})
    return rows


def sweep_summary(sweep: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """One row per temperature, and the rank correlation of temperature and step size."""
    grouped = sweep.groupby("temperature")
    table = pd.DataFrame({
        "parse rate": grouped["parse_rate"].mean(),
        "parsed proposals": grouped["parsed"].sum(),
        "step size, median": grouped["step_size_median"].median(),
        "best loss, median": grouped["best_loss"].median(),
        "runs converged": grouped["converged"].apply(lambda s: f"{int(s.sum())}/{len(s)}"),
    }).reset_index()
    # Spearman's rank correlation: Pearson's on the ranks (ties share their mean rank)
    rho = float(sweep["temperature"].rank().corr(sweep["step_size_median"].rank()))
    return table, rho


def plot(results: dict, path: Path) -> None:
    table = pd.DataFrame(results["formats"])
    sweep = pd.DataFrame(results["sweep"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, preset in zip(axes[:2], PRESETS, strict=True):
        rows = table[table["preset"] == preset]
        ax.boxplot([rows[rows["reply_format"] == f]["best_loss"] for f in REPLY_FORMATS],
                   tick_labels=REPLY_FORMATS)
        ax.set_yscale("log")
        ax.axhline(target(preset), color="gray", linestyle=":", label="target")
        loss = "MSE" if preset == "article" else "SSE"
        ax.set_title(f"{preset} preset: best {loss} after {results['settings']['evaluations']} "
                     f"replies, {results['settings']['seeds']} seeds", fontsize=10)
        ax.legend(fontsize=9)
    grouped = sweep.groupby("temperature")["step_size_median"]
    axes[2].plot(grouped.median(), marker="o", label="median over runs")
    axes[2].scatter(sweep["temperature"], sweep["step_size_median"], s=12, alpha=0.5,
                    color="C0", label="one run")
    axes[2].set_xlabel("temperature")
    axes[2].set_ylabel("distance from the best shown pair")
    axes[2].set_title("reply_format='pair': step size against temperature", fontsize=10)
    axes[2].legend(fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def reading(results: dict) -> str:
    """A plain reading of the measured tables (it changes when the numbers do)."""
    table = pd.DataFrame(results["formats"])
    best = table.groupby(["preset", "reply_format"])["best_loss"].median()
    parse = table.groupby("reply_format")["parse_rate"].mean()
    mask = max(r["mask_share"] for r in results["overhead"])
    rho = results["sweep_rank_correlation"]
    article = {f: best["article", f] for f in REPLY_FORMATS}
    lowest = min(article.values())
    winners = " and ".join(f"'{f}'" for f in REPLY_FORMATS if article[f] == lowest)
    return (
        f"Free text parsed {parse['free']:.0%} of the time, 'pair' {parse['pair']:.0%} and "
        f"'reason+pair' {parse['reason+pair']:.0%}. The mask took at most {mask:.1%} of a "
        f"step. On the article's preset the median best MSE was "
        + ", ".join(f"{article[f]:.3g} ({f})" for f in REPLY_FORMATS)
        + f": {winners} did best on this budget. With every reply a pair, the rank "
        f"correlation between temperature and the median step was {rho:.2f}"
        + (": the higher the temperature, the longer the step, as the article saw with "
           "Mistral." if rho > 0.5 else
           ": temperature does not act like a step size for this model.")
    )


def report(results: dict) -> str:
    s, m = results["settings"], results["machine"]
    over = pd.DataFrame(results["overhead"]).rename(columns={
        "reply_format": "reply format", "seconds_per_step": "seconds per step",
        "mask_seconds_per_step": "mask seconds per step", "mask_share": "mask share"})
    formats = format_table(pd.DataFrame(results["formats"]))
    sweep, _ = sweep_summary(pd.DataFrame(results["sweep"]))
    return f"""## Reply formats: what forcing the pair does

Written by `python -m benchmarks.reply_formats` on {results['date']} ({m['cpu']},
{m['cores']} threads; load average {results['load_average'][0]:.1f} at the start and
{results['load_average'][1]:.1f} at the end). Model: {results['model']}, completion
prompt. `free` is any text read by the parser; `pair` lets the decoder write only
the pair in the prompt's precision; `reason+pair` allows up to 48 tokens of text,
then the forced `[w, b]`. See `llm_optimizer/grammar.py`.

![reply formats](images/reply_formats.png)

**The mask's cost** (article preset, 8 proposals, temperature 0.8, {s['overhead_steps']}
steps; the mask is the llguidance matcher's token bitmask, applied to the logits):

{over.to_markdown(index=False, floatfmt='.3f')}

**At an equal budget of {s['evaluations']} replies** ({s['evaluations'] // 8} steps of 8;
{s['seeds']} seeds, each starting every format from the same pairs; an unparsed reply
uses up its share of the budget; target MSE 1 (article) and the true line's SSE
(paper)):

{formats.to_markdown(index=False, floatfmt='.3g')}

**The article's temperature sweep with `pair`** ({s['sweep_seeds']} seeds per temperature,
up to {s['sweep_steps']} steps of 8, the article's stop rule). The step is the distance
of a proposal from the best pair its prompt showed; Spearman's rank correlation between
temperature and a run's median step: **{results['sweep_rank_correlation']:.2f}**.

{sweep.to_markdown(index=False, floatfmt='.3g')}

{reading(results)}
"""


def measure(config: dict) -> dict:
    llm = load_model("smollm2")
    load_before = os.getloadavg()[0]
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "model": llm.name,
               "settings": config, "overhead": overhead(llm, config["overhead_steps"])}
    frames = []
    for preset in PRESETS:
        frame = compare_formats(make_dataset(preset), llm, formats=REPLY_FORMATS,
                                evaluations=config["evaluations"],
                                seeds=range(config["seeds"]), target=target(preset),
                                proposals_per_step=8)
        frames.append(frame.assign(preset=preset))
    results["formats"] = pd.concat(frames, ignore_index=True).to_dict("records")
    sweep = temperature_sweep(make_dataset("article"), llm,
                              temperatures=config["temperatures"],
                              seeds=range(config["sweep_seeds"]), steps=config["sweep_steps"],
                              proposals_per_step=8, reply_format="pair")
    results["sweep"] = sweep.to_dict("records")
    results["sweep_rank_correlation"] = sweep_summary(sweep)[1]
    results["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reply_formats",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON, the report and the picture here instead of "
                        "into the repository (required with --quick)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="rebuild the report and the picture from a saved JSON")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick writes only under --out: give a folder")
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
    else:
        results = measure(QUICK if args.quick else FULL)
    if args.out is None:
        json_path = ROOT / "benchmarks" / "results" / "reply_formats.json"
        report_path, image = ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "images"
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        json_path, report_path, image = (args.out / "reply_formats.json",
                                         args.out / "benchmarks.md", args.out / "images")
    if args.from_json is None or args.out is not None:
        json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    plot(results, image / "reply_formats.png")
    write_section(report_path, "reply-formats", report(results))
    print(reading(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
