"""What a server answered, read strictly, and every failure as one line that names
the URL, says what came back or what went wrong and what to do, without the key."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import httpx

from .bounded_http import MAX_ANSWER_BYTES, AnswerTooLarge, retries_text

START_A_SERVER = ("start one there with `vllm serve MODEL --port PORT` (or "
                  "`transformers serve MODEL --port PORT`), or check the URL")
_SHOWN_CHARS = 80
_SHOWN_MODELS = 10


class ServerError(RuntimeError):
    """A served model could not answer; the message says why and what to do.

    ``status`` is the HTTP status the server answered, where it answered one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def public_url(url: str) -> str:
    """``url`` without any user name, password or query (they may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number
        netloc = host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class AnswerReader:
    """Reads the answers of the server at ``base_url`` and words its failures, blanking
    ``secrets`` (longest first) before any text is cut."""

    def __init__(self, base_url: str, secrets: list[str], *, key_given: bool,
                 api_key_env: str, timeout: float):
        self.base_url, self.api_key_env, self.timeout = base_url, api_key_env, timeout
        self.key_given = key_given
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def json(self, path: str, response: httpx.Response) -> dict:
        """The JSON object of an answer, or a ServerError saying what came back instead."""
        content = response.content
        try:
            data = json.loads(content)
        except ValueError as error:  # invalid JSON or invalid UTF-8
            kind = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
            html = kind == "text/html" or b"<html" in content[:1000].lower()
            what = "an HTML page" if html else f"{len(content)} bytes ({kind}) that are not " + (
                "UTF-8 text" if isinstance(error, UnicodeDecodeError) else "JSON")
            raise ServerError(f"{self.base_url}{path} answered {response.status_code} with "
                              f"{what} ({self.shown(content)}): check that the URL is the "
                              "API's base address (it usually ends in /v1)") from None
        if not isinstance(data, dict):
            raise ServerError(self.bad(path, "a JSON object", data))
        return data

    def bad(self, path: str, expected: str, data: object) -> str:
        return (f"{self.base_url}{path} answered JSON without {expected} "
                f"({self.shown(json.dumps(data))}): is it an OpenAI-compatible server?")

    def shown(self, content: bytes | str) -> str:
        """The start of what a server sent, key blanked, on one short line."""
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        text = " ".join(self.scrub(content).split())
        return (text[:_SHOWN_CHARS] + "...") if len(text) > _SHOWN_CHARS else text or "empty"

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def failure(self, error: Exception, path: str, retries: int) -> str:
        """One line for ``error``, without the key."""
        import openai

        url, env = self.base_url, self.api_key_env
        cause = error.__cause__
        if isinstance(error, TimeoutError | openai.APITimeoutError):
            text = (f"{url} did not answer within {self.timeout:g} s, {retries_text(retries)} "
                    "included: the server is overloaded or stuck")
        elif isinstance(cause, AnswerTooLarge):
            text = (f"{url}{path} sent an answer of more than {MAX_ANSWER_BYTES // 1024} KB, "
                    "far more than the replies asked for: not read")
        elif isinstance(error, openai.APIConnectionError) and isinstance(
                cause, httpx.RemoteProtocolError | httpx.ReadError):
            text = (f"{url}{path}: the connection was cut before the answer ended, "
                    f"{retries_text(retries)} included: the server crashed or a proxy dropped it")
        elif isinstance(error, openai.APIConnectionError):
            text = f"cannot connect to {url}: no server answers there; {START_A_SERVER}"
        elif isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            if self.key_given:
                text = (f"{url} refused the API key ({error.status_code}): check the key in "
                        f"the {env} environment variable (or the api_key argument)")
            else:
                text = (f"{url} needs an API key ({error.status_code}): set the {env} "
                        "environment variable, or pass api_key=")
        elif isinstance(error, openai.RateLimitError):
            text = (f"{url} kept answering 429 (too many requests), {retries_text(retries)} "
                    "with backoff included: wait, or ask for fewer proposals")
        elif isinstance(error, openai.APIStatusError) and 300 <= error.status_code < 400:
            target = public_url(error.response.headers.get("location", "")) or "elsewhere"
            text = (f"{url}{path} redirected ({error.status_code}) to {target}, which is not "
                    "followed: use that address as the base URL if you trust it")
        elif isinstance(error, openai.APIStatusError):
            text = f"{url} answered {error.status_code}: {self.detail(error)}"
        else:
            text = f"{url}: {type(error).__name__}"
        return " ".join(self.scrub(text).split())

    def detail(self, error) -> str:
        """The server's own explanation of an error status, key blanked, on one short line."""
        body = getattr(error, "body", None)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]  # OpenAI and vLLM: {"error": {"message": ...}}
        if isinstance(body, dict):
            body = body.get("message") or body.get("detail") or body
        text = " ".join(self.scrub(str(body or error.message)).split())
        return text[:300]


def listing(names: list[str]) -> str:
    if not names:
        return "no models"
    shown = ", ".join(repr(n) for n in names[:_SHOWN_MODELS])
    more = len(names) - _SHOWN_MODELS
    return shown + (f" and {more} more" if more > 0 else "")
