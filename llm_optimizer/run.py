"""The record of one run: every step's prompt, replies and scores, saved and read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _checks
from .journal import SETTINGS_FILE, Journal, read_settings, read_steps
from .settings import DEFINING, REQUIRED

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
        """One paragraph: steps, replies parsed, time per step, best pair, the best possible
        (least-squares) loss when the settings hold it, why it stopped."""
        best = self.best
        replies = int((self.history["step"] > 0).sum())
        seconds = [r["seconds"] for r in self.records if "seconds" in r]
        timing = f", {np.mean(seconds):.2f} s per step" if seconds else ""
        found = ("no proposal had a finite loss" if best is None
                 else f"best w={best.w:g}, b={best.b:g}, loss={best.loss:.4g}")
        exact = self.settings.get("least_squares")
        if exact is not None:
            found += (f"; best possible loss={exact['loss']:.4g} (least squares "
                      f"w={exact['w']:.3g}, b={exact['b']:.3g})")
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
