"""A stand-in OpenAI-compatible server on 127.0.0.1 that answers badly on purpose.

``HostileServer(kind)`` lists one model, ``stub``, at ``/v1/models`` and answers every
POST the way ``kind`` says (``ANSWERS``); ``models_kind`` does the same for ``/models``.
It runs in a thread, stops when its ``with`` block ends, and stops itself after
``lifetime`` seconds in any case; a slow answer stops when the client goes away.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "sk-Zq81w-0123456789abcdefXYZ"
MODELS = {"object": "list", "data": [{"id": "stub", "object": "model"}]}


def completion(text: object, n: int = 1) -> dict:
    return {"id": "1", "object": "text_completion", "created": 0, "model": "stub",
            "choices": [{"index": i, "text": text, "finish_reason": "stop"} for i in range(n)]}


def _json(body: object) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


HTML = (b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Please sign "
        b"in</h1>" + b"<p>proxy page</p>" * 50 + b"</body></html>")
# kind: (status, headers, body) of the answer, or a special kind handled by _answer.
ANSWERS = {
    "good": _json(completion(" [1, 2]")),
    "html": (200, {"Content-Type": "text/html; charset=utf-8"}, HTML),
    "invalid json": (200, {"Content-Type": "application/json"}, b'{"choices": [{"text": '),
    "choices null": _json({**completion(""), "choices": None}),
    "no choices": _json({"id": "1", "object": "text_completion"}),
    "text null": _json(completion(None)),
    "text a number": _json(completion(12)),
    "a list, not an object": _json([1, 2]),
    "invalid utf-8": (200, {"Content-Type": "application/json"},
                      b'{"choices": [{"index": 0, "text": "\xff\xfe [1, 2]"}]}'),
    "10 MB reply": _json(completion("7" * 10_000_000)),
    "100 KB reply": _json(completion(" [1, 2] " + "x" * 100_000)),
    "reply echoing the key": _json(completion(f" [1, 2] your key is {SECRET}")),
    "500 echoing the key near the cut": (500, {"Content-Type": "application/json"}, json.dumps(
        {"error": {"message": "x" * 290 + " " + SECRET}}).encode()),
    "401 echoing the header": (401, {"Content-Type": "application/json"}, json.dumps(
        {"error": {"message": f"Incorrect API key provided: Bearer {SECRET}"}}).encode()),
    "empty 200": (200, {"Content-Type": "application/json"}, b""),
    "400 for any n": (400, {"Content-Type": "application/json"}, json.dumps(
        {"error": {"message": "prompt is too long for this model"}}).encode()),
}
SPECIAL = ("drip", "cut mid-body", "redirect to another port", "stall", "one choice, slowly",
           "refuses n > 1")
N_REFUSED = (400, {"Content-Type": "application/json"}, json.dumps(  # as Groq answers
    {"error": {"message": "'n' : number must be at most 1",
               "type": "invalid_request_error"}}).encode())
KINDS = (*ANSWERS, *SPECIAL)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path))
        self._answer(self.server.models_kind)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = json.loads(self.rfile.read(length) or b"null")
        self.server.bodies.append(self.body)
        self.server.seen.append(("POST", self.path))
        with self.server.counting:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            self._answer(self.server.kind)
        finally:
            with self.server.counting:
                self.server.in_flight -= 1

    def _answer(self, kind: str) -> None:
        try:
            if kind == "models":
                kind_answer = _json(MODELS)
            elif kind in ANSWERS:
                kind_answer = ANSWERS[kind]
            elif kind == "refuses n > 1":
                n = self.body.get("n") if isinstance(self.body, dict) else None
                kind_answer = N_REFUSED if (n or 1) > 1 else ANSWERS["good"]
            else:
                return self._special(kind)
            status, headers, body = kind_answer
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _special(self, kind: str) -> None:
        stopping = self.server.stopping
        if kind == "one choice, slowly":  # as transformers serve does, for any n
            stopping.wait(0.02)
            return self._answer("good")
        if kind == "drip":  # one byte at a time, the headers included
            data = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b" " * 100_000)
            for byte in data:
                if stopping.wait(self.server.drip_seconds):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif kind == "stall":  # headers at once, then nothing
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            self.wfile.flush()
            stopping.wait(self.server.lifetime)
        elif kind == "cut mid-body":
            body = json.dumps(completion(" [1, 2]")).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body) + 500}\r\n\r\n".encode() + body)
            self.wfile.flush()
            self.close_connection = True
        elif kind == "redirect to another port":
            self.send_response(307)
            self.send_header("Location", f"{self.server.elsewhere}/v1/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()


class HostileServer:
    """``with HostileServer("html") as server: ... server.url ...``"""

    def __init__(self, kind: str = "good", *, models_kind: str = "models",
                 drip_seconds: float = 0.5, lifetime: float = 60.0, elsewhere: str = ""):
        if kind not in (*KINDS, "models") or models_kind not in (*KINDS, "models"):
            raise ValueError(f"unknown kind {kind!r} or {models_kind!r}")
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.kind, self.httpd.models_kind = kind, models_kind
        self.httpd.seen, self.httpd.bodies = [], []
        self.httpd.drip_seconds, self.httpd.lifetime = drip_seconds, lifetime
        self.httpd.elsewhere, self.httpd.stopping = elsewhere, threading.Event()
        self.httpd.counting, self.httpd.in_flight, self.httpd.most_in_flight = (
            threading.Lock(), 0, 0)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def seen(self) -> list[tuple[str, str]]:
        return self.httpd.seen

    @property
    def most_in_flight(self) -> int:
        """The most POST requests the server was answering at once."""
        return self.httpd.most_in_flight

    @property
    def kind(self) -> str:
        return self.httpd.kind

    @kind.setter
    def kind(self, value: str) -> None:
        self.httpd.kind = value

    def __enter__(self) -> HostileServer:
        self._thread.start()
        self._timer.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self.httpd.stopping.set()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
