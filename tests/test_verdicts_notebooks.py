"""Notebooks 03 and 04 read true with any model: each runs in quick mode through
``LLM_OPTIMIZER_MODEL`` with the bundled model, the mimic, and a scripted proposer of this
test's own that answers the least-squares pair; the verdicts they print differ as they must,
and no markdown cell states a result that a cell computes.

The scripted proposer is a small OpenAI-compatible server on 127.0.0.1 (the standard
library's ``http.server``), reached by the notebooks through the same switch as a class
server: it reads the (w, b, value) pairs of the meta-prompt, fits the loss, which is an
exact quadratic in (w, b), and answers its minimum at the prompt's precision.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import numpy as np
import pytest
from notebook_runs import QUICK

from llm_optimizer.runtime import MODEL_ENV, SERVED_MODEL_ENV

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [ROOT / "notebooks" / "03_llm_as_optimizer.ipynb",
             ROOT / "notebooks" / "04_experiments.ipynb"]
SCRIPTED = "least-squares"
NAMES = {"smollm2": "SmolLM2-135M-Instruct", "mimic": "mimic", SCRIPTED: SCRIPTED}
SHOWN = re.compile(r"w=(-?[\d.]+), b=(-?[\d.]+)\nvalue:\n(-?[\d.]+)")
NUDGES = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
MAX_BODY = 1 << 20  # a request larger than this is refused
LIFETIME_S = 1800  # the server stops itself after this, whatever happens to the test


def least_squares_pairs(prompt: str, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` replies to a meta-prompt: the minimum of the quadratic fitted to the shown
    (w, b, value) triples once 6 distinct pairs are shown; before that, the best shown
    pair nudged one unit in each of 8 directions, starting at the ``seed``-th (a step
    split into several requests gets one seed per request)."""
    shown = SHOWN.findall(prompt)
    decimals = max((len(v.split(".")[1]) if "." in v else 0 for w, b, _ in shown
                    for v in (w, b)), default=2)
    points = np.array([[float(v) for v in row] for row in shown]).reshape(-1, 3)
    answer = None
    if len({(w, b) for w, b, _ in shown}) >= 6:
        w, b, value = points.T
        design = np.column_stack([w * w, w * b, b * b, w, b, np.ones_like(w)])
        (a, c, e, d, f, _), _, rank, _ = np.linalg.lstsq(design, value, rcond=None)
        hessian = np.array([[2 * a, c], [c, 2 * e]])
        if rank == 6 and a > 0 and np.linalg.det(hessian) > 0:
            answer = np.linalg.solve(hessian, [-d, -f])
    if answer is not None:
        pairs = [answer] * n
    else:
        best = points[np.argmin(points[:, 2]), :2] if len(points) else np.zeros(2)
        pairs = [best + NUDGES[(seed + i) % len(NUDGES)] for i in range(n)]
    return [(f"{w:.{decimals}f}", f"{b:.{decimals}f}") for w, b in pairs]


class _LeastSquares(BaseHTTPRequestHandler):
    """Answers ``/models``, ``/chat/completions`` and ``/completions`` as an
    OpenAI-compatible server whose only model is the scripted proposer."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": SCRIPTED, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BODY:
            self._send(413, {"error": {"message": "request too large"}})
            return
        body = json.loads(self.rfile.read(size))
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        pairs = least_squares_pairs(prompt, int(body.get("n") or 1), int(body.get("seed") or 0))
        if chat:
            choices = [{"index": i, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"[{w}, {b}]"}}
                       for i, (w, b) in enumerate(pairs)]
        else:
            choices = [{"index": i, "finish_reason": "stop", "text": f" {w}, {b}"}
                       for i, (w, b) in enumerate(pairs)]
        self._send(200, {"id": "1", "object": "chat.completion" if chat else "text_completion",
                         "created": 0, "model": SCRIPTED, "choices": choices})


@pytest.fixture(scope="module")
def scripted_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _LeastSquares)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stopper = threading.Timer(LIFETIME_S, httpd.shutdown)
    stopper.daemon = True
    stopper.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    stopper.cancel()
    httpd.shutdown()
    httpd.server_close()


def test_the_scripted_proposer_answers_the_least_squares_pair(article):
    from llm_optimizer import build_meta_prompt, closed_form, mse

    w_star, b_star = closed_form(article.x, article.y)
    few = [(0.0, 0.0, mse(0.0, 0.0, article.x, article.y))]
    assert least_squares_pairs(build_meta_prompt(few), 2) == [("1.00", "0.00"),
                                                               ("-1.00", "0.00")]
    grid = [(w, b, mse(w, b, article.x, article.y)) for w in (1, 2, 4) for b in (-1, 0, 1)]
    (w, b), = least_squares_pairs(build_meta_prompt(grid), 1)
    assert (w, b) == (f"{w_star:.2f}", f"{b_star:.2f}")


def _env(model: str, url: str) -> dict[str, str | None]:
    """The environment of a quick run of the notebooks with ``model``."""
    if model == "smollm2":
        return QUICK  # the default where there is no GPU: the run tests/test_notebooks.py checks
    if model == SCRIPTED:
        return {**QUICK, MODEL_ENV: url, SERVED_MODEL_ENV: SCRIPTED}
    return {**QUICK, MODEL_ENV: model}


def _printed(book) -> dict[str, str]:
    """Each code cell's printed text, by cell id."""
    return {cell.id: "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            for cell in book.cells if cell.cell_type == "code"}


# What a markdown cell may not say about a run: a share, a count of runs, a loss figure,
# or a ranking. *Emphasised* and `quoted` words are definitions, not claims; questions
# (the exercises), conditions ("if ...") and "whether ..." claim nothing.
RESULT_CLAIMS = [
    r"\d\s*%", r"\b\d+ of \d+ (runs|seeds)\b", r"\b(MSE|SSE|loss)( of)? \d",
    r"\b(did|does|do) (best|better|worse)\b", r"\b(is|are|was|were) (ahead of|behind)\b",
    r"\bbeats?\b", r"\boutperform", r"\bwinner\b", r"\branks? (first|second|last|\d)",
    r"\bstayed above\b", r"\bgot below\b", r"\bthis model\b", r"\b135M model\b",
]


def claims_in_markdown(book) -> list[str]:
    """Sentences of the markdown cells that state a result (see ``RESULT_CLAIMS``)."""
    found = []
    for cell in book.cells:
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"`[^`]*`|\*[^*\n]+\*", "", " ".join(cell.source.split()))
        for sentence in re.split(r"(?<=[.!?:])\s+", text):
            if sentence.endswith("?") or re.search(r"\b(if|whether)\b", sentence, re.I):
                continue
            found += [sentence for pattern in RESULT_CLAIMS if re.search(pattern, sentence)]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_markdown_cell_states_a_result(path):
    assert claims_in_markdown(nbformat.read(path, as_version=4)) == []


def test_the_markdown_check_finds_a_stated_result():
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "The LLM is ahead of random search. Does it beat the mimic? One *did better* run.")])
    assert claims_in_markdown(book) == ["The LLM is ahead of random search."]


VERDICT = re.compile(r"^(\S.*?) (did better than|did not beat|did worse than|scored no pair)"
                     r" ?(copying|hill climbing)?", re.M)


@pytest.mark.notebook
@pytest.mark.parametrize("model", [
    pytest.param("smollm2", marks=pytest.mark.xdist_group("notebooks-quick")), "mimic", SCRIPTED])
def test_notebooks_03_and_04_print_verdicts_that_fit_the_model(model, executed, scripted_url):
    name = NAMES[model]
    runs = [executed(p.name, **_env(model, scripted_url)) for p in NOTEBOOKS]
    for run in runs:
        print(f"{run.name} with {model}: {run.seconds:.1f} s")
    three, four = (run.book for run in runs)
    for book in (three, four):
        errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]
        assert not errors, errors[0]["evalue"] if errors else ""
        assert claims_in_markdown(book) == []
    printed3, printed4 = _printed(three), _printed(four)
    for cell_id, text in [*printed3.items(), *printed4.items()]:
        if text.strip():
            print(f"--- {model} · {cell_id}\n{text.rstrip()}")

    # notebook 03: the learner's one run against copying and hill climbing
    said = dict((m[3], m[2]) for m in VERDICT.finditer(printed3["6a3f9d20"]) if m[1] == name)
    assert set(said) == {"copying", "hill climbing"}, printed3["6a3f9d20"]
    if model == "mimic":
        assert said["copying"] == "did not beat"  # the mimic does not beat itself
    if model == SCRIPTED:
        assert said["copying"] == "did better than"

    # notebook 04: every table says how many runs stand behind it
    ranking = printed4["6ff7a4c7"]
    assert "3 runs per method." in ranking and f"The LLM ({name}) is" in ranking
    verdict = ranking.splitlines()[-1]
    if model == "mimic":
        assert "not separable from" in verdict and "mimic" in verdict.split("not separable")[1]
    if model == SCRIPTED:
        assert "ahead of" in verdict and "mimic" in verdict.split("ahead of")[1].split(";")[0]
        assert f"{SCRIPTED} reached the optimum in all 2 runs" in printed4["53474571"]
    assert "1 run per reply format." in printed4["f1b8c6d4"]
    assert "too few to rank" in printed4["f1b8c6d4"]
    assert "runs per temperature" in printed4["20c32118"]
