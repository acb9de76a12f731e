"""Argument checks that fail early with a message saying what is allowed.

Every public function checks its arguments with these, so a bad value always
gets a ``ValueError`` that names the argument, never an error from deep inside
numpy or torch.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from pathlib import Path

import numpy as np

# Upper bounds on what sizes a run: far above any sensible value, low enough that a
# typo cannot ask for hours of work or gigabytes of text.
MAX_STEPS = 10_000
MAX_PROPOSALS = 1000
MAX_PAIRS = 1000
MAX_DECIMALS = 12
MAX_NEW_TOKENS = 4096
MAX_SEED = 2**32 - 1


def positive(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number above 0."""
    number = finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
    return number


def number(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise if it is not a real number (NaN and inf pass)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def finite(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    result = number(name, value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return result


def between(name: str, value: float, low: float, high: float) -> float:
    """Return ``value`` as a float, or raise if it is not a number in ``[low, high]``."""
    result = finite(name, value)
    if not low <= result <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return result


def at_least(name: str, value: int, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not a whole number >= ``minimum``."""
    try:
        result = operator.index(value)
    except TypeError:
        result = None
    if result is None or isinstance(value, bool) or result < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return result


def whole(name: str, value: int, low: int, high: int) -> int:
    """Return ``value`` as an int, or raise if it is not a whole number from ``low`` to
    ``high``."""
    result = at_least(name, value, low)
    if result > high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return result


def one_of(name: str, value: str, allowed: list[str] | tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise listing the choices."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable or incomparable value
        ok = False
    if not ok:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def boolean(name: str, value: bool) -> bool:
    """Return ``value`` if it is a real bool (not "False", not 0), else raise."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def text(name: str, value: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def path(name: str, value: str | os.PathLike) -> Path:
    """Return ``value`` as a ``Path``, or raise if it is not a non-empty path."""
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    return Path(value)


def instance(name: str, value: object, kind: type | tuple[type, ...], what: str) -> object:
    """Return ``value`` if it is a ``kind``, else raise saying ``what`` is expected."""
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def function(name: str, value: object, what: str = "a function") -> object:
    """Return ``value`` if it can be called, else raise."""
    if not callable(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def vector(name: str, values: object, *, minimum: int = 1) -> np.ndarray:
    """Return ``values`` as a 1-D float array of finite numbers with ``minimum`` or more."""
    if isinstance(values, str | bytes) or _holds_non_numbers(values):
        raise ValueError(f"{name} must be a sequence of numbers")
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only (no NaN or inf)")
    if array.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {array.size}")
    return array


def grid(name: str, values: object, *, finite_only: bool = True) -> np.ndarray:
    """Return ``values`` (a number or an array of any shape) as a float array; unless
    ``finite_only`` is False, of finite numbers only."""
    if values is None or isinstance(values, bool | str | bytes) or _holds_non_numbers(values):
        raise ValueError(f"{name} must be a number or an array of numbers, got {values!r}")
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers") from None
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if finite_only and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only (no NaN or inf)")
    return array


def same_length(names: tuple[str, str], a: np.ndarray, b: np.ndarray) -> None:
    """Raise if the vectors ``a`` and ``b`` differ in length."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got "
                         f"{a.size} and {b.size} values")


def _holds_non_numbers(values: object) -> bool:
    """Whether a list or tuple holds bools or strings (numpy would quietly convert them)."""
    if isinstance(values, np.ndarray):
        return values.dtype.kind not in "iuf"
    if isinstance(values, list | tuple):
        return any(isinstance(v, bool | str | bytes) or _holds_non_numbers(v) for v in values)
    return False
