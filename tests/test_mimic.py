"""The mimic: a proposer with no language model that copies, mixes and perturbs the pairs
its prompt shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from llm_optimizer import Run, build_meta_prompt, load_model, make_dataset, optimize, parse_reply
from llm_optimizer.cli import main
from llm_optimizer.grammar import follows
from llm_optimizer.models import Mimic, Proposer, plan_load
from llm_optimizer.prompt import printed_decimals, read_meta_prompt

HISTORY = [(1.0, 2.0, 30.0), (3.0, -0.5, 1.2345), (2.5, 0.25, 4.0)]
PROMPT = build_meta_prompt(HISTORY, decimals=2)
INTEGERS = build_meta_prompt([(12, 20, 900.0), (15, 11, 40.0), (16, 14, 300.0)], decimals=0)


def test_the_shown_pairs_are_read_back_as_printed_in_the_order_shown():
    assert read_meta_prompt(PROMPT) == [("1.00", "2.00", "30.00"), ("2.50", "0.25", "4.00"),
                                        ("3.00", "-0.50", "1.23")]
    assert read_meta_prompt(INTEGERS)[-1] == ("15", "11", "40")
    assert printed_decimals(["1.50", "15", "-0.125"]) == 3 and printed_decimals([]) is None


@pytest.mark.parametrize("text", ["", "no pairs here", "input:\nw=1, b=\nvalue:\n3",
                                  "input:\nw=nan, b=1\nvalue:\n3", None, 42])
def test_a_text_without_pairs_reads_as_none(text):
    assert read_meta_prompt(text) == []


def test_the_mimic_loads_at_once_without_a_language_model():
    code = ("import sys; from llm_optimizer import load_model; m = load_model('mimic'); "
            "print(type(m).__name__, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["Mimic", "False"]
    model = load_model("mimic")
    assert isinstance(model, Proposer) and model.name == "mimic"
    assert model.prompt_style == "chat" and model.reply_tokens == 40
    assert load_model("mimic", prompt_style="completion").reply_tokens == 16
    with pytest.raises(ValueError, match="load_model\\('mimic'\\)"):
        plan_load("mimic")


def test_seeded_replies_repeat_and_other_seeds_differ():
    model = Mimic()
    first = model.generate(PROMPT, n=8, seed=3)
    assert model.generate(PROMPT, n=8, seed=3) == first
    assert model.generate(PROMPT, n=8, seed=4) != first
    assert len(set(first)) > 1  # the n replies of one call differ


def _median_step(prompt: str, temperature: float) -> float:
    """Median distance of the replies from the best pair shown, (3, -0.5)."""
    replies = Mimic().generate(prompt, n=400, temperature=temperature, seed=0)
    pairs = np.array([parse_reply(r) for r in replies])
    return float(np.median(np.hypot(pairs[:, 0] - 3.0, pairs[:, 1] + 0.5)))


def test_a_higher_temperature_takes_longer_steps():
    alone = build_meta_prompt([(3.0, -0.5, 1.2345)])  # every reply starts from this pair
    assert _median_step(alone, 2.0) > 5 * _median_step(alone, 0.2)
    assert _median_step(PROMPT, 2.0) > 1.5 * _median_step(PROMPT, 0.2)


def test_it_favours_the_best_pair_and_sometimes_mixes_two():
    replies = Mimic().generate(INTEGERS, n=600, temperature=0.001, seed=1)
    pairs = Counter(parse_reply(r) for r in replies)
    shown = [(12.0, 20.0), (15.0, 11.0), (16.0, 14.0)]
    copies = [pairs[p] for p in shown]
    assert copies[1] > copies[2] > copies[0] > 0  # the best most often, the worst least
    mixed = sum(pairs.values()) - sum(copies)
    ws, bs = {w for w, _ in shown}, {b for _, b in shown}
    assert all(w in ws and b in bs for w, b in pairs)  # nothing but shown coordinates
    assert 0.1 < mixed / len(replies) < 0.3


@pytest.mark.parametrize(("prompt", "decimals", "pattern"), [
    (PROMPT, None, r"\[-?\d+\.\d\d, -?\d+\.\d\d\]"),
    (INTEGERS, None, r"\[-?\d+, -?\d+\]"),
    (PROMPT, 1, r"\[-?\d+\.\d, -?\d+\.\d\]"),
    ("no pairs at all", None, r"\[-?\d+\.\d\d, -?\d+\.\d\d\]"),
])
def test_replies_are_written_at_the_prompts_precision(prompt, decimals, pattern):
    for reply in Mimic().generate(prompt, n=20, seed=0, decimals=decimals):
        assert re.fullmatch(pattern, reply), reply
        assert parse_reply(reply) is not None


@pytest.mark.parametrize("style", ["chat", "completion"])
@pytest.mark.parametrize("reply_format", ["pair", "reason+pair"])
def test_constrained_replies_keep_to_the_grammar(style, reply_format):
    model = Mimic(prompt_style=style)
    for prompt, decimals in ((PROMPT, 2), (INTEGERS, 0)):
        replies = model.generate(prompt, n=30, temperature=3.0, seed=2,
                                 reply_format=reply_format, decimals=decimals)
        assert all(follows(r, "regex", reply_format, decimals=decimals, prompt_style=style)
                   for r in replies), replies


def test_free_replies_follow_the_prompt_style():
    assert all(r.startswith(" ") and "[" not in r
               for r in Mimic(prompt_style="completion").generate(PROMPT, n=5, seed=0))
    assert all(r.startswith("[") for r in Mimic().generate(PROMPT, n=5, seed=0))


def test_far_numbers_stay_within_what_the_grammar_allows():
    far = build_meta_prompt([(1e6, -1e6, 1e12)], decimals=2)
    for reply in Mimic().generate(far, n=10, seed=0, reply_format="pair", decimals=2):
        assert follows(reply, "regex", "pair", decimals=2, prompt_style="chat"), reply


def test_bad_arguments_are_named():
    model = Mimic()
    with pytest.raises(ValueError, match="prompt"):
        model.generate(None)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(PROMPT, temperature=0)
    with pytest.raises(ValueError, match="reply_format"):
        model.generate(PROMPT, reply_format="json")
    with pytest.raises(ValueError, match="prompt_style"):
        Mimic(prompt_style="plain")


@pytest.mark.parametrize("preset", ["article", "opro"])
def test_a_run_on_either_preset_improves_on_its_start_and_parses_every_reply(preset):
    dataset = make_dataset(preset)
    run = optimize(dataset, Mimic(), steps=25, seed=0)
    again = optimize(dataset, Mimic(), steps=25, seed=0)
    assert run.history.equals(again.history)
    assert run.n_failed == 0
    start = run.history[run.history["step"] == 0]["loss"].min()
    assert run.best.loss < start / 10


def test_the_cli_writes_a_run_folder_like_any_models(tmp_path, capsys):
    out = tmp_path / "mimic"
    code = main(["run", "--preset", "article", "--model", "mimic", "--steps", "5",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} >= {"settings.json", "steps.jsonl", "history.csv",
                                               "run.png"}
    settings = json.loads((out / "settings.json").read_text())
    assert settings["model"] == "mimic" and settings["prompt_style"] == "chat"
    run = Run.load(out)
    assert run.steps_done == 5 and run.n_failed == 0
    assert main(["run", "--model", "mimic", "--steps", "7", "--resume", "--out", str(out)]) == 0
    assert Run.load(out).steps_done == 7


def test_the_mimic_in_a_comparison_runs_from_the_same_start_and_does_not_beat_itself():
    from llm_optimizer.experiments import compare_optimizers

    table = compare_optimizers(make_dataset("article"), Mimic(), evaluations=24, seeds=[0, 1],
                               target=1.0, proposals_per_step=8, others={"mimic": Mimic()})
    assert list(dict.fromkeys(table["method"])) == [
        "LLM", "mimic", "random search", "hill climbing", "gradient descent"]
    mine, mimic = (table[table["method"] == m].reset_index(drop=True) for m in ("LLM", "mimic"))
    assert mine.drop(columns="method").equals(mimic.drop(columns="method"))
