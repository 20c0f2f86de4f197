"""Rows and records: how each record (prompt, candidate, tutor, judgment) maps to its columns.

One function each way per record. A new judgment field touches its migration, ``judgment_rows``
(record -> rows), ``JUDGMENT_COLUMNS`` and ``row_to_judgment`` (row, by column name -> record),
and the formats that carry it. JSON columns go through ``loads``/``dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hitl_desktop.core.types import Candidate, Correction, Judgment, Message, Prompt, Tutor

_EMPTY_JSON = {"[]": list, "{}": dict}


def loads(value: str | None, default: Any) -> Any:
    if value is None or value == "":
        return default
    empty = _EMPTY_JSON.get(value)  # most flags, ratings and params are empty: skip the parser
    if empty is not None:
        return empty()
    return json.loads(value)


def dumps(value: Any) -> str:
    if not value and type(value) in (list, dict):  # most flags, ratings, params: no encoder
        return "[]" if type(value) is list else "{}"
    return _encode(value)


#: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` without an encoder per call
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# Column lists for reading prompts and candidates: rows are fetched as plain tuples in this
# order (by position is several times cheaper than by name, and an export reads every
# candidate of every prompt).
PROMPT_COLUMNS = "id, text, domain, messages, external_id, source, parent_judgment_id, gold_ranking, created_at"
CANDIDATE_COLUMNS = "id, prompt_id, idx, text, model, model_revision, dtype, params, seed, tokens, seconds, created_at"
TUTOR_COLUMNS = "id, name, domains, created_at"
#: Where a candidate came from (``candidates.origin``); all but ``generated`` are protected.
ORIGINS = ("imported", "pack", "generated")


def prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def row_to_tutor(row: Sequence[Any]) -> Tutor:
    tid, name, domains, created_at = row
    return Tutor(id=tid, name=name, domains=loads(domains, []), created_at=created_at)


def tutor_to_row(t: Tutor) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "domains": dumps(t.domains), "created_at": t.created_at}


def row_to_prompt(row: Sequence[Any]) -> Prompt:
    """A Prompt from a row selected as ``PROMPT_COLUMNS``."""
    pid, text, domain, messages, external_id, source, parent, gold, created_at = row
    return Prompt(
        id=pid,
        text=text,
        domain=domain,
        messages=[Message(m["role"], m["content"]) for m in loads(messages, [])],
        external_id=external_id,
        source=source or "",
        parent_judgment_id=parent,
        gold_ranking=None,  # the gold_rankings table, by candidate id (Store._with_gold)
        created_at=created_at,
    )


def prompt_to_row(p: Prompt) -> dict[str, Any]:
    return {
        "id": p.id,
        "text": p.text,
        "domain": p.domain,
        "messages": dumps([m.to_dict() for m in p.messages]),
        "external_id": p.external_id,
        "source": p.source,
        "parent_judgment_id": p.parent_judgment_id,
        "gold_ranking": None,  # gold ranks live in gold_rankings (m0003), by candidate id
        "created_at": p.created_at,
    }


def row_to_candidate(row: Sequence[Any]) -> Candidate:
    """A Candidate from a row selected as ``CANDIDATE_COLUMNS``."""
    cid, prompt_id, idx, text, model, revision, dtype, params, seed, tokens, seconds, created_at = row
    return Candidate(
        id=cid,
        prompt_id=prompt_id,
        index=idx or 0,
        text=text,
        model=model or "",
        model_revision=revision or "",
        dtype=dtype or "",
        params=loads(params, {}),
        seed=seed,
        tokens=tokens,
        seconds=seconds,
        created_at=created_at,
    )


def candidate_to_row(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "prompt_id": c.prompt_id,
        "idx": c.index,
        "text": c.text,
        "model": c.model,
        "model_revision": c.model_revision,
        "dtype": c.dtype,
        "params": dumps(c.params),
        "seed": c.seed,
        "tokens": c.tokens,
        "seconds": c.seconds,
        "created_at": c.created_at,
    }


def gold_rows(prompt_id: str, ranks: dict[str, int]) -> list[dict[str, Any]]:
    return [{"prompt_id": prompt_id, "candidate_id": c, "rank": r} for c, r in ranks.items()]


# -- judgments ----------------------------------------------------------------------------------

#: The columns of a judgment row as ``row_to_judgment`` reads them, by name. A column a
#: database of an older schema lacks (opened read-only, not migrated) reads as NULL
#: (``judgment_select``).
JUDGMENT_COLUMNS = (
    "id", "prompt_id", "tutor_id", "session_id", "all_bad", "rationale", "strength",
    "seconds_spent", "display_order", "guideline_version", "created_at", "supersedes",
    "source_values", "departs_from_scores",
)  # fmt: skip


def judgment_select(alias: str, present: Iterable[str]) -> str:
    """``JUDGMENT_COLUMNS`` of the judgments table ``alias``, NULL for those not ``present``."""
    have = set(present)
    return ", ".join(f"{alias}.{c}" if c in have else f"null as {c}" for c in JUDGMENT_COLUMNS)


def row_to_judgment(
    row: Mapping[str, Any], rankings: Iterable[Sequence[Any]] = (), correction: Correction | None = None
) -> Judgment:
    """A Judgment from its row (column name -> value, ``JUDGMENT_COLUMNS``), its rankings rows
    (judgment id, candidate id, rank, flags, ratings) and its correction."""
    rr = list(rankings)
    strength = row["strength"]
    return Judgment(
        id=row["id"],
        prompt_id=row["prompt_id"],
        tutor_id=row["tutor_id"],
        session_id=row["session_id"],
        ranks={cid: rank for _, cid, rank, _, _ in rr},
        all_bad=bool(row["all_bad"]),
        flags={cid: f for _, cid, _, flags, _ in rr if (f := loads(flags, []))},
        ratings={cid: g for _, cid, _, _, ratings in rr if (g := loads(ratings, {}))},
        rationale=row["rationale"] or "",
        strength=strength if strength is not None else 2,
        seconds_spent=row["seconds_spent"],
        display_order=loads(row["display_order"], []),
        guideline_version=row["guideline_version"] or "",
        correction=correction,
        created_at=row["created_at"],
        supersedes=row["supersedes"],
        source_values=loads(row["source_values"], {}),
        departs_from_scores=None if row["departs_from_scores"] is None else bool(row["departs_from_scores"]),
    )


def judgment_rows(j: Judgment) -> tuple[dict[str, Any], list[dict[str, Any]], dict | None]:
    """A Judgment as its judgments row, rankings rows and corrections row (or None)."""
    judgment = {
        "id": j.id,
        "prompt_id": j.prompt_id,
        "tutor_id": j.tutor_id,
        "session_id": j.session_id,
        "all_bad": int(j.all_bad),
        "rationale": j.rationale,
        "strength": j.strength,
        "seconds_spent": j.seconds_spent,
        "display_order": dumps(j.display_order),
        "guideline_version": j.guideline_version,
        "created_at": j.created_at,
        # every row names the same columns: a bulk insert takes them from its first row
        "supersedes": j.supersedes,
        "source_values": dumps(j.source_values) if j.source_values else None,
        "departs_from_scores": None if j.departs_from_scores is None else int(j.departs_from_scores),
    }
    rankings = [
        {
            "judgment_id": j.id,
            "candidate_id": cid,
            "rank": rank,
            "flags": dumps(j.flags.get(cid, [])),
            "ratings": dumps(j.ratings.get(cid, {})),
        }
        for cid, rank in j.ranks.items()
    ]
    correction = None
    if j.correction is not None:
        c = j.correction
        correction = {
            "id": c.id,
            "judgment_id": j.id,
            "candidate_id": c.candidate_id,
            "text": c.text,
            "created_at": c.created_at,
        }
    return judgment, rankings, correction
