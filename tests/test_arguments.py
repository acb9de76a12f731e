"""Every public function and class checks its arguments: a table of bad inputs for each
name in ``llm_optimizer.__all__`` (wrong types, NaN and inf, empty, mismatched lengths,
bool for int, out of range), each of which must give a ValueError naming the argument.

tests/audit.py counts the same table for the project's audit.
"""

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import llm_optimizer as lo

NAN, INF = math.nan, math.inf
X, Y = [0.0, 1.0, 2.0], [1.0, 3.0, 5.0]
DATA = lo.make_dataset("article")
SERVER = "http://127.0.0.1:9/v1"  # nothing listens there: each check must come first


class Model:
    name, reply_tokens = "scripted", 16

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        return ["[1, 2]"] * n


def _callable_lm():
    """Enough of a transformers model to get past LLM's model check."""
    def model(**kwargs):
        return None

    model.generation_config = SimpleNamespace(eos_token_id=0)
    return model


TOKENIZER = SimpleNamespace(decode=lambda ids, **kw: "", eos_token_id=0, chat_template=None)


def _bad_vectors(call, names=("x", "y")):
    """The same bad data for every function of (x, y)."""
    x, y = names
    return [
        (lambda: call([], []), x),
        (lambda: call([1.0, NAN, 2.0], Y), x),
        (lambda: call(X, [1.0, INF, 2.0]), y),
        (lambda: call(X, [1.0, 2.0]), f"{x} and {y}"),
        (lambda: call("abc", Y), x),
        (lambda: call([True, False, True], Y), x),
        (lambda: call([[0, 1, 2]], [[1, 3, 5]]), x),
        (lambda: call(X, ["a", "b", "c"]), y),
        (lambda: call(None, Y), x),
    ]


CASES = {
    "LLM": [
        (lambda: lo.LLM(object(), TOKENIZER), "model"),
        (lambda: lo.LLM(None, None), "model"),
        (lambda: lo.LLM(_callable_lm(), None), "tokenizer"),
        (lambda: lo.LLM(_callable_lm(), TOKENIZER, name=""), "name"),
        (lambda: lo.LLM(_callable_lm(), TOKENIZER, name=3), "name"),
        (lambda: lo.LLM(_callable_lm(), TOKENIZER, prompt_style="poem"), "prompt_style"),
    ],
    "AtOptimum": [
        (lambda: lo.AtOptimum("15", 14), "w"),
        (lambda: lo.AtOptimum(NAN, 14), "w"),
        (lambda: lo.AtOptimum(15, INF), "b"),
        (lambda: lo.AtOptimum(15, None), "b"),
        (lambda: lo.AtOptimum(15, 14, decimals=-1), "decimals"),
        (lambda: lo.AtOptimum(15, 14, decimals=True), "decimals"),
        (lambda: lo.AtOptimum(15, 14, decimals=0.5), "decimals"),
    ],
    "Dataset": [
        *_bad_vectors(lambda x, y: lo.Dataset(x, y)),
        (lambda: lo.Dataset([2.0, 2.0], [1.0, 2.0]), "x"),
        (lambda: lo.Dataset([1.0], [1.0]), "x and y"),
        (lambda: lo.Dataset(X, Y, w="3"), "w"),
        (lambda: lo.Dataset(X, Y, b=True), "b"),
        (lambda: lo.Dataset(X, Y, name=""), "name"),
        (lambda: lo.Dataset(X, Y, name=None), "name"),
        (lambda: lo.Dataset(X, Y, setup="bogus"), "setup"),
        (lambda: lo.Dataset(X, Y, seed=True), "seed"),
        (lambda: lo.Dataset(X, Y, seed=-1), "seed"),
    ],
    "LastKBelow": [
        (lambda: lo.LastKBelow(0, 1.0), "k"),
        (lambda: lo.LastKBelow(True, 1.0), "k"),
        (lambda: lo.LastKBelow(1.5, 1.0), "k"),
        (lambda: lo.LastKBelow("3", 1.0), "k"),
        (lambda: lo.LastKBelow(3, "1"), "threshold"),
        (lambda: lo.LastKBelow(3, NAN), "threshold"),
        (lambda: lo.LastKBelow(3, INF), "threshold"),
    ],
    "Run": [
        (lambda: lo.Run(None), "settings"),
        (lambda: lo.Run({}, records="x"), "records"),
        (lambda: lo.Run({}, records=[1, 2]), "records"),
        (lambda: lo.Run({}, stop_reason=3), "stop_reason"),
        (lambda: lo.Run.load(None), "path"),
        (lambda: lo.Run.load(3), "path"),
        (lambda: lo.Run.load(""), "path"),
        (lambda: lo.Run({}).save(None), "path"),
    ],
    "TargetLoss": [
        (lambda: lo.TargetLoss("0.5"), "value"),
        (lambda: lo.TargetLoss(NAN), "value"),
        (lambda: lo.TargetLoss(INF), "value"),
        (lambda: lo.TargetLoss(None), "value"),
        (lambda: lo.TargetLoss(True), "value"),
    ],
    "build_meta_prompt": [
        (lambda: lo.build_meta_prompt(5), "history"),
        (lambda: lo.build_meta_prompt("abc"), "history"),
        (lambda: lo.build_meta_prompt([(1, 2)]), "history"),
        (lambda: lo.build_meta_prompt([(1, "a", 3)]), "history"),
        (lambda: lo.build_meta_prompt(pd.DataFrame({"x": [1]})), "history"),
        (lambda: lo.build_meta_prompt([], max_pairs=0), "max_pairs"),
        (lambda: lo.build_meta_prompt([], max_pairs=True), "max_pairs"),
        (lambda: lo.build_meta_prompt([], decimals=-1), "decimals"),
        (lambda: lo.build_meta_prompt([], decimals=1.5), "decimals"),
    ],
    "closed_form": [
        *_bad_vectors(lo.closed_form),
        (lambda: lo.closed_form([2.0, 2.0, 2.0], Y), "x"),
        (lambda: lo.closed_form([1.0], [1.0]), "x"),
    ],
    "gradient_descent": [
        *_bad_vectors(lambda x, y: lo.gradient_descent(x, y, lr=0.1, steps=3)),
        (lambda: lo.gradient_descent(X, Y, lr=0, steps=3), "lr"),
        (lambda: lo.gradient_descent(X, Y, lr=NAN, steps=3), "lr"),
        (lambda: lo.gradient_descent(X, Y, lr="0.1", steps=3), "lr"),
        (lambda: lo.gradient_descent(X, Y, lr=0.1, steps=0), "steps"),
        (lambda: lo.gradient_descent(X, Y, lr=0.1, steps=True), "steps"),
        (lambda: lo.gradient_descent(X, Y, lr=0.1, steps=2.5), "steps"),
        (lambda: lo.gradient_descent(X, Y, lr=0.1, steps=3, w0="a"), "w0"),
        (lambda: lo.gradient_descent(X, Y, lr=0.1, steps=3, b0=INF), "b0"),
    ],
    "hill_climb": [
        *_bad_vectors(lambda x, y: lo.hill_climb(x, y, evaluations=5)),
        (lambda: lo.hill_climb(X, Y, evaluations=0), "evaluations"),
        (lambda: lo.hill_climb(X, Y, evaluations=True), "evaluations"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, step=0), "step"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, step=NAN), "step"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, w0=INF), "w0"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, b0="0"), "b0"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, seed=-1), "seed"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, seed=True), "seed"),
        (lambda: lo.hill_climb(X, Y, evaluations=5, loss="mse"), "loss"),
    ],
    "ServerModel": [
        (lambda: lo.ServerModel(3), "base_url"),
        (lambda: lo.ServerModel("ftp://127.0.0.1/v1"), "base_url"),
        (lambda: lo.ServerModel(SERVER, prompt_style="poem"), "prompt_style"),
        (lambda: lo.ServerModel(SERVER, timeout=0), "timeout"),
        (lambda: lo.ServerModel(SERVER, timeout=NAN), "timeout"),
        (lambda: lo.ServerModel(SERVER, max_retries=-1), "max_retries"),
        (lambda: lo.ServerModel(SERVER, max_retries=True), "max_retries"),
        (lambda: lo.ServerModel(SERVER, model=3), "model"),
        (lambda: lo.ServerModel(SERVER, model=""), "model"),
        (lambda: lo.ServerModel(SERVER, api_key=12345), "api_key"),
        (lambda: lo.ServerModel(SERVER, api_key_env=""), "api_key_env"),
    ],
    "load_model": [
        (lambda: lo.load_model(3), "name"),
        (lambda: lo.load_model(""), "name"),
        (lambda: lo.load_model("gpt-17"), "name"),
        (lambda: lo.load_model("smollm2", prompt_style="poem"), "prompt_style"),
        (lambda: lo.load_model("smollm2", trust_remote_code="False"), "trust_remote_code"),
        (lambda: lo.load_model("smollm2", trust_remote_code=1), "trust_remote_code"),
        (lambda: lo.load_model("smollm2", trust_remote_code=None), "trust_remote_code"),
        (lambda: lo.load_model("smollm2", quantize="yes"), "quantize"),
    ],
    "make_dataset": [
        (lambda: lo.make_dataset("paper"), "preset"),
        (lambda: lo.make_dataset(None), "preset"),
        (lambda: lo.make_dataset(["article"]), "preset"),
        (lambda: lo.make_dataset(seed=True), "seed"),
        (lambda: lo.make_dataset(seed=-1), "seed"),
        (lambda: lo.make_dataset(seed=1.5), "seed"),
        (lambda: lo.make_dataset(seed="0"), "seed"),
        (lambda: lo.make_dataset(n=1), "n"),
        (lambda: lo.make_dataset(n=True), "n"),
        (lambda: lo.make_dataset(w=NAN), "w"),
        (lambda: lo.make_dataset(b="1"), "b"),
        (lambda: lo.make_dataset(noise=-1), "noise"),
        (lambda: lo.make_dataset(noise=INF), "noise"),
        (lambda: lo.make_dataset(noise=0.5), "noise"),
        (lambda: lo.make_dataset(x_range=(3, 1)), "x_range"),
        (lambda: lo.make_dataset(x_range=(0, NAN)), "x_range"),
        (lambda: lo.make_dataset(x_range=(1, 2, 3)), "x_range"),
        (lambda: lo.make_dataset(x_range="ab"), "x_range"),
        (lambda: lo.make_dataset(x_range=5), "x_range"),
    ],
    "mse": [
        *_bad_vectors(lambda x, y: lo.mse(1.0, 0.0, x, y)),
        (lambda: lo.mse("a", 0.0, X, Y), "w"),
        (lambda: lo.mse(1.0, None, X, Y), "b"),
        (lambda: lo.mse(True, 0.0, X, Y), "w"),
        (lambda: lo.mse(np.zeros(3), np.zeros(2), X, Y), "w and b"),
        (lambda: lo.mse([], [], X, Y), "w"),
    ],
    "optimize": [
        (lambda: lo.optimize({"x": X}, Model()), "dataset"),
        (lambda: lo.optimize(DATA, object()), "model"),
        (lambda: lo.optimize(DATA, Model(), steps=0), "steps"),
        (lambda: lo.optimize(DATA, Model(), steps=True), "steps"),
        (lambda: lo.optimize(DATA, Model(), temperature=0), "temperature"),
        (lambda: lo.optimize(DATA, Model(), temperature=1e-300), "temperature"),
        (lambda: lo.optimize(DATA, Model(), temperature=NAN), "temperature"),
        (lambda: lo.optimize(DATA, Model(), temperature="hot"), "temperature"),
        (lambda: lo.optimize(DATA, Model(), temperature=1e9), "temperature"),
        (lambda: lo.optimize(DATA, Model(), proposals_per_step=0), "proposals_per_step"),
        (lambda: lo.optimize(DATA, Model(), proposals_per_step=True), "proposals_per_step"),
        (lambda: lo.optimize(DATA, Model(), max_pairs=0), "max_pairs"),
        (lambda: lo.optimize(DATA, Model(), decimals=-1), "decimals"),
        (lambda: lo.optimize(DATA, Model(), loss="mae"), "loss"),
        (lambda: lo.optimize(DATA, Model(), loss=["mse"]), "loss"),
        (lambda: lo.optimize(DATA, Model(), init=[(1, "x")]), "init"),
        (lambda: lo.optimize(DATA, Model(), init=[]), "init"),
        (lambda: lo.optimize(DATA, Model(), init=[(NAN, 1)]), "init"),
        (lambda: lo.optimize(DATA, Model(), init=5), "init"),
        (lambda: lo.optimize(DATA, Model(), stop=["last 3"]), "stop"),
        (lambda: lo.optimize(DATA, Model(), stop=lo.LastKBelow()), "stop"),
        (lambda: lo.optimize(DATA, Model(), seed=-1), "seed"),
        (lambda: lo.optimize(DATA, Model(), seed=True), "seed"),
        (lambda: lo.optimize(DATA, Model(), max_new_tokens=0), "max_new_tokens"),
        (lambda: lo.optimize(DATA, Model(), on_step=5), "on_step"),
        (lambda: lo.optimize(DATA, Model(), out_dir=5), "out_dir"),
        (lambda: lo.optimize(DATA, Model(), resume="run"), "resume"),
        (lambda: lo.optimize(DATA, Model(), progress="yes"), "progress"),
    ],
    "plan_load": [
        (lambda: lo.plan_load(None), "name"),
        (lambda: lo.plan_load("gpt-17"), "name"),
        (lambda: lo.plan_load("smollm2", cuda="yes"), "cuda"),
        (lambda: lo.plan_load("auto", cuda=True, capability=(7,)), "capability"),
        (lambda: lo.plan_load("auto", cuda=True, capability="7.5"), "capability"),
        (lambda: lo.plan_load("auto", cuda=True, capability=(7.5, 0)), "capability"),
        (lambda: lo.plan_load("auto", cuda=True, memory_gb=-1), "memory_gb"),
        (lambda: lo.plan_load("auto", cuda=True, memory_gb=NAN), "memory_gb"),
        (lambda: lo.plan_load("org/model", quantize="no"), "quantize"),
        (lambda: lo.plan_load("org/model", trust_remote_code="False"), "trust_remote_code"),
        (lambda: lo.plan_load("org/model", trust_remote_code=0), "trust_remote_code"),
    ],
    "random_search": [
        *_bad_vectors(lambda x, y: lo.random_search(x, y, evaluations=5)),
        (lambda: lo.random_search(X, Y, evaluations=0), "evaluations"),
        (lambda: lo.random_search(X, Y, evaluations=2.5), "evaluations"),
        (lambda: lo.random_search(X, Y, evaluations=5, low=NAN), "low"),
        (lambda: lo.random_search(X, Y, evaluations=5, high="1"), "high"),
        (lambda: lo.random_search(X, Y, evaluations=5, low=2, high=1), "low"),
        (lambda: lo.random_search(X, Y, evaluations=5, seed=True), "seed"),
        (lambda: lo.random_search(X, Y, evaluations=5, loss=None), "loss"),
    ],
    "sse": [
        *_bad_vectors(lambda x, y: lo.sse(1.0, 0.0, x, y)),
        (lambda: lo.sse(INF * 0, "b", X, Y), "b"),
        (lambda: lo.sse(np.zeros(2), np.zeros(3), X, Y), "w and b"),
    ],
}
# parse_reply reads model output, which may be anything: it never raises (see below).
NEVER_RAISES = {"parse_reply"}

ALL = [(name, i, call, argument) for name, cases in CASES.items()
       for i, (call, argument) in enumerate(cases)]


def check(call, argument: str) -> str | None:
    """What is wrong with how ``call`` rejects its bad ``argument``; None if all is well."""
    try:
        call()
    except ValueError as error:
        if re.search(rf"(?<![\w.]){re.escape(argument)}(?!\w)", str(error)):
            return None
        return f"ValueError not naming {argument!r}: {error}"
    except Exception as error:  # noqa: BLE001 (any other type is the failure being looked for)
        return f"{type(error).__name__} instead of ValueError: {error}"
    return "accepted"


def test_every_public_name_has_bad_inputs_in_the_table():
    assert set(CASES) | NEVER_RAISES == set(lo.__all__)


@pytest.mark.parametrize(("name", "i", "call", "argument"), ALL,
                         ids=[f"{name}-{i}-{argument}" for name, i, _, argument in ALL])
def test_a_bad_argument_gets_a_value_error_naming_it(name, i, call, argument):
    assert check(call, argument) is None


@pytest.mark.parametrize("text", [None, 3, b"[1, 2]", ["[1, 2]"], NAN, "x" * 10**6])
def test_parse_reply_gives_none_for_anything_it_cannot_read(text):
    assert lo.parse_reply(text) is None
