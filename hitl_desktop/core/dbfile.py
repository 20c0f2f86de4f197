"""The database file and its errors: what a hitl-desktop database is, before any SQL.

Shared by ``core/store/`` and ``core/backup.py`` (which import this module, never each
other the other way round: ``store`` -> ``backup`` -> ``dbfile``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import platformdirs

from hitl_desktop.core.migrations import APPLICATION_ID

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000
#: The largest string, blob or row any connection loads (``SQLITE_LIMIT_LENGTH``), and the largest
#: row a database may hold to be opened (``dbschema.check_schema``). A candidate or a guideline
#: is kilobytes; a crafted multi-gigabyte field is refused instead of filling the memory. Tests
#: lower it to exercise the refusal with small files.
MAX_VALUE_BYTES = 64 * 1024 * 1024


class StoreError(Exception):
    """A database problem, with a message a tutor can act on."""


class NotAHitlDatabase(StoreError):
    """The file is not a hitl-desktop database (or is of a newer version): it is left alone."""


# -- reliability: "database is locked" --------------------------------------------------------

BUSY_MESSAGE = (
    "the database is busy: another hitl-desktop window or command is writing to it; try again"
)


def harden(conn: sqlite3.Connection) -> sqlite3.Connection:
    """What every connection hitl-desktop opens runs with: ``PRAGMA trusted_schema = OFF`` (no
    function with side effects runs from a file's views, triggers, defaults or checks) and the
    length limit ``MAX_VALUE_BYTES``."""
    conn.execute("PRAGMA trusted_schema = OFF")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    return conn


class HardenedConnection(sqlite3.Connection):
    """A connection that is ``harden``-ed as it opens (``sqlite3.connect(..., factory=...)``)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        harden(self)


def connect(database: str, **kwargs) -> sqlite3.Connection:  # type: ignore[no-untyped-def]
    """``sqlite3.connect`` with a hardened connection (``factory`` defaults to ``HardenedConnection``)."""
    kwargs.setdefault("factory", HardenedConnection)
    return sqlite3.connect(database, **kwargs)


class DatabaseBusy(StoreError, sqlite3.OperationalError):
    """Another connection held the write lock beyond the busy timeout. Also an
    ``sqlite3.OperationalError``, so code that handles SQLite errors still sees one."""


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    msg = str(e).lower()
    return "database is locked" in msg or "database is busy" in msg


class BusyAwareConnection(HardenedConnection):
    """The Store's connection: ``BEGIN`` is ``BEGIN IMMEDIATE`` (a write transaction takes the
    write lock up front, waiting up to the busy timeout, instead of failing at once when it
    upgrades a stale read snapshot), and "database is locked" becomes ``DatabaseBusy``."""

    def execute(self, sql, parameters=(), /):  # type: ignore[override]
        if sql == "BEGIN":  # sqlite_utils' db.atomic()
            sql = "BEGIN IMMEDIATE"
        with _busy_raises():
            return super().execute(sql, parameters)

    def executemany(self, sql, parameters, /):  # type: ignore[override]
        with _busy_raises():
            return super().executemany(sql, parameters)

    def commit(self) -> None:
        with _busy_raises():
            super().commit()


@contextlib.contextmanager
def _busy_raises() -> Iterator[None]:
    """SQLite's "database is locked" (another program holds the write lock) as ``DatabaseBusy``."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if _is_busy(e):
            raise DatabaseBusy(BUSY_MESSAGE) from e
        raise


def default_db_path() -> Path:
    """The default database, in the platform's user data folder."""
    env = os.environ.get("HITL_DESKTOP_DB")
    if env:
        return Path(env)
    return platformdirs.user_data_path("hitl-desktop", appauthor=False) / "hitl-desktop.db"


def check_database_file(path: str | os.PathLike[str]) -> bool:
    """Refuse anything that is not a hitl-desktop database, touching nothing.

    Returns True when the file exists and is one of ours, False when there is nothing there
    yet (a new database will be created). Raises ``NotAHitlDatabase`` otherwise.
    """
    p = Path(path)
    if p.is_dir():
        raise NotAHitlDatabase(f"{p}: is a folder, not a database file")
    if not p.exists() or p.stat().st_size == 0:
        return False
    try:
        with p.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise NotAHitlDatabase(f"{p}: cannot be read ({e.strerror})") from e
    if not header.startswith(SQLITE_HEADER):
        raise NotAHitlDatabase(f"{p}: is not an SQLite database")
    if len(header) < 100:
        raise NotAHitlDatabase(f"{p}: is truncated (no complete SQLite header)")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        # The header on disk can lag behind: after a crash (or while another window has it
        # open) the first pages may still be in the -wal file. Ask SQLite, read-only.
        try:
            conn = connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            try:
                app_id = conn.execute("pragma application_id").fetchone()[0]
                tables = [r[0] for r in conn.execute("select name from sqlite_master")]
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise NotAHitlDatabase(f"{p}: is not a readable SQLite database ({e})") from e
        if app_id == APPLICATION_ID:
            return True
        if tables:
            raise NotAHitlDatabase(
                f"{p}: is an SQLite database of another application "
                f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
        return False
    return True
