import numpy as np
import pytest

from llm_optimizer import closed_form, mse, sse
from llm_optimizer.regression import gradient


def test_mse_of_a_scalar_pair(article):
    expected = np.mean((article.y - (2.0 * article.x + 0.5)) ** 2)
    assert mse(2.0, 0.5, article.x, article.y) == pytest.approx(expected)
    assert isinstance(mse(2.0, 0.5, article.x, article.y), float)


def test_sse_is_n_times_mse(opro):
    assert sse(14, 13, opro.x, opro.y) == pytest.approx(len(opro) * mse(14, 13, opro.x, opro.y))


def test_mse_keeps_the_shape_of_a_grid(article):
    W, B = np.meshgrid(np.linspace(0, 5, 7), np.linspace(-2, 2, 3))
    grid = mse(W, B, article.x, article.y)
    assert grid.shape == (3, 7)
    assert grid[1, 4] == pytest.approx(mse(W[1, 4], B[1, 4], article.x, article.y))


def test_absurd_pairs_give_inf_without_warnings(article):
    with np.errstate(all="raise"):
        assert mse(1e300, 0, article.x, article.y) == np.inf


def test_closed_form_matches_numpy_and_is_the_minimum(opro):
    w, b = closed_form(opro.x, opro.y)
    assert np.allclose((w, b), np.polyfit(opro.x, opro.y, 1))
    best = mse(w, b, opro.x, opro.y)
    for dw, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-2), (0, -1e-2)]:
        assert mse(w + dw, b + db, opro.x, opro.y) > best


def test_gradient_matches_finite_differences(article):
    w, b, h = 1.3, -0.7, 1e-6
    gw, gb = gradient(w, b, article.x, article.y)
    x, y = article.x, article.y
    assert gw == pytest.approx((mse(w + h, b, x, y) - mse(w - h, b, x, y)) / (2 * h), rel=1e-5)
    assert gb == pytest.approx((mse(w, b + h, x, y) - mse(w, b - h, x, y)) / (2 * h), rel=1e-5)
