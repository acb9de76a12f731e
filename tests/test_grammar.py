"""Reply formats: the grammar the decoder follows, on the real bundled model."""

import re

import numpy as np
import pytest
import torch

from llm_optimizer import build_meta_prompt, load_model, make_dataset, optimize
from llm_optimizer.cli import main
from llm_optimizer.grammar import (
    REASON_TOKENS,
    follows,
    pair_regex,
    reply_json_schema,
    reply_lark,
    reply_regex,
    reply_tokens,
)
from llm_optimizer.prompt import parse_reply
from llm_optimizer.run import Run

TEMPERATURES = np.round(np.linspace(0.2, 2.0, 10), 2)


@pytest.fixture(scope="module")
def prompt():
    data = make_dataset("article")
    pairs = [(1.0, 0.5), (2.0, 1.0), (2.5, -1.0), (4.0, 2.0)]
    return build_meta_prompt([(w, b, float(np.mean((w * data.x + b - data.y) ** 2)))
                              for w, b in pairs])


@pytest.fixture(scope="module")
def chat(smollm2):
    return load_model("smollm2", prompt_style="chat")


@pytest.mark.parametrize("decimals, good, bad", [
    (0, ["15, -3\n", " 999, 0\n"], ["15.0, 3\n", "1000, 3\n", "15, 3", "[15, 3]"]),
    (2, [" 3.05, -0.4\n", "3, 2.5\n"], [" 3.051, 0\n", "3., 1\n", " 3, 1 \n"]),
])
def test_the_pair_is_written_in_the_prompts_precision(decimals, good, bad):
    regex = re.compile(pair_regex(decimals, "completion"))
    assert all(regex.fullmatch(text) for text in good)
    assert not any(regex.fullmatch(text) for text in bad)
    chat = re.compile(pair_regex(decimals, "chat"))
    assert chat.fullmatch("[1, -2]") and not chat.fullmatch("1, -2\n")


def test_the_server_regex_bounds_the_reason_and_ends_in_the_pair():
    regex = re.compile(reply_regex("reason+pair", decimals=2))
    assert regex.fullmatch("Lower w a little. [2.9, -0.3]")
    assert not regex.fullmatch("x" * (REASON_TOKENS + 1) + "[1, 2]")
    served = reply_regex("pair", decimals=0, prompt_style="completion")
    assert served == " ?-?[0-9]{1,3}, -?[0-9]{1,3}"  # the server's reply ends at the pair
    assert not regex.fullmatch("[1, 2] and then more")


def test_free_text_has_no_grammar_and_a_bad_format_is_named():
    with pytest.raises(ValueError, match="'free' has no grammar"):
        reply_regex("free", decimals=2)
    with pytest.raises(ValueError, match="reply_format must be one of"):
        reply_lark("json", decimals=2, prompt_style="chat")
    assert reply_tokens("free", 2) == 0
    assert reply_tokens("reason+pair", 2) == reply_tokens("pair", 2) + REASON_TOKENS


def test_a_served_reply_that_breaks_the_format_is_told_apart():
    assert follows(" 3, 4", "regex", "pair", decimals=0, prompt_style="completion")
    assert not follows(" [3, 4]", "regex", "pair", decimals=0, prompt_style="completion")
    assert follows('{"w": 3, "b": -1.5}', "json_schema", "pair", decimals=2,
                   prompt_style="chat")
    assert not follows("w = 3, b = 1", "json_schema", "pair", decimals=2, prompt_style="chat")
    assert not follows('{"w": true, "b": 1}', "json_schema", "pair", decimals=2,
                       prompt_style="chat")


def test_the_json_schema_is_read_back_by_the_parser():
    schema = reply_json_schema(with_reason=True)
    assert schema["required"] == ["reason", "w", "b"]
    assert parse_reply('{"reason": "try [9, 9] later", "w": 2.5, "b": -1}') == (2.5, -1.0)


@pytest.mark.model
@pytest.mark.slow
def test_with_pair_no_reply_fails_to_parse_from_temperature_02_to_20(smollm2, prompt):
    replies = []
    for temperature in TEMPERATURES:  # 10 temperatures x 5 steps x 16 = 800 replies
        for seed in range(5):
            replies += [(temperature, r) for r in smollm2.generate(
                prompt, n=16, temperature=float(temperature), max_new_tokens=18, seed=seed,
                reply_format="pair", decimals=2)]
    assert len(replies) == 800
    failed = [(t, r) for t, r in replies if parse_reply(r) is None]
    assert failed == []
    regex = re.compile(pair_regex(2, "completion"))
    assert all(regex.fullmatch(r) for _, r in replies)


@pytest.mark.model
def test_chat_and_reason_formats_end_in_the_pair(chat, smollm2, prompt):
    for model in (chat, smollm2):
        for reply_format in ("pair", "reason+pair"):
            replies = model.generate(prompt, n=8, temperature=1.5, max_new_tokens=72, seed=1,
                                     reply_format=reply_format, decimals=0)
            bare = model.prompt_style == "completion" and reply_format == "pair"
            end = re.compile(pair_regex(0, "completion") if bare else r".*\[-?\d{1,3}, -?\d{1,3}\]",
                             re.S)
            assert all(end.fullmatch(r) for r in replies), replies
            assert all(parse_reply(r) is not None for r in replies)
            if reply_format == "reason+pair":
                before = [r[: r.rindex("[")] for r in replies]
                tokens = [len(model.tokenizer(b, add_special_tokens=False)["input_ids"])
                          for b in before]
                # counted again from the text, which may split into a few more tokens
                assert max(tokens) <= 1.5 * REASON_TOKENS


@pytest.mark.model
def test_a_seed_repeats_constrained_replies_exactly(smollm2, prompt):
    def sample(seed):
        return smollm2.generate(prompt, n=8, temperature=1.0, max_new_tokens=18, seed=seed,
                                reply_format="pair")

    assert sample(4) == sample(4) != sample(5)


@pytest.mark.model
def test_the_mask_comes_before_the_temperature(smollm2, prompt):
    """Greedy under the grammar picks the best allowed token; sampled first tokens follow
    the model's distribution renormalised over the allowed ones."""
    ids = smollm2.encode(prompt)
    with torch.inference_mode():
        logits = smollm2.model(ids).logits[0, -1].float()
    allowed = smollm2.allowed_tokens("pair")
    allowed_ids = [smollm2.tokenizer.convert_tokens_to_ids(smollm2.tokenizer.tokenize(t))[0]
                   for t in allowed]
    probs = torch.softmax(logits[allowed_ids] / 0.7, dim=-1)
    n = 400
    replies = smollm2.generate(prompt, n=n, temperature=0.7, max_new_tokens=18, seed=0,
                               reply_format="pair")
    firsts = [smollm2.tokenizer.decode(smollm2.tokenizer(r, add_special_tokens=False)
                                       ["input_ids"][:1]) for r in replies]
    for k in probs.topk(2).indices.tolist():
        p, share = float(probs[k]), firsts.count(allowed[k]) / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.02, (allowed[k], share, p)
    [greedy] = smollm2.generate(prompt, n=1, max_new_tokens=18, do_sample=False,
                                reply_format="pair")
    assert greedy.startswith(allowed[int(logits[allowed_ids].argmax())])


@pytest.mark.model
def test_the_allowed_next_tokens_follow_the_pair(smollm2):
    assert set("0123456789-") <= set(smollm2.allowed_tokens("pair"))
    after = smollm2.allowed_tokens("pair", " 3.1, 2")
    assert set(after) == set("0123456789") | {".", "\n"}
    assert smollm2.allowed_tokens("pair", " 3.1, 2\n") == []  # the grammar has ended
    assert smollm2.allowed_tokens("pair", "hello") == []  # not a pair: nothing allowed
    with pytest.raises(ValueError, match="'free' allows every token"):
        smollm2.allowed_tokens("free")


@pytest.mark.model
def test_a_run_keeps_its_reply_format_and_a_resume_must_match(smollm2, article, tmp_path):
    run = optimize(article, smollm2, steps=1, stop=[], reply_format="pair", out_dir=tmp_path)
    assert run.settings["reply_format"] == "pair"
    assert run.settings["max_new_tokens"] == reply_tokens("pair", 2)
    assert run.history["parsed"].all()
    saved = Run.load(tmp_path)
    with pytest.raises(ValueError, match="reply_format"):
        optimize(article, smollm2, steps=2, resume=saved, reply_format="free")
    more = optimize(article, smollm2, steps=2, resume=saved, out_dir=tmp_path)
    assert more.settings["reply_format"] == "pair" and more.history["parsed"].all()


def test_a_too_short_reply_cap_is_refused_before_anything_runs(article):
    class Model:
        name, reply_tokens = "stub", 16

        def generate(self, prompt, *, n=1, temperature=1.0, max_new_tokens=24, seed=None):
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="max_new_tokens must be at least 18"):
        optimize(article, Model(), steps=1, reply_format="pair", max_new_tokens=10)
    with pytest.raises(ValueError, match="takes neither: use reply_format='free'"):
        optimize(article, Model(), steps=1, reply_format="pair")


def test_the_command_line_names_a_bad_reply_format_in_one_line(tmp_path, capsys):
    assert main(["run", "--reply-format", "pair", "--max-new-tokens", "5",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_new_tokens must be at least 18" in err
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--reply-format", "json", "--out", str(tmp_path / "r")])
    assert stopped.value.code == 2 and "--reply-format" in capsys.readouterr().err
