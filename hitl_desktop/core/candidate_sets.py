"""Storing what a model wrote: the one place the rules on candidates that came with a prompt
live. ``TutorWorkflow.accept_candidates`` (the app) and ``engine.fill_queue``
(``hitl-desktop generate``) both store generated candidates through :func:`store_generated`,
so the rules hold the same way for both (README "Protected candidates").

- **Protected**: a prompt's candidates that came with it (``imported``, a lab ``pack``'s, or
  any candidate of a gold prompt) are never deleted or replaced. Generated candidates for such
  a prompt go to a NEW candidate set (``set_id``), never into the prompt's own set; a request
  that would add to its own set, or replace a protected candidate, is refused
  (:class:`WorkflowError`) and nothing is written.
- A candidate the model stopped before it wrote anything is dropped (an empty answer the model
  chose to give is kept); a full set needs two candidates (else nothing is stored); one
  regenerated candidate replaces the old one in its set (``Store.replace_candidate``).

This module imports only the store and the types, so ``engine`` and ``workflow`` can both use
it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Prompt

#: origins of candidates that came with their prompt: never deleted or replaced
PROTECTED_ORIGINS = frozenset({"imported", "pack"})


class WorkflowError(Exception):
    """A request the workflow refuses, with a one-line message a tutor can act on."""


def is_protected(store: Store, prompt: Prompt) -> bool:
    """Whether the prompt's candidates came with it (imported, a pack's, a gold item's)."""
    origins = store.candidate_origins(prompt.id)
    if not origins:
        return False
    return (
        prompt.gold_ranking is not None
        or bool(store.gold_rankings([prompt.id]))  # gold ranks live in gold_rankings (m0003)
        or any(o in PROTECTED_ORIGINS for o, _ in origins.values())
    )


def store_generated(
    store: Store,
    prompt: Prompt,
    candidates: Iterable[Candidate],
    *,
    set_id: str | None = None,
    replaces: str | None = None,
) -> list[Candidate]:
    """Store what the model wrote for ``prompt`` by the rules above; returns those stored.

    ``set_id``: None for the prompt's own set (refused when its candidates are protected),
    else a new, separate set. ``replaces``: the one generated candidate the first one replaces.
    """
    kept = [c for c in candidates if c.text.strip() or c.params.get("finish_reason") != "stopped"]
    if replaces is not None:
        if kept:
            store.replace_candidate(replaces, kept[0])  # refuses a protected one
        return kept[:1]
    if len(kept) < 2:
        return []
    if set_id is None and is_protected(store, prompt):
        raise WorkflowError(
            "these candidates came with the prompt and are kept; new ones go to a new, separate set"
        )
    store.add_candidates(kept, origin="generated", set_id=set_id)
    return kept
