"""Generation cost of a Mistral-7B-architecture model in 4-bit NF4 on a CUDA GPU, and the
notebooks' CUDA path run end to end on it.

No download: the model is built from Mistral-7B's configuration with random weights,
saved as an fp16 checkpoint, and loaded back through ``llm_optimizer``'s own 4-bit
path. Random weights never write a pair, so every reply runs to its token limit: this
times prefill and decoding, not the optimizer. Then the calls notebook 03 makes on a
GPU run on the same model: ``optimize``, the live panel's controller and ``plot_run``.
The tokenizer is the bundled SmolLM2's, so the vocabulary has 49,152 entries instead of
Mistral's 32,000.

    python -m benchmarks.gpu_mistral_random            # on a CUDA machine
    python -m benchmarks.gpu_mistral_random --layers 16  # less RAM and disk (free Colab)
    python -m benchmarks.gpu_mistral_random --dry-run  # a tiny model on the CPU
    python -m benchmarks.gpu_mistral_random --capable  # and a capable-model record

``--capable`` also runs ``benchmarks.capable``'s comparisons on the same model and
writes its record (``benchmarks/results/capable-*.json`` and a section of
``docs/benchmarks.md``, or under ``--capable-out``): timing only, since random weights
write no pairs; the record says so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

from llm_optimizer import make_dataset, optimize
from llm_optimizer.models import LoadPlan, bundled_model_path, cuda_dtype, load_from_plan
from llm_optimizer.plots import plot_run
from llm_optimizer.widgets import PanelController

from . import capable
from .generation import compare_methods, paper_prompt

TIMING_ONLY = ("Timing only: this model has random weights and writes no pairs, so its rows "
               "say nothing about optimizing; the seconds per step are what a 7B model of "
               "this architecture costs here.")

MISTRAL_7B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8,
              "max_position_embeddings": 32768, "sliding_window": 4096, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0}
TINY = {**MISTRAL_7B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}


def build_checkpoint(path: Path, sizes: dict, dtype: torch.dtype) -> None:
    """Save a randomly initialised Mistral-architecture model and a tokenizer in ``path``."""
    gguf = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = MistralConfig(**sizes, vocab_size=len(tokenizer))
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def notebook_path(llm, steps: int) -> dict:
    """Run what notebook 03 runs (the loop, the panel's controller, the picture) on ``llm``."""
    import matplotlib

    matplotlib.use("Agg")
    data = make_dataset("article")
    started = time.perf_counter()
    run = optimize(data, llm, steps=steps, proposals_per_step=8, stop=[], seed=0)
    seconds = time.perf_counter() - started
    controller = PanelController(data, llm, stop=[])
    controller.start(temperature=0.8, steps=steps, proposals_per_step=8)
    while controller.advance():
        pass
    figure = plot_run(run, data)
    return {"steps": run.steps_done, "replies": int((run.history["step"] > 0).sum()),
            "parsed": int(run.history[run.history["step"] > 0]["parsed"].sum()),
            "seconds_per_step": seconds / max(run.steps_done, 1),
            "panel_steps": controller.run.steps_done, "panel_status": controller.status(),
            "plot_axes": len(figure.axes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="a tiny model of the same architecture on the CPU, unquantized")
    parser.add_argument("--layers", type=int, default=32, help="decoder layers (Mistral-7B: 32)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per method")
    parser.add_argument("--steps", type=int, default=3,
                        help="optimization steps of the notebook-path check")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "gpu.json")
    parser.add_argument("--capable", action="store_true",
                        help="also write a capable-model record of this model (timing only)")
    parser.add_argument("--capable-out", type=Path, default=None,
                        help="folder for that record (default: the repository's)")
    args = parser.parse_args(argv)
    if args.layers < 1 or args.steps < 1:
        parser.error("--layers and --steps must be >= 1")
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        parser.error("no CUDA GPU found; use --dry-run to check the path on a CPU")
    sizes = TINY if args.dry_run else {**MISTRAL_7B, "num_hidden_layers": args.layers}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        build_checkpoint(Path(folder), sizes, torch.float32 if args.dry_run else torch.float16)
        built = time.perf_counter() - started
        if args.dry_run:
            plan = LoadPlan(folder)
        else:
            plan = LoadPlan(folder, device="cuda", quantize_4bit=True,
                            dtype=cuda_dtype(torch.cuda.get_device_capability()))
        started = time.perf_counter()
        llm = load_from_plan(plan, prompt_style="completion", name="Mistral-7B architecture, "
                             "random weights" + (" (tiny, dry run)" if args.dry_run else ""))
        loaded = time.perf_counter() - started
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        results = compare_methods(llm, paper_prompt(), repeats=args.repeats)
        results["notebook_path"] = notebook_path(llm, args.steps)
        if args.capable:
            capable.record(llm, capable.QUICK if args.dry_run else capable.FULL,
                           command=shlex.join(["python", "-m", "benchmarks.gpu_mistral_random",
                                               *(argv if argv is not None else sys.argv[1:])]),
                           out=args.capable_out, note=TIMING_ONLY)
    results.update({
        "model": llm.name, "layers": sizes["num_hidden_layers"], "quantized": plan.quantize_4bit,
        "device": torch.cuda.get_device_name() if cuda and not args.dry_run else "cpu",
        "build_seconds": built, "load_seconds": loaded,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for name, row in results["methods"].items():
        print(f"{name:28s} {row['seconds_per_step']:8.3f} s per step")
    print(f"shared-prefix attention: {results['shared_prefix_attention']}; "
          f"a/c = {results['a_over_c']:.2f}x, b/c = {results['b_over_c']:.2f}x; "
          f"peak GPU memory: {results['peak_gpu_memory_gb']} GB; wrote {args.out}")
    path = results["notebook_path"]
    print(f"notebook path: optimize {path['steps']} steps ({path['seconds_per_step']:.2f} s "
          f"per step, {path['parsed']} of {path['replies']} replies parsed), panel "
          f"{path['panel_steps']} steps, plot with {path['plot_axes']} axes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
