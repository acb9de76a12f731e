"""The server backend: a model served over the OpenAI-compatible HTTP API.

vLLM, ``transformers serve``, llama.cpp's server, Ollama and hosted APIs (OpenAI,
Gemini's OpenAI-compatible endpoint, OpenRouter) all speak it. The official
``openai`` client does the HTTP, the timeouts and the retries with backoff (429s
and timeouts); this module turns a step's ``n`` proposals into requests and every
failure into one line that says what to do.

The API key comes from the ``api_key`` argument or an environment variable and
stays in the client: it is never part of the name, the repr, a run's settings
or an error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from .. import _checks
from ..grammar import check_format, follows, reply_json_schema, reply_regex
from .base import PROMPT_STYLES, chat_messages, completion_text

API_KEY_ENV = "OPENAI_API_KEY"
START_A_SERVER = ("start one there with `vllm serve MODEL --port PORT` (or "
                  "`transformers serve MODEL --port PORT`), or check the URL")
_SHOWN_MODELS = 10


class ServerError(RuntimeError):
    """A served model could not answer; the message says why and what to do."""


def is_url(name: object) -> bool:
    """Whether ``name`` is an ``http://`` or ``https://`` address."""
    return isinstance(name, str) and name.lower().startswith(("http://", "https://"))


def public_url(url: str) -> str:
    """``url`` without any user name, password or query (they may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class ServerModel:
    """A model behind an OpenAI-compatible endpoint that proposes ``(w, b)`` pairs.

    ``prompt_style="chat"`` sends the meta-prompt as one user turn to
    ``/chat/completions`` (the server applies the model's chat template);
    ``"completion"`` sends it to ``/completions`` ending in ``w, b =``, and each
    reply is cut at the end of its first line, as the local sampler does.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str = API_KEY_ENV,
        prompt_style: str = "chat",
        timeout: float = 60.0,
        max_retries: int = 3,
    ):
        """Connect to ``base_url`` (for example ``http://HOST:8000/v1``) and check the model.

        ``model`` is the name the server knows the model by (default: the only
        one it lists). The key is ``api_key`` or the environment variable
        ``api_key_env``; a local server needs none. ``timeout`` (seconds per
        request) and ``max_retries`` go to the ``openai`` client, which retries
        429s, timeouts and lost connections with exponential backoff.
        """
        import openai

        if not is_url(base_url):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = public_url(base_url)
        self.prompt_style = _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
        self.timeout = _checks.positive("timeout", timeout)
        self.max_retries = _checks.at_least("max_retries", max_retries, 0)
        if model is not None and not (isinstance(model, str) and model):
            raise ValueError("model must be the served model's name (a non-empty string) or "
                             f"None for the only one the server lists, got {model!r}")
        if api_key is not None and not isinstance(api_key, str):  # never shown: a secret
            raise ValueError(f"api_key must be a string or None, got a {type(api_key).__name__}")
        if not (isinstance(api_key_env, str) and api_key_env):
            raise ValueError(f"api_key_env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        key = api_key or os.environ.get(api_key_env) or None
        self._key_given = key is not None
        self._secrets = [s for s in (key, urlsplit(base_url).password) if s]
        self._client = openai.OpenAI(base_url=base_url, api_key=key or "none",
                                     timeout=self.timeout, max_retries=self.max_retries)
        self.reply_tokens = 16 if prompt_style == "completion" else 40
        # Choices the server returns for one request asking for n (None: not known yet).
        self.choices_per_request: int | None = None
        # How a constrained reply is asked for, in the order tried: vLLM's regex, then
        # (chat only) OpenAI's JSON schema; a kind the server refuses is not tried again.
        self.constraints = ["regex", "json_schema"] if prompt_style == "chat" else ["regex"]
        # Why a constrained reply format fell back to free text (None: it did not).
        self.reply_format_fallback: str | None = None
        self.name = self._check_model(model)

    def __repr__(self) -> str:
        return (f"ServerModel({self.name!r}, base_url={self.base_url!r}, "
                f"prompt_style={self.prompt_style!r})")

    def render(self, meta_prompt: str) -> str:
        """The text sent for ``meta_prompt``: the completion prompt, or the chat turn's
        content (the server wraps that in the model's chat template)."""
        if self.prompt_style == "completion":
            return completion_text(meta_prompt)
        return chat_messages(meta_prompt)[0]["content"]

    def served_models(self) -> list[str]:
        """The model names the server lists at ``/models``."""
        with self._errors():
            return sorted(m.id for m in self._client.models.list())

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 24,
        seed: int | None = None,
        reply_format: str = "free",
        decimals: int = 2,
    ) -> list[str]:
        """Sample ``n`` replies to one meta-prompt.

        The ``n`` go out as one request; where the server returns fewer choices
        (``transformers serve`` returns one), the rest go out as concurrent
        requests, and later steps split ``n`` that way from the start. Request
        ``i`` of a step gets the seed ``seed + i``, so the replies are repeatable
        where the server honours seeds and differ from each other.
        ``reply_format`` other than ``"free"`` asks for a constrained reply with
        numbers of up to ``decimals`` places (see :meth:`structured_output_body`);
        a server that refuses every way of asking gets free text, and
        ``reply_format_fallback`` says so.
        """
        n = _checks.at_least("n", n, 1)
        temperature = _checks.positive("temperature", temperature)
        max_new_tokens = _checks.at_least("max_new_tokens", max_new_tokens, 1)
        check_format(reply_format)
        decimals = _checks.at_least("decimals", decimals, 0)
        options = {"temperature": temperature, "max_tokens": max_new_tokens}
        with self._errors():
            while reply_format != "free" and self.constraints:
                extra = self.structured_output_body(reply_format, decimals)
                kind = self.constraints[0]
                try:
                    replies = self._sample(prompt, n, options, seed, extra)
                except self._rejected_field() as error:
                    self._give_up(kind, reply_format, f"refused structured outputs "
                                  f"({error.status_code} for {kind})")
                    continue
                if not all(follows(r, kind, reply_format, decimals=decimals,
                                   prompt_style=self.prompt_style) for r in replies):
                    # accepted but not applied (transformers serve ignores response_format):
                    # these replies are free text, read by the parser like any other
                    self._give_up(kind, reply_format, f"ignored structured outputs ({kind}): "
                                  "its replies did not keep to the format")
                return replies
            return self._sample(prompt, n, options, seed, None)

    def _give_up(self, kind: str, reply_format: str, why: str) -> None:
        """Ask for ``reply_format`` no more by ``kind``; say so once no way is left."""
        self.constraints.remove(kind)
        if not self.constraints:
            self.reply_format_fallback = (f"{self.base_url} {why}, so replies are free text "
                                          f"instead of {reply_format!r}")

    def structured_output_body(self, reply_format: str, decimals: int = 2) -> dict | None:
        """The request fields that constrain replies to ``reply_format``, sent through
        ``extra_body``: vLLM's ``structured_outputs`` with a regular expression or, where a
        server refused that, OpenAI's ``response_format`` with a JSON schema.

        None once the server has refused both (see ``reply_format_fallback``).
        """
        if not self.constraints:
            return None
        if self.constraints[0] == "regex":
            regex = reply_regex(reply_format, decimals=decimals, prompt_style=self.prompt_style)
            return {"structured_outputs": {"regex": regex}}
        schema = reply_json_schema(with_reason=reply_format == "reason+pair")
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": "proposal", "strict": True, "schema": schema}}}

    def _sample(self, prompt: str, n: int, options: dict, seed: int | None,
                extra: dict | None) -> list[str]:
        replies: list[str] = []
        requests = 0
        per_request = self.choices_per_request or n
        with ThreadPoolExecutor(max_workers=n) as pool:
            while len(replies) < n:
                missing = n - len(replies)
                sizes = [min(per_request, missing - i) for i in range(0, missing, per_request)]
                seeds = [None if seed is None else seed + requests + i for i in range(len(sizes))]
                requests += len(sizes)
                answers = list(pool.map(
                    lambda size, s: self._request(prompt, size, options, s, extra), sizes, seeds))
                if not any(answers):
                    raise ServerError(f"{self.base_url} returned no choices for {self.name!r}")
                largest = max(len(a) for a in answers)
                if largest < per_request:
                    per_request = self.choices_per_request = largest
                elif self.choices_per_request is None and largest > 1:
                    self.choices_per_request = largest  # one choice for n=1 tells nothing
                replies.extend(r for answer in answers for r in answer)
        return replies[:n]

    def _request(self, prompt: str, n: int, options: dict, seed: int | None,
                 extra: dict | None) -> list[str]:
        """One request for ``n`` choices; the reply texts it returned."""
        if self.prompt_style == "chat":
            answer = self._client.chat.completions.create(
                model=self.name, messages=chat_messages(prompt), n=n, seed=seed,
                extra_body=extra, **options)
            return [c.message.content or "" for c in answer.choices]
        answer = self._client.completions.create(
            model=self.name, prompt=completion_text(prompt), n=n, seed=seed,
            extra_body=extra, **options)
        return [_first_line(c.text) for c in answer.choices]

    def _check_model(self, model: str | None) -> str:
        """The served model's name: ``model`` if the server lists it, else an error."""
        import openai

        try:
            listed = self.served_models()
        except ServerError as error:
            if not isinstance(error.__cause__, openai.NotFoundError):
                raise
            listed = []  # a server without /models: trust the name
        if model is None:
            if len(listed) == 1:
                return listed[0]
            raise ServerError(f"{self.base_url} serves {_listing(listed)}: "
                              "pass model='NAME' (--model NAME) to pick one")
        # Gemini lists "models/NAME" and takes "NAME" too.
        if listed and model not in listed and f"models/{model}" not in listed:
            raise ServerError(self._not_served(model, listed))
        return model

    def _not_served(self, model: str, listed: list[str]) -> str:
        return f"{self.base_url} does not serve {model!r}; it serves {_listing(listed)}"

    def _rejected_field(self) -> tuple[type[Exception], ...]:
        import openai

        return (openai.BadRequestError, openai.UnprocessableEntityError)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the ``openai`` client's exceptions into a one-line :class:`ServerError`."""
        import openai

        try:
            yield
        except openai.OpenAIError as error:
            message = self._say(error)
            name = getattr(self, "name", None)
            if name and isinstance(error, openai.BadRequestError | openai.NotFoundError):
                listed = self._listed_or_empty()
                if listed and name not in listed and f"models/{name}" not in listed:
                    message = self._not_served(name, listed)
            raise ServerError(message) from error

    def _listed_or_empty(self) -> list[str]:
        try:
            return self.served_models()
        except ServerError:
            return []

    def _say(self, error: Exception) -> str:
        """One line for ``error``, without the key."""
        import openai

        url, env = self.base_url, self.api_key_env
        if isinstance(error, openai.APITimeoutError):
            text = (f"{url} did not answer within {self.timeout:g} s, {self.max_retries} "
                    "retries included: the server is overloaded or stuck")
        elif isinstance(error, openai.APIConnectionError):
            text = f"cannot connect to {url}: no server answers there; {START_A_SERVER}"
        elif isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            if self._key_given:
                text = (f"{url} refused the API key ({error.status_code}): check the key in "
                        f"the {env} environment variable (or the api_key argument)")
            else:
                text = (f"{url} needs an API key ({error.status_code}): set the {env} "
                        "environment variable, or pass api_key=")
        elif isinstance(error, openai.RateLimitError):
            text = (f"{url} kept answering 429 (too many requests), {self.max_retries} "
                    "retries with backoff included: wait, or ask for fewer proposals")
        elif isinstance(error, openai.APIStatusError):
            text = f"{url} answered {error.status_code}: {_detail(error)}"
        else:
            text = f"{url}: {error}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())


def _listing(names: list[str]) -> str:
    if not names:
        return "no models"
    shown = ", ".join(repr(n) for n in names[:_SHOWN_MODELS])
    more = len(names) - _SHOWN_MODELS
    return shown + (f" and {more} more" if more > 0 else "")


def _detail(error) -> str:
    """The server's own explanation of an error status, cut to one short line."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # OpenAI and vLLM: {"error": {"message": ...}}
    if isinstance(body, dict):
        body = body.get("message") or body.get("detail") or body
    text = str(body or error.message)
    return re.sub(r"\s+", " ", text)[:300]


def _first_line(text: str) -> str:
    """A completion's text up to the end of its first line (leading blanks kept)."""
    rest = text.lstrip()
    return text[: len(text) - len(rest)] + rest.split("\n", 1)[0]
