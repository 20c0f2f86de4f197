"""The ``judgments`` export: one row per judgment, in the import record layout, with everything.

Importing such a file into an empty database and exporting ``judgments`` again gives the same
rows, ids included, pseudonymised or not: a pseudonymised row says so (``tutor_pseudonymised``),
the import keeps the pseudonym as the tutor's name marked as one (``tutors.pseudonymised``),
and an export writes such a name as it is (never pseudonymised twice). The real name is never
in the file and cannot be recovered from it.

Fields (the import record layout's, plus the ids and provenance it leaves out)::

    id, prompt_id, prompt, domain, messages, prompt_source, prompt_created_at,
    parent_judgment_id,
    candidates: [{id, text, model, model_revision, dtype, params, seed, tokens, seconds,
                  index, created_at, origin, set_id}]  # the candidates the judgment ranked, idx order
    ranking: [rank per candidate], display_order: [candidate ids as shown, left to right],
    all_bad, flags: [[flag...] per candidate], ratings: [{scale: 1-5} per candidate],
    rationale, strength,
    correction, corrected_index, correction_id, correction_created_at,
    tutor, tutor_id, tutor_pseudonymised (the tutor's name is a pseudonym),
    session: {id, domain, guideline_version, started_at, ended_at} or null,
    judgment_domain (the session's domain, else the prompt's), guideline_version,
    seconds_spent, created_at, judgment_id, supersedes (the judgment this one re-judges),
    source_values ({margin, scores: {candidate id: score}} an imported pair row gave, or {})

``origin`` is where the candidate came from (``imported``, ``pack`` or ``generated``) and
``set_id`` its candidate set (null: the prompt's own set), as in ``candidates``.

``id`` is the prompt's external id (null when it has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hitl_desktop.core.types import JudgedItem

FIELDS: tuple[str, ...] = (
    "id", "prompt_id", "prompt", "domain", "messages", "prompt_source", "prompt_created_at",
    "parent_judgment_id", "candidates", "ranking", "display_order", "all_bad", "flags", "ratings",
    "rationale", "strength", "correction", "corrected_index", "correction_id",
    "correction_created_at", "tutor", "tutor_id", "session", "judgment_domain",
    "guideline_version", "seconds_spent", "created_at", "judgment_id", "supersedes",
    "tutor_pseudonymised", "source_values",
)  # fmt: skip


def judgment_row(
    item: JudgedItem,
    tutor: str,
    session: dict[str, Any] | None,
    *,
    origins: Mapping[str, tuple[str, str | None]] | None = None,
    pseudonymised: bool = False,
) -> dict[str, Any]:
    """One judgment as a row (module docstring); ``tutor`` as exported (``pseudonymised``: a
    pseudonym), ``session`` its row, ``origins`` candidate id -> (origin, set id)."""
    origins = origins or {}
    j, p = item.judgment, item.prompt
    cands = sorted((c for c in item.candidates if c.id in j.ranks), key=lambda c: (c.index, c.created_at, c.id))
    corr = j.correction
    corrected = next((i for i, c in enumerate(cands) if corr and c.id == corr.candidate_id), None)
    return {
        "id": p.external_id,
        "prompt_id": p.id,
        "prompt": p.text,
        "domain": p.domain,
        "messages": [m.to_dict() for m in p.messages],
        "prompt_source": p.source,
        "prompt_created_at": p.created_at,
        "parent_judgment_id": p.parent_judgment_id,
        "candidates": [
            {
                "id": c.id, "text": c.text, "model": c.model, "model_revision": c.model_revision,
                "dtype": c.dtype, "params": c.params, "seed": c.seed, "tokens": c.tokens,
                "seconds": c.seconds, "index": c.index, "created_at": c.created_at,
                **dict(zip(("origin", "set_id"), origins.get(c.id, ("imported", None)), strict=True)),
            }
            for c in cands
        ],  # fmt: skip
        "ranking": [j.ranks[c.id] for c in cands],
        "display_order": list(j.display_order),
        "all_bad": j.all_bad,
        "flags": [list(j.flags.get(c.id, [])) for c in cands],
        "ratings": [dict(j.ratings.get(c.id, {})) for c in cands],
        "rationale": j.rationale,
        "strength": j.strength,
        "correction": corr.text if corr else None,
        "corrected_index": corrected,
        "correction_id": corr.id if corr else None,
        "correction_created_at": corr.created_at if corr else None,
        "tutor": tutor,
        "tutor_id": j.tutor_id,
        "session": session,
        "judgment_domain": item.domain,
        "guideline_version": j.guideline_version,
        "seconds_spent": j.seconds_spent,
        "created_at": j.created_at,
        "judgment_id": j.id,
        "supersedes": j.supersedes,
        "tutor_pseudonymised": pseudonymised,
        "source_values": dict(j.source_values),
    }
