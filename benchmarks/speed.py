"""A step on a quiet machine and on a busy one: ``python -m benchmarks.speed [--quick]``.

One step is the paper's meta-prompt (20 integer pairs) with 8 proposals, each stopped at
its first line break. Every way of running it lives in its own worker process, loaded
once, so that each can have its own OpenMP settings (``OMP_WAIT_POLICY`` must be set
before torch starts); the parent asks them for steps in turn, round after round, first
at rest and then with one busy loop per core running, and keeps every round:

- ``before``: fp32 on all cores, as the package ran until now; it also times one plain
  fp32 prefill of the prompt, the yardstick of a step;
- ``now``: what ``load_model("smollm2")`` does today (its precision, a thread count per
  step from the cores other programs leave free);
- ``passive``: ``before`` with ``OMP_WAIT_POLICY=PASSIVE``, the usual advice for a shared
  machine (full run only);
- ``int8``: ``now`` with int8 weights for decoding (``"fp32/int8"``; ``"bf16/int8"`` where
  the CPU has native bf16), for its speed and its replies beside the format chosen
  (full run only);
- ``llama.cpp``: the same GGUF file and the same tokens through ``llama-cpp-python`` (an
  optional dependency: skipped, with the reason, when it is not installed): one prefill
  shared by the 8 sequences (its state saved and restored), and 8 calls that each prefill
  anew.

Writes ``benchmarks/results/speed.json`` and its section of ``docs/benchmarks.md``;
``--quick`` (one round, no ``passive`` or ``int8`` worker, a short quality check) writes under
``--out`` only; ``--from-json`` rebuilds the section from a saved JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N, MAX_NEW_TOKENS, TEMPERATURE = 8, 12, 1.0
FULL = {"repeats": 5, "quality_seeds": 5, "quality_steps": 10, "passive": True}
QUICK = {"repeats": 1, "quality_seeds": 1, "quality_steps": 2, "passive": False}
# Hugging Face's own ways, timed at rest on the fp32 weights of *before* (the busy rounds
# leave them out: each takes minutes there).
HF_WAYS = {"article": "a: one call per proposal", "sequences": "b: num_return_sequences"}
LLAMA_INSTALL = "pip install llama-cpp-python  (builds llama.cpp from source: about 20 min)"


# ---------------------------------------------------------------- workers (child side)

def _torch_worker(precision: str, adaptive: bool, sampler: str):
    """Load the model and answer the parent's requests, one JSON line each."""
    import torch

    from llm_optimizer import load_model, make_dataset, optimize
    from llm_optimizer.models import local

    from .generation import METHODS, paper_prompt

    if sampler == "multinomial":  # the sampler before blocks: one draw over the vocabulary
        local.sample_rows = lambda probs, generator: torch.multinomial(
            probs, 1, generator=generator).squeeze(1)
    if precision == "int8":  # int8 decoding after the prompt's format of auto
        from llm_optimizer.models.precision import auto_precision

        precision = f"{auto_precision().prefill}/int8"
    llm = load_model("smollm2", precision=precision)
    llm.threads.adaptive = adaptive
    prompt = paper_prompt()
    ids = llm.encode(prompt)

    def step(seed: int) -> dict:
        started = time.perf_counter()
        replies = llm.generate(prompt, n=N, max_new_tokens=MAX_NEW_TOKENS,
                               temperature=TEMPERATURE, seed=seed)
        return {"seconds": time.perf_counter() - started, "replies": replies,
                "threads": llm.threads.threads, "others": llm.threads.others,
                "shared_prefix": llm._shares_prefix}

    def prefill(seed: int) -> dict:  # one plain fp32 prefill, as Hugging Face runs it
        with torch.inference_mode():
            started = time.perf_counter()
            llm.prefill_model(input_ids=ids, use_cache=True, logits_to_keep=1)
            return {"seconds": time.perf_counter() - started}

    def quality(seeds: list[int], steps: int) -> dict:
        runs = [optimize(make_dataset("opro"), llm, steps=steps, stop=[], seed=s)
                for s in seeds]
        replies = [r.history[r.history["step"] > 0] for r in runs]
        return {"parse_rate": [float(h["parsed"].mean()) for h in replies],
                "best_loss": [float(r.history["loss"].min()) for r in runs]}

    def numerics() -> dict:  # logits against fp32 on the paper prompt: prefill, one decode
        if str(llm.precision) == "fp32":
            return {"precision": "fp32", "max_diff": 0.0, "same_top": True}
        reference = load_model("smollm2", precision="fp32")
        with torch.inference_mode():
            ours, cache = llm._prefill(ids)
            theirs, their_cache = reference._prefill(ids)
            token = theirs.argmax(-1, keepdim=True)
            ours_next, _ = llm._forward(token, cache)
            theirs_next, _ = reference._forward(token, their_cache)
            greedy = llm.generate(prompt, n=1, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            plain = reference.generate(prompt, n=1, max_new_tokens=MAX_NEW_TOKENS,
                                       do_sample=False)
        return {"precision": str(llm.precision),
                "max_diff": float((ours - theirs).abs().max() / theirs.abs().max()),
                "same_top": bool(ours.argmax() == theirs.argmax()),
                "decode_max_diff": float((ours_next - theirs_next).abs().max()
                                         / theirs_next.abs().max()),
                "decode_same_top": bool(ours_next.argmax() == theirs_next.argmax()),
                "same_greedy_reply": greedy == plain}

    def hf_way(name: str):
        def run(seed: int) -> dict:
            started = time.perf_counter()
            replies = METHODS[HF_WAYS[name]](llm, prompt, n=N, max_new_tokens=MAX_NEW_TOKENS,
                                             temperature=TEMPERATURE, seed=seed)
            return {"seconds": time.perf_counter() - started, "replies": replies}
        return run

    _serve({"step": step, "prefill": prefill, "quality": quality, "numerics": numerics,
            **{name: hf_way(name) for name in HF_WAYS}},
           {"precision": str(llm.precision), "threads": torch.get_num_threads(),
            "prompt_tokens": int(ids.shape[1])})


def _llama_worker():
    """llama.cpp on the same GGUF file and the same token ids."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from llm_optimizer.models.base import completion_text
    from llm_optimizer.models.loading import bundled_model_path

    from .generation import paper_prompt

    path = bundled_model_path()  # the ids LLM.encode gives the bundled model's completion prompt
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ids = tokenizer(completion_text(paper_prompt()))["input_ids"]
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    options = {"model_path": str(path), "n_ctx": 1024, "n_batch": 1024,
               "n_threads": threads, "n_threads_batch": threads, "verbose": False}
    try:  # its AMX buffers crashed on an Intel Xeon (issue 20): leave them out
        llama = Llama(**options, use_extra_bufts=False)
    except TypeError:
        llama = Llama(**options)
    eos = llama.token_eos()

    def reply(seed: int) -> str:
        llama.set_seed(seed)
        tokens: list[int] = []
        for _ in range(MAX_NEW_TOKENS):
            token = llama.sample(top_k=0, top_p=1.0, min_p=0.0, temp=TEMPERATURE)
            if token == eos:
                break
            tokens.append(token)
            text = llama.detokenize(tokens).decode(errors="replace")
            if "\n" in text.lstrip():
                break
            llama.eval([token])
        return llama.detokenize(tokens).decode(errors="replace")

    def shared(seed: int) -> dict:
        started = time.perf_counter()
        llama.reset()
        llama.eval(ids)
        state = llama.save_state()
        replies = []
        for k in range(N):
            llama.load_state(state)
            replies.append(reply(seed + k))
        return {"seconds": time.perf_counter() - started, "replies": replies}

    def calls(seed: int) -> dict:
        started = time.perf_counter()
        replies = []
        for k in range(N):
            llama.reset()
            llama.eval(ids)
            replies.append(reply(seed + k))
        return {"seconds": time.perf_counter() - started, "replies": replies}

    _serve({"step": shared, "calls": calls}, {"threads": threads, "prompt_tokens": len(ids)})


def _serve(handlers: dict, hello: dict) -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not mix with the answers
    out.write(json.dumps({"ready": True, **hello}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        answer = handlers[request.pop("op")](**request)
        out.write(json.dumps(answer, default=float) + "\n")
        out.flush()


# ---------------------------------------------------------------- parent side

class Worker:
    """A worker process: ``ask`` sends one request and waits for its answer."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None):
        self.name = name
        environment = {**os.environ, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), environment.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.speed", "--worker", *args], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=environment)
        self.hello: dict | None = None

    def ready(self) -> dict:
        if self.hello is None:
            self.hello = self._answer()
        return self.hello

    def ask(self, op: str, **kwargs) -> dict:
        self.process.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker ended (exit code "
                               f"{self.process.wait()}) without an answer")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _spin() -> None:
    while True:
        pass


class BusyLoops:
    """``count`` processes that each keep one core busy while the block runs."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[multiprocessing.Process] = []

    def __enter__(self):
        self.processes = [multiprocessing.Process(target=_spin, daemon=True)
                          for _ in range(self.count)]
        for p in self.processes:
            p.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        for p in self.processes:
            p.terminate()
            p.join()


def llama_cpp_missing() -> str | None:
    """Why the llama.cpp rows cannot be measured here, or None when they can."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed ({LLAMA_INSTALL})"
    return None


def external_load(seconds: float = 1.0) -> dict:
    """Cores busy with other programs over ``seconds`` now, and the load averages."""
    from llm_optimizer.models.cpu import others_busy, read_cpu

    before = read_cpu()
    time.sleep(seconds)
    return {"busy_cores": others_busy(before, read_cpu()), "loadavg": list(os.getloadavg())}


def measure(settings: dict) -> dict:
    """Start the workers, time their steps round by round at rest and busy."""
    from llm_optimizer.models.cpu import usable_cores

    from .run import machine

    before = ["torch", "fp32", "fixed", "multinomial"]
    specs = {"before": (before, None), "now": (["torch", "auto", "adaptive", "blocks"], None)}
    if settings["passive"]:  # the full run's extra ways
        specs["passive"] = (before, {"OMP_WAIT_POLICY": "PASSIVE"})
        specs["int8"] = (["torch", "int8", "adaptive", "blocks"], None)
    missing = llama_cpp_missing()
    if missing is None:
        specs["llama.cpp"] = (["llama"], None)
    workers = {name: Worker(name, args, env) for name, (args, env) in specs.items()}
    try:
        hello = {}
        for name, w in list(workers.items()):
            try:
                hello[name] = w.ready()
            except RuntimeError as error:  # llama.cpp may crash on load: say so, go on
                if name != "llama.cpp":
                    raise
                missing = str(error)
                workers.pop(name).close()
        jobs = [(name, "step") for name in workers]
        jobs.insert(1, ("before", "prefill"))
        if "llama.cpp" in workers:
            jobs.append(("llama.cpp", "calls"))
        cores = usable_cores()
        phases = {}
        for phase, loops in (("quiet", 0), ("busy", cores)):
            load = external_load()
            these = jobs + [("before", way) for way in HF_WAYS] if loops == 0 else jobs
            rounds: dict[str, list] = {f"{n}: {op}": [] for n, op in these}
            with BusyLoops(loops):
                for r in range(settings["repeats"]):
                    for k in range(len(these)):  # each round starts with another job
                        name, op = these[(k + r) % len(these)]
                        rounds[f"{name}: {op}"].append(workers[name].ask(op, seed=1000 * r))
            phases[phase] = {"busy_loops": loops, "external_load_before": load,
                             "rounds": rounds}
        quality = {name: workers[name].ask("quality", seeds=list(range(
            settings["quality_seeds"])), steps=settings["quality_steps"])
            for name in ("before", "now", "int8") if name in workers}
        numerics = workers["now"].ask("numerics")
        if "int8" in workers:
            numerics["int8"] = workers["int8"].ask("numerics")
    finally:
        for w in workers.values():
            w.close()
    return {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "settings": settings,
            "n": N, "max_new_tokens": MAX_NEW_TOKENS, "temperature": TEMPERATURE,
            "workers": hello, "llama_cpp_skipped": missing, "phases": phases,
            "quality": quality, "numerics": numerics}


# ---------------------------------------------------------------- report

def medians(results: dict) -> dict[str, dict[str, float]]:
    """Median seconds of each job in each phase."""
    return {phase: {job: statistics.median(r["seconds"] for r in rounds)
                    for job, rounds in p["rounds"].items()}
            for phase, p in results["phases"].items()}


def verdicts(results: dict) -> list[str]:
    """The issue's targets, each checked against the numbers."""
    m = medians(results)
    q, b = m["quiet"], m["busy"]
    now, before, prefill = q["now: step"], q["before: step"], q["before: prefill"]
    lines = [
        f"quiet step {now:.2f} s, {now / prefill:.2f} times one plain fp32 prefill "
        f"({prefill:.2f} s); target at most 1.4 times: "
        + ("met" if now <= 1.4 * prefill else "not met"),
        f"busy step {b['now: step']:.2f} s, {b['now: step'] / now:.2f} times its quiet time "
        "(target at most 3 times): " + ("met" if b["now: step"] <= 3 * now else "not met"),
        f"against the package before: {before / now:.2f}× faster quiet, "
        f"{b['before: step'] / b['now: step']:.2f}× faster busy",
    ]
    for way, target in (("article", 6), ("sequences", 4)):
        if f"before: {way}" in q:
            lead = q[f"before: {way}"] / now
            lines.append(f"at rest, {lead:.2f}× faster than Hugging Face's "
                         f"{HF_WAYS[way][3:]} on fp32 (target at least {target}×): "
                         + ("met" if lead >= target else "not met"))
    for phase, times in (("quiet", q), ("busy", b)):
        if "llama.cpp: step" in times:
            ratio = times["llama.cpp: step"] / times["now: step"]
            lines.append(f"{phase}, llama.cpp's step (one prefill shared by the 8 sequences) "
                         f"took {times['llama.cpp: step']:.2f} s, {ratio:.2f} times the "
                         "package's: " + ("the package is faster" if ratio > 1 else
                                          "llama.cpp is faster or as fast"))
    return lines


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.3g}" if values else "–"


def section(results: dict) -> str:
    """The Markdown section ``speed`` of docs/benchmarks.md."""
    import pandas as pd

    m, mac = medians(results), results["machine"]
    rows = {}
    for job in m["quiet"]:
        quiet, busy = m["quiet"][job], m["busy"].get(job, float("nan"))
        rows[job] = {"at rest (s)": quiet, "busy (s)": busy, "busy / at rest": busy / quiet}
    table = pd.DataFrame(rows).T.to_markdown(floatfmt=".3g")
    threads = [r.get("threads") for r in results["phases"]["busy"]["rounds"]["now: step"]]
    said = {True: "yes", False: "no (it copied the cache)", None: "not recorded"}
    shares = ", ".join(sorted({said[r.get("shared_prefix")]
                               for r in results["phases"]["quiet"]["rounds"]["now: step"]}))
    loads = {p: v["external_load_before"] for p, v in results["phases"].items()}
    quality = results["quality"]
    skipped = results["llama_cpp_skipped"]
    hello = results["workers"]
    numerics = results["numerics"]
    decode = ("" if "decode_max_diff" not in numerics else
              f"; {numerics['decode_max_diff']:.3g} after one decoded token, same top token: "
              + ("yes" if numerics["decode_same_top"] else "no"))
    parse, loss = (", ".join(f"*{name}* {_mean(q[key])}" for name, q in quality.items())
                   for key in ("parse_rate", "best_loss"))
    if "int8" in numerics:
        decode += (f". *int8* ({numerics['int8']['precision']}): "
                   f"{numerics['int8']['decode_max_diff']:.3g} after one decoded token")
    return f"""## A step at rest and on a busy machine

Written by `python -m benchmarks.speed` on {results['date']}; do not edit by hand. Machine:
{mac['cpu']}, {mac['cores']} threads; torch {mac['torch']}. The paper's prompt
({hello['before']['prompt_tokens']} tokens), {results['n']} proposals, up to
{results['max_new_tokens']} new tokens each, stopped at the first line break; medians of
{results['settings']['repeats']} interleaved rounds, each way in its own process. *before*: fp32
on all cores, one `torch.multinomial` draw over the vocabulary per token, as the package ran
until now; *now*: `load_model("smollm2")` as it runs today
(precision `{hello['now']['precision']}` on this CPU, threads per step from the cores other
programs leave free); *passive*: *before* with `OMP_WAIT_POLICY=PASSIVE`; *int8*: *now*
with int8 weights for decoding; *prefill*: one
plain fp32 prefill of the prompt; *article* and *sequences* (at rest only): the same 8
proposals from Hugging Face's `generate` on *before*'s weights, one call per proposal with
15 new tokens (the article's way) and one call with `num_return_sequences=8`. Busy:
{results['phases']['busy']['busy_loops']} busy loops (one per core) ran beside the steps.
Other programs kept {loads['quiet']['busy_cores']:.2f} cores busy just before the rounds at
rest (load averages
{', '.join(f'{v:.1f}' for v in loads['quiet']['loadavg'])}): at rest means without our busy
loops, on a machine as quiet as it was.

{table}

{chr(10).join('- ' + line for line in verdicts(results))}
- threads *now* chose per busy step: {threads}; *now* shared the prompt's cache between the
  proposals: {shares}

llama.cpp: {('measured (rows *llama.cpp: step*, one prefill shared by the 8 sequences, and '
             '*llama.cpp: calls*, 8 calls that each prefill anew)') if skipped is None
            else 'not measured: ' + skipped}.

Sampling quality, paper preset, {results['settings']['quality_seeds']} seeds of
{results['settings']['quality_steps']} steps: parse rate {parse}; best loss {loss} (means
over the seeds; each seed's figure is in benchmarks/results/speed.json).
Next-token logits of *now* ({numerics['precision']}) against fp32: largest difference
{numerics['max_diff']:.3g} of the largest logit after the prompt, same top token:
{'yes' if numerics['same_top'] else 'no'}{decode}.
"""


def write(results: dict, out: Path | None) -> str:
    from .sections import write_section

    text = section(results)
    write_section((out or ROOT / "docs") / "benchmarks.md", "speed", text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, a short smoke run")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the JSON and report (default: the repository's)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="rewrite the section from a saved JSON, measuring nothing")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "llama":
            _llama_worker()
        else:
            _torch_worker(rest[0], rest[1] == "adaptive", rest[2])
        return 0
    if args.from_json is not None:
        print(write(json.loads(args.from_json.read_text()), args.out))
        return 0
    if args.quick and args.out is None:
        parser.error("--quick writes only to an explicit --out folder")
    # A stopped run still ends its workers and busy loops (their blocks' exits run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = measure(QUICK if args.quick else FULL)
    json_path = (args.out or ROOT / "benchmarks" / "results") / "speed.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=float))
    print(write(results, args.out))
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
