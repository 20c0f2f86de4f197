"""Whether a database holds only what hitl-desktop's migrations make (an untrusted file's check).

A pack comes from a lead, a tutor's database from a workstation the lead does not control, a
backup from a folder anyone can write to. SQLite runs what a file's schema says: a trigger on
``judgments`` would run on every submit, a view named like a table would answer every read.
So before hitl-desktop writes to (or reads from) an existing database, ``check_schema`` compares
its ``sqlite_master`` with the schema that the migrations it records as applied make, built by
running those migrations on an in-memory database (once per set of steps, cached):

* every trigger, view, table or index must be one those migrations make: same type, name and
  table; a table has the same columns (``PRAGMA table_xinfo``: generated columns too) and is
  an ordinary table; an index the same columns, uniqueness and no ``WHERE``; a view or trigger
  (hitl-desktop makes none today) the same SQL, compared with quotes and spacing normalised;
* every migration it records must be one this version knows (else: a newer hitl-desktop);
* no row may be larger than ``dbfile.MAX_VALUE_BYTES`` (64 MiB; a crafted 4 GB text field is
  refused before any read tries to hold it in memory). Every connection also carries that limit
  (``SQLITE_LIMIT_LENGTH``), so no query can load a larger value.

SQLite's own tables (``sqlite_sequence``, ``sqlite_stat1``..``4``) and the automatic indexes of
a table's constraints (``sqlite_autoindex_*``) hold no code and are allowed. The integrity check
(``PRAGMA quick_check``) is ``core/backup.py``'s; ``Store.open``/``open_readonly`` run both.
Every refusal is ``UntrustedDatabase`` (a ``NotAHitlDatabase``) naming the objects, raised
before anything is written. Connections run with ``PRAGMA trusted_schema = OFF`` (``dbfile``).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hitl_desktop.core import dbfile
from hitl_desktop.core.dbfile import NotAHitlDatabase
from hitl_desktop.core.migrations import MIGRATION_SET, migrations
from hitl_desktop.core.sqlitelib import database

MIGRATIONS_TABLE = "_sqlite_migrations"
#: SQLite's own tables: statistics and AUTOINCREMENT counters, never code.
_INTERNAL_TABLES = frozenset({"sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"})


class UntrustedDatabase(NotAHitlDatabase):
    """The file holds something hitl-desktop did not make (or cannot vouch for): left alone."""


@dataclass(frozen=True)
class SchemaObject:
    """One entry of ``sqlite_master``, as much as the comparison needs."""

    type: str
    name: str
    tbl_name: str
    shape: tuple  # table: (virtual?, columns); index: (unique, partial, columns); else: SQL

    def describe(self) -> str:
        on = f" on {self.tbl_name}" if self.type in ("trigger", "index") else ""
        return f"{self.type} {self.name}{on}"


def normalized_sql(sql: str | None) -> str:
    """SQL with quotes, case and spacing normalised (``[a]``, ``"a"`` and ``a`` alike)."""
    text = re.sub(r'[\[\]"`]', "", sql or "")
    return " ".join(text.lower().split())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_schema(conn: sqlite3.Connection) -> dict[str, SchemaObject]:
    """name -> object for everything in ``sqlite_master`` except automatic indexes."""
    out: dict[str, SchemaObject] = {}
    rows = conn.execute("select type, name, tbl_name, sql from sqlite_master").fetchall()
    for type_, name, tbl_name, sql in rows:
        if type_ == "index" and name.startswith("sqlite_autoindex_"):
            continue
        shape: tuple
        if type_ == "table":
            virtual = normalized_sql(sql).startswith("create virtual")
            cols = () if virtual else tuple(
                r[1] for r in conn.execute(f"pragma table_xinfo({_quote(name)})")
            )
            shape = (virtual, cols)
        elif type_ == "index":
            info = {r[1]: r for r in conn.execute(f"pragma index_list({_quote(tbl_name)})")}
            unique, partial = (info[name][2], info[name][4]) if name in info else (None, None)
            cols = tuple(r[2] for r in conn.execute(f"pragma index_info({_quote(name)})"))
            shape = (unique, partial, cols)
        else:
            shape = (normalized_sql(sql),)
        out[name] = SchemaObject(type_, name, tbl_name, shape)
    return out


def applied_steps(conn: sqlite3.Connection) -> list[str]:
    """The names of the steps of hitl-desktop's migration set this database records."""
    if not conn.execute(
        "select 1 from sqlite_master where type = 'table' and name = ?", [MIGRATIONS_TABLE]
    ).fetchone():
        return []
    return [
        r[0]
        for r in conn.execute(
            f"select name from {MIGRATIONS_TABLE} where migration_set = ? order by rowid", [MIGRATION_SET]
        )
    ]


@functools.lru_cache(maxsize=16)
def expected_schema(steps: frozenset[str]) -> dict[str, SchemaObject]:
    """What running these (known) migration steps makes, on an in-memory database."""
    conn = dbfile.connect(":memory:")
    try:
        db = database(conn)
        migrations.ensure_migrations_table(db)
        for m in migrations._migrations:
            if m.name in steps:
                with db.atomic():
                    m.fn(db)
        return read_schema(conn)
    finally:
        conn.close()


def unexpected_objects(conn: sqlite3.Connection) -> list[str]:
    """What this database holds that hitl-desktop's migrations (those it records) do not make."""
    known = {m.name for m in migrations._migrations}
    steps = frozenset(s for s in applied_steps(conn) if s in known)
    expected = expected_schema(steps)
    problems: list[str] = []
    for name, obj in sorted(read_schema(conn).items(), key=lambda kv: (kv[1].type, kv[0])):
        if obj.type == "table" and name in _INTERNAL_TABLES:
            continue
        want = expected.get(name)
        if want is None:
            problems.append(obj.describe())
        elif want.type != obj.type:
            problems.append(f"{obj.describe()} (hitl-desktop makes a {want.type} there)")
        elif want.tbl_name != obj.tbl_name:
            problems.append(f"{obj.describe()} (hitl-desktop makes it on {want.tbl_name})")
        elif name == MIGRATIONS_TABLE:
            if obj.shape[0]:  # its columns follow sqlite-utils' version: only "a plain table"
                problems.append(f"{obj.describe()} (a virtual table)")
        elif obj.shape != want.shape:
            if obj.type == "table" and not obj.shape[0] and not want.shape[0]:
                extra = sorted(set(obj.shape[1]) - set(want.shape[1]))
                missing = sorted(set(want.shape[1]) - set(obj.shape[1]))
                what = "; ".join(
                    part
                    for part in (
                        f"columns hitl-desktop did not make: {', '.join(extra)}" if extra else "",
                        f"missing columns: {', '.join(missing)}" if missing else "",
                    )
                    if part
                ) or "its columns in another order"
                problems.append(f"{obj.describe()} ({what})")
            else:
                problems.append(f"{obj.describe()} (not the one hitl-desktop makes)")
    return problems


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def oversized_tables(conn: sqlite3.Connection, limit: int) -> list[tuple[str, int]]:
    """(table, largest row in bytes) of the tables holding a row over ``limit`` bytes.

    Read from the page headers (``dbstat``): no value is loaded. Where SQLite lacks ``dbstat``,
    every column is measured; a value over the connection's length limit then fails to load
    ("string or blob too big"), which names its table as well."""
    try:
        rows = conn.execute("select name, mx_payload from dbstat where aggregate = 1").fetchall()
    except sqlite3.OperationalError:
        rows = None
    if rows is not None:
        return sorted((name, n) for name, n in rows if n is not None and n > limit)
    found = []
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
    for t in tables:
        cols = [r[1] for r in conn.execute(f"pragma table_info({_quote(t)})")]
        if not cols:
            continue
        size = " + ".join(f"coalesce(length(cast({_quote(c)} as blob)), 0)" for c in cols)
        try:
            n = conn.execute(f"select max({size}) from {_quote(t)}").fetchone()[0] or 0
        except sqlite3.DataError:
            n = limit + 1
        if n > limit:
            found.append((t, n))
    return found


def check_schema(conn: sqlite3.Connection, path: str | Path | None, *, check_sizes: bool = True) -> None:
    """Refuse a database that holds what hitl-desktop did not make, touching nothing.

    Raises ``NotAHitlDatabase`` for a migration this version does not know (a newer
    hitl-desktop), ``UntrustedDatabase`` for unexpected objects or a row over the size limit.
    """
    known = {m.name for m in migrations._migrations}
    newer = sorted(set(applied_steps(conn)) - known)
    if newer:
        raise NotAHitlDatabase(
            f"{path}: was written by a newer hitl-desktop (schema steps {', '.join(newer)}); "
            "update hitl-desktop to open it"
        )
    problems = unexpected_objects(conn)
    if problems:
        raise UntrustedDatabase(
            f"{path}: holds what hitl-desktop did not create: {'; '.join(problems)}; "
            "refusing to open it (nothing was written)"
        )
    if check_sizes:
        limit = dbfile.MAX_VALUE_BYTES
        big = oversized_tables(conn, limit)
        if big:
            listed = ", ".join(f"{t} (a row of {_size(n)})" for t, n in big)
            raise UntrustedDatabase(
                f"{path}: holds rows larger than hitl-desktop reads ({_size(limit)}): {listed}; "
                "refusing to open it (nothing was written)"
            )
