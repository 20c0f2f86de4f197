"""Filling prompts with candidates: the glue between a model backend and the store.

Used by ``hitl-desktop generate`` (pre-generation overnight) and by the GUI's worker, which
calls :func:`candidates_from_result` on the GUI thread to store what the model wrote.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hitl_desktop.core.backends.base import (
    BackendUnavailableError,
    GenerationResult,
    ModelBackend,
    ModelError,
    SamplingParams,
)
from hitl_desktop.core.candidate_sets import WorkflowError, store_generated
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Prompt


def seeds_for(prompt: Prompt, *, base_seed: int, k: int) -> list[int]:
    """K distinct, reproducible seeds for one prompt.

    They come from the base seed and the prompt's stable id (its external id when it has one,
    so the same prompt set generated on two workstations gets the same seeds).
    """
    key = prompt.external_id or prompt.id
    seeds: list[int] = []
    i = 0
    while len(seeds) < k:
        digest = hashlib.sha256(f"{base_seed}:{key}:{i}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
        if seed not in seeds:
            seeds.append(seed)
        i += 1
    return seeds


def candidates_from_result(prompt: Prompt, result: GenerationResult, *, first_index: int = 0) -> list[Candidate]:
    """Turn what a backend returned into Candidates carrying their provenance."""
    return [
        Candidate(
            prompt_id=prompt.id,
            text=g.text,
            model=g.model if g.model is not None else result.model,
            model_revision=g.model_revision if g.model_revision is not None else result.model_revision,
            dtype=g.dtype if g.dtype is not None else result.dtype,
            params={**result.params, **(g.params or {}), "finish_reason": g.finish_reason},
            seed=g.seed,
            tokens=g.tokens,
            seconds=round(g.seconds, 4),
            index=first_index + g.index,
        )
        for g in result.candidates
    ]


@dataclass
class GenerateSummary:
    prompts: int = 0
    candidates: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stopped: bool = False
    #: (prompt, reason) of each prompt the model refused (too long, a template that refuses it)
    skipped: list[tuple[Prompt, str]] = field(default_factory=list)
    #: candidates a server cut short at first and wrote again one request at a time
    retried: int = 0
    #: what the backends said of their results (a retry at concurrency 1), in order, once each
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def fill_queue(
    store: Store,
    backend: ModelBackend,
    *,
    k: int,
    params: SamplingParams,
    base_seed: int = 0,
    limit: int | None = None,
    domain: str | None = None,
    on_prompt_done: Callable[[int, int, GenerationResult], None] | None = None,
    on_prompt_skipped: Callable[[Prompt, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> GenerateSummary:
    """Write K candidates for every queued prompt that has none; each prompt is saved at once,
    through ``candidate_sets.store_generated`` (the rules the app's workflow uses too).

    A prompt the model refuses (a ModelError from ``generate``: a conversation longer than its
    context, a chat template that rejects it) is skipped and reported through
    ``on_prompt_skipped(prompt, reason)`` and ``summary.skipped``; the others go on. So is a
    prompt whose protected candidates arrived while the model wrote (never mixed into them). A
    BackendUnavailableError (a served model's server down) and every other exception
    propagate (what was saved stays saved).
    """
    if not 2 <= k <= 9:
        raise ValueError(f"k must be from 2 to 9, not {k}")
    prompts = store.queued_prompts(domain=domain, without_candidates=True, limit=limit)
    summary = GenerateSummary()
    start = time.perf_counter()
    for n, prompt in enumerate(prompts, start=1):
        try:
            result = backend.generate(
                prompt.conversation(),
                k=k,
                params=params,
                seeds=seeds_for(prompt, base_seed=base_seed, k=k),
                should_stop=should_stop,
            )
        except BackendUnavailableError:
            raise
        except ModelError as e:
            if not getattr(backend, "alive", True):  # the model's process ended: no prompt can go on
                raise
            summary.skipped.append((prompt, str(e)))
            if on_prompt_skipped:
                on_prompt_skipped(prompt, str(e))
            continue
        if result.stopped:
            summary.stopped = True
            break
        try:  # stored by the app's rules (core/candidate_sets.py)
            stored = store_generated(store, prompt, candidates_from_result(prompt, result))
        except WorkflowError as e:  # its own candidates came in meanwhile (an import, a merge)
            summary.skipped.append((prompt, str(e)))
            if on_prompt_skipped:
                on_prompt_skipped(prompt, str(e))
            continue
        summary.prompts += 1
        summary.retried += getattr(result, "retried", 0)
        summary.notes.extend(n for n in getattr(result, "notes", []) if n not in summary.notes)
        summary.candidates += len(stored)
        summary.tokens += result.tokens
        if on_prompt_done:
            on_prompt_done(n, len(prompts), result)
    summary.seconds = time.perf_counter() - start
    return summary
