"""The OPRO loop: show the model the scored pairs, score its proposals, repeat."""

from __future__ import annotations

import json
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
from .prompt import build_meta_prompt, parse_reply
from .regression import loss_function
from .stopping import AtOptimum, LastKBelow, rule_from_dict, rule_to_dict

COLUMNS = ["step", "proposal", "w", "b", "loss", "parsed", "reply"]
SETTINGS_FILE, STEPS_FILE, HISTORY_FILE = "settings.json", "steps.jsonl", "history.csv"


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
    def best(self) -> pd.Series:
        """The row with the lowest loss so far."""
        scored = self.scored
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
        return (
            f"{self.steps_done} steps, {replies} replies, {replies - self.n_failed} parsed "
            f"({(replies - self.n_failed) / max(replies, 1):.0%}){timing}; "
            f"best w={best.w:g}, b={best.b:g}, loss={best.loss:.4g}; stopped: {self.stop_reason}"
        )

    def save(self, path: str | Path) -> Path:
        """Write settings.json, steps.jsonl and history.csv into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / STEPS_FILE, "w") as f:
            for record in self.records:
                f.write(json.dumps(record) + "\n")
        self._write_summary(path)
        return path

    def _write_summary(self, path: Path) -> None:
        info = {**self.settings, "stop_reason": self.stop_reason}
        (path / SETTINGS_FILE).write_text(json.dumps(info, indent=2))
        self.history.to_csv(path / HISTORY_FILE, index=False)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Read a run written by :meth:`save` or by ``optimize(out_dir=...)``."""
        path = Path(path)
        if not (path / SETTINGS_FILE).is_file():
            raise FileNotFoundError(f"no {SETTINGS_FILE} in {path}: not a run folder")
        settings = json.loads((path / SETTINGS_FILE).read_text())
        stop_reason = settings.pop("stop_reason", "unknown")
        records = []
        if (path / STEPS_FILE).is_file():
            for line in (path / STEPS_FILE).read_text().splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut short when the run was killed
        return cls(settings=settings, records=records, stop_reason=stop_reason)


_RESUMED = ("temperature", "proposals_per_step", "max_pairs", "decimals", "loss", "init", "seed",
            "max_new_tokens")


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
    seed: int = 0,
    max_new_tokens: int = 24,
) -> dict[str, Any]:
    """Check the settings of a run and fill the missing ones from the preset.

    Raises ``ValueError`` naming the first bad argument. See :func:`optimize`.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a Dataset (see make_dataset), got {type(dataset)}")
    setup = dataset.setup
    settings = {
        "dataset": dataset.name,
        "steps": _checks.at_least("steps", steps, 1),
        "temperature": _checks.positive(
            "temperature", setup.temperature if temperature is None else temperature
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
        "seed": _checks.at_least("seed", seed, 0),
        "max_new_tokens": _checks.at_least("max_new_tokens", max_new_tokens, 1),
    }
    rules = default_stop(dataset) if stop is None else list(stop)
    if not all(callable(getattr(r, "reason", None)) for r in rules):
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
    seed: int = 0,
    max_new_tokens: int | None = None,
    on_step: Callable[[Run], bool | None] | None = None,
    out_dir: str | Path | None = None,
    resume: Run | None = None,
    progress: bool = False,
) -> Run:
    """Run the OPRO loop on ``dataset`` with ``model`` for up to ``steps`` steps.

    Settings left as ``None`` come from the data set's preset (``dataset.setup``);
    ``init`` defaults to the preset's random starting pairs. ``stop`` is a list
    of rules (default: the preset's); the step limit always applies.
    ``max_new_tokens`` caps each reply (default: the model's ``reply_tokens``).
    ``on_step(run)`` is called after every step and may return True to stop.
    With ``out_dir`` every step is appended to ``steps.jsonl`` as it ends, so a
    killed run loses nothing. ``resume`` continues a run (for example one read
    with ``Run.load``) with its own settings, up to ``steps`` in total.
    Ctrl-C returns the run so far.
    """
    if not callable(getattr(model, "generate", None)):
        raise ValueError("model must have a generate() method; get one from load_model()")
    if max_new_tokens is None:
        max_new_tokens = getattr(model, "reply_tokens", 24)
    if resume is not None:
        saved = resume.settings
        settings = resolve_settings(
            dataset, steps=steps, **{k: saved[k] for k in _RESUMED},
            stop=[rule_from_dict(r) for r in saved["stop"]],
        )
    else:
        settings = resolve_settings(
            dataset, steps=steps, temperature=temperature, proposals_per_step=proposals_per_step,
            max_pairs=max_pairs, decimals=decimals, loss=loss, init=init, stop=stop, seed=seed,
            max_new_tokens=max_new_tokens,
        )
    settings["model"] = getattr(model, "name", type(model).__name__)
    loss_fn = loss_function(settings["loss"])
    rules = [rule_from_dict(r) for r in settings["stop"]]
    run = resume if resume is not None else Run(settings=settings)
    run.settings = settings
    run.stop_reason = "running"
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        run.save(out)
    if not run.records:
        first = [_score(dataset, loss_fn, f"[{w}, {b}]", settings["decimals"])
                 for w, b in settings["init"]]
        _append(run, {"step": 0, "prompt": None, "proposals": first}, out)
    bar = _progress_bar(run, settings["steps"]) if progress else None
    try:
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
                    seed=_step_seed(settings["seed"], step),
                )
            except Exception as error:  # the run so far is kept; the reason says what failed
                run.stop_reason = f"model error: {type(error).__name__}: {error}"
                break
            problem = _reply_problem(replies, settings["proposals_per_step"])
            if problem:
                run.stop_reason = f"model error: {problem}"
                break
            record = {
                "step": step, "prompt": prompt,
                "proposals": [_score(dataset, loss_fn, r, settings["decimals"]) for r in replies],
                "seconds": round(time.perf_counter() - started, 4),
            }
            _append(run, record, out)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(best=f"{run.best.loss:.4g}", failed=run.n_failed)
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
    finally:
        if bar is not None:
            bar.close()
        if out is not None:
            run._write_summary(out)
    return run


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


def _append(run: Run, record: dict[str, Any], out: Path | None) -> None:
    run.records.append(record)
    if out is not None:
        with open(out / STEPS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")


def _progress_bar(run: Run, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=run.steps_done, desc="optimizing", unit="step")
