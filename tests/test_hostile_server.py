"""The server backend against a stand-in server that answers badly on purpose
(tests/hostile_server.py): every bad answer ends in one clear line naming the URL,
in bounded time, with the key nowhere."""

from __future__ import annotations

import time
import traceback

import pytest
from hostile_server import SECRET, HostileServer

from llm_optimizer import Run, make_dataset, optimize
from llm_optimizer.cli import main
from llm_optimizer.models import ServerError, ServerModel
from llm_optimizer.models.server import MAX_CONCURRENT

# The bad answers to a completion request, and what the one line says about each.
BAD_ANSWERS = {
    "html": "with an HTML page (<!DOCTYPE html><html><head><title>Sign in",
    "invalid json": "that are not JSON",
    "empty 200": "0 bytes (application/json) that are not JSON (empty)",
    "invalid utf-8": "that are not UTF-8 text",
    "choices null": "without a list of choices, each with text a string",
    "no choices": "without a list of choices",
    "text null": "without a list of choices, each with text a string",
    "text a number": "without a list of choices, each with text a string",
    "a list, not an object": "without a JSON object ([1, 2])",
    "10 MB reply": "sent an answer of more than 1024 KB",
    "cut mid-body": "the connection was cut before the answer ended, 1 retry included",
    "redirect to another port": "redirected (307) to http://127.0.0.1:",
    "drip": "did not answer within 1 s",
    "stall": "did not answer within 1 s",
    "500 echoing the key near the cut": "answered 500: xxx",
}


def _fail(kind: str, **options) -> tuple[ServerError, float]:
    with HostileServer("good") as elsewhere, HostileServer(
            kind, drip_seconds=0.2, elsewhere=elsewhere.url.removesuffix("/v1")) as server:
        model = ServerModel(server.url, prompt_style="completion", api_key=SECRET, timeout=1,
                            max_retries=1, **options)
        started = time.monotonic()
        with pytest.raises(ServerError) as caught:
            model.generate("META", n=2)
        assert elsewhere.seen == []  # a redirect is never followed
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_every_bad_answer_is_one_clear_line_naming_the_url(kind):
    error, seconds = _fail(kind)
    message = str(error)
    assert message.startswith("http://127.0.0.1:") and "\n" not in message
    assert BAD_ANSWERS[kind] in message, message
    assert seconds < 3.0  # a deadline of 1 s, retries included
    chain = "".join(traceback.format_exception(error))
    assert not any(SECRET[i:i + 6] in chain for i in range(len(SECRET) - 5))
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_server_dripping_a_byte_at_a_time_is_cut_at_the_deadline_retries_included():
    with HostileServer("drip", drip_seconds=0.1) as server:
        model = ServerModel(server.url, prompt_style="completion", timeout=1.5, max_retries=3)
        started = time.monotonic()
        with pytest.raises(ServerError, match="did not answer within 1.5 s"):
            model.generate("META", n=1)
        assert time.monotonic() - started < 2.5  # not 1.5 s per read, nor per retry


def test_the_key_is_blanked_before_the_message_is_cut():
    error, _ = _fail("500 echoing the key near the cut")
    assert "***" in str(error) or len(str(error)) < 330
    assert not any(SECRET[i:i + 6] in str(error) for i in range(len(SECRET) - 5))


def test_a_401_echoing_the_header_leaves_no_key_in_the_printable_chain():
    with HostileServer("good", models_kind="401 echoing the header") as server, \
            pytest.raises(ServerError, match="refused the API key .401.") as caught:
        ServerModel(server.url, api_key=SECRET, max_retries=0)
    chain = "".join(traceback.format_exception(caught.value))
    assert SECRET not in chain and "Bearer" not in chain


def test_a_reply_echoing_the_key_is_blanked():
    with HostileServer("reply echoing the key") as server:
        model = ServerModel(server.url, prompt_style="completion", api_key=SECRET)
        assert model.generate("META", n=1) == [" [1, 2] your key is ***"]


def test_an_html_page_at_models_is_one_line_for_the_api_and_the_cli(tmp_path, capsys):
    with HostileServer("good", models_kind="html") as server:
        with pytest.raises(ServerError, match=r"/v1/models answered 200 with an HTML page"):
            ServerModel(server.url)
        code = main(["run", "--base-url", server.url, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: http://127.0.0.1")


def test_requests_in_flight_are_capped_when_the_server_returns_one_choice_each():
    with HostileServer("one choice, slowly") as server:
        model = ServerModel(server.url, prompt_style="completion")
        assert len(model.generate("META", n=120)) == 120
        assert model.choices_per_request == 1
        assert 1 < server.most_in_flight <= MAX_CONCURRENT


def test_a_server_that_refuses_n_above_one_gets_one_request_per_proposal():
    with HostileServer("refuses n > 1") as server:
        model = ServerModel(server.url, prompt_style="completion")
        assert model.generate("META", n=5, seed=7) == [" [1, 2]"] * 5
        assert model.choices_per_request == 1
        assert [b["n"] for b in server.httpd.bodies] == [5, 1, 1, 1, 1, 1]
        assert sorted(b["seed"] for b in server.httpd.bodies[1:]) == [7, 8, 9, 10, 11]
        assert len(model.generate("META", n=3)) == 3  # later steps split n from the start
        assert [b["n"] for b in server.httpd.bodies[6:]] == [1, 1, 1]


def test_a_400_that_one_choice_a_request_does_not_mend_is_reported_as_it_was():
    with HostileServer("400 for any n") as server:
        model = ServerModel(server.url, prompt_style="completion", max_retries=0)
        with pytest.raises(ServerError, match="400.*prompt is too long") as caught:
            model.generate("META", n=4)
        assert caught.value.status == 400 and model.choices_per_request is None
        assert server.httpd.bodies[0]["n"] == 4 and all(
            b["n"] == 1 for b in server.httpd.bodies[1:])


@pytest.mark.parametrize(("argument", "value"), [
    ("n", 10**6), ("max_new_tokens", 10**12), ("decimals", 10**8)])
def test_request_sizes_have_upper_bounds_named_in_the_error(argument, value):
    with HostileServer("good") as server:
        model = ServerModel(server.url, prompt_style="completion")
        with pytest.raises(ValueError, match=f"{argument} must be a whole number from"):
            model.generate("META", **{argument: value})
    with pytest.raises(ValueError, match="timeout must be at most"):
        ServerModel("http://127.0.0.1:1/v1", timeout=1e9)
    with pytest.raises(ValueError, match="max_retries must be a whole number from 0 to 10"):
        ServerModel("http://127.0.0.1:1/v1", max_retries=10**6)


def test_a_served_run_saves_its_base_url_without_credentials_and_no_key(tmp_path):
    out = tmp_path / "run"
    with HostileServer("good") as server:
        url = server.url.replace("http://", f"http://user:{SECRET}@")
        model = ServerModel(url, prompt_style="completion", api_key=SECRET)
        optimize(make_dataset("article"), model, steps=1, stop=[], out_dir=out)
        server.kind = "500 echoing the key near the cut"
        run = optimize(make_dataset("article"), model, steps=2, resume=Run.load(out),
                       out_dir=out)
    assert Run.load(out).settings["base_url"] == server.url
    assert "answered 500" in run.stop_reason and SECRET[:8] not in run.stop_reason
    for path in out.iterdir():
        data = path.read_bytes()
        assert not any(SECRET[i:i + 6].encode() in data for i in range(len(SECRET) - 5))


def test_a_long_reply_from_a_server_is_cut_in_the_step_that_records_it(tmp_path):
    with HostileServer("100 KB reply") as server:
        model = ServerModel(server.url, prompt_style="completion")
        run = optimize(make_dataset("article"), model, steps=1, stop=[], out_dir=tmp_path)
    proposal = run.records[1]["proposals"][0]
    assert proposal["cut"] == 100_008 - 4096 and proposal["parsed"]
    assert Run.load(tmp_path).records[1]["proposals"][0]["cut"] == proposal["cut"]
