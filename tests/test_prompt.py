import math
import time

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_optimizer import build_meta_prompt, parse_reply
from llm_optimizer.prompt import MAX_REPLY_CHARS

HISTORY = [(1.0, 2.0, 30.0), (3.0, 0.5, 1.2345), (2.0, 1.0, 7.5), (1.0, 2.0, 31.0)]


def _pairs_in(prompt: str) -> list[str]:
    return [line for line in prompt.splitlines() if line.startswith("w=")]


def test_pairs_are_shown_worst_first_best_last():
    prompt = build_meta_prompt(HISTORY)
    assert _pairs_in(prompt) == ["w=1.00, b=2.00", "w=2.00, b=1.00", "w=3.00, b=0.50"]
    assert "value:\n30.00" in prompt and "value:\n1.23" in prompt
    assert prompt.rstrip().endswith("[w, b], where w and b are numbers.")


def test_a_pair_evaluated_twice_is_shown_once_with_its_best_value():
    prompt = build_meta_prompt(HISTORY)
    assert _pairs_in(prompt).count("w=1.00, b=2.00") == 1
    assert "31.00" not in prompt


def test_only_the_best_max_pairs_are_kept():
    history = [(float(i), 0.0, float(100 - i)) for i in range(30)]
    pairs = _pairs_in(build_meta_prompt(history, max_pairs=5, decimals=0))
    assert pairs == [f"w={i}, b=0" for i in range(25, 30)]


def test_a_history_frame_skips_unparsed_and_non_finite_rows():
    frame = pd.DataFrame({
        "w": [1.0, math.nan, 1e300, 2.0], "b": [1.0, math.nan, 0.0, 2.0],
        "loss": [5.0, math.nan, math.inf, 3.0], "parsed": [True, False, True, True],
    })
    prompt = build_meta_prompt(frame, decimals=1)
    assert _pairs_in(prompt) == ["w=1.0, b=1.0", "w=2.0, b=2.0"]
    assert "inf" not in prompt and "nan" not in prompt


def test_meta_prompt_checks_its_arguments():
    with pytest.raises(ValueError, match="max_pairs"):
        build_meta_prompt(HISTORY, max_pairs=0)
    with pytest.raises(ValueError, match="decimals"):
        build_meta_prompt(HISTORY, decimals=-1)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("[2.9, 0.4]", (2.9, 0.4)),
        ("The new pair is (3, -1).", (3.0, -1.0)),
        ("w = 3.1, b = -0.25", (3.1, -0.25)),
        ("w: 1.5 and b: 2", (1.5, 2.0)),
        (" 2.9, 0.4\ninput:", (2.9, 0.4)),
        ("[-1.5e3, +.5]", (-1500.0, 0.5)),
        ("[w, b] = [1, 2]", (1.0, 2.0)),
        ("first [1, 2], then [3, 4]", (3.0, 4.0)),
        ("Answer: [2.9, 0.4] (rounded to 2 decimals)", (2.9, 0.4)),
        ("[\u22122, 3]", (-2.0, 3.0)),
        ("[w=2, b=3]", (2.0, 3.0)),
        ("[b=2, w=3]", (3.0, 2.0)),
        ("(b: -1, w: 0.5)", (0.5, -1.0)),
        ("b = 0.5 and w = 3", (3.0, 0.5)),
        ("I suggest w = 3.1, b = 0.5.", (3.1, 0.5)),
        ("2.9, 0.4.", (2.9, 0.4)),
        ("w, b = 1, 2", (1.0, 2.0)),
        ("See [(1, 2)] above", (1.0, 2.0)),
    ],
)
def test_replies_models_really_write_are_parsed(reply, expected):
    assert parse_reply(reply) == pytest.approx(expected)


@pytest.mark.parametrize(
    "reply",
    [
        "I cannot help with that.",
        "[1, 2, 3]",
        "w, b = 1, 2, 3, 4",
        "[inf, 2]",
        "[nan, 1]",
        "[1e999, 2]",
        "[1, 2] but actually [1, 2, 3]",
        "(x, 2)",
        "",
        "[w, b]",
        None,
        "[w=2, w=3]",
        "w = 1, b = 2.3.4",
        "n, n",
        b"[1, 2]",
    ],
)
def test_replies_without_a_usable_pair_give_none(reply):
    assert parse_reply(reply) is None


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_reply_never_raises(text):
    result = parse_reply(text)
    assert result is None or (len(result) == 2 and all(math.isfinite(v) for v in result))


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(finite, finite, st.sampled_from(["[{}, {}]", "({}, {})", "w = {}, b = {}", "{}, {}"]))
def test_any_finite_pair_round_trips(w, b, template):
    assert parse_reply(template.format(repr(w), repr(b))) == (w, b)


# Inputs that made the old regular expressions backtrack: runs of white space, separators
# and labels between the parts of a pair (471 s for the first at 100 KB).
HOSTILE = [
    "w=1" + " " * 100_000 + "x",
    "w = 1," + " " * 100_000 + "b",
    " " * 100_000 + "1, 2, 3",
    "w, b = " + " " * 100_000 + "1",
    "[" + "1, " * 40_000,
    "(" * 100_000,
    "w=1, " * 20_000,
    "w = " * 25_000,
    "9" * 100_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:12]))
def test_parsing_100_kb_takes_well_under_a_second(text):
    text = text[:MAX_REPLY_CHARS]
    started = time.perf_counter()
    parse_reply(text)
    assert time.perf_counter() - started < 2.0  # the old parser: minutes (471 s for the first)


def test_a_pair_at_the_end_of_100_kb_is_still_found_and_longer_replies_are_not_read():
    text = "x " * 49_990 + "[1, 2]"
    assert len(text) <= MAX_REPLY_CHARS and parse_reply(text) == (1.0, 2.0)
    started = time.perf_counter()
    assert parse_reply(" " * (10 * MAX_REPLY_CHARS) + "[1, 2]") is None
    assert time.perf_counter() - started < 0.1
