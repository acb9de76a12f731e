import numpy as np
import pytest

from llm_optimizer import Dataset, make_dataset


def test_article_preset_matches_the_blog_set_up(article):
    assert np.allclose(article.x, np.arange(12) * 0.5)
    noise = article.y - 3 * article.x
    assert set(np.unique(noise)) <= {-1.0, 0.0, 1.0}
    assert (article.w, article.b) == (3.0, 0.0)
    setup = article.setup
    assert setup.init_range == (-5.0, 5.0) and setup.starts == 1
    assert (setup.max_pairs, setup.temperature, setup.loss) == (10, 0.8, "mse")


def test_opro_preset_matches_the_paper(opro):
    assert np.array_equal(opro.x, np.arange(1, 51))
    residual = opro.y - (15 * opro.x + 14)
    assert 0.5 < residual.std() < 1.5
    setup = opro.setup
    assert (setup.starts, setup.decimals, setup.max_pairs) == (5, 0, 20)
    assert (setup.proposals_per_step, setup.temperature, setup.loss) == (8, 1.0, "sse")


def test_seed_makes_data_repeatable():
    a, b, c = (make_dataset("opro", seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


def test_overrides_change_the_data():
    d = make_dataset("article", n=5, w=-2, b=7, noise=0, x_range=(1, 3))
    assert np.allclose(d.x, np.linspace(1, 3, 5))
    assert np.allclose(d.y, -2 * d.x + 7)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preset": "paper"}, "preset"),
        ({"n": 1}, "n"),
        ({"n": 2.5}, "n"),
        ({"noise": -1}, "noise"),
        ({"noise": 0.5}, "noise"),
        ({"x_range": (3, 1)}, "x_range"),
        ({"x_range": (0, float("nan"))}, "x_range"),
        ({"w": float("inf")}, "w"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_dataset(**kwargs)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([], [], "x must not be empty"),
        ([1, 2, 3], [1, 2], "same length"),
        ([1, float("nan")], [1, 2], "x must hold finite"),
        ([1, 2], [1, float("inf")], "y must hold finite"),
        ([2, 2], [1, 2], "two different values"),
        ([[1, 2]], [[1, 2]], "one-dimensional"),
        (["a", "b"], [1, 2], "x must be a sequence of numbers"),
    ],
)
def test_custom_data_is_checked(x, y, message):
    with pytest.raises(ValueError, match=message):
        Dataset(x, y)
