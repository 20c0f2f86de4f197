"""The plan that writes records (the ``records``, pair and Nectar layouts, and CSV): prompts,
candidates, tutors, judgments and gold rankings, batch by batch.

A batch's records are checked against the database and the file's earlier records (an id
names one prompt: same text, same earlier turns, one gold ranking; candidates matched by
text; one judgment per prompt and tutor, or per pair row), then written with
``Store.bulk_insert`` inside the import's one transaction (``import_file``). Between batches
only the tutors' names are kept in memory: the line each prompt was first seen on (and which
prompts of the database the file reused) goes to a scratch table in the connection's temp
database (``Store.first_lines_*``), and what a later batch needs of an earlier one it reads
back from the database, so an import's memory does not grow with its file.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from hitl_desktop.core.importing.record import Record, RecordError
from hitl_desktop.core.importing.refusals import BadLines, ImportSummary, LineError
from hitl_desktop.core.ranking import is_unchanged_correction
from hitl_desktop.core.store import Store
from hitl_desktop.core.store.bulk import ids_json
from hitl_desktop.core.store.rows import dumps
from hitl_desktop.core.types import Prompt, Tutor, new_id, now_iso

#: Namespace of imported judgments' ids (uuid5 of the prompt's external id and the tutor name).
IMPORT_NAMESPACE = uuid.UUID("3d0c8f7e-5a1b-5e2c-8f4d-9b6a7c2e1f30")

#: ``json.dumps(value, ensure_ascii=False)`` without an encoder per call (ids hash it)
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def imported_judgment_id(external_id: str, tutor: str) -> str:
    """The id of a tutor's imported judgment of a prompt: the same on every workstation that
    imports that record, so a merge of their databases keeps one copy (as an import does).

    ``str(uuid.uuid5(IMPORT_NAMESPACE, name))``, computed without a UUID object per call."""
    if type(external_id) is str and type(tutor) is str and _ESCAPED.search(external_id + tutor) is None:
        return _uuid5(f'["{external_id}", "{tutor}"]')  # what _to_json writes for them
    return _uuid5(_to_json([external_id, tutor]))


#: What ``_to_json`` escapes in a string (and nothing else)
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(IMPORT_NAMESPACE, name))`` (RFC 4122: SHA-1, version 5, its variant),
    from the digest's hex: the version digit made 5, the variant digit's top bits 10."""
    x = hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[int(x[16], 16)]}{x[17:20]}-{x[20:32]}"


#: hex digit -> the same digit with its top two bits made 10 (the RFC 4122 variant)
_VARIANT = "89ab89ab89ab89ab"


class RecordPlan:
    """What a file's records add to the store, worked out and written batch by batch.

    The rows are built as tuples straight from the records (no ``Candidate`` or ``Judgment``
    per row), with exactly the values ``Store.bulk_insert`` writes for those objects, and
    their ids and times made in the same order (tests/core/test_import_snapshot.py)."""

    def __init__(self, store: Store, path: str, default_tutor: str, summary: ImportSummary) -> None:
        self.store = store
        self.source = Path(path).name
        self.default_tutor = default_tutor
        self.summary = summary
        self._tutors: dict[str, str] = {t.name: t.id for t in store.tutors()}
        self._had_prompts: bool | None = None  # whether the database held prompts before the file
        self._start_batch()

    def _start_batch(self) -> None:
        self.new_tutors: list[Tutor] = []
        self.new_prompts: list[Prompt] = []
        self.new_candidates: list[tuple] = []  # rows: bulk.CANDIDATE_COLUMNS
        self.new_judgments: list[tuple] = []  # rows: bulk.JUDGMENT_COLUMNS
        self.new_rankings: list[tuple] = []
        self.new_corrections: list[tuple] = []
        self.gold_for_existing: dict[str, dict[str, int]] = {}
        self._prompts: dict[str, tuple[Prompt, int, bool]] = {}  # external id -> (prompt, line, stored)
        self._cands: dict[str, dict[str, tuple[str, str]]] = {}  # prompt id -> text -> (candidate id, model)
        self._next_index: dict[str, int] = {}  # prompt id -> idx of its next new candidate
        self._judged: set[tuple[str, str]] = set()  # (prompt id, tutor id) already judged
        self._existing_judgments: set[str] = set()
        self._by_model: dict[tuple[str, str, str], tuple[str, str]] = {}  # (prompt id, text, model)
        #: external id -> the line an earlier batch first saw it on (0: a prompt of the
        #: database this file reuses, counted already), for the batch's ids
        self._lines: dict[str, int] = {}
        self._counted: set[str] = set()  # prompts of the database this batch counted as reused
        self.new_lines: list[tuple[str, int]] = []  # (external id, line) for the first-lines table

    def add_batch(self, records: list[Record], errors: BadLines) -> None:
        """Check a batch and plan its rows; a bad record adds its line to ``errors``."""
        if self._had_prompts is None:  # asked inside the import's transaction
            self._had_prompts = self.store.db.execute("select exists (select 1 from prompts)").fetchone()[0] == 1
            self.store.first_lines_begin()
        named = {r.external_id for r in records if r.external_id is not None}
        self._lines = self.store.first_lines_of(named) if named else {}
        # a prompt the batch names is in the database only if it was there before the file, or
        # an earlier batch of the file added it
        ext_ids = named if self._had_prompts else set(self._lines)
        self._load_existing(sorted(ext_ids), [r.judgment_key for r in records if r.judgment_key is not None])
        for rec in records:
            try:
                self.add(rec)
            except RecordError as e:
                errors.append(LineError(rec.line, e.field, e.message))

    def write(self) -> None:
        """Write the planned batch (inside the import's transaction) and forget it."""
        self.store.insert_rows(
            tutors=self.new_tutors,
            prompts=self.new_prompts,
            candidates=self.new_candidates,
            judgments=self.new_judgments,
            rankings=self.new_rankings,
            corrections=self.new_corrections,
            gold_rankings=self.gold_for_existing,
        )
        self.store.first_lines_add(self.new_lines)
        self._start_batch()

    def close(self) -> None:
        """Drop the first-lines table the first batch made (``Plan.close``)."""
        if self._had_prompts is not None:
            self.store.first_lines_end()

    def _load_existing(self, ext_ids: list[str], row_keys: list[str]) -> None:
        """Bring in the prompts of the database (earlier batches' included) that the batch's
        ids name (a few queries in all)."""
        found = self.store.prompts_by_external_id(ext_ids) if ext_ids else {}
        pids = [prompt.id for prompt in found.values()]
        for ext, prompt in found.items():
            self._prompts[ext] = (prompt, self._lines.get(ext, 0), True)
        for pid, cands in self.store.candidates_by_prompt(pids).items():
            by_text = self._cands[pid] = {}
            for c in cands:
                key = (c.id, c.model)
                by_text.setdefault(c.text, key)
                self._by_model.setdefault((pid, c.text, c.model), key)
            self._next_index[pid] = max((c.index for c in cands), default=-1) + 1
        if pids:
            self._judged |= self.store.judging_tutor_ids(pids)
        self._existing_judgments = self.store.existing_ids("judgments", row_keys) if row_keys else set()

    def add(self, rec: Record) -> None:
        s = self.summary
        s.records += 1
        known = self._prompts.get(rec.external_id) if rec.external_id is not None else None
        where = ""
        if known is not None:
            prompt, first_line, _stored = known
            where = f"line {first_line}" if first_line else "the database"
            if prompt.text != rec.prompt:
                raise RecordError("prompt", f"id {rec.external_id!r} has another prompt text in {where}")
            if (prompt.messages or rec.messages) and [m.to_dict() for m in prompt.messages] != [
                m.to_dict() for m in rec.messages
            ]:
                raise RecordError("messages", f"id {rec.external_id!r} has other earlier turns in {where}")
            ext = rec.external_id
            if first_line == 0 and ext not in self._lines and ext not in self._counted:
                self._counted.add(ext)  # a prompt of the database, reused: counted once
                self.new_lines.append((ext, 0))
                s.prompts_reused += 1
        else:
            prompt = Prompt(
                text=rec.prompt,
                domain=rec.domain,
                messages=rec.messages,
                external_id=rec.external_id,
                source=self.source,
            )
            self.new_prompts.append(prompt)
            self._cands[prompt.id] = {}
            self._next_index[prompt.id] = 0
            if rec.external_id is not None:
                self._prompts[rec.external_id] = (prompt, rec.line, False)
                self.new_lines.append((rec.external_id, rec.line))
            s.prompts += 1
            s.domains[prompt.domain] = s.domains.get(prompt.domain, 0) + 1

        pid = prompt.id
        by_text = self._cands[pid]
        row_key = rec.judgment_key
        ids: list[str] = []
        new_candidates = self.new_candidates
        for (text, model), seed in zip(rec.candidates, rec.seeds or [None] * len(rec.candidates), strict=True):
            cand = by_text.get(text)
            if cand is not None and row_key is not None and cand[1] != model:
                # a pair / Nectar row: the same text from another model (or another tutor's
                # identical correction) is its own candidate, so its model is not lost
                cand = self._by_model.get((pid, text, model))
            if cand is None:
                index = self._next_index[pid]
                self._next_index[pid] = index + 1
                cid = new_id()  # a Candidate's id, then its time
                new_candidates.append((cid, pid, index, text, model, "", "", "{}", seed, None, None, now_iso()))
                cand = (cid, model)
                by_text.setdefault(text, cand)
                self._by_model[(pid, text, model)] = cand
                s.candidates += 1
            ids.append(cand[0])
        if rec.gold_ranking is not None:
            # gold ranks go to the candidates' ids, never positions (table gold_rankings)
            gold = dict(zip(ids, rec.gold_ranking))
            if prompt.gold_ranking is not None and prompt.gold_ranking != gold:
                raise RecordError(
                    "gold_ranking", f"id {rec.external_id!r} has another gold ranking in {where}"
                )
            if prompt.gold_ranking is None and known is not None and known[2]:  # stored
                self.gold_for_existing[prompt.id] = gold  # a prompt already in the database
            prompt.gold_ranking = gold

        if rec.ranking is None:
            s.queued += 1
            return
        tutor = rec.tutor or self.default_tutor
        tutor_id = self._tutor_id(tutor)
        # a record: one judgment per prompt and tutor; a pair or Nectar row: its own judgment
        judged_key = (pid, row_key or tutor_id)
        if judged_key in self._judged or row_key in self._existing_judgments:
            s.judgments_skipped += 1
            return
        self._judged.add(judged_key)
        judgment_id = row_key or imported_judgment_id(prompt.external_id or pid, tutor)
        if (
            rec.correction is not None
            and rec.corrected_index is not None
            and is_unchanged_correction(rec.candidates[rec.corrected_index][0], rec.correction)
        ):
            s.corrections_ignored += 1  # equal to the candidate it corrects: no correction
        elif rec.correction is not None:
            corrected = ids[rec.corrected_index] if rec.corrected_index is not None else None
            self.new_corrections.append(
                (_uuid5(f"{judgment_id}:correction"), judgment_id, corrected, rec.correction, now_iso())
            )
            s.corrections += 1
        values = _by_candidate(rec.source_values, ids)
        self.new_judgments.append(
            (judgment_id, pid, tutor_id, None, int(rec.all_bad), rec.rationale, rec.strength, None, ids_json(ids), "",
             rec.created_at or now_iso(), None, dumps(values) if values else None, None)
        )  # fmt: skip
        ranks = dict(zip(ids, rec.ranking))
        flags = {cid: fl for cid, fl in zip(ids, rec.flags) if fl} if rec.flags else None
        ratings = {cid: r for cid, r in zip(ids, rec.ratings) if r} if rec.ratings else None
        if not flags and not ratings:
            self.new_rankings.extend([(judgment_id, cid, rank, "[]", "{}") for cid, rank in ranks.items()])
        else:
            flags, ratings = flags or {}, ratings or {}
            self.new_rankings.extend(
                [(judgment_id, cid, rank, dumps(flags.get(cid, [])), dumps(ratings.get(cid, {})))
                 for cid, rank in ranks.items()]
            )  # fmt: skip
        s.judgments += 1

    def _tutor_id(self, name: str) -> str:
        tid = self._tutors.get(name)
        if tid is None:
            tutor = Tutor(name=name)
            self.new_tutors.append(tutor)
            self._tutors[name] = tid = tutor.id
            self.summary.tutors += 1
        return tid


def _by_candidate(values: dict[str, Any] | None, ids: list[str]) -> dict[str, Any]:
    """A row's source values with its scores (by position) given to its candidates' ids."""
    if not values:
        return {}
    out = dict(values)
    if "scores" in out:
        out["scores"] = dict(zip(ids, out["scores"], strict=True))
    return out
