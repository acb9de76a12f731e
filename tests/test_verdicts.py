"""Verdicts in words from tables of runs, the published figures, and the switch cell's helper."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pandas as pd
import pytest

from llm_optimizer.notebook import use_server
from llm_optimizer.reference import PUBLISHED, published
from llm_optimizer.runtime import MODEL_ENV, SERVED_MODEL_ENV
from llm_optimizer.verdicts import (
    ahead,
    rank_groups,
    rank_trend,
    runs_behind,
    steps_to_optimum,
    trend,
    versus,
)


def _table(groups: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": k, "seed": i, "best_loss": v}
                         for k, values in groups.items() for i, v in enumerate(values)])


@pytest.mark.parametrize(("best", "verdict"), [
    (0.9, "did better than copying: best MSE 0.9 against 1.4 to 2 for the mimic over 3 runs"),
    (1.5, "did not beat copying: best MSE 1.5, within 1.4 to 2 for the mimic over 3 runs"),
    (1.4, "did not beat copying: best MSE 1.4, within"),  # a tie is no win
    (2.5, "did worse than copying: best MSE 2.5 against"),
])
def test_one_run_against_the_runs_of_another_method(best, verdict):
    said = versus("SmolLM2", best, [1.4, 2.0, 1.7], label="copying", method="the mimic",
                  evaluations=80)
    assert said.startswith(f"SmolLM2 {verdict}")
    assert said.endswith("at 80 evaluations from the same start.")


def test_a_difference_the_page_does_not_show_is_a_tie():
    said = versus("m", 0.68051, [0.68049, 0.9], label="copying", method="the mimic",
                  evaluations=24)
    assert "did not beat copying" in said and "0.681" in said


def test_a_run_that_scored_nothing_did_not_beat_anything():
    said = versus("m", float("nan"), [1.0], label="copying", method="the mimic", evaluations=8)
    assert said == "m scored no pair in 8 evaluations, so it did not beat copying."
    with pytest.raises(ValueError, match="at least one finite best loss of the mimic"):
        versus("m", 1.0, [float("nan")], label="copying", method="the mimic", evaluations=8)


def test_too_few_runs_rank_nothing():
    said = rank_groups(_table({"LLM": [0.5, 0.6], "mimic": [2.0, 3.0]}), "method", focus="LLM")
    assert said.splitlines()[0] == "2 runs per method."
    assert "too few to rank" in said and "ahead" not in said and "By median" not in said


def test_enough_runs_say_ahead_behind_and_what_cannot_be_told_apart():
    table = _table({"LLM": [1.0, 1.5, 2.0], "mimic": [1.2, 1.8, 2.5],
                    "hill climbing": [0.68, 0.7, 0.69], "random search": [3.0, 4.0, 5.0]})
    said = rank_groups(table, "method", focus="LLM", focus_name="The LLM (m)")
    assert said.splitlines() == [
        "3 runs per method.",
        "By median, lowest first: hill climbing 0.69, LLM 1.5, mimic 1.8, random search 4.",
        "The LLM (m) is behind hill climbing (every run of theirs ended lower); ahead of "
        "random search (every run of its own ended lower); not separable from mimic "
        "(the ranges overlap).",
    ]


def test_a_model_compared_with_itself_is_not_separable():
    said = rank_groups(_table({"LLM": [1.0, 2.0, 3.0], "mimic": [1.0, 2.0, 3.0]}), "method",
                       focus="LLM")
    assert said.endswith("LLM is not separable from mimic (the ranges overlap).")


def test_without_a_focus_the_verdict_names_a_leader_only_if_every_run_agrees():
    clear = rank_groups(_table({"a": [1, 1.1, 1.2], "b": [2, 3, 4]}), "method", noun="format")
    assert clear.endswith("a was ahead of every other format: each of its runs ended lower "
                          "than every run of the others.")
    mixed = rank_groups(_table({"a": [1, 2.5, 1.2], "b": [2, 3, 4]}), "method", noun="format")
    assert mixed.endswith("the order of the medians may be chance.")


def test_runs_behind_counts_uneven_groups_and_bad_columns_are_named():
    assert runs_behind(_table({"a": [1, 2, 3], "b": [1]}), "method") == "1 to 3 runs per method"
    with pytest.raises(ValueError, match="'loss'"):
        rank_groups(_table({"a": [1]}), "method", value="loss")
    with pytest.raises(ValueError, match="focus must be one of 'a'"):
        rank_groups(_table({"a": [1]}), "method", focus="LLM")


def test_ahead_needs_every_run_lower():
    assert ahead([1, 2], [3, 4]) and not ahead([1, 3], [3, 4]) and not ahead([], [1])


def test_steps_to_optimum_counts_the_runs_that_reached_it():
    assert steps_to_optimum("gpt", [2, 3], budget=20) == (
        "gpt reached the optimum in all 2 runs, at steps 2, 3.")
    assert steps_to_optimum("m", [np.nan, 4], budget=20) == (
        "m reached the optimum in 1 of 2 runs (at step 4); the others did not within 20 steps.")
    assert steps_to_optimum("m", [np.nan], budget=3) == (
        "m did not reach the optimum within 3 steps in any of 1 run.")


def test_trend_reads_the_lowest_and_highest_setting():
    values = pd.Series([0.76, 0.5, 0.01], index=[0.4, 0.8, 1.6])
    assert trend(values, what="The parse rate") == (
        "The parse rate fell from 0.76 at T = 0.4 to 0.01 at T = 1.6.")
    assert "stayed at 1" in trend(pd.Series([1.0, 1.0], index=[0.4, 1.6]), what="x")
    assert "no trend" in trend(pd.Series([1.0, np.nan], index=[0.4, 1.6]), what="x")


def test_rank_trend_needs_enough_runs_and_a_clear_correlation():
    t = pd.Series([0.4, 0.4, 1.0, 1.0, 1.6, 1.6])
    assert rank_trend(t, t * 2, what="step", against="temperature").startswith(
        "The step grew with the temperature (rank correlation 1.00 over 6 runs)")
    assert "shrank as the temperature rose" in rank_trend(t, -t, what="step",
                                                          against="temperature")
    flat = pd.Series([1.0, 3.0, 2.0, 2.0, 3.0, 1.0])
    assert "no clear trend" in rank_trend(t, flat, what="step", against="temperature")
    assert "too few" in rank_trend(t[:4], t[:4], what="step", against="temperature")
    assert rank_trend(t, t * 0 + 1.2, what="step", against="temperature") == (
        "The step did not change with the temperature over 6 runs.")


def test_published_figures_carry_their_source_and_match_the_paper():
    assert all(row.source and row.runs == 5 for row in PUBLISHED)
    at = published(15, 14).set_index("model")
    assert at.loc["gpt-4", "steps"] == 4.0 and at.loc["gpt-4", "std"] == 1.5
    assert at.loc["text-bison", "steps"] == 5.8 and at.loc["gpt-3.5-turbo", "steps"] == 7.6
    assert "Table 2" in at.loc["gpt-4", "source"]
    assert "gemini-optimizer" in at.loc["Gemini 2.0 Flash", "source"]
    missed = published(36, -1).set_index("model").loc["Gemini 2.0 Flash"]
    assert np.isnan(missed["steps"]) and "did not converge" in missed["note"]
    with pytest.raises(ValueError, match=r"no published figure for \(w, b\) = \(1, 1\)"):
        published(1, 1)
    with pytest.raises(ValueError, match="give both w and b"):
        published(15)


def test_the_switch_cell_sets_what_auto_loads_and_never_shows_the_key(monkeypatch, capsys):
    monkeypatch.setenv(MODEL_ENV, "unset after the test")
    monkeypatch.delenv(MODEL_ENV)
    monkeypatch.setenv(SERVED_MODEL_ENV, "left over")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    with pytest.raises(ValueError, match="names a served model, but LLM_OPTIMIZER_MODEL"):
        use_server(None)  # what load_model("auto") would refuse, said before it runs
    monkeypatch.delenv(SERVED_MODEL_ENV)
    assert "chosen by the hardware" in use_server(None)
    monkeypatch.setenv(SERVED_MODEL_ENV, "left over")
    said = use_server("http://user:pw@HOST:8000/v1?key=sk-x", served_model="big")
    assert said == "big at http://host:8000/v1 (key from OPENAI_API_KEY)"
    assert "sk-" not in capsys.readouterr().out and "pw" not in said
    assert os.environ[MODEL_ENV] == "http://user:pw@HOST:8000/v1?key=sk-x"
    assert os.environ[SERVED_MODEL_ENV] == "big"
    use_server("http://HOST:8000/v1")  # no name: the server's only model, not the old one
    assert SERVED_MODEL_ENV not in os.environ
    with pytest.raises(ValueError, match="url must be a server address"):
        use_server("HOST:8000")


def test_on_colab_the_key_comes_from_the_named_secret(monkeypatch):
    """google.colab cannot be installed here: a stand-in with its userdata interface."""
    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name != "MY_KEY":
            raise SecretNotFoundError(name)
        return "sk-from-secret"

    userdata = types.SimpleNamespace(get=get, SecretNotFoundError=SecretNotFoundError)
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setenv(MODEL_ENV, "unset after the test")
    monkeypatch.setenv("OPENAI_API_KEY", "unset after the test")
    monkeypatch.delenv("OPENAI_API_KEY")
    said = use_server("http://HOST:8000/v1", secret="OTHER")
    assert "no key: add a secret named OTHER" in said
    said = use_server("http://HOST:8000/v1", secret="MY_KEY")
    assert said.endswith("(key from the Colab secret MY_KEY)")
    assert os.environ["OPENAI_API_KEY"] == "sk-from-secret"
