"""Command line: ``python -m llm_optimizer run --preset article --out runs/demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import PRESETS, make_dataset
from .loop import Run, optimize, resolve_settings
from .models import NAMES, PROMPT_STYLES, ServerError
from .models.server import API_KEY_ENV
from .stopping import parse_stop


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llm_optimizer",
        description="Use a language model as an optimizer for y = w*x + b (OPRO).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the optimization loop and write its record and plot",
        description="Run the OPRO loop. Settings left out come from the preset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--preset", default="article", choices=PRESETS,
                     help="data set and original settings: the blog article's or the OPRO paper's")
    run.add_argument("--model", default="auto",
                     help="one of " + ", ".join(NAMES) + "; a .gguf file, a model folder or a "
                     "Hugging Face id; with --base-url, the served model's name (default: the "
                     "only one the server lists)")
    run.add_argument("--base-url", default=None,
                     help="an OpenAI-compatible server to ask instead of a local model, such as "
                     f"http://HOST:8000/v1 (vLLM, transformers serve); its key, if it needs one, "
                     f"from the {API_KEY_ENV} environment variable")
    run.add_argument("--steps", type=int, default=30, help="most steps (model calls) in all")
    run.add_argument("--temperature", type=float, help="sampling temperature (> 0)")
    run.add_argument("--proposals", type=int, help="proposals sampled per step")
    run.add_argument("--max-pairs", type=int, help="most (w, b) pairs shown in the prompt")
    run.add_argument("--decimals", type=int, help="decimals printed and kept for w, b, loss")
    run.add_argument("--stop", default=None,
                     help="'none', 'last:K:T' (last K losses below T), 'target:V' or 'optimum'; "
                     "default: the preset's rule")
    run.add_argument("--prompt-style", default=None, choices=PROMPT_STYLES,
                     help="chat template, or plain text ending in 'w, b =' as in the article; "
                     "default: completion for the bundled SmolLM2, chat for other models")
    run.add_argument("--max-new-tokens", type=int, default=None,
                     help="longest reply in tokens; default: 16 for completion prompts, "
                     "40 for chat")
    run.add_argument("--seed", type=int, default=0, help="seed for the start and the sampling")
    run.add_argument("--data-seed", type=int, default=0, help="seed for the data's noise")
    run.add_argument("--out", type=Path, required=True,
                     help="folder for history.csv, settings.json, steps.jsonl and run.png")
    run.add_argument("--resume", action="store_true",
                     help="continue the run saved in --out up to --steps")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, ServerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .models import load_model
    from .plots import plot_run

    dataset = make_dataset(args.preset, seed=args.data_seed)
    resume = Run.load(args.out) if args.resume else None
    decimals = dataset.setup.decimals if args.decimals is None else args.decimals
    stop = None
    if args.stop is not None:
        stop = parse_stop(args.stop, optimum=(dataset.w, dataset.b), decimals=decimals)
    settings = {
        "steps": args.steps, "temperature": args.temperature, "proposals_per_step": args.proposals,
        "max_pairs": args.max_pairs, "decimals": args.decimals, "stop": stop, "seed": args.seed,
        "max_new_tokens": args.max_new_tokens,
    }
    # Fail on bad flags before the model loads (its own reply length is not known yet).
    resolve_settings(dataset, **{**settings, "max_new_tokens": args.max_new_tokens or 1})
    if args.base_url is not None:
        served = None if args.model == "auto" else args.model
        model = load_model(args.base_url, model=served, prompt_style=args.prompt_style)
    else:
        model = load_model(args.model, prompt_style=args.prompt_style)
    run = optimize(dataset, model, **settings, out_dir=args.out, resume=resume, progress=True)
    figure = plot_run(run, dataset)
    figure.savefig(args.out / "run.png", dpi=110)
    print(run.summary())
    print(f"wrote {args.out}/: history.csv, settings.json, steps.jsonl, run.png")
    if run.stop_reason.startswith("model error"):
        print("the run stopped early; continue it with the same command and --resume",
              file=sys.stderr)
        return 1
    return 0
