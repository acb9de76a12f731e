"""Rules that end an optimization run early. Each sees the scored history."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import _checks


@dataclass(frozen=True)
class LastKBelow:
    """Stop when the last ``k`` scored proposals all have a loss below ``threshold``
    (the blog article's rule: k = 3, threshold = 1)."""

    k: int = 3
    threshold: float = 1.0

    def __post_init__(self) -> None:  # plain numbers, so numpy scalars save as JSON
        object.__setattr__(self, "k", _checks.at_least("k", self.k, 1))
        object.__setattr__(self, "threshold", _checks.finite("threshold", self.threshold))

    def reason(self, scored: pd.DataFrame) -> str | None:
        last = scored["loss"].to_numpy()[-self.k :]
        if len(last) == self.k and np.all(last < self.threshold):
            return f"last {self.k} losses below {self.threshold:g}"
        return None


@dataclass(frozen=True)
class TargetLoss:
    """Stop as soon as any proposal reaches a loss of ``value`` or lower."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _checks.finite("value", self.value))

    def reason(self, scored: pd.DataFrame) -> str | None:
        if len(scored) and scored["loss"].min() <= self.value:
            return f"loss {self.value:g} reached"
        return None


@dataclass(frozen=True)
class AtOptimum:
    """Stop when a proposal equals the optimum ``(w, b)`` at ``decimals`` places
    (the OPRO paper's rule, with integers)."""

    w: float
    b: float
    decimals: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "w", _checks.finite("w", self.w))
        object.__setattr__(self, "b", _checks.finite("b", self.b))
        object.__setattr__(self, "decimals", _checks.whole("decimals", self.decimals, 0,
                                                           _checks.MAX_DECIMALS))

    def reason(self, scored: pd.DataFrame) -> str | None:
        hit = (scored["w"].round(self.decimals) == round(self.w, self.decimals)) & (
            scored["b"].round(self.decimals) == round(self.b, self.decimals)
        )
        return "optimum reached" if bool(hit.any()) else None


RULES = {"last_k_below": LastKBelow, "target_loss": TargetLoss, "at_optimum": AtOptimum}


def rule_to_dict(rule) -> dict:
    """A JSON-ready description of ``rule``."""
    kind = next(k for k, cls in RULES.items() if isinstance(rule, cls))
    return {"rule": kind, **asdict(rule)}


def rule_from_dict(data: dict):
    """Rebuild a rule from :func:`rule_to_dict`'s output."""
    try:
        fields = dict(data)
        return RULES[fields.pop("rule")](**fields)
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"stop rule {data!r} is not one of {', '.join(RULES)}") from None


def parse_stop(spec: str, *, optimum: tuple[float, float], decimals: int) -> list:
    """Read a stop rule from text: ``none``, ``last:K:T``, ``target:V`` or ``optimum``."""
    kind, _, rest = spec.partition(":")
    try:
        if kind == "none" and not rest:
            return []
        if kind == "last":
            k, threshold = rest.split(":")
            return [LastKBelow(int(k), float(threshold))]
        if kind == "target":
            return [TargetLoss(float(rest))]
        if kind == "optimum" and not rest:
            return [AtOptimum(*optimum, decimals=decimals)]
    except ValueError:
        pass
    raise ValueError(
        f"stop must be 'none', 'last:K:T' (e.g. last:3:1), 'target:V' (e.g. target:0.5) "
        f"or 'optimum'; got {spec!r}"
    )
