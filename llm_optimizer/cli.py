"""Command line: ``python -m llm_optimizer run --preset article --out runs/demo``."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from .data import PRESETS, make_dataset
from .files import write_atomic
from .grammar import REPLY_FORMATS
from .journal import check_folder
from .loop import optimize
from .models import NAMES, PROMPT_STYLES, ServerError, load_model
from .models.loading import plan_here, spec_for
from .models.mimic import MIMIC
from .models.precision import parse_precision
from .models.server import API_KEY_ENV, is_url
from .run import Run
from .runtime import MODEL_ENV, model_env_error, model_from_env
from .settings import resolve_settings, resume_conflicts, resumed_settings
from .stopping import parse_stop

# The flag that sets each saved setting, for messages about a resume.
FLAGS = {"dataset": "--preset", "data_seed": "--data-seed", "model": "--model",
         "prompt_style": "--prompt-style", "temperature": "--temperature",
         "proposals_per_step": "--proposals", "max_pairs": "--max-pairs",
         "decimals": "--decimals", "stop": "--stop", "seed": "--seed",
         "max_new_tokens": "--max-new-tokens", "reply_format": "--reply-format",
         "precision": "--precision"}


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line, as every other error of the command does."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m llm_optimizer",
        description="Use a language model as an optimizer for y = w*x + b (OPRO).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the optimization loop and write its record and plot",
        description="Run the OPRO loop. Settings left out come from the preset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--preset", default=None, choices=PRESETS,
                     help="data set and original settings: the blog article's or the OPRO "
                     "paper's; default: article (with --resume: the saved run's)")
    run.add_argument("--model", default=None,
                     help="one of " + ", ".join(NAMES) + "; a .gguf file, a model folder or a "
                     "Hugging Face id; default: auto, which is what the " + MODEL_ENV +
                     " environment variable names if it is set (with --resume: the saved "
                     "run's); with "
                     "--base-url, the served model's name (default: the only one the server "
                     "lists)")
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
    run.add_argument("--precision", default=None,
                     help="number format of a model on the CPU: auto (the fastest this CPU "
                     "runs), fp32, bf16, or PREFILL/DECODE such as bf16/int8; default: auto "
                     "(with --resume: the saved run's)")
    run.add_argument("--reply-format", default=None, choices=REPLY_FORMATS,
                     help="free text read by the parser, only the pair (a grammar the "
                     "decoder follows), or a short reason and then the pair; default: free")
    run.add_argument("--max-new-tokens", type=int, default=None,
                     help="longest reply in tokens; default: 16 for completion prompts, "
                     "40 for chat, or the longest reply --reply-format allows if longer")
    run.add_argument("--seed", type=int, default=None,
                     help="seed for the start and the sampling; default: 0")
    run.add_argument("--data-seed", type=int, default=None,
                     help="seed for the data's noise; default: 0")
    run.add_argument("--out", type=Path, required=True,
                     help="a new or empty folder for history.csv, settings.json, steps.jsonl, "
                     "run.png and run.gif (the run step by step)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run saved in --out up to --steps; flags given must "
                     "match the saved run's")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    # OSError: a folder or a model that cannot be read; ServerError: a server that fails;
    # MemoryError: a model too large for the GPU, with what to load instead.
    except (ValueError, OSError, ServerError, MemoryError) as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .animation import animate_run, gif_bytes
    from .plots import plot_run

    saved = Run.load(args.out).settings if args.resume else {}
    if args.resume and saved["dataset"] not in PRESETS:
        raise ValueError(f"the run in {args.out} is on custom data ({saved['dataset']!r}); "
                         "resume it from Python with optimize(..., resume=Run.load(...))")
    preset = args.preset or saved.get("dataset", "article")
    data_seed = args.data_seed if args.data_seed is not None else saved.get("data_seed", 0)
    dataset = make_dataset(preset, seed=data_seed)
    decimals = args.decimals if args.decimals is not None else saved.get(
        "decimals", dataset.setup.decimals)
    stop = None
    if args.stop is not None:
        stop = parse_stop(args.stop, optimum=(dataset.w, dataset.b), decimals=decimals)
    settings = {
        "steps": args.steps, "temperature": args.temperature, "proposals_per_step": args.proposals,
        "max_pairs": args.max_pairs, "decimals": args.decimals, "stop": stop, "seed": args.seed,
        "max_new_tokens": args.max_new_tokens, "reply_format": args.reply_format,
    }
    # Everything that can be checked is checked before the model loads (30 s or more).
    served = args.base_url is not None
    if served and args.precision is not None:
        raise ValueError("--precision is for a model run here; a server computes in its own")
    precision = None if args.precision is None else str(parse_precision(args.precision))
    name = args.model or (saved.get("model") if served else spec_for(saved.get("model", "auto")))
    if args.resume:
        loaded = args.model and not served and args.model != MIMIC
        plan = plan_here(name) if loaded else None
        given = {**settings, "steps": None, "dataset": args.preset, "data_seed": args.data_seed,
                 "model": plan.label or plan.source if plan else args.model,
                 "prompt_style": args.prompt_style, "precision": precision}
        conflicts = resume_conflicts(saved, given, names=FLAGS)
        if conflicts:
            raise ValueError(f"--resume continues the run saved in {args.out} with its own "
                             f"settings; these flags differ from it: {'; '.join(conflicts)}")
        resumed_settings(dataset, saved, args.steps)
    else:
        resolve_settings(dataset, **{**settings, "reply_format": args.reply_format or "free"})
        if not served:
            _check_model_name(name)
    check_folder(args.out, resume=args.resume)
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # no retry chatter: a failed download is one error line
    style = args.prompt_style or saved.get("prompt_style")
    if served:
        model = load_model(args.base_url, model=name, prompt_style=style)
    else:
        model = load_model(name, prompt_style=style,
                           precision=precision or saved.get("precision") or "auto")
    resume = Run.load(args.out) if args.resume else None
    run = optimize(dataset, model, **settings, out_dir=args.out, resume=resume, progress=True)
    figure = plot_run(run, dataset)
    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=110)
    write_atomic(args.out / "run.png", picture.getvalue())
    written = "history.csv, settings.json, steps.jsonl, run.png"
    if run.steps_done >= 1:  # the film of the run: a frame per step
        write_atomic(args.out / "run.gif", gif_bytes(animate_run(run, dataset)))
        written += ", run.gif"
    print(run.summary())
    print(f"wrote {args.out}/: {written}")
    if run.stop_reason.startswith("model error"):
        print("the run stopped early; continue it with the same command and --resume",
              file=sys.stderr)
        return 1
    return 0


def _check_model_name(name: str) -> None:
    """Raise what ``load_model(name)`` would for a name it cannot load, before loading
    anything; for ``auto``, check what the environment names."""
    chosen = model_from_env()[0] if name == "auto" else None
    if chosen is None:
        if name != MIMIC:
            plan_here(name)
    elif not is_url(chosen) and chosen != MIMIC:
        try:
            plan_here(chosen)
        except (ValueError, OSError) as error:
            raise model_env_error(chosen, error) from None
