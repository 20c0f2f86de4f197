"""Judged items read from the store in bounded batches, oldest first or a prompt at a time.

``Store.judged_items`` reads every selected judgment before it yields the first; a lab's
export, stats and dashboard need the same items with flat memory. These readers run the same
selection (filters by domain, tutor name and time, re-judged versions left out; the item's
domain is its session's, else its prompt's: the store's ``JudgedItemsQuery`` where the store
has one) through ``store.db`` and build the items of at most ``BATCH`` judgments at a time.
(An adapter: it belongs with the store's judged-items query and uses the store's row
mappings, so a new judgment field is still read in one place.)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hitl_desktop.core.store import Store

try:  # the store as a package (issue 16): its one judged-items query and row mappings
    from hitl_desktop.core.store.base import CURRENT_JUDGMENT
    from hitl_desktop.core.store.query import JudgedItemsQuery
    from hitl_desktop.core.store.rows import CANDIDATE_COLUMNS, PROMPT_COLUMNS
    from hitl_desktop.core.store.rows import loads as _loads
    from hitl_desktop.core.store.rows import row_to_candidate as _row_to_candidate
    from hitl_desktop.core.store.rows import row_to_prompt as _row_to_prompt
except ImportError:  # store.py in one module: the same names, private there
    from hitl_desktop.core.store import _CANDIDATE_COLUMNS as CANDIDATE_COLUMNS
    from hitl_desktop.core.store import _CURRENT_JUDGMENT as CURRENT_JUDGMENT
    from hitl_desktop.core.store import _PROMPT_COLUMNS as PROMPT_COLUMNS
    from hitl_desktop.core.store import _loads, _row_to_candidate, _row_to_prompt

    JudgedItemsQuery = None
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment, Prompt

_NO_FLAGS = frozenset({None, "", "[]"})
_NO_RATINGS = frozenset({None, "", "{}"})

#: Judgments per batch (the ids of one "in (...)" query).
BATCH = 500


@dataclass(frozen=True)
class Filters:
    """Which judgments: tutor by name, ``since``/``until`` ISO dates or times (UTC)."""

    domain: str | None = None
    tutor: str | None = None
    since: str | None = None
    until: str | None = None

    def any(self) -> bool:
        return any((self.domain, self.tutor, self.since, self.until))


def _columns(store: Store, table: str) -> set[str]:
    return {r[1] for r in store.db.conn.execute(f"pragma table_info([{table}])")}


class JudgedReader:
    """The store's judged items under ``filters``, read in batches (see the module docstring)."""

    def __init__(self, store: Store, filters: Filters = Filters(), *, extra_where: Sequence[str] = ()) -> None:
        self.store = store
        cols = _columns(store, "judgments")
        self._supersedes = "supersedes" in cols
        self._source_values = "source_values" in cols
        self.args: list[Any]
        if JudgedItemsQuery is not None:  # the store's own judged-items query
            query = JudgedItemsQuery(domain=filters.domain, tutor=filters.tutor, since=filters.since, until=filters.until)
            base, self.args = query.sql(lab_schema=self._supersedes)
            self.base = " and ".join([base, *extra_where])
            return
        conds = [
            ("coalesce(s.domain, p.domain) = ?", filters.domain),
            ("t.name = ?", filters.tutor),
            ("j.created_at >= ?", filters.since),
            ("j.created_at < ?", filters.until),
        ]
        where = ["1=1", *(sql for sql, value in conds if value), *extra_where]
        if self._supersedes:
            where.append(CURRENT_JUDGMENT)
        self.args = [value for _, value in conds if value]
        self.base = (
            "from judgments j join prompts p on p.id = j.prompt_id "
            "join tutors t on t.id = j.tutor_id left join sessions s on s.id = j.session_id "
            "where " + " and ".join(where)
        )

    def _scalar(self, sql: str) -> int:
        return int(self.store.db.conn.execute(sql, self.args).fetchone()[0] or 0)

    def count(self) -> int:
        """How many judgments are selected."""
        return self._scalar(f"select count(*) {self.base}")

    def prompts(self) -> int:
        """How many prompts they judge."""
        return self._scalar(f"select count(distinct j.prompt_id) {self.base}")

    def several_tutor_prompts(self, *, consensus_tutor: str) -> int:
        """How many prompts two or more tutors (the consensus pseudo-tutor aside) judged."""
        sql = (
            f"select count(*) from (select j.prompt_id {self.base} and t.name != ? "
            "group by j.prompt_id having count(distinct j.tutor_id) >= 2)"
        )
        return int(self.store.db.conn.execute(sql, [*self.args, consensus_tutor]).fetchone()[0] or 0)

    # -- streams ----------------------------------------------------------------------------

    def batches(self, *, by_prompt: bool = False, on_read: Callable[[int], None] | None = None) -> Iterator[list[JudgedItem]]:
        """Lists of at most about BATCH items. Oldest first (as ``Store.judged_items``); with
        ``by_prompt`` a prompt's judgments together (oldest first) and never split between two
        batches, prompts in the order their first judgment appears in the oldest-first order.
        ``on_read(n)``: n more judgments read."""
        if by_prompt:
            sql = (
                "select rid, prompt_id from (select j.rowid as rid, j.prompt_id as prompt_id, "
                "j.created_at as created_at, first_value(j.created_at) over w as fc, "
                f"first_value(j.rowid) over w as fr {self.base} "
                "window w as (partition by j.prompt_id order by j.created_at, j.rowid)) "
                "order by fc, fr, created_at, rid"
            )
        else:
            sql = f"select j.rowid, j.prompt_id {self.base} order by j.created_at, j.rowid"
        cur = self.store.db.conn.execute(sql, self.args)
        try:
            batch: list[int] = []
            last = None
            while rows := cur.fetchmany(BATCH):
                for rid, pid in rows:
                    if len(batch) >= BATCH and (not by_prompt or pid != last):
                        yield self._items(batch)
                        if on_read is not None:
                            on_read(len(batch))
                        batch = []
                    batch.append(rid)
                    last = pid
            if batch:
                yield self._items(batch)
                if on_read is not None:
                    on_read(len(batch))
        finally:
            with contextlib.suppress(sqlite3.ProgrammingError):  # the store was closed first
                cur.close()

    def items(self, **kwargs: Any) -> Iterator[JudgedItem]:
        for batch in self.batches(**kwargs):
            yield from batch

    def _in(self, sql: str, ids: Sequence[Any]) -> list[tuple]:
        return self.store.db.conn.execute(sql.format(marks=",".join("?" * len(ids))), list(ids)).fetchall()

    def _items(self, rowids: list[int]) -> list[JudgedItem]:
        """The judged items of these judgments (rowids), in this order."""
        jrows = self._in(
            "select j.rowid, j.id, j.prompt_id, j.tutor_id, j.session_id, j.all_bad, j.rationale, j.strength, "
            "j.seconds_spent, j.display_order, j.guideline_version, j.created_at, t.name, "
            "coalesce(s.domain, p.domain), " + ("j.supersedes, " if self._supersedes else "null, ")
            + ("j.source_values " if self._source_values else "null ")
            + "from judgments j join prompts p on p.id = j.prompt_id join tutors t on t.id = j.tutor_id "
            "left join sessions s on s.id = j.session_id where j.rowid in ({marks})",
            rowids,
        )
        by_rowid = {r[0]: r for r in jrows}
        jids = [r[1] for r in jrows]
        pids = sorted({r[2] for r in jrows})
        ranks: dict[str, list[tuple]] = defaultdict(list)
        for r in self._in(
            "select judgment_id, candidate_id, rank, flags, ratings from rankings where judgment_id in ({marks})", jids
        ):
            ranks[r[0]].append(r)
        corrections = {
            r[0]: Correction(id=r[1], text=r[2], candidate_id=r[3], created_at=r[4])
            for r in self._in(
                "select judgment_id, id, text, candidate_id, created_at from corrections where judgment_id in ({marks})",
                jids,
            )
        }
        prompts: dict[str, Prompt] = {
            r[0]: _row_to_prompt(r) for r in self._in(f"select {PROMPT_COLUMNS} from prompts where id in ({{marks}})", pids)
        }
        gold = self.store.gold_rankings(pids)
        for p in prompts.values():
            p.gold_ranking = gold.get(p.id)
        cands: dict[str, list[Candidate]] = defaultdict(list)
        for r in self._in(
            f"select {CANDIDATE_COLUMNS} from candidates where prompt_id in ({{marks}}) order by prompt_id, idx, created_at",
            pids,
        ):
            cands[r[1]].append(_row_to_candidate(r))
        out = []
        for rid in rowids:
            (_, jid, prompt_id, tutor_id, session_id, all_bad, rationale, strength, seconds_spent, display_order,
             guideline_version, created_at, tutor_name, item_domain, supersedes, source_values) = by_rowid[rid]  # fmt: skip
            rr = ranks.get(jid, ())
            judgment = Judgment(
                id=jid,
                prompt_id=prompt_id,
                tutor_id=tutor_id,
                session_id=session_id,
                ranks={cid: rank for _, cid, rank, _, _ in rr},
                all_bad=bool(all_bad),
                # most candidates have no flags and no ratings: those skip the parser
                flags={cid: f for _, cid, _, flags, _ in rr if flags not in _NO_FLAGS and (f := _loads(flags, []))},
                ratings={cid: g for _, cid, _, _, ratings in rr
                         if ratings not in _NO_RATINGS and (g := _loads(ratings, {}))},  # fmt: skip
                rationale=rationale or "",
                strength=strength if strength is not None else 2,
                seconds_spent=seconds_spent,
                display_order=_loads(display_order, []),
                guideline_version=guideline_version or "",
                correction=corrections.get(jid),
                created_at=created_at,
                supersedes=supersedes,
                source_values=_loads(source_values, {}),
            )
            out.append(
                JudgedItem(
                    judgment=judgment,
                    prompt=prompts[prompt_id],
                    candidates=[c for c in cands.get(prompt_id, ()) if c.id in judgment.ranks],
                    tutor_name=tutor_name,
                    domain=item_domain,
                )
            )
        return out
