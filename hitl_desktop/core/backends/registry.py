"""Which backend a model spec opens: one entry point for the CLI and the app.

* :func:`open_backend` ``(spec, *, device=None, on_progress=None, served_model=None,
  completions=False, max_concurrency=None, on_status=None) -> ModelBackend``
  (``max_concurrency`` / ``on_status``: each served model's, see :mod:`.served`):

  - ``http(s)://HOST:PORT/v1`` (optionally ``#NAME`` for the served model) -> a
    :class:`~hitl_desktop.core.backends.served.ServedBackend` (torch is never imported);
  - a list of specs (several models: checkpoints compared) -> a :class:`CompositeBackend`
    (a list of one is that one backend);
  - a local path, or None for the embedded model -> the local loader (:func:`_open_local`).

* :class:`CompositeBackend`: K candidates split across its members round-robin (candidate i
  comes from member ``i % len(members)``, so K should be at least the number of models), the
  members run at once, each candidate keeps its own seed and carries its model's provenance
  (``GeneratedText.model`` / ``model_revision`` / ``dtype`` / ``params``); ``on_token`` gets the
  global index, on the calling thread; ``should_stop`` stops every member.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hitl_desktop.core.backends.base import (
    GeneratedText,
    GenerationResult,
    ModelBackend,
    ProgressCallback,
    SamplingParams,
    StatusCallback,
    StopCallback,
    TokenCallback,
    check_request,
)
from hitl_desktop.core.backends.served import ServedBackend, is_url
from hitl_desktop.core.types import Message

Spec = str | Path | None

#: How often the composite checks ``should_stop`` while its members run.
POLL_SECONDS = 0.02


def open_backend(
    spec: Spec | Sequence[Spec],
    *,
    device: str | None = None,
    on_progress: ProgressCallback | None = None,
    served_model: str | None = None,
    completions: bool = False,
    max_concurrency: int | None = None,
    on_status: StatusCallback | None = None,
    headless: bool = False,
) -> ModelBackend:
    """Open the backend for ``spec`` (see the module docstring); a ModelError when it can't.

    ``served_model`` names the served model of every URL spec without a ``#NAME`` of its own.
    ``headless``: the caller only takes the streamed text (the command line, not the
    window): a local model's process may spin its threads (:func:`.process.open_local_backend`).
    """
    if isinstance(spec, (list, tuple)):
        specs = list(spec) or [None]
        if len(specs) == 1:
            return open_backend(
                specs[0], device=device, on_progress=on_progress,
                served_model=served_model, completions=completions,
                max_concurrency=max_concurrency, on_status=on_status, headless=headless,
            )
        members = []
        for j, one in enumerate(specs):
            progress = None
            if on_progress is not None:
                def progress(f: float, message: str, j: int = j) -> None:
                    on_progress((j + f) / len(specs), message)
            members.append(open_backend(
                one, device=device, on_progress=progress,
                served_model=served_model, completions=completions,
                max_concurrency=max_concurrency, on_status=on_status, headless=headless,
            ))
        return CompositeBackend(members)
    if is_url(spec):
        return ServedBackend(
            str(spec), served_model=served_model, completions=completions,
            max_concurrency=max_concurrency, on_status=on_status,
        )
    return _open_local(spec, device=device, on_progress=on_progress, headless=headless)


def _open_local(
    path: str | Path | None, *, device: str | None, on_progress: ProgressCallback | None, headless: bool = False
) -> ModelBackend:
    """The one place a local model is opened: in its own process (the generation engine)."""
    from hitl_desktop.core.backends import process

    return process.open_local_backend(
        None if path is None else str(path), device=device, on_progress=on_progress, headless=headless
    )


class CompositeBackend:
    """Several models answering one prompt together (see the module docstring)."""

    dtype = "mixed"

    def __init__(self, members: Sequence[ModelBackend]) -> None:
        if len(members) < 2:
            raise ValueError("a composite backend needs at least two models")
        self.members = list(members)
        self.name = " + ".join(m.name for m in self.members)
        self.revision = ""

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
        n = len(self.members)
        shares = {j: [i for i in range(k) if i % n == j] for j in range(n)}
        shares = {j: idx for j, idx in shares.items() if idx}
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        start = time.perf_counter()

        def run(j: int, indices: list[int]) -> None:
            try:
                result = self.members[j].generate(
                    conversation,
                    k=len(indices),
                    params=params,
                    seeds=[seeds[i] for i in indices],
                    on_token=lambda local, text: events.put(("token", indices[local], text)),
                    should_stop=stop.is_set,
                )
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                events.put(("error", j, e))
            else:
                events.put(("result", j, result))

        threads = [
            threading.Thread(target=run, args=(j, idx), name=f"composite-{j}", daemon=True)
            for j, idx in shares.items()
        ]
        results: dict[int, GenerationResult] = {}
        try:
            for t in threads:
                t.start()
            while len(results) < len(shares):
                if should_stop is not None and should_stop():
                    stop.set()
                try:
                    kind, key, payload = events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise payload
                if kind == "result":
                    results[key] = payload
                elif on_token is not None:
                    on_token(key, payload)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5.0)
        return self._combine(results, shares, time.perf_counter() - start)

    def _combine(
        self, results: dict[int, GenerationResult], shares: dict[int, list[int]], seconds: float
    ) -> GenerationResult:
        candidates: list[GeneratedText] = []
        for j, result in results.items():
            for g in result.candidates:
                merged: dict[str, Any] = {**result.params, **(g.params or {})}
                candidates.append(GeneratedText(
                    index=shares[j][g.index],
                    text=g.text,
                    seed=g.seed,
                    tokens=g.tokens,
                    seconds=g.seconds,
                    finish_reason=g.finish_reason,
                    model=g.model or result.model,
                    model_revision=g.model_revision if g.model_revision is not None else result.model_revision,
                    dtype=g.dtype or result.dtype,
                    params=merged,
                ))
        candidates.sort(key=lambda g: g.index)
        firsts = [r.first_token_seconds for r in results.values() if r.first_token_seconds is not None]
        return GenerationResult(
            candidates=candidates,
            model=self.name,
            model_revision="",
            dtype=self.dtype,
            params={},
            seconds=seconds,
            first_token_seconds=min(firsts) if firsts else None,
            stopped=any(r.stopped for r in results.values()),
            retried=sum(r.retried for r in results.values()),
            notes=[note for r in results.values() for note in r.notes],
        )

    def close(self) -> None:
        for m in self.members:
            close = getattr(m, "close", None)
            if close is not None:
                close()


__all__ = ["CompositeBackend", "open_backend"]
