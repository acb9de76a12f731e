"""The settings of a run: the preset's defaults, the checks, what a resumed run keeps,
and what names the data and the model."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks
from .data import Dataset
from .grammar import check_format, reply_tokens
from .models.base import TEMPERATURE_RANGE
from .regression import closed_form, loss_function
from .stopping import RULES, AtOptimum, LastKBelow, rule_from_dict, rule_to_dict

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

    Settings left as ``None`` come from the data set's preset (``dataset.setup``);
    ``init`` defaults to the preset's random starting pairs. ``stop`` is a list of
    rules (default: the preset's); the step limit always applies. ``max_new_tokens``
    caps each reply; ``None`` gives 24, or the longest reply ``reply_format`` allows if
    that is longer. ``reply_format`` is ``"free"`` (the default: any text, then the
    parser looks for a pair), ``"pair"`` (the decoder can write only the pair, in the
    prompt's precision) or ``"reason+pair"`` (a bounded stretch of text, then the forced
    pair); see :mod:`llm_optimizer.grammar`. A server that cannot constrain replies gets
    free text, and the run's settings say so (``reply_format_fallback``). Raises
    ``ValueError`` naming the first bad argument.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a Dataset (see make_dataset), got {type(dataset)}")
    setup = dataset.setup
    settings = {
        "dataset": dataset.name,
        "steps": _checks.whole("steps", steps, 1, _checks.MAX_STEPS),
        "temperature": _checks.between(
            "temperature", setup.temperature if temperature is None else temperature,
            *TEMPERATURE_RANGE,
        ),
        "proposals_per_step": _checks.whole(
            "proposals_per_step",
            setup.proposals_per_step if proposals_per_step is None else proposals_per_step, 1,
            _checks.MAX_PROPOSALS,
        ),
        "max_pairs": _checks.whole(
            "max_pairs", setup.max_pairs if max_pairs is None else max_pairs, 1,
            _checks.MAX_PAIRS,
        ),
        "decimals": _checks.whole(
            "decimals", setup.decimals if decimals is None else decimals, 0,
            _checks.MAX_DECIMALS,
        ),
        "loss": _checks.one_of("loss", loss or setup.loss, ("mse", "sse")),
        "seed": _checks.whole("seed", 0 if seed is None else seed, 0, _checks.MAX_SEED),
        "reply_format": check_format(reply_format),
    }
    least = reply_tokens(reply_format, settings["decimals"])
    settings["max_new_tokens"] = _checks.whole(
        "max_new_tokens", max(24, least) if max_new_tokens is None else max_new_tokens, 1,
        _checks.MAX_NEW_TOKENS)
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


def resumed_settings(dataset: Dataset, saved: dict[str, Any], steps: int) -> dict[str, Any]:
    """The settings of a saved run continued up to ``steps`` steps, checked again."""
    return resolve_settings(dataset, steps=steps, **{k: saved[k] for k in _RESUMED},
                            stop=[rule_from_dict(r) for r in saved["stop"]])


def _precision(model) -> str | None:
    """The number format a local model computes in, as saved with a run (None: a server)."""
    precision = getattr(model, "precision", None)
    return None if precision is None else str(precision)


def settings_for(dataset: Dataset, model, steps: int, given: dict[str, Any],
                 saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of a run of ``model`` on ``dataset``, with what names the data and model.

    ``given`` holds the settings passed to :func:`optimize` (None where left out). A new
    run fills them from the preset; a resumed one (``saved``: its settings) keeps its own,
    and a given setting, data set or model that differs from them is a ``ValueError``.
    """
    identity = {**dataset_identity(dataset),
                "model": _checks.text("model.name", getattr(model, "name", type(model).__name__)),
                "prompt_style": getattr(model, "prompt_style", None),
                "precision": _precision(model)}
    if saved is not None:
        conflicts = resume_conflicts(saved, {**given, **identity})
        if conflicts:
            raise ValueError("resume continues the saved run with its own settings, data "
                             f"and model; these differ: {'; '.join(conflicts)}")
        settings = resumed_settings(dataset, saved, steps)
    else:
        given = {**given, "reply_format": given["reply_format"] or "free"}
        if given["max_new_tokens"] is None:
            given["max_new_tokens"] = _default_reply_tokens(model, dataset, given)
        settings = resolve_settings(dataset, steps=steps, **given)
    settings.update(identity)
    base_url = getattr(model, "base_url", None)
    if isinstance(base_url, str):  # where a served model answered, without credentials
        settings["base_url"] = base_url
    settings["least_squares"] = least_squares(dataset, settings["loss"])
    return settings


def least_squares(dataset: Dataset, loss: str) -> dict[str, float]:
    """The exact answer on ``dataset`` and its ``loss``: the best loss any run can reach."""
    w, b = closed_form(dataset.x, dataset.y)
    return {"w": w, "b": b, "loss": float(loss_function(loss)(w, b, dataset.x, dataset.y))}


def _default_reply_tokens(model, dataset: Dataset, given: dict[str, Any]) -> int | None:
    """The model's reply length, or the longest reply the format allows if longer;
    None (checked and reported by ``resolve_settings``) for a bad format or precision."""
    decimals = dataset.setup.decimals if given["decimals"] is None else given["decimals"]
    try:
        least = reply_tokens(given["reply_format"], decimals)
    except (TypeError, ValueError):
        return None
    return max(getattr(model, "reply_tokens", 24), least)


def format_options(model, settings: dict[str, Any]) -> dict[str, Any]:
    """What ``generate`` is passed for the run's reply format (nothing for free text)."""
    if settings["reply_format"] == "free":
        return {}
    accepts = inspect.signature(model.generate).parameters
    if "reply_format" not in accepts or "decimals" not in accepts:
        raise ValueError(f"reply_format {settings['reply_format']!r} needs a model whose "
                         "generate() takes reply_format and decimals (LLM, ServerModel); "
                         f"{type(model).__name__} takes neither: use reply_format='free'")
    return {"reply_format": settings["reply_format"], "decimals": settings["decimals"]}


