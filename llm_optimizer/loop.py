"""The OPRO loop: show the model the scored pairs, score its proposals, repeat."""

from __future__ import annotations

import hashlib
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _checks
from .data import Dataset
from .grammar import check_format, reply_tokens
from .journal import SETTINGS_FILE, Journal, read_settings, read_steps
from .models.base import TEMPERATURE_RANGE
from .prompt import build_meta_prompt, parse_reply
from .regression import loss_function
from .stopping import RULES, AtOptimum, LastKBelow, rule_from_dict, rule_to_dict

COLUMNS = ["step", "proposal", "w", "b", "loss", "parsed", "reply"]


@dataclass
class Run:
    """Everything one optimization run evaluated, step by step.

    ``records`` holds one dict a step (step 0 is the starting pairs) with the
    prompt, the raw replies and what was made of them; ``history`` is the same
    as a table with one row per proposal.
    """

    settings: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "not started"

    def __post_init__(self) -> None:
        _checks.instance("settings", self.settings, dict, "a dict of settings")
        _checks.instance("records", self.records, list, "a list of step records")
        if not all(isinstance(r, dict) and isinstance(r.get("proposals"), list)
                   for r in self.records):
            raise ValueError("records must be step records: dicts with a list of proposals")
        _checks.instance("stop_reason", self.stop_reason, str, "a string")

    @property
    def history(self) -> pd.DataFrame:
        """One row per proposal: step, proposal, w, b, loss, parsed, reply."""
        rows = [
            {"step": r["step"], "proposal": i, **p}
            for r in self.records
            for i, p in enumerate(r["proposals"])
        ]
        return pd.DataFrame(rows, columns=COLUMNS)

    @property
    def scored(self) -> pd.DataFrame:
        """The proposals that parsed and got a finite loss, in evaluation order."""
        h = self.history
        return h[h["parsed"] & np.isfinite(h["loss"].astype(float))]

    @property
    def best(self) -> pd.Series | None:
        """The row with the lowest loss so far; None while no proposal has a finite loss."""
        scored = self.scored
        if not len(scored):
            return None
        return scored.loc[scored["loss"].astype(float).idxmin()]

    @property
    def steps_done(self) -> int:
        return self.records[-1]["step"] if self.records else 0

    @property
    def n_failed(self) -> int:
        """Replies that held no usable pair."""
        return int((~self.history["parsed"]).sum())

    @property
    def n_nonfinite(self) -> int:
        """Pairs that parsed but whose loss overflowed (such as 1e300)."""
        h = self.history
        return int((h["parsed"] & ~np.isfinite(h["loss"].astype(float))).sum())

    def summary(self) -> str:
        """One paragraph: steps, replies parsed, time per step, best pair, why it stopped."""
        best = self.best
        replies = int((self.history["step"] > 0).sum())
        seconds = [r["seconds"] for r in self.records if "seconds" in r]
        timing = f", {np.mean(seconds):.2f} s per step" if seconds else ""
        found = ("no proposal had a finite loss" if best is None
                 else f"best w={best.w:g}, b={best.b:g}, loss={best.loss:.4g}")
        fallback = self.settings.get("reply_format_fallback")
        return (
            f"{self.steps_done} steps, {replies} replies, {replies - self.n_failed} parsed "
            f"({(replies - self.n_failed) / max(replies, 1):.0%}){timing}; "
            f"{found}; stopped: {self.stop_reason}" + (f"; note: {fallback}" if fallback else "")
        )

    def save(self, path: str | Path) -> Path:
        """Write settings.json, steps.jsonl and history.csv into the folder ``path``.

        The folder must be new or empty, or hold this run's first steps (then the
        rest are appended); nothing already written is rewritten.
        """
        path = _checks.path("path", path)
        resume = (path / SETTINGS_FILE).exists()
        done = len(read_steps(path)[0]) if resume else 0
        journal = Journal(path, self.settings, self.records[:done], resume=resume,
                          defining=DEFINING)
        try:
            for record in self.records[done:]:
                journal.append(record)
        finally:
            journal.close({**self.settings, "stop_reason": self.stop_reason}, self.history)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Read a run written by :meth:`save` or by ``optimize(out_dir=...)``.

        A last journal line cut off by a kill is dropped; damage anywhere else, or
        settings that lack what defines a run, is a ``ValueError`` naming the file.
        """
        path = _checks.path("path", path)
        settings = read_settings(path)
        missing = [k for k in REQUIRED if k not in settings]
        if missing:
            raise ValueError(f"{path / SETTINGS_FILE} is damaged: it lacks "
                             f"{', '.join(missing)}")
        stop_reason = str(settings.pop("stop_reason", "unknown"))
        records, _ = read_steps(path)
        return cls(settings=settings, records=records, stop_reason=stop_reason)


# What defines a run: a resume must match all of these (``steps`` may grow).
DEFINING = ("dataset", "data_seed", "data_digest", "model", "prompt_style", "temperature",
            "proposals_per_step", "max_pairs", "decimals", "loss", "init", "seed",
            "max_new_tokens", "stop", "reply_format")
REQUIRED = ("steps", *DEFINING)
_RESUMED = ("temperature", "proposals_per_step", "max_pairs", "decimals", "loss", "init", "seed",
            "max_new_tokens", "reply_format")


def dataset_identity(dataset: Dataset) -> dict[str, Any]:
    """The settings that name a data set: its preset, the seed of its noise, a digest of
    its points."""
    digest = hashlib.sha256(dataset.x.tobytes() + dataset.y.tobytes()).hexdigest()[:16]
    return {"dataset": dataset.name, "data_seed": dataset.seed, "data_digest": digest}


def _precision(model) -> str | None:
    """The number format a local model computes in, as saved with a run (None: a server)."""
    precision = getattr(model, "precision", None)
    return None if precision is None else str(precision)


def resume_conflicts(saved: dict[str, Any], given: dict[str, Any],
                     names: dict[str, str] | None = None) -> list[str]:
    """The given settings that differ from a saved run's, as ``name (saved .., given ..)``.

    A value of None in ``given`` was not given and is not compared; ``names`` maps a
    setting to the name to show (a command-line flag).
    """
    conflicts = []
    for key, value in given.items():
        if value is None or key not in saved:
            continue
        mine = _plain(value)
        if mine != saved[key] and not _same_number(mine, saved[key]):
            shown = (names or {}).get(key, key)
            conflicts.append(f"{shown} (saved {saved[key]!r}, given {mine!r})")
    return conflicts


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back: lists, not tuples; rules as dicts."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "reason") and not isinstance(value, dict):
        return rule_to_dict(value)
    return value


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool)
            and not isinstance(b, bool) and float(a) == float(b))


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _initial_pairs(dataset: Dataset, init, seed: int, decimals: int) -> list[list[float]]:
    if init is None:
        setup = dataset.setup
        rng = np.random.default_rng(seed)
        pairs = rng.uniform(*setup.init_range, size=(setup.starts, 2))
        return [[round(float(w), decimals), round(float(b), decimals)] for w, b in pairs]
    try:
        pairs = [[_checks.finite("init", w), _checks.finite("init", b)] for w, b in init]
    except (TypeError, ValueError):
        raise ValueError(
            f"init must be a list of (w, b) pairs of finite numbers, got {init!r}"
        ) from None
    if not pairs:
        raise ValueError("init must hold at least one (w, b) pair")
    return pairs


def default_stop(dataset: Dataset) -> list:
    """The stop rule of the data set's preset."""
    if dataset.setup.stop == "optimum":
        return [AtOptimum(dataset.w, dataset.b, decimals=dataset.setup.decimals)]
    return [LastKBelow(3, 1.0)]


def _score(dataset: Dataset, loss, reply: str, decimals: int) -> dict[str, Any]:
    pair = parse_reply(reply)
    if pair is None:
        return {"w": math.nan, "b": math.nan, "loss": math.nan, "parsed": False, "reply": reply}
    w, b = (round(v, decimals) for v in pair)
    return {"w": w, "b": b, "loss": loss(w, b, dataset.x, dataset.y), "parsed": True,
            "reply": reply}


def resolve_settings(
    dataset: Dataset,
    *,
    steps: int = 30,
    temperature: float | None = None,
    proposals_per_step: int | None = None,
    max_pairs: int | None = None,
    decimals: int | None = None,
    loss: str | None = None,
    init: Sequence[tuple[float, float]] | None = None,
    stop: Sequence | None = None,
    seed: int | None = 0,
    max_new_tokens: int | None = 24,
    reply_format: str = "free",
) -> dict[str, Any]:
    """Check the settings of a run and fill the missing ones from the preset.

    ``max_new_tokens=None`` gives 24, or the longest reply ``reply_format`` allows if
    that is longer. Raises ``ValueError`` naming the first bad argument. See
    :func:`optimize`.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a Dataset (see make_dataset), got {type(dataset)}")
    setup = dataset.setup
    settings = {
        "dataset": dataset.name,
        "steps": _checks.at_least("steps", steps, 1),
        "temperature": _checks.between(
            "temperature", setup.temperature if temperature is None else temperature,
            *TEMPERATURE_RANGE,
        ),
        "proposals_per_step": _checks.at_least(
            "proposals_per_step",
            setup.proposals_per_step if proposals_per_step is None else proposals_per_step, 1,
        ),
        "max_pairs": _checks.at_least(
            "max_pairs", setup.max_pairs if max_pairs is None else max_pairs, 1
        ),
        "decimals": _checks.at_least(
            "decimals", setup.decimals if decimals is None else decimals, 0
        ),
        "loss": _checks.one_of("loss", loss or setup.loss, ("mse", "sse")),
        "seed": _checks.at_least("seed", 0 if seed is None else seed, 0),
        "reply_format": check_format(reply_format),
    }
    least = reply_tokens(reply_format, settings["decimals"])
    settings["max_new_tokens"] = _checks.at_least(
        "max_new_tokens", max(24, least) if max_new_tokens is None else max_new_tokens, 1)
    if settings["max_new_tokens"] < least:
        raise ValueError(f"max_new_tokens must be at least {least} for reply_format "
                         f"{reply_format!r} with {settings['decimals']} decimals (its longest "
                         f"reply), got {settings['max_new_tokens']}; leave it out to get {least}")
    if stop is not None and not isinstance(stop, list | tuple):
        raise ValueError(f"stop must be a list of rules such as [TargetLoss(0.5)], got {stop!r}")
    rules = default_stop(dataset) if stop is None else list(stop)
    if not all(isinstance(r, tuple(RULES.values())) for r in rules):
        raise ValueError(
            "stop must be a list of rules such as LastKBelow(3, 1.0), TargetLoss(0.5) or "
            f"AtOptimum(15, 14); got {stop!r}"
        )
    settings["stop"] = [rule_to_dict(r) for r in rules]
    settings["init"] = _initial_pairs(dataset, init, settings["seed"], settings["decimals"])
    return settings


def optimize(
    dataset: Dataset,
    model,
    *,
    steps: int = 30,
    temperature: float | None = None,
    proposals_per_step: int | None = None,
    max_pairs: int | None = None,
    decimals: int | None = None,
    loss: str | None = None,
    init: Sequence[tuple[float, float]] | None = None,
    stop: Sequence | None = None,
    seed: int | None = None,
    max_new_tokens: int | None = None,
    reply_format: str | None = None,
    on_step: Callable[[Run], bool | None] | None = None,
    out_dir: str | Path | None = None,
    resume: Run | None = None,
    progress: bool = False,
) -> Run:
    """Run the OPRO loop on ``dataset`` with ``model`` for up to ``steps`` steps.

    Settings left as ``None`` come from the data set's preset (``dataset.setup``);
    ``init`` defaults to the preset's random starting pairs. ``stop`` is a list
    of rules (default: the preset's); the step limit always applies.
    ``max_new_tokens`` caps each reply (default: the model's ``reply_tokens``, or the
    longest reply the format allows if that is longer). ``reply_format`` is ``"free"``
    (the default: any text, then the parser looks for a pair), ``"pair"`` (the
    decoder can write only the pair, in the prompt's precision) or ``"reason+pair"``
    (a bounded stretch of text, then the forced pair); see :mod:`llm_optimizer.grammar`.
    A server that cannot constrain replies gets free text, and the run's settings say
    so (``reply_format_fallback``).
    ``on_step(run)`` is called after every step and may return True to stop.
    With ``out_dir`` (a new or empty folder) the settings are saved first and every
    step is appended to ``steps.jsonl`` as it ends, so a killed run loses nothing;
    the folder is locked while the run goes on. ``resume`` continues a run (for
    example one read with ``Run.load``) with its own settings, up to ``steps`` in
    total, on the same data set and model: a setting given that differs from the
    saved one is a ``ValueError``. Ctrl-C returns the run so far.
    """
    _checks.instance("dataset", dataset, Dataset, "a Dataset (see make_dataset)")
    if not callable(getattr(model, "generate", None)):
        raise ValueError("model must have a generate() method; get one from load_model()")
    if on_step is not None:
        _checks.function("on_step", on_step, "a function of the run, or None")
    if resume is not None:
        _checks.instance("resume", resume, Run, "a Run (see Run.load), or None")
    out = _checks.path("out_dir", out_dir) if out_dir is not None else None
    progress = _checks.boolean("progress", progress)
    given = {"temperature": temperature, "proposals_per_step": proposals_per_step,
             "max_pairs": max_pairs, "decimals": decimals, "loss": loss, "init": init,
             "stop": stop, "seed": seed, "max_new_tokens": max_new_tokens,
             "reply_format": reply_format}
    identity = {**dataset_identity(dataset),
                "model": _checks.text("model.name", getattr(model, "name", type(model).__name__)),
                "prompt_style": getattr(model, "prompt_style", None),
                "precision": _precision(model)}
    if resume is not None:
        saved = resume.settings
        conflicts = resume_conflicts(saved, {**given, **identity})
        if conflicts:
            raise ValueError("resume continues the saved run with its own settings, data "
                             f"and model; these differ: {'; '.join(conflicts)}")
        settings = resolve_settings(
            dataset, steps=steps, **{k: saved[k] for k in _RESUMED},
            stop=[rule_from_dict(r) for r in saved["stop"]],
        )
    else:
        given["reply_format"] = reply_format or "free"
        if max_new_tokens is None:
            given["max_new_tokens"] = _default_reply_tokens(model, dataset, given)
        settings = resolve_settings(dataset, steps=steps, **given)
    settings.update(identity)
    constrained = _format_options(model, settings)
    loss_fn = loss_function(settings["loss"])
    rules = [rule_from_dict(r) for r in settings["stop"]]
    run = resume if resume is not None else Run(settings=settings)
    journal = None
    if out is not None:
        journal = Journal(out, settings, run.records, resume=resume is not None,
                          defining=DEFINING)
    run.settings = settings
    run.stop_reason = "running"
    bar = None
    try:
        if not run.records:
            first = [_score(dataset, loss_fn, f"[{w}, {b}]", settings["decimals"])
                     for w, b in settings["init"]]
            _append(run, {"step": 0, "prompt": None, "proposals": first}, journal)
        bar = _progress_bar(run, settings["steps"]) if progress else None
        for step in range(run.steps_done + 1, settings["steps"] + 1):
            started = time.perf_counter()
            prompt = build_meta_prompt(
                run.scored, max_pairs=settings["max_pairs"], decimals=settings["decimals"]
            )
            try:
                replies = model.generate(
                    prompt, n=settings["proposals_per_step"],
                    temperature=settings["temperature"],
                    max_new_tokens=settings["max_new_tokens"],
                    seed=_step_seed(settings["seed"], step), **constrained,
                )
            except Exception as error:  # the run so far is kept; the reason says what failed
                run.stop_reason = f"model error: {type(error).__name__}: {error}"
                break
            fallback = getattr(model, "reply_format_fallback", None) if constrained else None
            if fallback and run.settings.get("reply_format_fallback") != fallback:
                run.settings["reply_format_fallback"] = fallback  # saved when the run ends
            problem = _reply_problem(replies, settings["proposals_per_step"])
            if problem:
                run.stop_reason = f"model error: {problem}"
                break
            record = {
                "step": step, "prompt": prompt,
                "proposals": [_score(dataset, loss_fn, r, settings["decimals"]) for r in replies],
                "seconds": round(time.perf_counter() - started, 4),
            }
            _append(run, record, journal)
            if bar is not None:
                bar.update(1)
                best = run.best
                bar.set_postfix(best="none" if best is None else f"{best.loss:.4g}",
                                failed=run.n_failed)
            scored = run.scored
            reasons = [r.reason(scored) for r in rules]
            reason = next((r for r in reasons if r), None)
            if on_step is not None and on_step(run) and reason is None:
                reason = "stopped"
            if reason:
                run.stop_reason = reason
                break
        else:
            run.stop_reason = "step limit"
    except KeyboardInterrupt:
        run.stop_reason = "interrupted"
    except BaseException as error:  # kept, then raised: the run says why it ended
        run.stop_reason = f"error: {type(error).__name__}: {error}"
        raise
    finally:
        if bar is not None:
            bar.close()
        if journal is not None:
            journal.close({**run.settings, "stop_reason": run.stop_reason}, run.history)
    return run


def _default_reply_tokens(model, dataset: Dataset, given: dict[str, Any]) -> int | None:
    """The model's reply length, or the longest reply the format allows if longer;
    None (checked and reported by ``resolve_settings``) for a bad format or precision."""
    decimals = dataset.setup.decimals if given["decimals"] is None else given["decimals"]
    try:
        least = reply_tokens(given["reply_format"], decimals)
    except (TypeError, ValueError):
        return None
    return max(getattr(model, "reply_tokens", 24), least)


def _format_options(model, settings: dict[str, Any]) -> dict[str, Any]:
    """What ``generate`` is passed for the run's reply format (nothing for free text)."""
    if settings["reply_format"] == "free":
        return {}
    accepts = inspect.signature(model.generate).parameters
    if "reply_format" not in accepts or "decimals" not in accepts:
        raise ValueError(f"reply_format {settings['reply_format']!r} needs a model whose "
                         "generate() takes reply_format and decimals (LLM, ServerModel); "
                         f"{type(model).__name__} takes neither: use reply_format='free'")
    return {"reply_format": settings["reply_format"], "decimals": settings["decimals"]}


def _reply_problem(replies: object, n: int) -> str | None:
    """What is wrong with a ``generate`` result, or None if it is a list of ``n`` strings."""
    if not isinstance(replies, list | tuple):
        return f"generate returned {type(replies).__name__}, expected a list of {n} strings"
    if len(replies) != n:
        return f"generate returned {len(replies)} replies, expected {n}"
    kinds = {type(r).__name__ for r in replies if not isinstance(r, str)}
    if kinds:
        return f"generate returned {', '.join(sorted(kinds))} among its replies, expected strings"
    return None


def _append(run: Run, record: dict[str, Any], journal: Journal | None) -> None:
    if journal is not None:
        journal.append(record)
    run.records.append(record)


def _progress_bar(run: Run, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=run.steps_done, desc="optimizing", unit="step")
