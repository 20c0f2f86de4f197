"""One import record (the ``records`` layout, and what every other layout's row becomes),
checked field by field: ``parse_record(obj, line)`` -> ``Record``, or ``LimitError`` naming
the field. Nothing here reads the store: whether a record agrees with what is already there
is the plan's question (plan.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hitl_desktop.core.importing.limits import (
    MAX_CANDIDATES,
    MAX_MESSAGES,
    MAX_NAME,
    MAX_RATIONALE,
    MAX_TEXT,
    LimitError,
    check_int,
    check_length,
    check_strings,
    shown,
)
from hitl_desktop.core.ranking import RankingError, validate_ranks
from hitl_desktop.core.types import (
    DEFAULT_STRENGTH,
    FLAGS,
    RATING_SCALES,
    STRENGTHS,
    Candidate,
    Judgment,
    Message,
    Prompt,
    Session,
)
from hitl_desktop.core.wording import count

ROLES = ("system", "user", "assistant")

#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call (ids are
#: hashes of this text: it must never change)
_to_json = json.JSONEncoder(ensure_ascii=False).encode

RecordError = LimitError  # a bad field of a record: (field, message)


@dataclass
class Record:
    line: int
    external_id: str | None
    prompt: str
    domain: str
    messages: list[Message]
    candidates: list[tuple[str, str]]  # (text, model)
    ranking: list[int] | None
    tutor: str | None
    correction: str | None
    corrected_index: int | None
    all_bad: bool
    strength: int
    rationale: str
    flags: list[list[str]] | None
    gold_ranking: list[int] | None
    ratings: list[dict[str, int]] | None = None
    seeds: list[int | None] | None = None
    created_at: str | None = None
    judgment_key: str | None = None  # a pair / Nectar row: its own judgment (pairs.to_record)
    full: Judgment | None = None  # a ``judgments`` row: everything, ids included (full.py)
    full_prompt: Prompt | None = None
    full_candidates: list[Candidate] | None = None
    full_session: Session | None = None
    origins: dict[str, tuple[str, str | None]] | None = None  # a judgments row's candidates
    pseudonymised: bool = False  # a judgments row's tutor name is a pseudonym
    #: a pair row's margin and scores (pairs.py; scores by candidate position, chosen first)
    source_values: dict[str, Any] | None = None


def content_id(domain: str, messages: list[Message], prompt: str) -> str:
    """The id of a record that names none: its content's hash, so that importing the same
    prompt twice (or on two workstations) gives one prompt, not two."""
    payload = _to_json([domain, [m.to_dict() for m in messages], prompt])
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def expect(obj: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    """``obj[key]`` if it is one of ``types`` (None when absent); a bool is no number."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise RecordError(key, f"must be {what}, not {json.dumps(value)}")
    if not isinstance(value, types):
        raise RecordError(key, f"must be {what}, not {type(value).__name__}")
    return value


def _ranks(obj: dict[str, Any], key: str, n_candidates: int) -> list[int] | None:
    """One rank per candidate, each from 1 to the number of candidates (ties share a rank)."""
    ranks = obj.get(key)
    if type(ranks) is list and len(ranks) == n_candidates and all(type(r) is int and 0 < r <= n_candidates for r in ranks):
        return list(ranks)  # the usual ranking: what the checks below return for it
    ranks = expect(obj, key, list, "a list of ranks")
    if ranks is None:
        return None
    try:
        ranks = validate_ranks(ranks, n_candidates, field=key)
    except RankingError as e:
        field_name, _, msg = str(e).partition(": ")
        raise RecordError(field_name, msg) from None
    for i, r in enumerate(ranks):
        if r > n_candidates:
            raise RecordError(f"{key}[{i}]", f"rank {shown(r)} is above the number of candidates ({n_candidates})")
    return ranks


def _messages(obj: dict[str, Any]) -> list[Message]:
    raw = expect(obj, "messages", list, "a list of {role, content} objects") or []
    if len(raw) > MAX_MESSAGES:
        raise RecordError("messages", f"has {len(raw):,} turns, above the limit of {MAX_MESSAGES:,}")
    messages: list[Message] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise RecordError(f"messages[{i}]", "must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RecordError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, not {shown(role)}")
        if not isinstance(content, str):
            raise RecordError(f"messages[{i}].content", "must be a string")
        check_length(content, f"messages[{i}].content", MAX_TEXT)
        messages.append(Message(role, content))
    return messages


def _candidates(obj: dict[str, Any]) -> tuple[list[tuple[str, str]], list[int | None]]:
    """(text, model) of each candidate (a string, or an object with text), and their seeds."""
    raw = obj.get("candidates")
    if (
        type(raw) is list and len(raw) <= MAX_CANDIDATES
        and all(type(c) is str and len(c) <= MAX_TEXT for c in raw) and len(set(raw)) == len(raw)
    ):  # fmt: skip
        return [(c, "") for c in raw], [None] * len(raw)  # plain strings: what the loop below makes
    raw = expect(obj, "candidates", list, "a list") or []
    if len(raw) > MAX_CANDIDATES:
        raise RecordError("candidates", f"has {len(raw):,} candidates, above the limit of {MAX_CANDIDATES}")
    candidates: list[tuple[str, str]] = []
    seeds: list[int | None] = []
    for i, c in enumerate(raw):
        if isinstance(c, str):
            check_length(c, f"candidates[{i}]", MAX_TEXT)
            candidates.append((c, ""))
            seeds.append(None)
            continue
        if not isinstance(c, dict):
            raise RecordError(f"candidates[{i}]", "must be an object with text (or a string)")
        text = c.get("text")
        if not isinstance(text, str):
            raise RecordError(f"candidates[{i}].text", "is missing or not a string")
        check_length(text, f"candidates[{i}].text", MAX_TEXT)
        model = c.get("model", "")
        if model is None:
            model = ""
        if not isinstance(model, str):
            raise RecordError(f"candidates[{i}].model", "must be a string")
        check_length(model, f"candidates[{i}].model", MAX_NAME)
        seed = c.get("seed")
        if seed is not None:
            check_int(seed, f"candidates[{i}].seed")
        candidates.append((text, model))
        seeds.append(seed)
    texts = [t for t, _ in candidates]
    if len(set(texts)) != len(texts):
        raise RecordError("candidates", "two candidates have the same text")
    return candidates, seeds


def _per_candidate_flags(obj: dict[str, Any], n: int) -> list[list[str]] | None:
    flags = expect(obj, "flags", list, "a list with one list of flags per candidate")
    if flags is None:
        return None
    if len(flags) != n:
        raise RecordError("flags", f"has {len(flags)} entries for {n} candidates")
    for i, fl in enumerate(flags):
        if not isinstance(fl, list) or any(f not in FLAGS for f in fl):
            raise RecordError(f"flags[{i}]", f"must be a list of flags from {', '.join(FLAGS)}")
    return flags


def _per_candidate_ratings(obj: dict[str, Any], n: int) -> list[dict[str, int]] | None:
    ratings = expect(obj, "ratings", list, "a list with one {scale: 1-5} object per candidate")
    if ratings is None:
        return None
    if len(ratings) != n:
        raise RecordError("ratings", f"has {len(ratings)} entries for {n} candidates")
    for i, r in enumerate(ratings):
        if r is None:
            ratings[i] = {}
            continue
        if not isinstance(r, dict) or any(
            k not in RATING_SCALES or isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5
            for k, v in r.items()
        ):
            raise RecordError(f"ratings[{i}]", f"must map {' or '.join(RATING_SCALES)} to an integer from 1 to 5")
    return ratings


def _optional_text(obj: dict[str, Any], key: str, limit: int) -> str | None:
    """A text field that, when given, may not be blank."""
    value = expect(obj, key, str, "a string")
    if value is not None and not value.strip():
        raise RecordError(key, "is empty")
    return None if value is None else check_length(value, key, limit)


def _correction(obj: dict[str, Any], n: int, ranked: bool) -> tuple[str | None, int | None]:
    correction = _optional_text(obj, "correction", MAX_TEXT)
    corrected_index = expect(obj, "corrected_index", int, "an integer")
    if corrected_index is not None:
        if correction is None:
            raise RecordError("corrected_index", "given without a correction")
        if not 0 <= corrected_index < n:
            raise RecordError(
                "corrected_index", f"{corrected_index} is out of range: the record has {count(n, 'candidate')}"
            )
    if correction is not None and not ranked:
        raise RecordError("correction", "given without a ranking of the candidates")
    return correction, corrected_index


def parse_record(obj: Any, line: int, default_domain: str | None, *, check_text: bool = True) -> Record:
    """A record of the ``records`` layout (README "Import files"), every field checked."""
    if not isinstance(obj, dict):
        raise RecordError("", f"a record must be a JSON object, not {type(obj).__name__}")
    if check_text:
        check_strings(obj)
    get = obj.get  # fields left out (most are) skip their checks: absent is valid for each
    prompt = get("prompt")
    if type(prompt) is not str:  # (the usual types are taken without a call: expect's result)
        prompt = expect(obj, "prompt", str, "a string")
    if prompt is None or not prompt.strip():
        raise RecordError("prompt", "is missing or empty")
    check_length(prompt, "prompt", MAX_TEXT)
    ext = get("id")
    if type(ext) is not str:
        ext = expect(obj, "id", (str, int), "a string")
    ext = None if ext is None else check_length(str(ext), "id", MAX_NAME)
    if ext is not None and not ext.strip():
        raise RecordError("id", "is empty")
    domain = get("domain")
    if type(domain) is not str:
        domain = expect(obj, "domain", str, "a string")
    domain = check_length(domain or default_domain or "general", "domain", MAX_NAME)
    domain = domain.strip().lower()
    if not domain:
        raise RecordError("domain", "is empty")
    messages = [] if get("messages") is None else _messages(obj)
    candidates, seeds = _candidates(obj)
    if obj.get("ranking") is not None and not candidates and isinstance(obj["ranking"], list):
        raise RecordError("ranking", "given without candidates")
    ranking = _ranks(obj, "ranking", len(candidates))
    gold = None if get("gold_ranking") is None else _ranks(obj, "gold_ranking", len(candidates))
    tutor = get("tutor")
    if type(tutor) is not str or not tutor.strip() or len(tutor) > MAX_NAME:
        tutor = _optional_text(obj, "tutor", MAX_NAME)  # (a usual name: what it returns)
    if get("correction") is None and get("corrected_index") is None:
        correction, corrected_index = None, None
    else:
        correction, corrected_index = _correction(obj, len(candidates), ranking is not None)
    all_bad = False if get("all_bad") is None else expect(obj, "all_bad", bool, "true or false") or False
    strength = None if get("strength") is None else expect(obj, "strength", int, "an integer 1-3")
    if strength is None:
        strength = DEFAULT_STRENGTH
    elif strength not in STRENGTHS:
        raise RecordError("strength", f"{strength} is not one of {sorted(STRENGTHS)}")
    rationale = "" if get("rationale") is None else check_length(
        expect(obj, "rationale", str, "a string") or "", "rationale", MAX_RATIONALE
    )
    flags = None if get("flags") is None else _per_candidate_flags(obj, len(candidates))
    ratings = None if get("ratings") is None else _per_candidate_ratings(obj, len(candidates))
    created_at = None if get("created_at") is None else expect(obj, "created_at", str, "an ISO 8601 time")
    if created_at is not None:
        check_length(created_at, "created_at", MAX_NAME)
    return Record(
        line=line,
        external_id=ext if ext is not None else content_id(domain, messages, prompt),
        prompt=prompt,
        domain=domain,
        messages=messages,
        candidates=candidates,
        ranking=ranking,
        tutor=tutor.strip() if tutor else None,
        correction=correction,
        corrected_index=corrected_index,
        all_bad=all_bad,
        strength=strength,
        rationale=rationale,
        flags=flags,
        gold_ranking=gold,
        ratings=ratings,
        seeds=seeds,
        created_at=created_at,
    )
