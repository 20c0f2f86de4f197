"""Many records in one transaction: the write path of an import (and of a pack being built).

Rows go to ``executemany`` as plain tuples in fixed column orders (no dict per row): the
values are exactly those of ``rows.py``'s ``*_to_row`` / ``judgment_rows``, which the other
write paths use (tests/core/test_import_snapshot.py holds the database an import writes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.rows import dumps
from hitl_desktop.core.types import Candidate, Judgment, Prompt, Session, Tutor

#: The columns of the candidate and judgment rows of ``insert_rows``, in order.
_CANDIDATE = ("id", "prompt_id", "idx", "text", "model", "model_revision", "dtype", "params", "seed",
              "tokens", "seconds", "created_at")  # fmt: skip
_JUDGMENT = ("id", "prompt_id", "tutor_id", "session_id", "all_bad", "rationale", "strength", "seconds_spent",
             "display_order", "guideline_version", "created_at", "supersedes", "source_values",
             "departs_from_scores")  # fmt: skip
_PROMPT = ("id", "text", "domain", "messages", "external_id", "source", "parent_judgment_id", "gold_ranking",
           "created_at")  # fmt: skip
_RANKING = ("judgment_id", "candidate_id", "rank", "flags", "ratings")
_CORRECTION = ("id", "judgment_id", "candidate_id", "text", "created_at")
CANDIDATE_COLUMNS, JUDGMENT_COLUMNS, RANKING_COLUMNS, CORRECTION_COLUMNS = _CANDIDATE, _JUDGMENT, _RANKING, _CORRECTION

#: What ``json.dumps(..., ensure_ascii=False)`` escapes in a string (and nothing else)
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def ids_json(ids: list[str]) -> str:
    """``dumps(ids)`` of a list of ids: joined directly when no id holds a character JSON
    escapes (ids are UUIDs), else through the encoder."""
    if ids and all(type(i) is str for i in ids) and _ESCAPED.search("".join(ids)) is None:
        return '["' + '","'.join(ids) + '"]'
    return dumps(ids)


#: An import's scratch table (core/importing/plan.py): external id -> the line of the file
#: that first named it. In the connection's temp database (a temporary file, not the
#: database, not memory), so that an import's memory does not grow with its file.
FIRST_LINES = "temp.hitl_import_first_lines"


class Bulk(StoreBase):
    """``bulk_insert``: tutors, sessions, prompts, candidates, judgments and gold ranks at once;
    an import's first lines (``first_lines_*``)."""

    def first_lines_begin(self) -> None:
        """Make the import's (empty) first-lines table, inside its transaction: a rolled-back
        import leaves none."""
        self.db.conn.execute(
            "create temp table if not exists hitl_import_first_lines "
            "(external_id text primary key, line integer not null) without rowid"
        )
        self.db.conn.execute(f"delete from {FIRST_LINES}")

    def first_lines_of(self, external_ids: Iterable[str]) -> dict[str, int]:
        """external id -> first line, for those of ``external_ids`` an earlier batch recorded."""
        sql = f"select external_id, line from {FIRST_LINES} where external_id in ({{marks}})"
        return dict(self._rows_in(sql, external_ids))

    def first_lines_add(self, rows: list[tuple[str, int]]) -> None:
        """Record (external id, line) pairs (ids not recorded yet)."""
        if rows:
            self.db.conn.executemany(f"insert into {FIRST_LINES} (external_id, line) values (?, ?)", rows)

    def first_lines_end(self) -> None:
        """Drop the table (after the import's transaction, committed or rolled back)."""
        self.db.conn.execute(f"drop table if exists {FIRST_LINES}")

    def bulk_insert(
        self,
        *,
        tutors: Sequence[Tutor] = (),
        sessions: Sequence[Session] = (),
        prompts: Sequence[Prompt] = (),
        candidates: Sequence[Candidate] = (),
        judgments: Sequence[Judgment] = (),
        gold_rankings: Mapping[str, Mapping[str, int]] | None = None,
        candidate_origins: Mapping[str, tuple[str, str | None]] | None = None,
        pseudonymised: Iterable[str] = (),
    ) -> None:
        """Insert many records in ONE transaction: all of them, or (on any error) none.

        Gold ranks: the new prompts' ``gold_ranking`` and ``gold_rankings`` (prompt id ->
        candidate id -> rank) for prompts already stored. ``candidate_origins``: candidate id
        -> (origin, set id) (default: ``imported``, the prompt's own set). ``pseudonymised``:
        ids of the new tutors whose names are already pseudonyms (``m0006_source_values``)."""
        marked = set(pseudonymised)
        if marked:
            tutor_cols: tuple[str, ...] = ("id", "name", "domains", "created_at", "pseudonymised")
            tutor_rows = [(t.id, t.name, dumps(t.domains), t.created_at, int(t.id in marked)) for t in tutors]
        else:
            tutor_cols = ("id", "name", "domains", "created_at")
            tutor_rows = [(t.id, t.name, dumps(t.domains), t.created_at) for t in tutors]
        session_rows = [(x.id, x.tutor_id, x.domain, x.guideline_version, x.started_at, x.ended_at) for x in sessions]
        cand_rows: list[tuple] = [
            (c.id, c.prompt_id, c.index, c.text, c.model, c.model_revision, c.dtype,
             dumps(c.params) if c.params else "{}" if type(c.params) is dict else dumps(c.params),
             c.seed, c.tokens, c.seconds, c.created_at)
            for c in candidates
        ]  # fmt: skip
        cand_cols = _CANDIDATE
        if candidate_origins:
            cand_cols = (*_CANDIDATE, "origin", "set_id")
            default = ("imported", None)
            cand_rows = [(*row, *candidate_origins.get(row[0], default)) for row in cand_rows]
        judgment_list: list[tuple] = []
        rankings: list[tuple] = []
        corrections: list[tuple] = []
        for j in judgments:
            jid, flags, ratings = j.id, j.flags, j.ratings
            judgment_list.append(
                (jid, j.prompt_id, j.tutor_id, j.session_id, int(j.all_bad), j.rationale, j.strength,
                 j.seconds_spent, ids_json(j.display_order), j.guideline_version, j.created_at, j.supersedes,
                 dumps(j.source_values) if j.source_values else None,
                 None if j.departs_from_scores is None else int(j.departs_from_scores))
            )  # fmt: skip
            if not flags and not ratings:
                rankings.extend([(jid, cid, rank, "[]", "{}") for cid, rank in j.ranks.items()])
            else:
                rankings.extend(
                    [(jid, cid, rank, dumps(flags.get(cid, [])), dumps(ratings.get(cid, {})))
                     for cid, rank in j.ranks.items()]
                )  # fmt: skip
            c = j.correction
            if c is not None:
                corrections.append((c.id, jid, c.candidate_id, c.text, c.created_at))
        self._write(
            (tutor_cols, tutor_rows), session_rows, prompts, (cand_cols, cand_rows), judgment_list, rankings,
            corrections, gold_rankings,
        )  # fmt: skip

    def insert_rows(
        self,
        *,
        tutors: Sequence[Tutor],
        prompts: Sequence[Prompt],
        candidates: list[tuple],
        judgments: list[tuple],
        rankings: list[tuple],
        corrections: list[tuple],
        gold_rankings: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """``bulk_insert`` for an import's plan (core/importing/plan.py), which builds the
        candidate, judgment, ranking and correction rows itself, as tuples in the column
        orders of ``bulk_insert`` (``CANDIDATE_COLUMNS``, ``JUDGMENT_COLUMNS``...): the values
        ``bulk_insert`` would have made of the same records. One transaction (or savepoint)."""
        tutor_rows = [(t.id, t.name, dumps(t.domains), t.created_at) for t in tutors]
        self._write(
            (("id", "name", "domains", "created_at"), tutor_rows), [], prompts, (_CANDIDATE, candidates), judgments,
            rankings, corrections, gold_rankings,
        )  # fmt: skip

    def _write(
        self,
        tutors: tuple[Sequence[str], list[tuple]],
        sessions: list[tuple],
        prompts: Sequence[Prompt],
        candidates: tuple[Sequence[str], list[tuple]],
        judgments: list[tuple],
        rankings: list[tuple],
        corrections: list[tuple],
        gold_rankings: Mapping[str, Mapping[str, int]] | None,
    ) -> None:
        """The rows of ``bulk_insert`` / ``insert_rows`` (the prompts' made here), in one
        transaction (or savepoint), tables in the order their foreign keys need."""
        prompt_rows = [
            (p.id, p.text, p.domain, dumps([m.to_dict() for m in p.messages]) if p.messages else "[]",
             p.external_id, p.source, p.parent_judgment_id, None, p.created_at)
            for p in prompts
        ]  # fmt: skip
        gold = [(p.id, cid, r) for p in prompts if p.gold_ranking for cid, r in p.gold_ranking.items()]
        gold += [(pid, cid, r) for pid, g in (gold_rankings or {}).items() for cid, r in dict(g).items()]
        with self.db.atomic():
            self._insert_tuples("tutors", *tutors)
            self._insert_tuples("sessions", ("id", "tutor_id", "domain", "guideline_version", "started_at", "ended_at"), sessions)
            self._insert_tuples("prompts", _PROMPT, prompt_rows)
            self._insert_tuples("candidates", *candidates)
            self._insert_tuples("judgments", _JUDGMENT, judgments)
            self._insert_tuples("rankings", _RANKING, rankings)
            self._insert_tuples("corrections", _CORRECTION, corrections)
            self._insert_tuples("gold_rankings", ("prompt_id", "candidate_id", "rank"), gold)

    def _insert_tuples(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """``executemany`` of rows that are already SQL values, in ``columns``' order."""
        if rows:
            sql = f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) values ({', '.join('?' * len(columns))})"
            self.db.conn.executemany(sql, rows)
