"""One HTTP request to a server, bounded: a deadline for the whole of it, retries
included; a size limit for its answer; no redirect followed.

httpx's timeouts bound each read, so a server that sends a byte at a time never times
out; here a watchdog shuts the request's socket at its deadline instead, whatever phase
the request is in (connecting, waiting for headers, reading the body).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import suppress

import httpx

# Bounds on what a server may cost: an answer's size, the requests in flight at once,
# the time a request may take, retries included.
MAX_ANSWER_BYTES = 1 << 20
MAX_CONCURRENT = 8
MAX_TIMEOUT = 3600.0
MAX_RETRIES = 10
RETRIED_STATUS = (408, 409, 429)  # and 5xx, as the openai client retries


def bounded_client() -> httpx.Client:
    """An httpx client for the ``openai`` client: every request bounded by its read
    timeout as a whole, answers capped, ``MAX_CONCURRENT`` connections, no redirects."""
    limits = httpx.Limits(max_connections=MAX_CONCURRENT, max_keepalive_connections=0)
    return httpx.Client(transport=_BoundedTransport(limits=limits), follow_redirects=False)


class AnswerTooLarge(httpx.ReadError):
    """A server's answer went past ``MAX_ANSWER_BYTES``."""


class _Watch:
    """The socket of one request, shut at its deadline so no read waits past it."""

    def __init__(self, seconds: float):
        self.socket: socket.socket | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.socket = info["return_value"].get_extra_info("socket")

    def _fire(self) -> None:
        self.fired = True
        if self.socket is not None:
            with suppress(OSError):  # already closed
                self.socket.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _BoundedTransport(httpx.HTTPTransport):
    """httpx's transport with a deadline for the whole request and a size limit for
    the answer.

    The deadline is the request's read timeout (the budget ``ServerModel`` left).
    Connections are not kept alive, so every request's socket is known.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        budget = request.extensions.get("timeout", {}).get("read") or MAX_TIMEOUT
        watch = _Watch(budget)
        request.extensions["trace"] = watch.trace
        try:
            response = super().handle_request(request)
        except httpx.TransportError:
            watch.cancel()
            if watch.fired:
                raise httpx.ReadTimeout("deadline passed", request=request) from None
            raise
        response.stream = _BoundedStream(response.stream, watch, request)
        return response


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, stream, watch: _Watch, request: httpx.Request):
        self._stream, self._watch, self._request = stream, watch, request

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in self._stream:
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge("answer too large", request=self._request)
                yield chunk
        except httpx.TransportError:
            if self._watch.fired:
                raise httpx.ReadTimeout("deadline passed", request=self._request) from None
            raise
        finally:
            self._watch.cancel()

    def close(self) -> None:
        self._watch.cancel()
        self._stream.close()


def retry_wait(error: Exception, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``error``; None if it is not worth a retry
    (a timeout spent the whole budget; a 4xx will not change)."""
    import openai

    if isinstance(error, TimeoutError | openai.APITimeoutError):
        return None
    if isinstance(error, openai.APIConnectionError):
        return None if isinstance(error.__cause__, AnswerTooLarge) else 0.5 * 2**attempt
    status = getattr(error, "status_code", None)
    if status is None or not (status in RETRIED_STATUS or status >= 500):
        return None
    try:
        return max(float(error.response.headers.get("retry-after", "")), 0.0)
    except ValueError:  # no Retry-After, or a date
        return 0.5 * 2**attempt


def retries_text(count: int) -> str:
    return f"{count} retr{'y' if count == 1 else 'ies'}"


