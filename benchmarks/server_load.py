"""Load test: N simulated learners optimizing against one local server, and the cost of HTTP.

Each learner is a thread running ``optimize`` (the article's data set, 8 proposals a
step) through its own :class:`ServerModel` against one ``transformers serve`` of the
bundled SmolLM2 on 127.0.0.1. A level of N learners is bounded in time (no step
starts after ``--seconds``) and in count (``--steps`` per learner). Reported per N:
step latency p50/p95, steps/s and proposals/s, and whether any step was lost or
duplicated: every learner's steps must run 1, 2, ... with 8 proposals each, and the
server's access log must show exactly one request per proposal (no retries hidden).

Then one step in process (``LLM.generate``) against the same step through the
server, on the same weights and the same number of torch threads.

    nice python -m benchmarks.server_load          # about half an hour on 2 busy CPU cores
    python -m benchmarks.server_load --quick       # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from llm_optimizer import load_model, make_dataset, optimize
from llm_optimizer.models import ServerModel
from llm_optimizer.prompt import build_meta_prompt
from llm_optimizer.regression import loss_function
from llm_optimizer.settings import resolve_settings

from .local_server import LocalServer, export_for_serving
from .sections import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "server-load"
OK_REQUEST = '"POST /v1/completions HTTP/1.1" 200'


def served_requests(server: LocalServer) -> tuple[int, int]:
    """Completion requests in the server's access log so far: (answered 200, all)."""
    lines = [line for line in server.log.read_text().splitlines()
             if '"POST /v1/completions HTTP/1.1"' in line]
    return sum(OK_REQUEST in line for line in lines), len(lines)


def learners_level(server: LocalServer, n_learners: int, *, steps: int, seconds: float,
                   proposals: int) -> dict:
    """Run ``n_learners`` learners at once for at most ``seconds``; their step latencies,
    throughput and checks. Steps still running at the cap are cut by stopping the server."""
    dataset = make_dataset("article")
    runs: list = [None] * n_learners
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def learner(i: int) -> None:
        model = ServerModel(server.base_url, prompt_style="completion",
                            timeout=2 * seconds + 60, max_retries=0)
        try:
            runs[i] = optimize(dataset, model, steps=steps, proposals_per_step=proposals,
                               stop=[], seed=i, on_step=lambda run: time.monotonic() > deadline)
        except Exception as error:  # counted as lost steps below
            errors.append(f"{type(error).__name__}: {error}")

    ok_before, all_before = served_requests(server)
    started = time.perf_counter()
    threads = [threading.Thread(target=learner, args=(i,)) for i in range(n_learners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    cut = any(t.is_alive() for t in threads)
    if cut:  # the steps in flight fail with a refused connection and are counted as cut
        server.stop()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok_after, all_after = served_requests(server)
    records = [r for run in runs if run is not None for r in run.records if r["step"] > 0]
    latencies = [r["seconds"] for r in records]
    in_order = all(run is not None and [r["step"] for r in run.records]
                   == list(range(len(run.records))) for run in runs)
    full = all(len(r["proposals"]) == proposals for r in records)
    reasons = [run.stop_reason for run in runs if run is not None]
    failed = [s for s in reasons if s.startswith("model error")]
    n_cut = len(failed) if cut else 0
    lost = errors + ([] if cut else failed)
    answered = ok_after - ok_before
    done = len(records) * proposals
    return {
        "learners": n_learners, "steps": len(records), "cut_at_cap": n_cut,
        "seconds": round(wall, 2),
        "p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
        "p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies else None,
        "steps_per_s": round(len(records) / wall, 4),
        "proposals_per_s": round(answered / wall, 3),
        "requests_answered": answered, "requests_seen": all_after - all_before,
        "requests_of_finished_steps": done,
        # every finished step in order with all its proposals; no request answered twice
        # (a cut step may have had some of its requests answered before the cap)
        "no_step_lost_or_duplicated": bool(
            in_order and full and not lost
            and done <= answered <= done + n_cut * proposals),
        "errors": lost,
    }


def http_cost(server: LocalServer, llm, *, proposals: int, rounds: int) -> dict:
    """Seconds for one proposal and for one step of ``proposals``, in process vs through the
    server; median of ``rounds`` interleaved rounds on the article's first prompt."""
    dataset = make_dataset("article")
    settings = resolve_settings(dataset)
    loss = loss_function(settings["loss"])
    start = [(w, b, loss(w, b, dataset.x, dataset.y)) for w, b in settings["init"]]
    prompt = build_meta_prompt(start, max_pairs=settings["max_pairs"],
                               decimals=settings["decimals"])
    served = ServerModel(server.base_url, prompt_style="completion", timeout=600, max_retries=0)
    ways = {"in process": llm, "through the server": served}
    times: dict[str, dict[int, list[float]]] = {w: {1: [], proposals: []} for w in ways}
    for model in ways.values():  # warm up: first-call checks and connections are not timed
        model.generate(prompt, n=2, max_new_tokens=2, seed=0)
    for r in range(rounds):
        for n in (1, proposals):
            for way, model in ways.items():
                t = time.perf_counter()
                model.generate(prompt, n=n, temperature=1.0, max_new_tokens=16, seed=r)
                times[way][n].append(time.perf_counter() - t)
    med = {w: {n: statistics.median(v) for n, v in by_n.items()} for w, by_n in times.items()}
    return {
        "prompt_tokens": int(llm.encode(prompt).shape[1]), "rounds": rounds,
        "one_proposal_s": {w: round(m[1], 3) for w, m in med.items()},
        "one_step_s": {w: round(m[proposals], 3) for w, m in med.items()},
        "proposal_ratio": round(med["through the server"][1] / med["in process"][1], 2),
        "step_ratio": round(med["through the server"][proposals] / med["in process"][proposals],
                            2),
        "choices_per_request": served.choices_per_request,
    }


def machine(threads: int) -> dict:
    import transformers

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__}


def markdown(results: dict) -> str:
    """The report's section for these results."""
    m, cost, p = results["machine"], results["http"], results["proposals"]
    cap = results["seconds"]

    def latency(value) -> str:
        return f"> {cap:g}" if value is None else f"{value}"

    rows = "\n".join(
        f"| {r['learners']} | {r['steps']} | {r['cut_at_cap']} | {latency(r['p50_s'])} | "
        f"{latency(r['p95_s'])} | {r['steps_per_s']} | {r['proposals_per_s']} | "
        f"{'yes' if r['no_step_lost_or_duplicated'] else 'NO'} |" for r in results["levels"])
    ways = list(cost["one_step_s"])
    return f"""## One server for a class: load test

Written by `python -m benchmarks.server_load` on {results['date']}; do not edit by hand.
Machine: {m['cpu']}, {m['cores']} CPU threads shared with other work while it ran (timings
vary; compare within this table), no GPU; Python {m['python']}, torch {m['torch']},
transformers {m['transformers']}. Server: `transformers serve` of the bundled SmolLM2-135M
(safetensors export) on 127.0.0.1 with {m['torch_threads']} torch thread, no continuous
batching: it runs one request at a time and returns one choice whatever `n` asks, so each
step of {p} proposals is {p} requests. Each learner is a thread running `optimize` on the
article's data set ({p} proposals a step, completion prompts) through its own
`ServerModel`. A level runs for at most {cap:g} s or {results['steps']} steps per learner:
no step starts after the cap, and steps still running then are cut (the server is stopped
and started again for the next level), so latencies are those of finished steps and "> {cap:g}"
means no step finished within the cap. Proposals/s counts the requests the server answered.
"intact": no step lost or duplicated (every learner's finished steps run 1, 2, ... with {p}
proposals each, no error while the server was up, and the server's access log shows no more
answered requests than the finished and cut steps asked for).

| learners | steps done | cut | step p50 (s) | step p95 (s) | steps/s | proposals/s | intact |
|---:|---:|---:|---:|---:|---:|---:|:---|
{rows}

**Cost of HTTP** (median of {cost['rounds']} interleaved rounds, the article's first
prompt, {cost['prompt_tokens']} tokens, same weights and torch threads): one proposal
{cost['one_proposal_s'][ways[0]]} s {ways[0]} vs {cost['one_proposal_s'][ways[1]]} s
{ways[1]} ({cost['proposal_ratio']}x); one step of {p} proposals
{cost['one_step_s'][ways[0]]} s {ways[0]} (one shared prefill) vs
{cost['one_step_s'][ways[1]]} s {ways[1]} ({cost['step_ratio']}x: {p} requests, each with
its own prefill, since this server returns {cost['choices_per_request']} choice per
request). A server that honours `n` with prefix caching (vLLM) sends the step as one
request; see docs/workshop.md.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default="1,4,16,32", help="comma-separated N")
    parser.add_argument("--steps", type=int, default=2, help="most steps per learner")
    parser.add_argument("--seconds", type=float, default=180.0,
                        help="a level's time cap: no step starts after it, and steps still "
                        "running then are cut")
    parser.add_argument("--proposals", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the HTTP cost")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--quick", action="store_true", help="N = 1, 2; one step; one round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.learners, args.steps, args.seconds, args.rounds, args.proposals = "1,2", 1, 300, 1, 2
    learners = [int(n) for n in args.learners.split(",")]
    torch.set_num_threads(args.threads)
    llm = load_model("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        served_dir = export_for_serving(llm, Path(tmp) / "smollm2")
        with LocalServer(served_dir, threads=args.threads) as server:
            results = run(server, llm, learners=learners, steps=args.steps,
                          seconds=args.seconds, proposals=args.proposals, rounds=args.rounds)
    results["machine"] = machine(args.threads)
    write(results, args.out, args.report)
    print(markdown(results))
    return 0 if all(r["no_step_lost_or_duplicated"] for r in results["levels"]) else 1


def run(server: LocalServer, llm, *, learners: list[int], steps: int, seconds: float,
        proposals: int, rounds: int) -> dict:
    """The load test and the HTTP cost against ``server``, which serves ``llm``'s weights."""
    levels = []
    for n in learners:
        if server.process is None or server.process.poll() is not None:
            server.start()  # the last level was cut by stopping it
        levels.append(learners_level(server, n, steps=steps, seconds=seconds,
                                     proposals=proposals))
    if server.process is None or server.process.poll() is not None:
        server.start()
    return {"date": datetime.date.today().isoformat(), "proposals": proposals, "steps": steps,
            "seconds": seconds, "levels": levels,
            "http": http_cost(server, llm, proposals=proposals, rounds=rounds)}


def write(results: dict, out: Path, report: Path) -> None:
    """JSON to ``out/server_load.json``; the markdown into ``report``'s own section."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "server_load.json").write_text(json.dumps(results, indent=2) + "\n")
    write_section(report, SECTION, markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
