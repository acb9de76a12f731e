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


def mse(w, b, x, y):
    """Mean squared error of ``y ≈ w*x + b``.

    ``w`` and ``b`` may be scalars or arrays of one shape (a grid for a loss
    landscape); the result has that shape. A float for scalar input.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _reduce(_residuals(w, b, x, y) ** 2, "mean")


def sse(w, b, x, y):
    """Sum of squared errors of ``y ≈ w*x + b`` (the OPRO paper's score)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _reduce(_residuals(w, b, x, y) ** 2, "sum")


LOSSES = {"mse": mse, "sse": sse}


def loss_function(name: str):
    """Return the loss called ``name`` ("mse" or "sse")."""
    return LOSSES[_checks.one_of("loss", name, tuple(LOSSES))]


def closed_form(x, y) -> tuple[float, float]:
    """The least-squares line through ``(x, y)`` as ``(w, b)``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xm, ym = x.mean(), y.mean()
    w = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    return w, float(ym - w * xm)


def gradient(w: float, b: float, x, y) -> tuple[float, float]:
    """Gradient of the MSE with respect to ``(w, b)``."""
    r = _residuals(w, b, x, y)
    return float(2 * (r * x).mean()), float(2 * r.mean())
