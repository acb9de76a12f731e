import numpy as np
import pytest

from llm_optimizer import closed_form, gradient_descent, hill_climb, random_search


def test_gradient_descent_reaches_the_closed_form(article):
    path = gradient_descent(article.x, article.y, lr=0.05, steps=2000, w0=-4, b0=4)
    assert list(path.columns) == ["step", "w", "b", "loss"]
    assert len(path) == 2001 and path["step"].iloc[0] == 0
    assert np.allclose(path[["w", "b"]].iloc[-1], closed_form(article.x, article.y), atol=1e-6)
    assert np.all(np.diff(path["loss"]) <= 1e-12)


def test_too_large_a_rate_diverges_and_stops_early(article):
    path = gradient_descent(article.x, article.y, lr=1.0, steps=5000)
    assert len(path) < 5001
    assert not np.isfinite(path["loss"].iloc[-1])
    assert path["loss"].iloc[10] > path["loss"].iloc[0]


@pytest.mark.parametrize(("kwargs", "name"), [({"lr": 0}, "lr"), ({"lr": -1}, "lr"),
                                              ({"steps": 0}, "steps"), ({"w0": "a"}, "w0")])
def test_gradient_descent_checks_arguments(article, kwargs, name):
    args = {"lr": 0.1, "steps": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        gradient_descent(article.x, article.y, **args)


def test_random_search_keeps_the_best_so_far(article):
    trace = random_search(article.x, article.y, evaluations=200, seed=3)
    assert len(trace) == 200
    assert trace["best_loss"].is_monotonic_decreasing
    assert trace["best_loss"].iloc[-1] == trace["loss"].min()
    assert trace["w"].between(-10, 10).all()


def test_hill_climbing_improves_on_its_start(article):
    trace = hill_climb(article.x, article.y, evaluations=300, w0=-4, b0=4, seed=0)
    assert trace["best_loss"].iloc[-1] < 1.0 < trace["loss"].iloc[0]


def test_search_budgets_are_checked(article):
    with pytest.raises(ValueError, match="evaluations"):
        random_search(article.x, article.y, evaluations=0)
    with pytest.raises(ValueError, match="low must be below high"):
        random_search(article.x, article.y, evaluations=5, low=1, high=1)
    with pytest.raises(ValueError, match="step"):
        hill_climb(article.x, article.y, evaluations=5, step=0)
