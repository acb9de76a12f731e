"""The OPRO loop: show the model the scored pairs, score its proposals, repeat."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks
from .data import Dataset
from .journal import Journal
from .models.base import capped, reply_problem
from .prompt import build_meta_prompt, parse_reply
from .regression import loss_function
from .run import Run
from .settings import DEFINING, format_options, settings_for
from .stopping import rule_from_dict


def optimize(
    dataset: Dataset, model, *, steps: int = 30, temperature: float | None = None,
    proposals_per_step: int | None = None, max_pairs: int | None = None,
    decimals: int | None = None, loss: str | None = None,
    init: Sequence[tuple[float, float]] | None = None, stop: Sequence | None = None,
    seed: int | None = None, max_new_tokens: int | None = None, reply_format: str | None = None,
    on_step: Callable[[Run], bool | None] | None = None, out_dir: str | Path | None = None,
    resume: Run | None = None, progress: bool = False,
) -> Run:
    """Run the OPRO loop on ``dataset`` with ``model`` for up to ``steps`` steps.

    Settings left as ``None`` come from the data set's preset, checked and filled by
    :func:`~llm_optimizer.settings.resolve_settings`, which explains each one;
    ``max_new_tokens`` defaults to the model's ``reply_tokens``. ``on_step(run)`` is
    called after every step and may return True to stop. With ``out_dir`` (a new or
    empty folder) the settings are saved first and every step is appended to
    ``steps.jsonl`` as it ends, so a killed run loses nothing; the folder is locked
    while the run goes on. ``resume`` continues a run (for example one read with
    ``Run.load``) with its own settings, up to ``steps`` in total, on the same data set
    and model: a setting given that differs from the saved one is a ``ValueError``.
    Ctrl-C returns the run so far.
    """
    out = _check_parts(dataset, model, on_step, resume, out_dir, progress)
    given = {"temperature": temperature, "proposals_per_step": proposals_per_step,
             "max_pairs": max_pairs, "decimals": decimals, "loss": loss, "init": init,
             "stop": stop, "seed": seed, "max_new_tokens": max_new_tokens,
             "reply_format": reply_format}
    settings = settings_for(dataset, model, steps, given,
                            saved=None if resume is None else resume.settings)
    options = format_options(model, settings)
    score = _scorer(dataset, settings)
    rules = [rule_from_dict(r) for r in settings["stop"]]
    run = resume if resume is not None else Run(settings=settings)
    journal = None if out is None else Journal(out, settings, run.records,
                                               resume=resume is not None, defining=DEFINING)
    run.settings, run.stop_reason = settings, "running"
    with _ended(run, journal):
        if not run.records:
            first = [score(f"[{w}, {b}]") for w, b in settings["init"]]
            _append(run, {"step": 0, "prompt": None, "proposals": first}, journal)
        with _progress_bar(run, settings["steps"], progress) as bar:
            for step in range(run.steps_done + 1, settings["steps"] + 1):
                started = time.perf_counter()
                prompt = build_meta_prompt(run.scored, max_pairs=settings["max_pairs"],
                                           decimals=settings["decimals"])
                replies, problem = _generate(model, run, prompt, step, options)
                if problem:
                    run.stop_reason = f"model error: {problem}"
                    break
                _append(run, {"step": step, "prompt": prompt,
                              "proposals": [score(reply) for reply in replies],
                              "seconds": round(time.perf_counter() - started, 4)}, journal)
                _show(bar, run)
                if reason := _stop_reason(run, rules, on_step):
                    run.stop_reason = reason
                    break
            else:
                run.stop_reason = "step limit"
    return run


def _check_parts(dataset: Dataset, model, on_step, resume, out_dir, progress) -> Path | None:
    """Check what :func:`optimize` is given besides the settings; return the out folder."""
    _checks.instance("dataset", dataset, Dataset, "a Dataset (see make_dataset)")
    if not callable(getattr(model, "generate", None)):
        raise ValueError("model must have a generate() method; get one from load_model()")
    if on_step is not None:
        _checks.function("on_step", on_step, "a function of the run, or None")
    if resume is not None:
        _checks.instance("resume", resume, Run, "a Run (see Run.load), or None")
    out = _checks.path("out_dir", out_dir) if out_dir is not None else None
    _checks.boolean("progress", progress)
    return out


def _scorer(dataset: Dataset, settings: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """A function of a reply: the pair it holds, rounded to the run's precision, and its
    loss; a reply without a pair scores NaN and ``parsed=False``."""
    loss, decimals = loss_function(settings["loss"]), settings["decimals"]

    def score(reply: str) -> dict[str, Any]:
        reply, cut = capped(reply)
        pair = parse_reply(reply)
        if pair is None:
            return {"w": math.nan, "b": math.nan, "loss": math.nan, "parsed": False,
                    "reply": reply, **cut}
        w, b = (round(v, decimals) for v in pair)
        return {"w": w, "b": b, "loss": loss(w, b, dataset.x, dataset.y), "parsed": True,
                "reply": reply, **cut}

    return score


def _generate(model, run: Run, prompt: str, step: int,
              options: dict[str, Any]) -> tuple[list[str], str | None]:
    """The model's replies to ``prompt`` and what is wrong with them (None if nothing).

    An error from ``generate`` is not raised but returned, so that the run keeps what it
    has and says what failed.
    """
    settings = run.settings
    try:
        replies = model.generate(
            prompt, n=settings["proposals_per_step"], temperature=settings["temperature"],
            max_new_tokens=settings["max_new_tokens"], seed=_step_seed(settings["seed"], step),
            **options,
        )
    except Exception as error:  # the run so far is kept; the reason says what failed
        return [], f"{type(error).__name__}: {error}"
    fallback = getattr(model, "reply_format_fallback", None) if options else None
    if fallback and settings.get("reply_format_fallback") != fallback:
        settings["reply_format_fallback"] = fallback  # saved when the run ends
    return replies, reply_problem(replies, settings["proposals_per_step"])


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _append(run: Run, record: dict[str, Any], journal: Journal | None) -> None:
    if journal is not None:
        journal.append(record)
    run.records.append(record)


def _stop_reason(run: Run, rules: list, on_step) -> str | None:
    """Why the run stops after this step: the first stop rule met, else "stopped" if
    ``on_step`` asked to stop; None to go on."""
    scored = run.scored
    reasons = [r.reason(scored) for r in rules]
    reason = next((r for r in reasons if r), None)
    if on_step is not None and on_step(run) and reason is None:
        reason = "stopped"
    return reason


@contextmanager
def _ended(run: Run, journal: Journal | None) -> Iterator[None]:
    """Whatever ends the run, it says why and its journal is closed: Ctrl-C keeps the run
    so far; any other error is noted in the run, then raised."""
    try:
        yield
    except KeyboardInterrupt:
        run.stop_reason = "interrupted"
    except BaseException as error:  # kept, then raised: the run says why it ended
        run.stop_reason = f"error: {type(error).__name__}: {error}"
        raise
    finally:
        if journal is not None:
            journal.close({**run.settings, "stop_reason": run.stop_reason}, run.history)


@contextmanager
def _progress_bar(run: Run, total: int, shown: bool) -> Iterator[Any]:
    """A tqdm bar of the steps while the run goes on, or None when not ``shown``."""
    if not shown:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, initial=run.steps_done, desc="optimizing", unit="step") as bar:
        yield bar


def _show(bar, run: Run) -> None:
    """Advance the progress bar (if any) by a step and show the best loss and failures."""
    if bar is None:
        return
    bar.update(1)
    best = run.best
    bar.set_postfix(best="none" if best is None else f"{best.loss:.4g}", failed=run.n_failed)
