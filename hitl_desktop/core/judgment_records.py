"""The ``judgments`` export: one row per judgment, in the import record layout, with everything.

Importing such a file into an empty database and exporting ``judgments`` again gives the same
rows, ids included (with ``--keep-tutor-names``: a pseudonym is a one-way stand-in).

Fields (the import record layout's, plus the ids and provenance it leaves out)::

    id, prompt_id, prompt, domain, messages, prompt_source, prompt_created_at,
    parent_judgment_id,
    candidates: [{id, text, model, model_revision, dtype, params, seed, tokens, seconds,
                  index, created_at}]                  # the candidates the judgment ranked, idx order
    ranking: [rank per candidate], display_order: [candidate ids as shown, left to right],
    all_bad, flags: [[flag...] per candidate], ratings: [{scale: 1-5} per candidate],
    rationale, strength,
    correction, corrected_index, correction_id, correction_created_at,
    tutor, tutor_id,
    session: {id, domain, guideline_version, started_at, ended_at} or null,
    judgment_domain (the session's domain, else the prompt's), guideline_version,
    seconds_spent, created_at, judgment_id, supersedes (the judgment this one re-judges)

``id`` is the prompt's external id (null when it has none).
"""

from __future__ import annotations

from typing import Any

from hitl_desktop.core.types import JudgedItem

FIELDS: tuple[str, ...] = (
    "id", "prompt_id", "prompt", "domain", "messages", "prompt_source", "prompt_created_at",
    "parent_judgment_id", "candidates", "ranking", "display_order", "all_bad", "flags", "ratings",
    "rationale", "strength", "correction", "corrected_index", "correction_id",
    "correction_created_at", "tutor", "tutor_id", "session", "judgment_domain",
    "guideline_version", "seconds_spent", "created_at", "judgment_id", "supersedes",
)  # fmt: skip


def judgment_row(item: JudgedItem, tutor: str, session: dict[str, Any] | None) -> dict[str, Any]:
    """One judgment as a row (module docstring); ``tutor`` as exported, ``session`` its row."""
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
    }
