"""Classical optimizers to compare the LLM against, on the same loss."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _checks
from .regression import gradient, mse


def gradient_descent(
    x, y, *, lr: float, steps: int, w0: float = 0.0, b0: float = 0.0
) -> pd.DataFrame:
    """Plain gradient descent on the MSE.

    Returns one row per step (step 0 is the start) with ``w``, ``b`` and ``loss``.
    Stops early if the loss overflows, which a too large ``lr`` causes.
    """
    x, y = _data(x, y)
    lr = _checks.positive("lr", lr)
    steps = _checks.at_least("steps", steps, 1)
    w, b = _checks.finite("w0", w0), _checks.finite("b0", b0)
    rows = [(0, w, b, mse(w, b, x, y))]
    for step in range(1, steps + 1):
        gw, gb = gradient(w, b, x, y)
        with np.errstate(over="ignore", invalid="ignore"):
            w, b = w - lr * gw, b - lr * gb
        loss = mse(w, b, x, y)
        rows.append((step, w, b, loss))
        if not np.isfinite(loss):
            break
    return pd.DataFrame(rows, columns=["step", "w", "b", "loss"])


def random_search(
    x, y, *, evaluations: int, low: float = -10.0, high: float = 10.0, seed: int = 0, loss=mse
) -> pd.DataFrame:
    """Draw ``(w, b)`` uniformly from ``[low, high]²`` and keep the best so far."""
    x, y = _data(x, y)
    evaluations = _checks.at_least("evaluations", evaluations, 1)
    low, high = _checks.finite("low", low), _checks.finite("high", high)
    if not low < high:
        raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")
    seed = _checks.at_least("seed", seed, 0)
    _checks.function("loss", loss, "a loss function such as mse or sse")
    rng = np.random.default_rng(seed)
    w, b = rng.uniform(low, high, size=(2, evaluations))
    return _trace(w, b, loss(w, b, x, y))


def hill_climb(
    x, y, *, evaluations: int, w0: float = 0.0, b0: float = 0.0, step: float = 1.0,
    seed: int = 0, loss=mse,
) -> pd.DataFrame:
    """(1+1) evolution strategy with the 1/5 success rule.

    Each evaluation perturbs the best pair with Gaussian noise of scale ``step``;
    the step grows after a success and shrinks after a failure.
    """
    x, y = _data(x, y)
    evaluations = _checks.at_least("evaluations", evaluations, 1)
    step = _checks.positive("step", step)
    seed = _checks.at_least("seed", seed, 0)
    _checks.function("loss", loss, "a loss function such as mse or sse")
    rng = np.random.default_rng(seed)
    best = np.array([_checks.finite("w0", w0), _checks.finite("b0", b0)])
    best_loss = loss(*best, x, y)
    ws, bs, losses = [best[0]], [best[1]], [best_loss]
    for _ in range(evaluations - 1):
        candidate = best + step * rng.standard_normal(2)
        value = loss(*candidate, x, y)
        ws.append(candidate[0])
        bs.append(candidate[1])
        losses.append(value)
        if value < best_loss:
            best, best_loss = candidate, value
            step *= 1.5
        else:
            step *= 1.5 ** -0.25
    return _trace(np.array(ws), np.array(bs), np.array(losses))


def _data(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _checks.vector("x", x), _checks.vector("y", y)
    _checks.same_length(("x", "y"), x, y)
    return x, y


def _trace(w: np.ndarray, b: np.ndarray, loss: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "evaluation": np.arange(1, len(w) + 1),
            "w": w,
            "b": b,
            "loss": loss,
            "best_loss": np.minimum.accumulate(loss),
        }
    )
