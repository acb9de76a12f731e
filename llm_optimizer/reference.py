"""Published runs of OPRO on the linear-regression task, each with its source.

These figures come from elsewhere and are never computed here: notebook 04 draws them
next to what the learner's model and the mimic do at the same settings. Every row is
the mean and standard deviation of the number of steps (of 8 proposals) a model took
to propose the true ``(w, b)`` exactly, on the paper's set-up: 50 points
x = 1, ..., 50 with y = w·x + b + N(0, 1) noise, five integer starts in [10, 20]²,
the 20 best pairs shown as integers, temperature 1.0, the sum of squared errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

PAPER = ("Yang et al., 2023, Large Language Models as Optimizers, Table 2 "
         "(arXiv:2309.03409, https://arxiv.org/abs/2309.03409)")
GEMINI = ("k-pratyush/gemini-optimizer, its front page "
          "(https://github.com/k-pratyush/gemini-optimizer), collected 2026-12-02")


@dataclass(frozen=True)
class Published:
    """One published figure: ``model`` on the task with true line ``(w, b)`` took
    ``steps`` ± ``std`` steps to reach it over ``runs`` runs; ``steps`` is None
    where no run reached it."""

    model: str
    w: int
    b: int
    steps: float | None
    std: float | None
    runs: int
    source: str
    note: str = ""


def _paper(model: str, rows: dict[tuple[int, int], tuple[float, float]]) -> list[Published]:
    return [Published(model, w, b, steps, std, 5, PAPER) for (w, b), (steps, std) in rows.items()]


PUBLISHED: tuple[Published, ...] = (
    *_paper("text-bison", {(15, 14): (5.8, 2.6), (17, 17): (4.0, 1.8), (16, 10): (3.8, 2.2),
                           (3, 5): (9.8, 2.8), (25, 23): (19.6, 11.4), (2, 30): (31.4, 6.3),
                           (36, -1): (35.8, 6.4)}),
    *_paper("gpt-3.5-turbo", {(15, 14): (7.6, 4.5), (17, 17): (12.6, 6.0), (16, 10): (10.4, 5.4),
                              (3, 5): (10.8, 2.7), (25, 23): (26.4, 18.3),
                              (2, 30): (42.8, 9.7), (36, -1): (45.4, 16.9)}),
    *_paper("gpt-4", {(15, 14): (4.0, 1.5), (17, 17): (6.0, 3.7), (16, 10): (6.2, 3.1),
                      (3, 5): (12.2, 2.0), (25, 23): (12.2, 3.7), (2, 30): (38.0, 15.9),
                      (36, -1): (50.4, 18.8)}),
    Published("Gemini 2.0 Flash", 15, 14, 1.6, 0.49, 5, GEMINI),
    Published("Gemini 2.0 Flash", 17, 17, 6.8, 0.75, 5, GEMINI),
    Published("Gemini 2.0 Flash", 16, 10, 5.6, 0.8, 5, GEMINI),
    Published("Gemini 2.0 Flash", 3, 5, 14.0, 1.9, 5, GEMINI),
    Published("Gemini 2.0 Flash", 25, 23, 10.67, 4.5, 5, GEMINI),
    Published("Gemini 2.0 Flash", 2, 30, None, None, 5, GEMINI,
              "did not converge at temperature 1.0 or 1.3"),
    Published("Gemini 2.0 Flash", 36, -1, None, None, 5, GEMINI,
              "did not converge at temperature 1.0 or 1.3"),
)


def published(w: int | None = None, b: int | None = None) -> pd.DataFrame:
    """The published figures as a table, one row per model and true line; only the
    line ``(w, b)`` when both are given."""
    table = pd.DataFrame([vars(row) for row in PUBLISHED])
    if (w is None) != (b is None):
        raise ValueError(f"give both w and b of the true line, or neither; got w={w!r}, b={b!r}")
    if w is not None:
        table = table[(table["w"] == w) & (table["b"] == b)]
        if table.empty:
            lines = sorted({(r.w, r.b) for r in PUBLISHED})
            raise ValueError(f"no published figure for (w, b) = ({w}, {b}); there are "
                             f"figures for {', '.join(map(str, lines))}")
    return table.reset_index(drop=True)
