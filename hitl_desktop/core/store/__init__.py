"""The store: the only place in hitl-desktop that speaks SQL.

A ``Store`` wraps a ``sqlite_utils.Database``. Every user action is one transaction
(``db.atomic()``); the database runs in WAL mode with ``synchronous=FULL`` so that an
acknowledged write survives a crash or a power cut.

One way to open a database for each purpose:

* ``Store.open(path)``: for work (writing). An existing file is checked first (a file that is
  not a hitl-desktop database, ``PRAGMA quick_check``, and the schema against what the
  migrations make: ``core/dbschema.py``), then backed up when due and migrated. A file that
  fails a check is refused before anything is written to it.
* ``Store.open_readonly(path)``: for reading (stats, export, review, a merge source, a
  background reader). The same checks; then nothing is ever written (no migration, no
  backup, ``query_only``). ``Store.open(path, read_only=True)`` is the same call.
* ``Store.memory()``: a fresh in-memory database (tests, scratch work).

Every connection runs with ``PRAGMA trusted_schema = OFF`` and a length limit
(``dbfile.harden``).

This package is the ``Store`` class and its opening; each aggregate is a class of its own
module, over one shared ``self.db`` (``base.StoreBase``), composed here:

* ``prompts.py``: prompts and candidates (the protected-candidates rule);
* ``judgments.py``: judgments, and reading judged items through ``query.py``'s one
  ``JudgedItemsQuery`` (history, review and export share it);
* ``sessions.py``: tutors, sessions, settings and pseudonyms;
* ``guidelines.py``: guideline versions;
* ``lab.py``: gold ranks, adjudications, and the raw rows a merge moves;
* ``bulk.py``: many records in one transaction (import);
* ``statistics.py``: figures;
* ``rows.py``: how each record maps to its columns (one function each way).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from hitl_desktop.core import backup, dbfile, dbschema
from hitl_desktop.core.dbfile import (  # noqa: F401  (re-exported: store.StoreError etc.)
    BUSY_MESSAGE,
    BUSY_TIMEOUT_MS,
    SQLITE_HEADER,
    BusyAwareConnection,
    DatabaseBusy,
    NotAHitlDatabase,
    StoreError,
    _is_busy,
    check_database_file,
    default_db_path,
)
from hitl_desktop.core.dbschema import UntrustedDatabase  # noqa: F401  (re-exported)
from hitl_desktop.core.migrations import APPLICATION_ID, migrations
from hitl_desktop.core.sqlitelib import database
from hitl_desktop.core.store.bulk import Bulk
from hitl_desktop.core.store.guidelines import Guidelines
from hitl_desktop.core.store.judgments import Judgments
from hitl_desktop.core.store.lab import MERGE_TABLES, Lab
from hitl_desktop.core.store.prompts import Prompts
from hitl_desktop.core.store.query import JudgedItemsQuery
from hitl_desktop.core.store.rows import ORIGINS
from hitl_desktop.core.store.sessions import Sessions
from hitl_desktop.core.store.statistics import Statistics

__all__ = [
    "BUSY_MESSAGE",
    "BUSY_TIMEOUT_MS",
    "MERGE_TABLES",
    "ORIGINS",
    "DatabaseBusy",
    "JudgedItemsQuery",
    "NotAHitlDatabase",
    "Store",
    "StoreError",
    "UntrustedDatabase",
    "default_db_path",
]


def _read_only_file(p: Path) -> bool:
    """Whether the file or its folder is read-only by its permission bits (or for us)."""
    folder = p.resolve().parent
    try:
        no_write = (p.stat().st_mode & 0o222) == 0 or (folder.stat().st_mode & 0o222) == 0
    except OSError:
        return False
    return no_write or not os.access(p, os.W_OK) or not os.access(folder, os.W_OK)


class Store(Prompts, Judgments, Sessions, Guidelines, Lab, Bulk, Statistics):
    """hitl-desktop's database. Create with ``Store.open(path)`` (work),
    ``Store.open_readonly(path)`` (reading) or ``Store.memory()``.

    A Store belongs to the thread that opened it (SQLite connections are per thread).
    """

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, create: bool = True, read_only: bool = False
    ) -> Store:
        """Open (and migrate) the database at ``path``; the default database when None.

        For work: the integrity check, the backup on open (policy in ``core/backup.py``) and
        pending migrations. With ``read_only`` (``stats``, ``export``): none of these; nothing
        is written, and a read-only file or folder is fine (see ``open_readonly``).
        Raises ``NotAHitlDatabase`` for a file of another kind, leaving it unmodified.
        """
        p = Path(path) if path is not None else default_db_path()
        if read_only:
            if not p.exists():
                raise StoreError(f"{p}: no such database")
            return cls.open_readonly(p)
        exists = check_database_file(p)
        if not exists and not create:
            raise StoreError(f"{p}: no such database")
        if not exists:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"{p.parent}: cannot create folder ({e.strerror})") from e
        try:
            conn = sqlite3.connect(
                str(p), timeout=BUSY_TIMEOUT_MS / 1000, factory=BusyAwareConnection
            )
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open database ({e})") from e
        store = cls(database(conn), p)
        try:
            if exists:
                store._check_integrity()  # reliability: CorruptDatabase, file untouched
                store._check_schema()  # untrusted files: UntrustedDatabase, file untouched
            store._configure(wal=True)
            if exists:
                store._backup_before_use()  # reliability: "migrate" / "open" backups
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing hitl-desktop database READ-ONLY: a merge source, a background reader.

        Nothing is ever written to the file (``mode=ro``, ``query_only``, no migration). Raises
        ``NotAHitlDatabase`` for a missing or empty file, another application's file, a file of
        a newer schema, or one without the base schema; ``UntrustedDatabase`` for one holding
        what hitl-desktop did not make; ``backup.CorruptDatabase`` for a damaged one.
        """
        p = Path(path)
        try:
            exists = check_database_file(p)
        except NotAHitlDatabase:
            # check_database_file reads the application id from the file header, but a database
            # still in use (or left by a crash) may hold its first pages in the WAL only: ask
            # SQLite, which reads through the WAL.
            if not cls._application_id_is_ours(p):
                raise
            exists = True
        if not exists:
            raise NotAHitlDatabase(f"{p}: no hitl-desktop database there (missing or empty file)")
        try:
            conn = cls._connect_readonly(p)
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open database read-only ({e})") from e
        store = cls(database(conn), p)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            try:
                backup.check_integrity(store, for_work=False)  # a damaged file names its backup
            except StoreError as e:
                cause = e.__cause__
                if isinstance(cause, sqlite3.OperationalError) and _is_busy(cause):
                    raise DatabaseBusy(f"{p}: {BUSY_MESSAGE}") from cause
                raise
            store._check_schema()
            first = migrations._migrations[0].name
            if first not in store.schema_version():
                raise NotAHitlDatabase(f"{p}: has no hitl-desktop schema (step {first} missing)")
        except sqlite3.DatabaseError as e:
            conn.close()
            if isinstance(e, sqlite3.OperationalError) and _is_busy(e):
                raise DatabaseBusy(f"{p}: {BUSY_MESSAGE}") from e
            raise NotAHitlDatabase(f"{p}: cannot be read as a hitl-desktop database ({e})") from e
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def memory(cls) -> Store:
        """A fresh in-memory database (tests, scratch work)."""
        store = cls(database(dbfile.connect(":memory:")), None)
        store._configure(wal=False)
        store._migrate()
        return store

    @staticmethod
    def _connect_readonly(p: Path) -> sqlite3.Connection:
        """A read-only connection. A database that nobody may write (a read-only file or
        folder, by its permission bits) is opened ``immutable``: SQLite then creates no -wal
        or -shm beside it, so reading writes nothing at all."""
        uri = p.resolve().as_uri()
        if _read_only_file(p):
            return dbfile.connect(f"{uri}?mode=ro&immutable=1", uri=True)
        return dbfile.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)

    @staticmethod
    def _application_id_is_ours(p: Path) -> bool:
        try:
            conn = dbfile.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            return False

    def _configure(self, *, wal: bool) -> None:
        ex = self.db.conn.execute
        try:
            ex(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            ex("PRAGMA foreign_keys = ON")
            if wal:
                mode = ex("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            ex("PRAGMA synchronous = FULL")
            ex("PRAGMA cache_size = -65536")  # 64 MiB: bulk imports and merges touch many pages
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {e}") from e

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``; raises ``backup.CorruptDatabase`` naming the latest good backup."""
        backup.check_integrity(self)

    def _check_schema(self) -> None:
        """Refuse a file holding a trigger, view, table or index hitl-desktop's migrations do
        not make, a migration this version does not know, or an oversized row (``dbschema``)."""
        try:
            dbschema.check_schema(self.db.conn, self.path)
        except StoreError:
            raise
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and _is_busy(e):
                raise DatabaseBusy(f"{self.path}: {BUSY_MESSAGE}") from e
            raise NotAHitlDatabase(f"{self.path}: cannot be read as a hitl-desktop database ({e})") from e

    def _backup_before_use(self) -> None:
        """A backup before migrations, or the periodic one on open (see core/backup.py)."""
        backup.on_open(self, pending_migrations=bool(migrations.pending(self.db)))

    def _migrate(self) -> None:
        if migrations.pending(self.db):
            migrations.apply(self.db)

    def schema_version(self) -> list[str]:
        return [m.name for m in migrations.applied(self.db)]


    # -- transactions, closing, copies -------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Several store calls as ONE transaction (a user action): all of them, or none."""
        with self.db.atomic():
            yield self

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backup_to(self, path: str | os.PathLike[str]) -> Path:
        """Copy the whole database to a NEW file with SQLite's online backup API; returns it.

        Consistent even while the database is in use (WAL included). Refuses to overwrite.
        """
        dest = Path(path)
        if dest.exists():
            raise StoreError(f"{dest}: already exists; a backup never overwrites a file")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            conn = dbfile.connect(str(dest))
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{dest}: cannot create backup ({e})") from e
        try:
            self.db.conn.backup(conn)
        except sqlite3.Error as e:
            conn.close()
            dest.unlink(missing_ok=True)
            raise StoreError(f"{dest}: backup failed ({e})") from e
        conn.close()
        return dest

    def change_marker(self) -> tuple[int, int]:
        """Changes so far: this connection's ``total_changes`` and ``PRAGMA data_version``
        (which moves when another connection commits). Equal markers: nothing changed."""
        return (self.db.conn.total_changes, self.db.execute("PRAGMA data_version").fetchone()[0])

    def vacuum(self) -> None:
        """Rewrite the file: no freed page keeps deleted data."""
        self.db.execute("VACUUM")
