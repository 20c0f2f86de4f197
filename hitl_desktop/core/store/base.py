"""The one connection every part of the store shares (``self.db``) and the helpers they all use.

Each aggregate (prompts, judgments, sessions, guidelines, lab, statistics) is a class over this
base, in its own module; ``Store`` (``core/store/__init__.py``) composes them over one
``sqlite_utils.Database``, as Anki's managers share one collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

from hitl_desktop.core.rubric_store import RubricStore
from hitl_desktop.core.sqlitelib import Database

_CHUNK = 500  # ids per "in (...)" query: well under SQLite's limit on bound variables
#: SQL condition on a judgment ``j``: not re-judged (no other judgment supersedes it).
CURRENT_JUDGMENT = "not exists (select 1 from judgments sj where sj.supersedes = j.id)"


class StoreBase:
    """The database (``db``), its file (``path``, None in memory) and what every aggregate needs."""

    def __init__(self, db: Database, path: Path | None) -> None:
        self.db = db
        self.path = path
        self._lab: bool | None = None
        self._m0006: bool | None = None

    def _has_lab_schema(self) -> bool:
        """Whether step m0004 (re-judged versions, candidate origins) is applied: a database
        opened read-only is not migrated, and reads of an older one go without them."""
        if self._lab is None:
            self._lab = "supersedes" in {c.name for c in self.db["judgments"].columns}
        return self._lab

    def _has_source_values(self) -> bool:
        """Whether step m0006 (judgments.source_values, tutors.pseudonymised) is applied."""
        if self._m0006 is None:
            self._m0006 = "source_values" in {c.name for c in self.db["judgments"].columns}
        return self._m0006

    @property
    def rubrics(self) -> RubricStore:
        """Rubrics, criteria and grades (core/rubric_store.py)."""
        return RubricStore(self.db)

    def has_table(self, table: str) -> bool:
        """Whether the database has this table (an older schema may lack a newer one)."""
        return self.db[table].exists()

    def _rows_in(self, sql: str, ids: Iterable[Any]) -> Iterator[tuple]:
        """The rows of ``sql`` (holding one ``in ({marks})``) for all ``ids``, a chunk at a time."""
        wanted = list(ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            yield from self.db.conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def _insert_many(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Plain executemany for rows that are already SQL values (bulk paths: import, merge).

        sqlite-utils' insert_all inspects every value to JSON-encode it; our rows are encoded
        already, and skipping that makes an import of 20 000 records several times faster.
        """
        if not rows:
            return
        columns = list(rows[0])
        sql = (
            f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
            f"values ({', '.join('?' * len(columns))})"
        )
        self.db.conn.executemany(sql, map(itemgetter(*columns), rows))  # every table has 2+ columns
