"""Losses of the line ``y = w*x + b`` and its exact least-squares solution."""

from __future__ import annotations

import numpy as np

from . import _checks


def _residuals(w, b, x, y) -> np.ndarray:
    w = np.asarray(w, dtype=float)[..., None]
    b = np.asarray(b, dtype=float)[..., None]
    with np.errstate(over="ignore", invalid="ignore"):
        return w * np.asarray(x, dtype=float) + b - np.asarray(y, dtype=float)


def _reduce(squares: np.ndarray, how: str):
    with np.errstate(over="ignore", invalid="ignore"):
        value = squares.mean(axis=-1) if how == "mean" else squares.sum(axis=-1)
    return float(value) if value.ndim == 0 else value


def _checked(w, b, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # A pair that overflowed (a diverging gradient descent) has an infinite loss.
    w = _checks.grid("w", w, finite_only=False)
    b = _checks.grid("b", b, finite_only=False)
    if w.shape != b.shape:
        raise ValueError(f"w and b must have the same shape, got {w.shape} and {b.shape}")
    x, y = _checks.vector("x", x), _checks.vector("y", y)
    _checks.same_length(("x", "y"), x, y)
    return w, b, x, y


def mse(w, b, x, y):
    """Mean squared error of ``y ≈ w*x + b``.

    ``w`` and ``b`` may be scalars or arrays of one shape (a grid for a loss
    landscape); the result has that shape. A float for scalar input. A pair so
    large that the error overflows gives ``inf``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _reduce(_residuals(*_checked(w, b, x, y)) ** 2, "mean")


def sse(w, b, x, y):
    """Sum of squared errors of ``y ≈ w*x + b`` (the OPRO paper's score)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _reduce(_residuals(*_checked(w, b, x, y)) ** 2, "sum")


LOSSES = {"mse": mse, "sse": sse}


def loss_function(name: str):
    """Return the loss called ``name`` ("mse" or "sse")."""
    return LOSSES[_checks.one_of("loss", name, tuple(LOSSES))]


def closed_form(x, y) -> tuple[float, float]:
    """The least-squares line through ``(x, y)`` as ``(w, b)``."""
    x, y = _checks.vector("x", x, minimum=2), _checks.vector("y", y, minimum=2)
    _checks.same_length(("x", "y"), x, y)
    if np.ptp(x) == 0:
        raise ValueError("x must hold at least two different values to fit a line")
    xm, ym = x.mean(), y.mean()
    w = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    return w, float(ym - w * xm)


def gradient(w: float, b: float, x, y) -> tuple[float, float]:
    """Gradient of the MSE with respect to ``(w, b)``."""
    r = _residuals(w, b, x, y)
    return float(2 * (r * x).mean()), float(2 * r.mean())
