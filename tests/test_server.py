"""The server backend against a real ``transformers serve`` on 127.0.0.1 serving the bundled
SmolLM2, and against small local HTTP servers for what that server never does (asking for a
key, answering 429, stalling)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.local_server import LocalServer, export_for_serving, free_port
from llm_optimizer import Run, load_model, make_dataset, optimize
from llm_optimizer.cli import main
from llm_optimizer.grammar import reply_json_schema, reply_regex
from llm_optimizer.models import Proposer, ServerError, ServerModel
from llm_optimizer.prompt import build_meta_prompt, parse_reply

pytestmark = [pytest.mark.model, pytest.mark.slow]
SECRET = "sk-test-1f2e3d4c5b6a"
PROMPT = build_meta_prompt([(1.0, 2.0, 30.0), (3.0, 4.0, 10.0)], max_pairs=5, decimals=2)


@pytest.fixture(scope="session")
def served_dir(smollm2, tmp_path_factory):
    """The bundled model saved as safetensors, as a server loads it."""
    return export_for_serving(smollm2, tmp_path_factory.mktemp("served") / "smollm2")


@pytest.fixture(scope="session")
def server(served_dir):
    with LocalServer(served_dir) as running:
        yield running


@pytest.fixture(scope="session")
def served(server):
    return load_model(server.base_url, prompt_style="completion")


def test_a_served_model_is_a_proposer_named_as_the_server_lists_it(served, server):
    assert isinstance(served, Proposer)
    assert served.name == server.model and served.reply_tokens == 16
    assert server.base_url in repr(served)


def test_n_replies_come_back_though_the_server_returns_one_choice_per_request(served):
    replies = served.generate(PROMPT, n=3, max_new_tokens=6, seed=1)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert served.choices_per_request == 1  # so the other two went out as their own requests
    assert all("\n" not in r.strip() for r in replies)  # cut at the end of the first line


def test_chat_prompts_go_to_the_chat_endpoint(server):
    chat = load_model(server.base_url, model=server.model)
    assert chat.prompt_style == "chat" and chat.reply_tokens == 40
    replies = chat.generate(PROMPT, n=2, max_new_tokens=5, seed=2)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)


def test_a_constrained_reply_format_falls_back_to_free_text_and_says_so(server):
    model = load_model(server.base_url, prompt_style="completion")
    replies = model.generate(PROMPT, n=2, max_new_tokens=5, seed=3, reply_format="pair")
    assert len(replies) == 2
    assert "refused structured outputs (422 for regex)" in model.reply_format_fallback
    assert model.structured_output_body("pair") is None  # not asked again


def test_a_chat_model_tries_the_json_schema_before_falling_back(server):
    chat = load_model(server.base_url, model=server.model)
    replies = chat.generate(PROMPT, n=1, max_new_tokens=5, seed=3, reply_format="pair")
    assert len(replies) == 1 and chat.constraints == []
    # transformers serve refuses the regex and accepts, but ignores, response_format
    assert "ignored structured outputs (json_schema)" in chat.reply_format_fallback
    assert "free text instead of 'pair'" in chat.reply_format_fallback


def test_a_run_on_a_server_without_constraints_says_so_in_its_settings(server, article,
                                                                       tmp_path):
    model = load_model(server.base_url, prompt_style="completion")
    run = optimize(article, model, steps=1, proposals_per_step=2, stop=[], out_dir=tmp_path,
                   reply_format="pair", max_new_tokens=18)
    saved = Run.load(tmp_path).settings
    assert saved["reply_format"] == "pair"
    assert "free text instead of 'pair'" in saved["reply_format_fallback"]
    assert "free text instead of 'pair'" in run.summary()


def test_optimize_runs_through_the_server(served, article, tmp_path):
    run = optimize(article, served, steps=2, proposals_per_step=3, stop=[], out_dir=tmp_path)
    assert run.stop_reason == "step limit"
    assert [r["step"] for r in run.records] == [0, 1, 2]
    assert all(len(r["proposals"]) == 3 for r in run.records[1:])
    assert Run.load(tmp_path).settings["model"] == served.name


def test_the_cli_runs_against_a_base_url_and_writes_no_key(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "run"
    code = main(["run", "--base-url", server.base_url, "--prompt-style", "completion",
                 "--steps", "1", "--proposals", "2", "--stop", "none", "--out", str(out)])
    assert code == 0
    assert Run.load(out).settings["model"] == server.model
    written = [p for p in out.iterdir() if p.is_file()]
    assert {p.name for p in written} >= {"settings.json", "steps.jsonl", "history.csv", "run.png"}
    assert all(SECRET.encode() not in p.read_bytes() for p in written)
    assert SECRET not in "".join(capsys.readouterr())


def test_a_refused_connection_names_the_url_and_how_to_start_a_server(capsys, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError) as caught:
        ServerModel(url, max_retries=0)
    message = str(caught.value)
    assert url in message and "vllm serve" in message and "\n" not in message
    assert main(["run", "--base-url", url, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot connect to " + url) and err.count("\n") == 1


def test_an_unknown_model_lists_the_served_ones(server, capsys, tmp_path):
    with pytest.raises(ServerError, match="does not serve 'no-such-model'; it serves") as caught:
        load_model(server.base_url, model="no-such-model")
    assert repr(server.model) in str(caught.value)
    argv = ["run", "--base-url", server.base_url, "--model", "nope", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert repr(server.model) in capsys.readouterr().err


def test_a_server_killed_mid_run_stops_it_and_resume_continues_it(served_dir, article, tmp_path):
    out = tmp_path / "run"
    first = LocalServer(served_dir).start()
    try:
        model = ServerModel(first.base_url, prompt_style="completion", max_retries=1)
        run = optimize(article, model, steps=3, proposals_per_step=2, stop=[], out_dir=out,
                       on_step=lambda run: first.stop())
    finally:
        first.stop()
    assert run.stop_reason.startswith("model error: ServerError: cannot connect to")
    kept = Run.load(out)
    assert [r["step"] for r in kept.records] == [0, 1] and kept.stop_reason == run.stop_reason
    with LocalServer(served_dir, port=first.port):
        code = main(["run", "--base-url", first.base_url, "--steps", "3", "--resume",
                     "--out", str(out)])
    assert code == 0
    resumed = Run.load(out)
    assert [r["step"] for r in resumed.records] == [0, 1, 2, 3]
    assert resumed.records[:2] == kept.records and resumed.stop_reason == "step limit"
    assert resumed.settings["proposals_per_step"] == 2  # the run's own settings


class _Stub(BaseHTTPRequestHandler):
    """Answers like an OpenAI-compatible server that the test configures."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.headers, None))
        self._answer(self.server.on_get)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(("POST", self.path, self.headers, body))
        self._answer(self.server.on_post)

    def _answer(self, how) -> None:
        status, body, headers, delay = how(self)
        time.sleep(delay)
        self._send(status, body, headers)


MODELS = (200, {"object": "list", "data": [{"id": "stub", "object": "model"}]}, None, 0)
CHOICE = (200, {"id": "1", "object": "text_completion", "created": 0, "model": "stub",
                "choices": [{"index": 0, "text": " [1, 2]", "finish_reason": "stop"}]}, None, 0)


@pytest.fixture
def stub():
    """A local HTTP server; set ``on_get``/``on_post`` to (status, body, headers, delay)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    httpd.seen, httpd.on_get, httpd.on_post = [], lambda h: MODELS, lambda h: CHOICE
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_401_names_the_missing_key_and_a_refused_key_is_never_shown(stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    denied = (401, {"error": {"message": "Incorrect API key provided"}}, None, 0)
    stub.on_get = lambda h: denied
    with pytest.raises(ServerError, match="needs an API key .401.: set the OPENAI_API_KEY"):
        ServerModel(stub.url)
    with pytest.raises(ServerError, match="refused the API key") as caught:
        ServerModel(stub.url, api_key=SECRET)
    assert SECRET not in str(caught.value)
    assert stub.seen[-1][2]["Authorization"] == f"Bearer {SECRET}"  # the key was sent


def test_a_key_the_server_echoes_is_blanked_and_never_in_the_repr(stub):
    stub.on_post = lambda h: (500, {"error": {"message": f"bad key {SECRET}"}}, None, 0)
    model = ServerModel(f"http://user:{SECRET}@{stub.url[7:]}", api_key=SECRET, max_retries=0,
                        prompt_style="completion")
    assert SECRET not in repr(model) and SECRET not in model.base_url
    with pytest.raises(ServerError, match=r"answered 500: bad key \*\*\*") as caught:
        model.generate(PROMPT, n=1)
    assert SECRET not in str(caught.value)


def test_429_is_retried_with_backoff_then_the_run_stops_keeping_its_steps(stub, article, tmp_path):
    stub.on_post = lambda h: (429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}, 0)
    model = ServerModel(stub.url, max_retries=2, prompt_style="completion")
    run = optimize(article, model, steps=3, stop=[], out_dir=tmp_path)
    assert "kept answering 429" in run.stop_reason and "2 retries" in run.stop_reason
    assert sum(1 for seen in stub.seen if seen[0] == "POST") == 3
    assert [r["step"] for r in Run.load(tmp_path).records] == [0]


def test_a_stalled_server_times_out_into_a_stop_reason(stub, article):
    stub.on_post = lambda h: (*CHOICE[:3], 1.5)
    model = ServerModel(stub.url, timeout=0.3, max_retries=0, prompt_style="completion")
    run = optimize(article, model, steps=2, stop=[])
    assert "did not answer within 0.3 s" in run.stop_reason and run.steps_done == 0


def test_a_constrained_reply_format_sends_vllms_structured_outputs(stub):
    model = ServerModel(stub.url, prompt_style="completion")
    assert model.name == "stub"  # the only model listed
    assert model.render("META") == "META\n\nw, b =" and ServerModel(stub.url).render("M") == "M"
    stub.on_post = lambda h: (200, {**CHOICE[1], "choices": [
        {"index": 0, "text": " 1, 2", "finish_reason": "stop"}]}, None, 0)
    assert model.generate(PROMPT, n=1, seed=7, reply_format="pair", decimals=0) == [" 1, 2"]
    body = stub.seen[-1][3]
    regex = reply_regex("pair", decimals=0, prompt_style="completion")
    assert body["structured_outputs"] == {"regex": regex} and body["seed"] == 7
    assert model.reply_format_fallback is None


REASONED = '{"reason": "lower b a little", "w": 3.5, "b": -1}'


def test_a_chat_server_refusing_the_regex_gets_openais_json_schema(stub):
    def refuse_regex(handler):
        if "structured_outputs" in stub.seen[-1][3]:
            return 400, {"error": {"message": "Unrecognized request argument"}}, None, 0
        return 200, {**CHOICE[1], "object": "chat.completion", "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": REASONED}}]}, None, 0

    stub.on_post = refuse_regex
    model = ServerModel(stub.url)
    assert model.generate(PROMPT, n=1, seed=1, reply_format="reason+pair") == [REASONED]
    sent = stub.seen[-1][3]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == reply_json_schema(with_reason=True)
    assert model.constraints == ["json_schema"] and model.reply_format_fallback is None
    assert parse_reply(REASONED) == (3.5, -1.0)


def test_a_server_that_ignores_the_constraint_is_found_out_and_said(stub):
    model = ServerModel(stub.url, prompt_style="completion")  # the stub answers " [1, 2]"
    assert model.generate(PROMPT, n=1, reply_format="pair", decimals=0) == [" [1, 2]"]
    assert "ignored structured outputs (regex)" in model.reply_format_fallback
    model.generate(PROMPT, n=1, reply_format="pair", decimals=0)
    assert "structured_outputs" not in stub.seen[-1][3]  # not asked again


def test_a_server_honouring_n_gets_one_request_per_step(stub):
    def choices(handler):
        n = stub.seen[-1][3]["n"]
        body = {**CHOICE[1], "choices": [{**CHOICE[1]["choices"][0], "index": i}
                                         for i in range(n)]}
        return 200, body, None, 0

    stub.on_post = choices
    model = ServerModel(stub.url, prompt_style="completion")
    assert len(model.generate(PROMPT, n=8, seed=1)) == 8
    assert [s[3]["n"] for s in stub.seen if s[0] == "POST"] == [8]
    assert model.choices_per_request == 8


def test_one_proposal_first_does_not_split_later_steps(stub):
    def choices(handler):
        n = stub.seen[-1][3]["n"]
        body = {**CHOICE[1], "choices": [{**CHOICE[1]["choices"][0], "index": i}
                                         for i in range(n)]}
        return 200, body, None, 0

    stub.on_post = choices
    model = ServerModel(stub.url, prompt_style="completion")
    assert len(model.generate(PROMPT, n=1, seed=1)) == 1  # as notebook 03's timing cell asks
    assert len(model.generate(PROMPT, n=8, seed=1)) == 8
    assert [s[3]["n"] for s in stub.seen if s[0] == "POST"] == [1, 8]


def test_a_model_listed_as_models_slash_name_is_found_by_its_name(stub):
    stub.on_get = lambda h: (200, {"object": "list", "data": [{"id": "models/gem"}]}, None, 0)
    assert ServerModel(stub.url, model="gem").name == "gem"  # as Gemini lists its models
    with pytest.raises(ServerError, match="does not serve 'other'; it serves 'models/gem'"):
        ServerModel(stub.url, model="other")


def test_model_and_api_key_are_for_urls_only():
    with pytest.raises(ValueError, match="model= and api_key= are for a served model"):
        load_model("smollm2", model="x")


def test_the_load_test_smoke_run_reports_latency_and_finds_nothing_lost(server, smollm2, tmp_path):
    from benchmarks import server_load

    results = server_load.run(server, smollm2, learners=[1, 2], steps=1, seconds=300.0,
                              proposals=2, rounds=1)
    results["machine"] = server_load.machine(1)
    levels = results["levels"]
    assert [lv["learners"] for lv in levels] == [1, 2] and [lv["steps"] for lv in levels] == [1, 2]
    assert all(lv["no_step_lost_or_duplicated"] and lv["cut_at_cap"] == 0
               and lv["requests_answered"] == 2 * lv["steps"] for lv in levels)
    assert all(0 < lv["p50_s"] <= lv["p95_s"] for lv in levels)
    cost = results["http"]
    assert cost["choices_per_request"] == 1 and min(cost["one_step_s"].values()) > 0
    server_load.write(results, tmp_path, tmp_path / "benchmarks.md")
    assert json.loads((tmp_path / "server_load.json").read_text())["levels"] == levels
    report = (tmp_path / "benchmarks.md").read_text()
    assert report.startswith("<!-- section:server-load -->") and "| 2 | 2 | 0 |" in report


def test_auto_asks_the_server_the_environment_names_with_the_key_from_the_environment(
        stub, monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_OPTIMIZER_MODEL", stub.url)
    monkeypatch.setenv("LLM_OPTIMIZER_SERVED_MODEL", "stub")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = load_model("auto")
    assert isinstance(model, ServerModel) and model.name == "stub"
    assert model.prompt_style == "chat" and SECRET not in repr(model)
    run = optimize(make_dataset("article"), model, steps=1, out_dir=tmp_path / "run")
    assert run.history["parsed"].all()
    assert all(h["Authorization"] == f"Bearer {SECRET}" for _, _, h, _ in stub.seen)
    assert not any(SECRET in p.read_text() for p in (tmp_path / "run").iterdir())
    monkeypatch.setenv("LLM_OPTIMIZER_SERVED_MODEL", "other")
    with pytest.raises(ServerError, match=r"LLM_OPTIMIZER_MODEL='http://127\.0\.0\.1:\d+/v1' "
                       "could not be loaded: .*does not serve 'other'"):
        load_model("auto")


def test_auto_names_the_variable_when_its_server_cannot_be_reached(monkeypatch):
    monkeypatch.setenv("LLM_OPTIMIZER_MODEL", f"http://user:{SECRET}@127.0.0.1:{free_port()}/v1")
    monkeypatch.delenv("LLM_OPTIMIZER_SERVED_MODEL", raising=False)
    with pytest.raises(ServerError, match="LLM_OPTIMIZER_MODEL=.* cannot connect") as caught:
        load_model("auto")
    assert SECRET not in str(caught.value)
