"""The lab's tables: gold ranks, a lead's adjudications, and the raw rows a merge moves."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hitl_desktop.core.dbfile import StoreError
from hitl_desktop.core.migrations import gold_rows_from_positions
from hitl_desktop.core.rubric_store import RUBRIC_TABLES
from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.rows import dumps, gold_rows, loads
from hitl_desktop.core.types import Adjudication, Prompt

#: The tables a merge brings over, parents before children (foreign keys hold at each step).
MERGE_TABLES: tuple[str, ...] = (
    "tutors",
    "sessions",
    "prompts",
    "candidates",
    "judgments",
    "rankings",
    "corrections",
    "gold_rankings",
    "guidelines",
    "adjudications",
    *RUBRIC_TABLES,
)


class Lab(StoreBase):
    """Tables ``gold_rankings`` and ``adjudications``, and every merge table's rows as stored.

    Merging (core/merging.py) works on raw rows (dicts with the columns as stored), so that
    every column travels unchanged."""

    MERGE_TABLES = MERGE_TABLES

    # -- gold items: reference ranks against candidate ids (table gold_rankings) ------------

    def _with_gold(self, prompts: list[Prompt]) -> list[Prompt]:
        """Fill each prompt's ``gold_ranking`` (candidate id -> rank) from gold_rankings."""
        gold = self.gold_rankings(p.id for p in prompts)
        for p in prompts:
            p.gold_ranking = gold.get(p.id)
        return prompts

    def gold_rankings(self, prompt_ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """prompt id -> {candidate id: gold rank}, for the given prompts (default: all)."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        rows: Iterable[tuple]
        if not self.has_table("gold_rankings"):
            # a database from before m0003 opened read-only (not migrated): its gold by position
            wanted = None if prompt_ids is None else set(prompt_ids)
            rows = [
                (r["prompt_id"], r["candidate_id"], r["rank"])
                for r in gold_rows_from_positions(self.db)
                if wanted is None or r["prompt_id"] in wanted
            ]
        elif prompt_ids is None:
            rows = self.db.conn.execute(
                "select prompt_id, candidate_id, rank from gold_rankings"
            )
        else:
            rows = self._rows_in(
                "select prompt_id, candidate_id, rank from gold_rankings where prompt_id in ({marks})",
                prompt_ids,
            )
        for pid, cid, rank in rows:
            out[pid][cid] = rank
        return dict(out)

    def set_gold_ranking(self, prompt_id: str, ranks: dict[str, int]) -> None:
        """Make a prompt a gold item: its reference rank per candidate id (one transaction)."""
        with self.db.atomic():
            self.db.execute("delete from gold_rankings where prompt_id = ?", [prompt_id])
            self._insert_many("gold_rankings", gold_rows(prompt_id, ranks))

    def gold_prompt_ids(self) -> set[str]:
        """Prompts with a gold answer key (``prompts.gold_ranking``, or rows of a
        ``gold_rankings`` table where the schema has one)."""
        ids = {r[0] for r in self.db.execute("select id from prompts where gold_ranking is not null")}
        if self.db["gold_rankings"].exists():
            ids |= {r[0] for r in self.db.execute("select distinct prompt_id from gold_rankings")}
        return ids

    def gold_prompt_ids_among(self, prompt_ids: Iterable[str]) -> set[str]:
        """Those of ``prompt_ids`` that have gold ranks (a merge never changes them)."""
        return set(self.gold_rankings(prompt_ids))


    # -- review and adjudication (core/review.py) -------------------------------------------

    def add_adjudication(self, adjudication: Adjudication) -> Adjudication:
        """Record an adjudication (checked by core/review.py): one transaction, never an update."""
        a = adjudication
        try:
            with self.db.atomic():
                self.db["adjudications"].insert(
                    {
                        "id": a.id,
                        "prompt_id": a.prompt_id,
                        "ranking": dumps(a.ranks),
                        "rationale": a.rationale,
                        "adjudicator": a.adjudicator,
                        "created_at": a.created_at,
                    }
                )
        except sqlite3.IntegrityError as e:
            raise StoreError(f"adjudication not saved: {e}") from e
        return a

    def adjudications(
        self, *, prompt_ids: Iterable[str] | None = None, current_only: bool = True
    ) -> list[Adjudication]:
        """Adjudications, oldest first; ``current_only``: the latest of each prompt (by
        ``created_at``, then id); ``prompt_ids``: those prompts' only."""
        if not self.has_table("adjudications"):  # a database from before m0005, opened read-only
            return []
        sql = "select a.id, a.prompt_id, a.ranking, a.rationale, a.adjudicator, a.created_at from adjudications a"
        where = []
        if current_only:
            where.append(
                "not exists (select 1 from adjudications b where b.prompt_id = a.prompt_id and "
                "(b.created_at > a.created_at or (b.created_at = a.created_at and b.id > a.id)))"
            )
        if prompt_ids is not None:
            where.append("a.prompt_id in ({marks})")
        sql += (" where " + " and ".join(where) if where else "") + " order by a.created_at, a.id"
        rows = self._rows_in(sql, prompt_ids) if prompt_ids is not None else self.db.execute(sql)
        out = [
            Adjudication(
                id=aid, prompt_id=pid, ranks=loads(ranking, {}), rationale=rationale,
                adjudicator=adjudicator, created_at=created_at,
            )
            for aid, pid, ranking, rationale, adjudicator, created_at in rows
        ]
        return sorted(out, key=lambda a: (a.created_at, a.id))


    # -- merging: rows as stored -------------------------------------------------------------

    def table_counts(self, tables: Sequence[str] = MERGE_TABLES) -> dict[str, int]:
        """Rows per table (merge progress, tests); 0 for a table an older database lacks."""
        for t in tables:
            self._check_merge_table(t)
        return {
            t: self.db.execute(f"select count(*) from [{t}]").fetchone()[0] if self.has_table(t) else 0
            for t in tables
        }

    def iter_raw_rows(
        self, table: str, *, batch_size: int = 500, as_tuples: bool = False
    ) -> Iterator[list[dict[str, Any]]] | Iterator[list[tuple]]:
        """A merge table's rows as stored (column -> value), in batches.

        In insertion order; candidates grouped by prompt in idx order. ``as_tuples``: each row
        a tuple of its values, in the order of ``raw_columns(table)`` (no dict per row).
        """
        self._check_merge_table(table)
        if table == "gold_rankings" and not self.db["gold_rankings"].exists():
            # a source from before m0003 (opened read-only, not migrated): its gold by position
            rows = gold_rows_from_positions(self.db)
            if as_tuples:
                rows = [tuple(r.values()) for r in rows]  # type: ignore[misc]
            for start in range(0, len(rows), batch_size):
                yield rows[start : start + batch_size]
            return
        if not self.db[table].exists():  # a source of an older schema
            return
        # a prompt's candidates together and in idx order: merging matches them by text in order
        order = "prompt_id, idx, created_at, rowid" if table == "candidates" else "rowid"
        cur = self.db.conn.execute(f"select * from [{table}] order by {order}")
        names = [d[0] for d in cur.description]
        while True:
            chunk = cur.fetchmany(batch_size)
            if not chunk:
                return
            yield chunk if as_tuples else [dict(zip(names, row, strict=True)) for row in chunk]

    def raw_columns(self, table: str) -> list[str]:
        """The columns of a merge table as ``iter_raw_rows`` gives them (its stored order)."""
        self._check_merge_table(table)
        if table == "gold_rankings" and not self.db["gold_rankings"].exists():
            return ["prompt_id", "candidate_id", "rank"]  # gold_rows_from_positions' rows
        return [d[0] for d in self.db.conn.execute(f"select * from [{table}] limit 0").description]

    def existing_ids(self, table: str, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` that are rows of ``table`` (by its ``id`` column)."""
        self._check_merge_table(table)
        if table == "rankings":
            raise StoreError("rankings have no id column")
        return {r[0] for r in self._rows_in(f"select id from [{table}] where id in ({{marks}})", ids)}

    def insert_raw_rows(
        self, table: str, rows: Sequence[dict[str, Any]] | Sequence[tuple], columns: Sequence[str] | None = None
    ) -> None:
        """Insert rows as stored (from ``iter_raw_rows``), in one transaction (or savepoint).
        With ``columns``, each row is a tuple of the values of those columns, in that order.

        Plain INSERT: a row that clashes with an existing one is an error, never a silent skip.
        The values go to ``executemany`` as they are (they were read from a database: text,
        numbers, blobs, NULL), in the columns of the first row; a row with other columns is
        refused (``StoreError``, or ``KeyError`` for a column the first row has and it lacks).
        """
        self._check_merge_table(table)
        if not rows:
            return
        if columns is not None:  # (sqlite3 refuses a tuple of another length: ProgrammingError)
            n = len(columns)
            sql = f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) values ({', '.join('?' * n)})"
            with self.db.atomic():
                self.db.conn.executemany(sql, rows)
            return
        n = len(rows[0])  # the same number of columns, and (itemgetter) the same names
        if any(len(r) != n for r in rows):
            raise StoreError(f"{table}: the rows to insert do not all have the same columns")
        with self.db.atomic():
            self._insert_many(table, rows)

    def _check_merge_table(self, table: str) -> None:
        if table not in self.MERGE_TABLES:
            raise StoreError(f"{table}: not a table a merge handles")
