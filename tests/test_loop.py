import json

import numpy as np
import pytest

from llm_optimizer import (
    AtOptimum,
    LastKBelow,
    Run,
    TargetLoss,
    closed_form,
    make_dataset,
    mse,
    optimize,
)
from llm_optimizer.settings import resolve_settings


class Scripted:
    """A stand-in proposer that replays fixed replies, for testing the loop's bookkeeping."""

    name = "scripted"

    def __init__(self, replies, interrupt_at=None):
        self.replies = list(replies)
        self.prompts, self.calls, self.interrupt_at = [], [], interrupt_at

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        if len(self.prompts) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.prompts.append(prompt)
        self.calls.append({"n": n, "temperature": temperature, "seed": seed})
        return [self.replies.pop(0) if self.replies else "no idea" for _ in range(n)]


def test_garbage_and_absurd_replies_are_counted_and_kept(article):
    model = Scripted(["[1e300, 2]", "I don't know", "[3, 0]", "[inf, 1]"])
    run = optimize(article, model, steps=3, proposals_per_step=2, init=[(0, 0)], stop=[])
    h = run.history
    assert len(h) == 7 and list(h["step"]) == [0, 1, 1, 2, 2, 3, 3]
    assert run.n_failed == 4 and run.n_nonfinite == 1
    assert h.loc[1, "loss"] == np.inf and h.loc[1, "reply"] == "[1e300, 2]"
    assert not h.loc[2, "parsed"] and h.loc[2, "reply"] == "I don't know"
    assert (run.best.w, run.best.b) == (3.0, 0.0)
    assert "w=0.00, b=0.00" in model.prompts[1]
    assert "1e+300" not in model.prompts[1] and "inf" not in model.prompts[2]
    assert "w=3.00, b=0.00" in model.prompts[2]


def test_preset_settings_reach_the_model(opro):
    model = Scripted([])
    run = optimize(opro, model, steps=2)
    assert [c["n"] for c in model.calls] == [8, 8]
    assert {c["temperature"] for c in model.calls} == {1.0}
    assert len(run.history[run.history.step == 0]) == 5
    starts = run.history[run.history.step == 0]
    assert starts["w"].between(10, 20).all() and (starts["w"] == starts["w"].round()).all()
    assert run.settings["loss"] == "sse" and run.stop_reason == "step limit"
    assert len({c["seed"] for c in model.calls}) == 2


def test_proposals_are_rounded_to_the_printed_precision(opro):
    run = optimize(opro, Scripted(["[14.6, 13.2]"]), steps=1, proposals_per_step=1)
    assert tuple(run.history.iloc[-1][["w", "b"]]) == (15.0, 13.0)


def test_article_rule_stops_after_three_good_losses(article):
    replies = ["[3, 0]", "[9, 9]", "[3, 0]", "[3.01, 0]", "[2.99, 0.01]"]
    run = optimize(article, Scripted(replies), steps=10, init=[(0, 0)])
    assert run.stop_reason == "last 3 losses below 1"
    assert run.steps_done == 5


def test_paper_rule_stops_at_the_optimum(opro):
    run = optimize(opro, Scripted(["[15, 14]"]), steps=5, proposals_per_step=1)
    assert run.stop_reason == "optimum reached" and run.steps_done == 1


def test_target_rule_and_step_limit(article):
    run = optimize(article, Scripted(["[2, 2]", "[3, 0]"]), steps=5, stop=[TargetLoss(1.0)])
    assert run.stop_reason == "loss 1 reached" and run.steps_done == 2
    run = optimize(article, Scripted([]), steps=3, stop=[LastKBelow(3, 1.0)])
    assert run.stop_reason == "step limit" and run.steps_done == 3


def test_on_step_can_stop_the_run(article):
    seen = []
    run = optimize(article, Scripted([]), steps=10, on_step=lambda r: seen.append(r.steps_done)
                   or r.steps_done == 4)
    assert seen == [1, 2, 3, 4] and run.stop_reason == "stopped"


def test_ctrl_c_keeps_what_was_evaluated(article, tmp_path):
    model = Scripted(["[1, 1]", "[2, 1]"], interrupt_at=3)
    run = optimize(article, model, steps=10, out_dir=tmp_path)
    assert run.stop_reason == "interrupted" and run.steps_done == 2
    saved = Run.load(tmp_path)
    assert saved.stop_reason == "interrupted"
    assert saved.history.equals(run.history)


def test_every_step_is_on_disk_as_it_ends(article, tmp_path):
    def check(run):
        lines = (tmp_path / "steps.jsonl").read_text().splitlines()
        assert json.loads(lines[-1])["step"] == run.steps_done

    optimize(article, Scripted(["[1, 2]"] * 3), steps=3, out_dir=tmp_path, on_step=check)
    record = json.loads((tmp_path / "steps.jsonl").read_text().splitlines()[1])
    assert record["prompt"].startswith("Help me minimize")
    assert record["proposals"][0]["reply"] == "[1, 2]"
    assert json.loads((tmp_path / "settings.json").read_text())["stop_reason"] == "step limit"


def test_a_line_cut_short_by_a_kill_is_ignored(article, tmp_path):
    optimize(article, Scripted(["[1, 2]"] * 2), steps=2, out_dir=tmp_path)
    with open(tmp_path / "steps.jsonl", "a") as f:
        f.write('{"step": 3, "prom')
    assert Run.load(tmp_path).steps_done == 2


def test_save_and_load_round_trip(article, tmp_path):
    run = optimize(article, Scripted(["[1, 2]", "junk"]), steps=2)
    loaded = Run.load(run.save(tmp_path / "r"))
    assert loaded.history.equals(run.history)
    assert loaded.settings == run.settings and loaded.stop_reason == run.stop_reason
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        Run.load(tmp_path)


def test_resume_continues_with_the_saved_settings(article, tmp_path):
    first = optimize(article, Scripted(["[1, 2]"]), steps=2, temperature=0.3, out_dir=tmp_path)
    model = Scripted(["[2, 1]"])
    resumed = optimize(article, model, steps=4, resume=Run.load(tmp_path), out_dir=tmp_path)
    assert resumed.steps_done == 4 and len(model.calls) == 2
    assert {c["temperature"] for c in model.calls} == {0.3}
    assert resumed.history.iloc[: len(first.history)].equals(first.history)
    assert Run.load(tmp_path).steps_done == 4


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"steps": 0}, "steps"),
        ({"proposals_per_step": 0}, "proposals_per_step"),
        ({"max_pairs": 0}, "max_pairs"),
        ({"decimals": -1}, "decimals"),
        ({"loss": "mae"}, "loss"),
        ({"init": [(1, "x")]}, "init"),
        ({"init": []}, "init"),
        ({"stop": ["last 3"]}, "stop"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_argument(article, kwargs, name):
    with pytest.raises(ValueError, match=name):
        optimize(article, Scripted([]), **kwargs)


def test_dataset_and_model_are_checked(article):
    with pytest.raises(ValueError, match="dataset"):
        resolve_settings({"x": [1, 2]})
    with pytest.raises(ValueError, match="generate"):
        optimize(article, object())


def test_at_optimum_uses_printed_precision():
    data = make_dataset("opro")
    rule = AtOptimum(15, 14, decimals=0)
    run = optimize(data, Scripted(["[15.4, 13.6]"]), steps=1, proposals_per_step=1, stop=[rule])
    assert run.stop_reason == "optimum reached"


class Broken:
    """A model whose generate fails on its second call, or returns something other than
    a list of n strings."""

    name = "broken"

    def __init__(self, result):
        self.result, self.calls = result, 0

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        self.calls += 1
        if self.calls == 1:
            return ["[1, 2]"] * n
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ConnectionError("server went away"), "model error: ConnectionError: server went away"),
        (None, "model error: generate returned NoneType, expected a list of 2 strings"),
        ("[1, 2]", "model error: generate returned str, expected a list of 2 strings"),
        (["[1, 2]"], "model error: generate returned 1 replies, expected 2"),
        ([b"[1, 2]", "[1, 2]"], "model error: generate returned bytes among its replies"),
    ],
)
def test_a_failing_or_malformed_model_ends_the_run_and_keeps_it(article, tmp_path, result,
                                                                 reason):
    run = optimize(article, Broken(result), steps=5, proposals_per_step=2, stop=[],
                   out_dir=tmp_path)
    assert run.stop_reason.startswith(reason) and run.steps_done == 1
    saved = Run.load(tmp_path)
    assert saved.stop_reason == run.stop_reason and saved.history.equals(run.history)


class Absurd:
    """A model whose every pair overflows the loss, or holds no pair at all."""

    name = "absurd"

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        return ["[1e300, 1]", "no idea"][:n]


def test_a_run_with_no_finite_loss_still_summarises_and_plots(article, tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from llm_optimizer.plots import plot_run

    run = optimize(article, Absurd(), steps=2, proposals_per_step=2, init=[(1e300, 0)],
                   stop=[TargetLoss(1.0)], progress=True, out_dir=tmp_path)
    assert run.stop_reason == "step limit" and run.best is None and run.n_nonfinite == 3
    floor = mse(*closed_form(article.x, article.y), article.x, article.y)
    assert (f"no proposal had a finite loss; best possible loss={floor:.4g} (least squares "
            "w=3.05, b=-0.385); stopped: step limit") in run.summary()
    assert Run.load(tmp_path).settings["least_squares"]["loss"] == pytest.approx(floor)
    assert "best=none" in capsys.readouterr().err  # the progress bar
    figure = plot_run(Run.load(tmp_path), article)
    assert "no proposal had a finite loss" in figure.axes[0].get_title()


def test_an_error_that_ends_a_run_is_its_stop_reason_and_is_saved(article, tmp_path):
    runs = []

    def on_step(run):
        runs.append(run)
        raise RuntimeError("the callback broke")

    with pytest.raises(RuntimeError, match="the callback broke"):
        optimize(article, Scripted([]), steps=5, on_step=on_step, out_dir=tmp_path)
    assert runs[0].stop_reason == "error: RuntimeError: the callback broke"
    saved = Run.load(tmp_path)
    assert saved.stop_reason == runs[0].stop_reason and saved.steps_done == 1
