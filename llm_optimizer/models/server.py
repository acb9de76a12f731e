"""The server backend: a model served over the OpenAI-compatible HTTP API.

vLLM, ``transformers serve``, llama.cpp's server, Ollama and hosted APIs (OpenAI,
Gemini's OpenAI-compatible endpoint, OpenRouter) all speak it. The official
``openai`` client builds the requests; this module bounds each one (a deadline for
the whole request, retries with backoff included; a size limit for the answer; no
redirect followed), reads the answer strictly and turns every failure into one line
that says what to do.

The API key comes from the ``api_key`` argument or an environment variable and
stays in the client: it is blanked from every error message and reply, and never
part of the name, the repr or a run's settings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

from .. import _checks
from ..grammar import check_format, follows, reply_json_schema, reply_regex
from .answers import AnswerReader, ServerError, listing, public_url
from .base import PROMPT_STYLES, chat_messages, completion_text
from .bounded_http import MAX_CONCURRENT, MAX_RETRIES, MAX_TIMEOUT, bounded_client, retry_wait

API_KEY_ENV = "OPENAI_API_KEY"


def is_url(name: object) -> bool:
    """Whether ``name`` is an ``http://`` or ``https://`` address."""
    return isinstance(name, str) and name.lower().startswith(("http://", "https://"))


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
        ``api_key_env``; a local server needs none. ``timeout`` bounds each request
        as a whole, in seconds: connecting, the answer's headers and body, and up to
        ``max_retries`` retries with backoff (of 429s, 5xx answers and lost
        connections) all fit in it.
        """
        import openai

        if not is_url(base_url):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = public_url(base_url)
        self.prompt_style = _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
        self.timeout = _checks.positive("timeout", timeout)
        if self.timeout > MAX_TIMEOUT:
            raise ValueError(f"timeout must be at most {MAX_TIMEOUT:g} s, got {timeout!r}")
        self.max_retries = _checks.whole("max_retries", max_retries, 0, MAX_RETRIES)
        if model is not None and not (isinstance(model, str) and model):
            raise ValueError("model must be the served model's name (a non-empty string) or "
                             f"None for the only one the server lists, got {model!r}")
        if api_key is not None and not isinstance(api_key, str):  # never shown: a secret
            raise ValueError(f"api_key must be a string or None, got a {type(api_key).__name__}")
        if not (isinstance(api_key_env, str) and api_key_env):
            raise ValueError(f"api_key_env must name an environment variable, got {api_key_env!r}")
        self.api_key_env = api_key_env
        key = api_key or os.environ.get(api_key_env) or None
        self._answers = AnswerReader(
            self.base_url, [s for s in (key, urlsplit(base_url).password) if s],
            key_given=key is not None, api_key_env=api_key_env, timeout=self.timeout)
        # Retries are this module's (within the deadline), not the client's.
        self._client = openai.OpenAI(base_url=base_url, api_key=key or "none",
                                     timeout=self.timeout, max_retries=0,
                                     http_client=bounded_client())
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
        data = self._call("/models", lambda budget: self._client.models.with_raw_response
                          .list(timeout=budget))
        listed = data.get("data")
        if not (isinstance(listed, list) and all(
                isinstance(m, dict) and isinstance(m.get("id"), str) for m in listed)):
            raise ServerError(self._answers.bad("/models", "a list of models with an id each",
                                               data))
        return sorted(m["id"] for m in listed)

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
        (``transformers serve`` returns one), the rest go out as requests of their
        own, ``MAX_CONCURRENT`` at a time, and later steps split ``n`` that way from
        the start; a server that refuses ``n`` above one (a 400, as Groq answers) is
        asked one choice a request. Request ``i`` of a step gets the seed ``seed + i``,
        so the replies are repeatable where the server honours seeds and differ from each other.
        ``reply_format`` other than ``"free"`` asks for a constrained reply with
        numbers of up to ``decimals`` places (see :meth:`structured_output_body`);
        a server that refuses every way of asking gets free text, and
        ``reply_format_fallback`` says so.
        """
        n = _checks.whole("n", n, 1, _checks.MAX_PROPOSALS)
        temperature = _checks.positive("temperature", temperature)
        max_new_tokens = _checks.whole("max_new_tokens", max_new_tokens, 1, _checks.MAX_NEW_TOKENS)
        check_format(reply_format)
        decimals = _checks.whole("decimals", decimals, 0, _checks.MAX_DECIMALS)
        options = {"temperature": temperature, "max_tokens": max_new_tokens}
        with self._not_served():
            while reply_format != "free" and self.constraints:
                extra = self.structured_output_body(reply_format, decimals)
                kind = self.constraints[0]
                try:
                    replies = self._sample(prompt, n, options, seed, extra)
                except ServerError as error:
                    if error.status not in (400, 422):
                        raise
                    self._give_up(kind, reply_format, f"refused structured outputs "
                                  f"({error.status} for {kind})")
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
        with ThreadPoolExecutor(max_workers=min(n, MAX_CONCURRENT)) as pool:
            while len(replies) < n:
                missing = n - len(replies)
                sizes = [min(per_request, missing - i) for i in range(0, missing, per_request)]
                seeds = [None if seed is None else seed + requests + i for i in range(len(sizes))]
                requests += len(sizes)
                try:
                    answers = list(pool.map(lambda size, s: self._request(
                        prompt, size, options, s, extra), sizes, seeds))
                except ServerError as error:
                    known = per_request == 1 or self.choices_per_request
                    if error.status not in (400, 422) or known:
                        raise
                    return replies + self._one_choice_each(prompt, missing, options, seed, extra,
                                                           error)
                if not any(answers):
                    raise ServerError(f"{self.base_url} returned no choices for {self.name!r}")
                largest = max(len(a) for a in answers)
                if largest < per_request:
                    per_request = self.choices_per_request = largest
                elif self.choices_per_request is None and largest > 1:
                    self.choices_per_request = largest  # one choice for n=1 tells nothing
                replies.extend(r for answer in answers for r in answer)
        return replies[:n]

    def _one_choice_each(self, prompt: str, n: int, options: dict, seed: int | None,
                         extra: dict | None, refused: ServerError) -> list[str]:
        """A server that refused ``n`` choices in one request (Groq allows only one) is
        asked one choice a request from now on; if that fails too, ``refused`` stands."""
        self.choices_per_request = 1
        try:
            return self._sample(prompt, n, options, seed, extra)
        except ServerError:
            self.choices_per_request = None
            raise refused from None

    def _request(self, prompt: str, n: int, options: dict, seed: int | None,
                 extra: dict | None) -> list[str]:
        """One request for ``n`` choices; the reply texts it returned, key blanked."""
        if self.prompt_style == "chat":
            path, field = "/chat/completions", ("message", "content")
            create = self._client.chat.completions.with_raw_response.create
            body = {"messages": chat_messages(prompt)}
        else:
            path, field = "/completions", ("text",)
            create = self._client.completions.with_raw_response.create
            body = {"prompt": completion_text(prompt)}
        data = self._call(path, lambda budget: create(
            model=self.name, n=n, seed=seed, extra_body=extra, timeout=budget, **body, **options))
        choices = data.get("choices")
        texts = [_field(c, field) for c in choices] if isinstance(choices, list) else None
        if texts is None or not all(isinstance(t, str) for t in texts):
            raise ServerError(self._answers.bad(path, "a list of choices, each with "
                                               f"{'.'.join(field)} a string", data))
        if self.prompt_style == "completion":
            texts = [_first_line(t) for t in texts]
        return [self._answers.scrub(t) for t in texts]

    def _call(self, path: str, send: Callable[[float], object]) -> dict:
        """``send(budget)`` with retries within the deadline; its JSON object."""
        import openai

        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                raw = send(remaining)
                break
            except (openai.OpenAIError, TimeoutError) as error:
                wait = retry_wait(error, attempt)
                if (wait is None or attempt == self.max_retries
                        or time.monotonic() + wait >= deadline):
                    raise ServerError(self._answers.failure(error, path, attempt),
                                      getattr(error, "status_code", None)) from None
            time.sleep(wait)
            attempt += 1
        return self._answers.json(path, raw.http_response)

    def _check_model(self, model: str | None) -> str:
        """The served model's name: ``model`` if the server lists it, else an error."""
        try:
            listed = self.served_models()
        except ServerError as error:
            if error.status != 404:
                raise
            listed = []  # a server without /models: trust the name
        if model is None:
            if len(listed) == 1:
                return listed[0]
            raise ServerError(f"{self.base_url} serves {listing(listed)}: "
                              "pass model='NAME' (--model NAME) to pick one")
        # Gemini lists "models/NAME" and takes "NAME" too.
        if listed and model not in listed and f"models/{model}" not in listed:
            raise ServerError(self._not_served_message(model, listed))
        return model

    def _not_served_message(self, model: str, listed: list[str]) -> str:
        return f"{self.base_url} does not serve {model!r}; it serves {listing(listed)}"

    @contextmanager
    def _not_served(self) -> Iterator[None]:
        """A 400 or 404 for a model the server does not list says so."""
        try:
            yield
        except ServerError as error:
            if error.status in (400, 404):
                listed = self._listed_or_empty()
                if listed and self.name not in listed and f"models/{self.name}" not in listed:
                    raise ServerError(self._not_served_message(self.name, listed),
                                      error.status) from None
            raise

    def _listed_or_empty(self) -> list[str]:
        try:
            return self.served_models()
        except ServerError:
            return []



def _field(choice: object, path: tuple[str, ...]) -> object:
    """``choice["message"]["content"]`` (a null content is an empty reply) or
    ``choice["text"]``; None where the answer lacks it."""
    for key in path:
        if not isinstance(choice, dict):
            return None
        choice = choice.get(key)
    if path == ("message", "content") and choice is None:
        return ""
    return choice


def _first_line(text: str) -> str:
    """A completion's text up to the end of its first line (leading blanks kept)."""
    rest = text.lstrip()
    return text[: len(text) - len(rest)] + rest.split("\n", 1)[0]
