"""A model served by an OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp's server,
Ollama, ``transformers serve``... (``--model http(s)://HOST:PORT/v1``).

Public API (no Qt, no torch):

* :class:`ServedBackend` ``(url, *, served_model=None, completions=False, timeout=60.0,
  max_retries=2, max_concurrency=None, on_status=None)``: asks the server for its models (``GET /models``) and picks
  ``served_model``, or the only model it serves; several and none named is a ModelError
  listing them. It satisfies :class:`~hitl_desktop.core.backends.base.ModelBackend`.
* :func:`is_url` ``(spec) -> bool``; :func:`split_spec` ``("URL#NAME") -> (URL, NAME)``: a
  served model may be named in the spec itself, after ``#`` (a fragment is never sent).
* :func:`api_key_from_env` ``() -> str | None``: ``HITL_API_KEY``, else ``OPENAI_API_KEY``.

How it generates:

* One streamed request per candidate, all K at once (K concurrent streams), each with its own
  ``seed``: the OpenAI ``n`` parameter would share one seed between the K answers. A server
  that honours seeds (vLLM, llama.cpp, ``transformers serve`` for a sampling model) gives the
  same text for the same (prompt, parameters, seed).
* At most ``max_concurrency`` streams at once (None = K; ``--max-concurrency`` and the
  app's Settings): servers differ in how many they take (Ollama one per model by default).
* Cut streams are never candidates: a stream that ends without a ``finish_reason`` (``stop``,
  ``length``, or the server's own word), or with an empty answer, is incomplete (a server
  serving one request at a time, e.g. llama-cpp-python with ``interrupt_requests``, ends the
  running stream after its role chunk when the next request arrives). The incomplete ones are
  retried one request at a time, said through ``on_status(message)``, in the result's
  ``notes`` and counted in its ``retried`` (each such candidate's params carry
  ``retried: true``); the backend then sends the next prompts' streams one at a time. A
  server that cuts them even alone is a one-line :class:`ServedModelError` naming it, and
  nothing of that prompt is returned.
* Chat completions (``/chat/completions``, the server applies the model's chat template) by
  default; with ``completions=True`` plain completions (``/completions``) of the plain
  ``User:`` / ``Assistant:`` prompt (:mod:`.plain`), each answer cut at the next ``User:``.
* Callbacks run on the calling thread: the K streams are read by worker threads that queue
  what they read. ``should_stop()`` is checked every 20 ms and closes every stream at once;
  the candidates come back as written so far (finish_reason "stopped").
* Provenance: ``model`` is the served model id; ``params`` hold the sampling parameters,
  ``url`` (without credentials or query), ``served_model``, ``api`` ("chat" or
  "completions"); each candidate's ``tokens`` is the server's usage count
  (``stream_options.include_usage``), or the number of streamed pieces where the server
  reports none (``params["tokens_from"]`` says which), and ``params["prompt_tokens"]``.
* Errors are one-line :class:`ServedModelError` messages naming the URL: unreachable server,
  401/403 (the key), 404 (unknown model), 429 and 5xx (after ``max_retries`` retries with
  exponential backoff, by the ``openai`` client), timeouts (no byte for ``timeout`` seconds),
  malformed responses or streams. A server's 400 (e.g. a prompt longer than the context) is a
  plain ModelError for that prompt only.
* The API key is read from the environment on every client build and never kept in
  provenance, messages or logs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hitl_desktop.core.backends.base import (
    BackendUnavailableError,
    GeneratedText,
    GenerationResult,
    ModelError,
    SamplingParams,
    StatusCallback,
    StopCallback,
    TokenCallback,
    check_request,
)
from hitl_desktop.core.backends.plain import PLAIN_STOPS, cut_at_stop, format_plain, held_back
from hitl_desktop.core.types import Message

__all__ = [
    "API_KEY_VARIABLES",
    "ServedBackend",
    "ServedModelError",
    "api_key_from_env",
    "is_url",
    "public_url",
    "split_spec",
]

#: Where the API key comes from, first found wins. It is never stored.
API_KEY_VARIABLES = ("HITL_API_KEY", "OPENAI_API_KEY")
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
#: How often the calling thread checks ``should_stop`` while the streams run.
POLL_SECONDS = 0.02

_TRAILING = re.compile(r"[\s\ufffd]+$")


class ServedModelError(BackendUnavailableError):
    """The server as a whole failed (unreachable, refused the key, unknown model, errors,
    timeouts, garbage): generation stops rather than skipping prompt after prompt."""


def is_url(spec: object) -> bool:
    return isinstance(spec, str) and spec.strip().lower().startswith(("http://", "https://"))


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"http://h:8000/v1#my-model"`` -> ``("http://h:8000/v1", "my-model")``."""
    url, _, name = spec.strip().partition("#")
    return url.rstrip("/"), (name.strip() or None)


def public_url(url: str) -> str:
    """The URL as provenance and messages show it: no user:password, query or fragment."""
    try:  # urllib refuses a broken [IPv6] host or a port past 65535 with ValueError
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ModelError(f"{url.strip()!r} is not a server URL ({e})") from None
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    for name in API_KEY_VARIABLES:
        if env.get(name):
            return env[name]
    return None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tidy(text: str) -> str:
    return _TRAILING.sub("", text.lstrip())


@dataclass
class _Done:
    index: int
    text: str
    finish_reason: str
    tokens: int
    tokens_from: str
    prompt_tokens: int | None
    seconds: float
    fingerprint: str | None
    #: the server's own finish_reason ("stop", "length", "eos_token"...); None = it never said
    server_finish: str | None = None

    @property
    def incomplete(self) -> bool:
        """Cut short: the stream ended without a finish_reason, or with no answer at all
        (tokens were asked for). Never returned as a candidate."""
        return self.server_finish is None or not _tidy(self.text)


def _why_cut(cut: Sequence[_Done]) -> str:
    reasons = []
    if any(d.server_finish is None for d in cut):
        reasons.append("no finish_reason")
    if any(d.server_finish is not None and not _tidy(d.text) for d in cut):
        reasons.append("an empty answer")
    return " / ".join(reasons)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Streams:
    """One round of streams: what the worker threads hand the calling thread."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.streams: dict[int, Any] = {}
        self.lock = threading.Lock()


class _State:
    """What the calling thread has shown of K candidates, across the rounds of one generate."""

    def __init__(self, k: int) -> None:
        self.shown = [""] * k
        self.pieces = [0] * k
        self.first_token: float | None = None
        self.stopped = False
        self.start = time.perf_counter()


class ServedBackend:
    """K candidates from a model on an OpenAI-compatible server (see the module docstring)."""

    dtype = "served"

    def __init__(
        self,
        url: str,
        *,
        served_model: str | None = None,
        completions: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_concurrency: int | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        import openai  # not at module import: the registry decides which backend is needed

        base, named = split_spec(url)
        if not is_url(base):
            raise ModelError(f"{url}: not an http(s) URL")
        self.url = public_url(base)
        self.completions = completions
        self.timeout = timeout
        self.max_retries = max_retries
        if max_concurrency is not None and int(max_concurrency) < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        #: at most this many streams sent to the server at once (None = K)
        self.max_concurrency = None if max_concurrency is None else int(max_concurrency)
        #: on_status(message): a retry at concurrency 1, said as it happens (the status bar)
        self.on_status = on_status
        self._learned_concurrency: int | None = None
        self._openai = openai
        self.name = ""
        self._client = openai.OpenAI(
            base_url=base,
            api_key=api_key_from_env() or "none",
            timeout=timeout,
            max_retries=max_retries,
        )
        self.name = self._choose_model(named or served_model)
        self.revision = ""

    # -- models ------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The ids the server lists at ``GET /models``."""
        try:
            return sorted(str(m.id) for m in self._client.models.list())
        except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the URL
            raise self._error(e, "listing the models") from None

    def _choose_model(self, wanted: str | None) -> str:
        served = self.list_models()
        if wanted:
            if served and wanted not in served:
                raise ServedModelError(
                    f"{self.url}: the server has no model {wanted!r}; it serves: {', '.join(served)}"
                )
            return wanted
        if len(served) == 1:
            return served[0]
        if not served:
            raise ServedModelError(f"{self.url}: the server lists no model; name one with --served-model")
        raise ServedModelError(
            f"{self.url}: the server serves several models ({', '.join(served)}); "
            "choose one with --served-model NAME"
        )

    # -- errors ------------------------------------------------------------------------------

    def _error(self, e: BaseException, doing: str) -> ModelError:
        o = self._openai
        url = self.url
        retried = f" after {self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}"
        if isinstance(e, ModelError):
            return e
        if isinstance(e, o.APITimeoutError):
            return ServedModelError(f"{url}: no answer within {self.timeout:g} s while {doing}{retried}")
        if isinstance(e, o.APIConnectionError):
            cause = e.__cause__ or e.__context__
            why = _one_line(cause) if cause else "connection failed"
            return ServedModelError(f"{url}: cannot reach the server while {doing} ({why})")
        if isinstance(e, o.APIStatusError):
            status = e.status_code
            detail = _one_line(getattr(e, "message", "") or "")
            if status == 401:
                return ServedModelError(
                    f"{url}: the server refused the API key (401); set {' or '.join(API_KEY_VARIABLES)}"
                )
            if status == 403:
                return ServedModelError(f"{url}: access denied (403): {detail}")
            if status == 404:
                model = f", model {self.name!r}" if self.name else ""
                return ServedModelError(f"{url}: not found (404) while {doing}{model}: {detail}")
            if status == 429:
                return ServedModelError(f"{url}: rate limited (429){retried}: {detail}")
            if status >= 500:
                return ServedModelError(f"{url}: server error ({status}){retried}: {detail}")
            return ModelError(f"{url}: the server refused the request ({status}): {detail}")
        return ServedModelError(
            f"{url}: malformed response while {doing} ({type(e).__name__}: {_one_line(e)})"
        )

    # -- generation --------------------------------------------------------------------------

    def _request(self, conversation: Sequence[Message], params: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        extra: dict[str, Any] = {}
        if params.top_k:
            extra["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty
        if extra:
            body["extra_body"] = extra
        if self.completions:
            body["prompt"] = format_plain(conversation)
            body["stop"] = list(PLAIN_STOPS)
        else:
            body["messages"] = [m.to_dict() for m in conversation]
        return body

    def _stream_one(self, index: int, body: dict[str, Any], run: _Streams) -> None:
        start = time.perf_counter()
        raw, pieces, finish, usage, fingerprint = "", 0, None, None, None
        events, cancel = run.events, run.cancel
        try:
            api = self._client.completions if self.completions else self._client.chat.completions
            stream = api.create(**body)
            with run.lock:
                run.streams[index] = stream
            if cancel.is_set():
                stream.close()
                return
            for chunk in stream:
                if cancel.is_set():
                    break
                fingerprint = fingerprint or getattr(chunk, "system_fingerprint", None)
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices:
                    piece = choice.text if self.completions else choice.delta.content
                    if piece:
                        if not isinstance(piece, str):
                            raise TypeError(f"a streamed piece is {type(piece).__name__}, not text")
                        raw += piece
                        pieces += 1
                    finish = choice.finish_reason or finish
                text, hit = cut_at_stop(raw) if self.completions else (raw, False)
                if hit:
                    raw, finish = text, "stop"
                    stream.close()
                    break
                events.put(("text", index, (held_back(text) if self.completions else text, pieces)))
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            if not cancel.is_set():
                events.put(("error", index, e))
            return
        tokens = getattr(usage, "completion_tokens", None)
        events.put((
            "done",
            index,
            _Done(
                index=index,
                text=raw,
                finish_reason="length" if finish == "length" else "eos",
                tokens=int(tokens) if tokens is not None else pieces,
                tokens_from="usage" if tokens is not None else "pieces",
                prompt_tokens=getattr(usage, "prompt_tokens", None),
                seconds=time.perf_counter() - start,
                fingerprint=fingerprint,
                server_finish=str(finish) if finish else None,
            ),
        ))

    def concurrency_for(self, k: int) -> int:
        """How many of K streams go to the server at once: ``max_concurrency`` (None = K), and
        1 once the server has cut concurrent streams (it serves one request at a time)."""
        cap = k if self.max_concurrency is None else min(k, self.max_concurrency)
        return max(1, min(cap, self._learned_concurrency or cap))

    def _say(self, message: str, notes: list[str]) -> None:
        notes.append(message)
        if self.on_status is not None:
            self.on_status(message)

    def _streams(
        self,
        conversation: Sequence[Message],
        params: SamplingParams,
        seeds: Sequence[int],
        indices: Sequence[int],
        concurrency: int,
        state: _State,
        on_token: TokenCallback | None,
        should_stop: StopCallback | None,
    ) -> dict[int, _Done]:
        """Stream the candidates ``indices``, at most ``concurrency`` at a time (worker threads
        taking the next index when one ends); callbacks on this thread. Sets ``state.stopped``
        when ``should_stop`` ends them early."""
        run = _Streams()
        todo: queue.Queue[int] = queue.Queue()
        for i in indices:
            todo.put(i)

        def work() -> None:
            while not run.cancel.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                self._stream_one(i, self._request(conversation, params, int(seeds[i])), run)

        threads = [
            threading.Thread(target=work, name=f"served-stream-{n}", daemon=True)
            for n in range(max(1, min(concurrency, len(indices))))
        ]
        done: dict[int, _Done] = {}
        try:
            for t in threads:
                t.start()
            while len(done) < len(indices):
                if should_stop is not None and should_stop():
                    state.stopped = True
                    break
                try:
                    kind, i, payload = run.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise self._error(payload, "streaming an answer")
                if kind == "done":
                    done[i] = payload
                    text = _tidy(payload.text)
                else:
                    text, state.pieces[i] = _tidy(payload[0]), payload[1]
                if text != state.shown[i]:
                    if state.first_token is None and text:
                        state.first_token = time.perf_counter() - state.start
                    state.shown[i] = text
                    if on_token is not None:
                        on_token(i, text)
        finally:
            run.cancel.set()
            with run.lock:
                for stream in run.streams.values():
                    with contextlib.suppress(Exception):  # already closed or half-closed
                        stream.close()
        return done

    def generate(
        self,
        conversation: Sequence[Message],
        *,
        k: int,
        params: SamplingParams,
        seeds: Sequence[int],
        on_token: TokenCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> GenerationResult:
        check_request(k, seeds)
        state = _State(k)
        notes: list[str] = []
        concurrency = self.concurrency_for(k)
        done = self._streams(conversation, params, seeds, range(k), concurrency, state, on_token, should_stop)
        cut = [] if state.stopped else sorted(i for i, d in done.items() if d.incomplete)
        if cut:
            why = _why_cut([done[i] for i in cut])
            self._say(
                f"{self.url}: {_count(len(cut), 'answer')} of {k} cut short by the server ({why}) at "
                f"{concurrency} stream{'s' if concurrency != 1 else ''} at once; "
                f"retrying {'it' if len(cut) == 1 else 'them'} one at a time",
                notes,
            )
            for i in cut:
                del done[i]
                state.shown[i], state.pieces[i] = "", 0
                if on_token is not None:
                    on_token(i, "")  # what it showed is thrown away: it starts again
            again = self._streams(conversation, params, seeds, cut, 1, state, on_token, should_stop)
            still = sorted(i for i, d in again.items() if d.incomplete)
            if still:
                raise ServedModelError(
                    f"{self.url}: the server cut {_count(len(still), 'answer')} short even one request at a "
                    f"time ({_why_cut([again[i] for i in still])}, seed {', '.join(str(seeds[i]) for i in still)}); "
                    "nothing of this prompt is kept"
                )
            done.update(again)
            if concurrency > 1 and not state.stopped:
                self._learned_concurrency = 1
                self._say(f"{self.url}: sending the next prompts' streams one at a time", notes)
        elapsed = time.perf_counter() - state.start
        candidates = []
        for i in range(k):
            d = done.get(i)
            if d is None or d.incomplete:  # stopped before this stream ended
                candidates.append(GeneratedText(
                    index=i, text=state.shown[i], seed=int(seeds[i]), tokens=state.pieces[i], seconds=elapsed,
                    finish_reason="stopped", params={"tokens_from": "pieces"},
                ))
                continue
            extra: dict[str, Any] = {"retried": True} if i in cut else {}
            candidates.append(GeneratedText(
                index=i, text=_tidy(d.text), seed=int(seeds[i]), tokens=d.tokens, seconds=d.seconds,
                finish_reason=d.finish_reason,
                params={"tokens_from": d.tokens_from, "prompt_tokens": d.prompt_tokens, **extra},
            ))
        fingerprints = sorted({d.fingerprint for d in done.values() if d.fingerprint})
        return GenerationResult(
            candidates=candidates,
            model=self.name,
            model_revision=fingerprints[0] if fingerprints else "",
            dtype=self.dtype,
            params={
                **params.to_dict(),
                "url": self.url,
                "served_model": self.name,
                "api": "completions" if self.completions else "chat",
            },
            seconds=elapsed,
            first_token_seconds=state.first_token,
            stopped=state.stopped,
            retried=len(cut),
            notes=notes,
        )

    def close(self) -> None:
        self._client.close()
