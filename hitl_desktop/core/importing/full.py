"""The ``judgments`` layout: our own export read back with every id and its provenance
(core/judgment_records.py), and the plan that writes it.

What is already in the database is reused (prompts, candidates, sessions; tutors by name)
or skipped (judgments, by id); the rest is written batch by batch in the import's one
transaction. Between batches only tutor names are kept.
"""

from __future__ import annotations

from typing import Any

from hitl_desktop.core.importing.base import Layout, ParseContext
from hitl_desktop.core.importing.limits import (
    MAX_NAME,
    check_int,
    check_length,
    check_number,
    shown,
)
from hitl_desktop.core.importing.record import Record, RecordError, parse_record
from hitl_desktop.core.importing.refusals import BadLines, ImportSummary, LineError
from hitl_desktop.core.ranking import without_unchanged_correction
from hitl_desktop.core.store import ORIGINS, Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt, Session, Tutor, now_iso

DEFAULT_TUTOR = "imported"


def _str(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RecordError(key, "is missing or not a string")
    return check_length(value, key, MAX_NAME)


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    """A short optional text field: None, or a string of at most ``MAX_NAME`` characters."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(path, f"must be a string, not {type(value).__name__}")
    return check_length(value, path, MAX_NAME)


def _num(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise RecordError(path, f"must be a number, not {type(value).__name__}")
    return check_int(value, path) if kind is int else check_number(value, path)


def parse_full(obj: dict[str, Any], rec: Record) -> None:
    """The ids and provenance of a ``judgments`` row, checked against the row's candidates."""
    raw = obj.get("candidates")
    if not isinstance(raw, list) or not raw:  # a file read --format judgments may lack them
        raise RecordError("candidates", "is missing (a judgments row holds the candidates it ranked)")
    cands: list[Candidate] = []
    prompt_id = _str(obj, "prompt_id")
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise RecordError(f"candidates[{i}]", "must be an object with id and text")
        params = c.get("params") or {}
        if not isinstance(params, dict):
            raise RecordError(f"candidates[{i}].params", "must be an object")
        cands.append(
            Candidate(
                prompt_id=prompt_id,
                text=c["text"],
                model=c.get("model") or "",
                model_revision=_opt_str(c, "model_revision", f"candidates[{i}].model_revision") or "",
                dtype=_opt_str(c, "dtype", f"candidates[{i}].dtype") or "",
                params=params,
                seed=_num(c, "seed", f"candidates[{i}].seed", int),
                tokens=_num(c, "tokens", f"candidates[{i}].tokens", int),
                seconds=_num(c, "seconds", f"candidates[{i}].seconds", (int, float)),
                index=_num(c, "index", f"candidates[{i}].index", int) or 0,
                id=_str(c, "id") if isinstance(c.get("id"), str) and c["id"] else _missing(f"candidates[{i}].id"),
                created_at=_opt_str(c, "created_at", f"candidates[{i}].created_at") or now_iso(),
            )
        )
    ids = [c.id for c in cands]
    if len(set(ids)) != len(ids):
        raise RecordError("candidates", "two candidates have the same id")
    rec.origins = {}
    for i, c in enumerate(raw):
        origin, set_id = c.get("origin", "imported"), c.get("set_id")
        if origin not in ORIGINS:
            raise RecordError(f"candidates[{i}].origin", f"must be one of {', '.join(ORIGINS)}, not {shown(origin)}")
        if set_id is not None and (not isinstance(set_id, str) or not set_id):
            raise RecordError(f"candidates[{i}].set_id", "must be a string or null")
        if set_id is not None:
            check_length(set_id, f"candidates[{i}].set_id", MAX_NAME)
        rec.origins[ids[i]] = (origin, set_id)
    pseudonymised = obj.get("tutor_pseudonymised", False)
    if not isinstance(pseudonymised, bool):
        raise RecordError("tutor_pseudonymised", "must be true or false")
    rec.pseudonymised = pseudonymised
    order = obj.get("display_order") or []
    if not isinstance(order, list):
        raise RecordError("display_order", "must be a list of candidate ids")
    for i, cid in enumerate(order):
        if cid not in ids:
            raise RecordError(f"display_order[{i}]", f"names candidate {shown(cid)}, which the row does not hold")
        if cid in order[:i]:
            raise RecordError(f"display_order[{i}]", f"names candidate {shown(cid)} twice")
    session = obj.get("session")
    full_session = None
    if session is not None:
        if not isinstance(session, dict):
            raise RecordError("session", "must be an object with id, domain and started_at")
        full_session = Session(
            tutor_id=_str(obj, "tutor_id"),
            domain=_str(session, "domain"),
            guideline_version=_opt_str(session, "guideline_version", "session.guideline_version") or "",
            id=_str(session, "id"),
            started_at=_str(session, "started_at"),
            ended_at=_opt_str(session, "ended_at", "session.ended_at"),
        )
    ext = obj.get("id")
    rec.full_prompt = Prompt(
        text=rec.prompt,
        domain=rec.domain,
        messages=rec.messages,
        external_id=None if ext is None else str(ext),
        source=_opt_str(obj, "prompt_source", "prompt_source") or "",
        parent_judgment_id=_opt_str(obj, "parent_judgment_id", "parent_judgment_id"),
        id=prompt_id,
        created_at=_str(obj, "prompt_created_at"),
    )
    rec.full_candidates = cands
    rec.full_session = full_session
    correction = None
    if rec.correction is not None:
        cid = ids[rec.corrected_index] if rec.corrected_index is not None else None
        correction = Correction(
            text=rec.correction,
            candidate_id=cid,
            id=_str(obj, "correction_id"),
            created_at=_str(obj, "correction_created_at"),
        )
    rec.full = Judgment(
        id=_str(obj, "judgment_id"),
        prompt_id=prompt_id,
        tutor_id=_str(obj, "tutor_id"),
        session_id=full_session.id if full_session else None,
        ranks=dict(zip(ids, rec.ranking or [], strict=True)),
        all_bad=rec.all_bad,
        flags={cid: fl for cid, fl in zip(ids, rec.flags or []) if fl},
        ratings={cid: r for cid, r in zip(ids, rec.ratings or []) if r},
        rationale=rec.rationale,
        strength=rec.strength,
        seconds_spent=_num(obj, "seconds_spent", "seconds_spent", (int, float)),
        display_order=list(order),
        guideline_version=_opt_str(obj, "guideline_version", "guideline_version") or "",
        correction=correction,
        created_at=_str(obj, "created_at"),
        supersedes=_str(obj, "supersedes", required=False),
        source_values=_source_values(obj.get("source_values"), ids),
    )
    if rec.ranking is None:
        raise RecordError("ranking", "is missing (a judgments row is a finished judgment)")


def _source_values(values: Any, ids: list[str]) -> dict[str, Any]:
    """A ``judgments`` row's ``source_values``: {margin: number, scores: {candidate id: number}}."""
    if values is None:
        return {}
    if not isinstance(values, dict) or set(values) - {"margin", "scores"}:
        raise RecordError("source_values", "must be an object with margin and/or scores")
    out: dict[str, Any] = {}

    def number(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(path, "must be a finite number")
        return float(check_number(value, path))

    if "margin" in values:
        out["margin"] = number(values["margin"], "source_values.margin")
    if "scores" in values:
        scores = values["scores"]
        if not isinstance(scores, dict):
            raise RecordError("source_values.scores", "must map candidate ids to numbers")
        for cid in scores:
            if cid not in ids:
                raise RecordError(f"source_values.scores.{cid}", "names a candidate the row does not hold")
        out["scores"] = {cid: number(v, f"source_values.scores.{cid}") for cid, v in scores.items()}
    return out


def _missing(field: str) -> str:
    raise RecordError(field, "is missing or not a string")


class FullPlan:
    """Insert ``judgments`` rows with their own ids, batch by batch."""

    def __init__(self, store: Store, path: str, default_tutor: str, summary: ImportSummary) -> None:
        self.store = store
        self.summary = summary
        self._tutors = {t.name: t.id for t in store.tutors()}
        self._new: dict[str, list] = {}

    def add_batch(self, records: list[Record], errors: BadLines) -> None:
        """Check a batch against the database (earlier batches included) and plan its rows."""
        store, s, tutors = self.store, self.summary, self._tutors
        have = {
            t: store.existing_ids(t, ids)
            for t, ids in (
                ("prompts", {r.full_prompt.id for r in records}),
                ("candidates", {c.id for r in records for c in r.full_candidates}),
                ("judgments", {r.full.id for r in records}),
                ("sessions", {r.full_session.id for r in records if r.full_session}),
            )
        }
        by_ext = store.prompt_ids_by_external_id({r.full_prompt.external_id for r in records if r.full_prompt.external_id})
        new: dict[str, list] = {"prompts": [], "candidates": [], "judgments": [], "sessions": [], "tutors": [],
                                "pseudonyms": [], "origins": {}}  # fmt: skip
        self._new = new
        for rec in records:
            s.records += 1
            p, j = rec.full_prompt, rec.full
            ext_owner = by_ext.get(p.external_id) if p.external_id else None
            if ext_owner is not None and ext_owner != p.id:
                errors.append(LineError(rec.line, "id", f"{shown(p.external_id)} already names another prompt"))
                continue
            name = rec.tutor or DEFAULT_TUTOR
            if name not in tutors:
                tutors[name] = j.tutor_id
                new["tutors"].append(Tutor(name=name, id=j.tutor_id))
                if rec.pseudonymised:
                    new["pseudonyms"].append(j.tutor_id)
                s.tutors += 1
            j.tutor_id = tutors[name]
            if rec.full_session is not None:
                rec.full_session.tutor_id = j.tutor_id
            if j.id in have["judgments"]:
                s.judgments_skipped += 1
                continue
            have["judgments"].add(j.id)
            for table, rows in (("prompts", [p]), ("sessions", [rec.full_session] if rec.full_session else []),
                                ("candidates", rec.full_candidates)):  # fmt: skip
                for row in rows:
                    if row.id not in have[table]:
                        have[table].add(row.id)
                        new[table].append(row)
                        if table == "prompts":
                            s.prompts += 1
                            s.domains[p.domain] = s.domains.get(p.domain, 0) + 1
                            if p.external_id:
                                by_ext[p.external_id] = p.id
                        elif table == "candidates":
                            s.candidates += 1
                            new["origins"][row.id] = rec.origins[row.id]
                    elif table == "prompts" and row is p:
                        s.prompts_reused += 1
            j = without_unchanged_correction(j, rec.full_candidates)
            if rec.correction is not None and j.correction is None:
                s.corrections_ignored += 1
            s.corrections += j.correction is not None
            new["judgments"].append(j)
            s.judgments += 1

    def write(self) -> None:
        new = self._new
        if not new:
            return
        self.store.bulk_insert(
            tutors=new["tutors"],
            sessions=new["sessions"],
            prompts=new["prompts"],
            candidates=new["candidates"],
            judgments=new["judgments"],
            candidate_origins=new["origins"],
            pseudonymised=new["pseudonyms"],
        )
        self._new = {}

    def close(self) -> None:
        """Nothing to drop: this plan makes no table of its own."""


def _parse(obj: Any, line: int, ctx: ParseContext) -> Record:
    rec = parse_record(obj, line, ctx.default_domain, check_text=False)
    parse_full(obj, rec)
    return rec


LAYOUT = Layout("judgments", lambda obj: "judgment_id" in obj and "candidates" in obj, _parse, FullPlan)
