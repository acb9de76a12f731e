"""Toy regression data sets: the blog article's and the OPRO paper's."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _checks


@dataclass(frozen=True)
class Setup:
    """How a preset originally ran the optimizer; ``optimize`` uses these as defaults.

    ``init`` draws ``starts`` pairs uniformly from ``init_range`` (both w and b),
    rounded to ``decimals``. ``stop`` names the preset's stop rule.
    """

    starts: int
    init_range: tuple[float, float]
    decimals: int
    max_pairs: int
    proposals_per_step: int
    temperature: float
    loss: str
    stop: str


ARTICLE_SETUP = Setup(
    starts=1, init_range=(-5.0, 5.0), decimals=2, max_pairs=10,
    proposals_per_step=1, temperature=0.8, loss="mse", stop="last_3_below_1",
)
OPRO_SETUP = Setup(
    starts=5, init_range=(10.0, 20.0), decimals=0, max_pairs=20,
    proposals_per_step=8, temperature=1.0, loss="sse", stop="optimum",
)


@dataclass(frozen=True)
class Dataset:
    """Points ``(x, y)`` drawn around the line ``y = w*x + b``, plus the preset's setup.

    ``seed`` is the seed ``make_dataset`` drew the noise with (None for custom data).
    """

    x: np.ndarray
    y: np.ndarray
    w: float = float("nan")
    b: float = float("nan")
    name: str = "custom"
    setup: Setup = field(default=ARTICLE_SETUP, repr=False)
    seed: int | None = None

    def __post_init__(self) -> None:
        x = _checks.vector("x", self.x)
        y = _checks.vector("y", self.y)
        _checks.same_length(("x", "y"), x, y)
        _checks.number("w", self.w)  # NaN: not known (a custom data set)
        _checks.number("b", self.b)
        _checks.text("name", self.name)
        _checks.instance("setup", self.setup, Setup, "a Setup such as data.ARTICLE_SETUP")
        if self.seed is not None:
            _checks.at_least("seed", self.seed, 0)
        if x.size < 2:
            raise ValueError(f"x and y need at least 2 points, got {x.size}")
        if np.ptp(x) == 0:
            raise ValueError("x must hold at least two different values to fit a line")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.x.size)


PRESETS = ("article", "opro")


def make_dataset(
    preset: str = "article",
    *,
    seed: int = 0,
    n: int | None = None,
    w: float | None = None,
    b: float | None = None,
    noise: float | None = None,
    x_range: tuple[float, float] | None = None,
) -> Dataset:
    """Build a data set from a preset, with optional overrides.

    ``"article"``: x = 0, 0.5, ..., 5.5 and y = 3x + integer noise drawn from
    {-noise, ..., noise} (noise 1). ``"opro"``: x = 1, 2, ..., 50 and
    y = 15x + 14 + Gaussian noise with standard deviation ``noise`` (1).
    ``n`` points are spread evenly over ``x_range`` (both ends included).
    """
    _checks.one_of("preset", preset, PRESETS)
    seed = _checks.at_least("seed", seed, 0)
    if preset == "article":
        n_, w_, b_, noise_, lo, hi, setup = 12, 3.0, 0.0, 1.0, 0.0, 5.5, ARTICLE_SETUP
    else:
        n_, w_, b_, noise_, lo, hi, setup = 50, 15.0, 14.0, 1.0, 1.0, 50.0, OPRO_SETUP
    n_ = n_ if n is None else _checks.at_least("n", n, 2)
    w_ = w_ if w is None else _checks.finite("w", w)
    b_ = b_ if b is None else _checks.finite("b", b)
    if noise is not None:
        noise_ = _checks.finite("noise", noise)
        if noise_ < 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
    if x_range is not None:
        if not isinstance(x_range, list | tuple) or len(x_range) != 2:
            raise ValueError(f"x_range must be a pair (low, high), got {x_range!r}")
        lo, hi = (_checks.finite("x_range", v) for v in x_range)
        if lo >= hi:
            raise ValueError(f"x_range must satisfy low < high, got {x_range!r}")
    rng = np.random.default_rng(seed)
    x = np.linspace(lo, hi, n_)
    if preset == "article":
        if noise_ != int(noise_):
            raise ValueError(f"noise for the article preset must be a whole number, got {noise!r}")
        eps = rng.integers(-int(noise_), int(noise_) + 1, size=n_).astype(float)
    else:
        eps = rng.normal(0.0, noise_, size=n_)
    return Dataset(x=x, y=w_ * x + b_ + eps, w=w_, b=b_, name=preset, setup=setup,
                   seed=seed)

