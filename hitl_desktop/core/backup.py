"""Rolling backups of a hitl-desktop database, integrity checks, and restoring.

Pure Python (no Qt). Every copy is made with SQLite's online backup API
(``sqlite3.Connection.backup``), so it is a consistent snapshot even while the database is in
use (WAL included), and every restore goes through the same API.

Where backups go
----------------
``<database folder>/backups/<db stem>-<UTC timestamp>-<reason>.db``, e.g.
``~/.local/share/hitl-desktop/backups/hitl-desktop-20260301T101500.123456Z-open.db``.
Next to the database (not in a separate user folder) so that they travel with it, are found
for any ``--db`` path, and live on the same disk. Each backup is a single, self-contained
SQLite file (rollback-journal mode, no ``-wal``), checked with ``PRAGMA quick_check`` before
it counts. The newest ``keep`` (default 10) backups of a database are kept; older ones are
deleted after each new backup. A damaged database that is replaced by ``restore`` is kept,
as it was, in ``backups/damaged/`` (outside the rolling set).

When backups are made
---------------------
* on open (``Store.open`` -> :func:`on_open`): when the database existed, has changed since its
  newest backup, and that backup is older than :data:`OPEN_INTERVAL_S` (1 h), or there is
  none. The check is a few ``stat`` calls, so opening stays fast;
* before migrations (reason ``migrate``), always, when an existing database is about to be
  carried to a newer schema;
* before a merge: the merge code calls ``backup_database(store, reason="merge")``;
* while the app runs: :class:`BackupScheduler` (``maybe_backup()`` from a GUI timer) every
  :data:`SCHEDULE_INTERVAL_S` (10 min) while something changed, and once more on close;
* by hand: ``hitl-desktop backup --db PATH [--out FILE]``.

``HITL_DESKTOP_NO_AUTO_BACKUP=1`` turns the on-open and before-migration backups off (for
scripted bulk work on a copy; never for a tutor's database). Costs measured on an 89 MB
database: ``quick_check`` 0.09 s, an open that makes a backup 0.38 s, one that does not 0.09 s.

Integrity on open
-----------------
``Store.open`` runs ``PRAGMA quick_check`` on an existing database before anything else.
A damaged database raises :class:`CorruptDatabase` (a ``StoreError``) whose message names
the latest good backup and the command that restores it
(``hitl-desktop restore --latest --db PATH``); the damaged file is not touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hitl_desktop.core import dbfile as _store
from hitl_desktop.core.dbfile import (
    BusyAwareConnection,
    NotAHitlDatabase,
    StoreError,
    check_database_file,
)
from hitl_desktop.core.files import fsync_dir, fsync_file, temp_file
from hitl_desktop.core.migrations import migrations

#: An open ``core.store.Store`` (not imported here: ``store`` imports this module).
Store = Any

BACKUP_DIR_NAME = "backups"
DAMAGED_DIR_NAME = "damaged"
#: Backups kept per database (the newest ones).
DEFAULT_KEEP = 10
#: On open, a new backup only when the newest one is at least this old (seconds).
OPEN_INTERVAL_S = 3600.0
#: While the app runs, at most one backup per this many seconds, and only after a change.
SCHEDULE_INTERVAL_S = 600.0
#: Unfinished backup files (a process killed while copying) older than this are removed.
STALE_PARTIAL_S = 3600.0

_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_STAMP_RE = r"(\d{8}T\d{6}\.\d{6}Z)"
_REASON_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class CorruptDatabase(StoreError):
    """The database file is damaged. The message names the latest good backup (if any) and
    the command that restores it; the damaged file is left exactly as it is."""

    def __init__(self, path: Path, detail: str, backup: Path | None) -> None:
        self.path = path
        self.detail = detail = " ".join(detail.split())  # one line
        self.backup = backup
        db = shlex.quote(str(path))
        if backup is not None:
            how = (
                f"the latest good backup is {backup}; restore it with: "
                f"hitl-desktop restore --latest --db {db}"
            )
        else:
            how = (
                f"no good backup was found in {backups_dir(path)}; the file was left as it is "
                f"(an older copy can be restored with: hitl-desktop restore BACKUP --db {db})"
            )
        super().__init__(f"{path}: the database is damaged ({detail}); {how}")


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created: datetime  # UTC, from the file name
    reason: str


def _timeout() -> float:
    return _store.BUSY_TIMEOUT_MS / 1000


# -- names and folders ---------------------------------------------------------------------


def backups_dir(db_path: str | os.PathLike[str]) -> Path:
    """The rolling backups folder of a database: ``<db folder>/backups``."""
    return Path(db_path).absolute().parent / BACKUP_DIR_NAME


def _stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(timezone.utc)).strftime(_STAMP_FORMAT)


def _check_reason(reason: str) -> str:
    if not _REASON_RE.match(reason):
        raise ValueError(f"backup reason {reason!r}: use lowercase letters, digits, - and _")
    return reason


def _name_re(db_path: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(db_path.stem)}-{_STAMP_RE}-([a-z0-9][a-z0-9_-]*)\.db$")


def list_backups(
    db_path: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None
) -> list[BackupInfo]:
    """The rolling backups of a database, newest first."""
    p = Path(db_path)
    folder = Path(directory) if directory is not None else backups_dir(p)
    if not folder.is_dir():
        return []
    pattern = _name_re(p)
    found: list[BackupInfo] = []
    for entry in folder.iterdir():
        m = pattern.match(entry.name)
        if m is None or not entry.is_file():
            continue
        created = datetime.strptime(m.group(1), _STAMP_FORMAT).replace(tzinfo=timezone.utc)
        found.append(BackupInfo(entry, created, m.group(2)))
    found.sort(key=lambda b: (b.created, b.path.name), reverse=True)
    return found


# -- connections -----------------------------------------------------------------------------


def _connect_ro(path: Path, *, immutable: bool = True) -> sqlite3.Connection:
    """A read-only connection; on a backup (``immutable``) it never creates a file next to it."""
    uri = path.absolute().as_uri() + "?mode=ro"
    if immutable and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"  # a single-file backup: no -shm or -wal is made for it
    conn = sqlite3.connect(
        uri, uri=True, timeout=_timeout(), factory=BusyAwareConnection
    )
    conn.execute("PRAGMA query_only = ON")
    return conn


def _check_result(rows: list[tuple]) -> str | None:
    """None when an integrity/quick check said ok, else its first complaint."""
    if rows and rows[0][0] == "ok":
        return None
    return str(rows[0][0]) if rows else "no answer from the integrity check"


# -- checking ----------------------------------------------------------------------------------


def check_backup(path: str | os.PathLike[str]) -> None:
    """Raise ``StoreError`` (or ``NotAHitlDatabase``) unless ``path`` is an intact
    hitl-desktop database that this version can open. Runs ``PRAGMA integrity_check``."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{p}: no such backup file")
    if not check_database_file(p):  # raises NotAHitlDatabase for garbage or foreign files
        raise NotAHitlDatabase(f"{p}: is not a hitl-desktop database (empty or no schema)")
    try:
        conn = _connect_ro(p)
    except sqlite3.Error as e:
        raise StoreError(f"{p}: cannot open the backup ({e})") from e
    try:
        problem = _check_result(conn.execute("PRAGMA integrity_check(1)").fetchall())
        if problem is not None:
            raise StoreError(f"{p}: the backup is damaged ({problem})")
        from hitl_desktop.core.dbschema import applied_steps, check_schema

        if migrations._migrations[0].name not in applied_steps(conn):
            raise NotAHitlDatabase(f"{p}: has no hitl-desktop schema")
        check_schema(conn, p)  # a newer schema, or a trigger, view or table we did not make
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{p}: the backup is damaged ({e})") from e
    finally:
        conn.close()


def is_good_backup(path: str | os.PathLike[str]) -> bool:
    try:
        check_backup(path)
    except StoreError:
        return False
    return True


def latest_good_backup(
    db_path: str | os.PathLike[str], *, directory: str | os.PathLike[str] | None = None
) -> Path | None:
    """The newest backup of ``db_path`` that passes ``PRAGMA integrity_check``, or None."""
    for info in list_backups(db_path, directory=directory):
        if is_good_backup(info.path):
            return info.path
    return None


def _is_corruption(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    msg = str(e).lower()
    return "malformed" in msg or "not a database" in msg


def quick_check(conn: sqlite3.Connection) -> str | None:
    """``PRAGMA quick_check`` on a connection: None when ok, else the first problem (one line).

    A database that cannot even be read ("file is not a database", "malformed") is a problem
    too. Other errors (busy, read-only, cannot open) are not damage: they propagate.
    """
    try:
        problem = _check_result(conn.execute("PRAGMA quick_check(1)").fetchall())
    except sqlite3.DatabaseError as e:
        if not _is_corruption(e):
            raise
        problem = str(e)
    return None if problem is None else " ".join(problem.split())


def _check_writable(path: Path) -> None:
    """Refuse a database hitl-desktop could not save to (the file, or its folder for the WAL)."""
    folder = path.absolute().parent
    what = None
    if not os.access(path, os.W_OK):
        what = "the file is read-only"
    elif not os.access(folder, os.W_OK | os.X_OK):
        what = f"its folder {folder} is read-only"
    if what:
        raise StoreError(
            f"{path}: cannot be opened for work: {what}, and hitl-desktop saves every judgment to "
            "its database; fix the permissions or copy it somewhere writable "
            "(a read-only database can still be a merge source)"
        )


def check_integrity(store: Store, *, for_work: bool = True) -> None:
    """Refuse a database that is read-only or damaged, touching nothing.

    Raises ``StoreError`` for a read-only file or folder, ``CorruptDatabase`` (naming the
    latest good backup and the restore command) when ``PRAGMA quick_check`` fails, and
    ``DatabaseBusy`` when another connection holds an exclusive lock. Called by ``Store.open``
    for an existing database, before anything else.
    """
    if store.path is None:
        return
    path = Path(store.path)
    if for_work:  # a reader (stats, export, a merge source) needs no write access
        _check_writable(path)
    try:
        problem = quick_check(store.db.conn)
    except StoreError:
        raise
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot read the database ({e})") from e
    if problem is not None:
        raise CorruptDatabase(path, problem, latest_good_backup(path))


# -- making backups ----------------------------------------------------------------------------


def _copy(source: sqlite3.Connection, dest_path: Path, *, verify: bool) -> None:
    """Copy ``source`` into the new file ``dest_path`` (single-file, rollback-journal mode)."""
    dest = _store.connect(str(dest_path))
    try:
        source.backup(dest)
        dest.execute("PRAGMA journal_mode = DELETE")
        if verify:
            problem = quick_check(dest)
            if problem is not None:
                raise StoreError(f"{dest_path}: the copy does not pass the integrity check ({problem})")
    finally:
        dest.close()
    fsync_file(dest_path)


def _new_backup_path(db_path: Path, reason: str, folder: Path) -> Path:
    while True:
        candidate = folder / f"{db_path.stem}-{_stamp()}-{reason}.db"
        if not candidate.exists():
            return candidate
        time.sleep(0.000_01)


def backup_database(
    store_or_path: Store | str | os.PathLike[str],
    *,
    reason: str,
    out: str | os.PathLike[str] | None = None,
    keep: int = DEFAULT_KEEP,
    verify: bool = True,
) -> Path:
    """Back up a database with SQLite's online backup API; return the backup's path.

    ``store_or_path``: an open ``Store`` (backed up through its own connection, so from the
    thread that owns it, outside a transaction) or a database file. Without ``out`` the backup
    is ``<db folder>/backups/<db stem>-<UTC timestamp>-<reason>.db`` and only the newest
    ``keep`` backups are kept; with ``out`` it is that new file (never overwritten) and nothing
    is pruned. The copy is written under a temporary name, checked (``quick_check``, unless
    ``verify`` is False), synced and renamed into place, so a backup file is always whole.
    ``reason`` names why (``open``, ``migrate``, ``merge``, ``auto``, ``manual``,
    ``pre-restore``...).
    """
    _check_reason(reason)
    own_conn: sqlite3.Connection | None = None
    if hasattr(store_or_path, "db"):  # an open Store
        if store_or_path.path is None:
            raise StoreError("an in-memory database has no file to back up")
        db_path = Path(store_or_path.path)
        source = store_or_path.db.conn
        if source.in_transaction:
            raise StoreError(f"{db_path}: cannot back up in the middle of a transaction")
    else:
        db_path = Path(store_or_path)
        if not check_database_file(db_path):
            raise StoreError(f"{db_path}: no hitl-desktop database there to back up")
        try:
            own_conn = source = _connect_ro(db_path, immutable=False)
        except sqlite3.Error as e:
            raise StoreError(f"{db_path}: cannot open the database to back it up ({e})") from e

    try:
        if out is not None:
            final = Path(out)
            if final.exists():
                raise StoreError(f"{final}: already exists; a backup never overwrites a file")
            folder = final.absolute().parent
        else:
            folder = backups_dir(db_path)
            final = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = temp_file(folder, prefix=f".{db_path.stem}-", suffix=".db.partial")
        except OSError as e:
            raise StoreError(f"{folder}: cannot write a backup there ({e.strerror or e})") from e
        with contextlib.suppress(OSError):  # the database's permissions (mkstemp: private)
            os.chmod(tmp, db_path.stat().st_mode & 0o666)
        try:
            try:
                _copy(source, tmp, verify=verify)
            except sqlite3.Error as e:
                raise StoreError(f"{db_path}: backup failed ({e})") from e
            if final is None:
                final = _new_backup_path(db_path, reason, folder)
            if out is not None and final.exists():
                raise StoreError(f"{final}: already exists; a backup never overwrites a file")
            os.replace(tmp, final)
            fsync_dir(folder)
        except OSError as e:
            raise StoreError(f"{folder}: cannot write a backup there ({e.strerror or e})") from e
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        if own_conn is not None:
            own_conn.close()
    if out is None:
        prune_backups(db_path, keep=keep)
    return final


def prune_backups(db_path: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> list[Path]:
    """Delete all but the newest ``keep`` backups of a database (and stale unfinished
    copies); returns what was deleted."""
    removed: list[Path] = []
    for info in list_backups(db_path)[max(keep, 1) :]:
        try:
            info.path.unlink()
            removed.append(info.path)
        except OSError:
            pass
    folder = backups_dir(db_path)
    now = time.time()
    for partial in folder.glob(f".{Path(db_path).stem}-*.db.partial"):
        try:
            if now - partial.stat().st_mtime > STALE_PARTIAL_S:
                partial.unlink()
                removed.append(partial)
        except OSError:
            pass
    return removed


def _changed_since(db_path: Path, backup_path: Path) -> bool:
    """Whether the database file (or a non-empty WAL) was written after the backup file was.

    Both modification times come from the same (file system) clock; a write in the very
    tick the backup was finished may be missed until the next change, which is harmless.
    """
    try:
        t = backup_path.stat().st_mtime
    except OSError:
        return True
    try:
        if db_path.stat().st_mtime > t:
            return True
    except OSError:
        return True
    wal = Path(f"{db_path}-wal")
    try:
        st = wal.stat()
    except OSError:
        return False
    return st.st_size > 0 and st.st_mtime > t


def backup_due(db_path: str | os.PathLike[str], *, interval_s: float | None = None) -> bool:
    """True when there is no backup yet, or the database changed since the newest backup and
    that backup is at least ``interval_s`` (default :data:`OPEN_INTERVAL_S`) old. Only
    ``stat`` calls: cheap."""
    if interval_s is None:
        interval_s = OPEN_INTERVAL_S
    p = Path(db_path)
    backups = list_backups(p)
    if not backups:
        return True
    newest = backups[0]
    age = datetime.now(timezone.utc).timestamp() - newest.created.timestamp()
    return age >= interval_s and _changed_since(p, newest.path)


def on_open(store: Store, *, pending_migrations: bool) -> Path | None:
    """The backup ``Store.open`` makes for an existing database (after the integrity and
    version checks): always before migrations, else when :func:`backup_due`."""
    if store.path is None or os.environ.get("HITL_DESKTOP_NO_AUTO_BACKUP"):
        return None
    if pending_migrations:
        return backup_database(store, reason="migrate")
    if backup_due(store.path):
        try:
            return backup_database(store, reason="open")
        except StoreError:
            # A backup folder that cannot be written must not lock the tutor out of their
            # work; the scheduler and the next open try again.
            return None
    return None


# -- restoring ---------------------------------------------------------------------------------


def _save_damaged(db_path: Path) -> Path:
    """Keep a damaged database (and its -wal/-shm) as it is, in ``backups/damaged/``."""
    folder = backups_dir(db_path) / DAMAGED_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{db_path.stem}-{_stamp()}-damaged.db"
    shutil.copy2(db_path, dest)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db_path}{suffix}")
        if side.exists():
            shutil.copy2(side, Path(f"{dest}{suffix}"))
    fsync_file(dest)
    fsync_dir(folder)
    return dest


def _current_state(db_path: Path) -> str:
    """'missing', 'healthy' or 'damaged'; raises NotAHitlDatabase for another app's file."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return "missing"
    try:
        ours = check_database_file(db_path)
    except NotAHitlDatabase as e:
        if "another application" in str(e) or "is a folder" in str(e):
            raise NotAHitlDatabase(f"{e}; nothing was restored") from None
        return "damaged"  # garbage or a truncated header where our database was
    if not ours:
        return "missing"
    try:
        conn = _connect_ro(db_path, immutable=False)
        try:
            problem = quick_check(conn)
        finally:
            conn.close()
    except StoreError:
        raise
    except sqlite3.Error as e:
        if _is_corruption(e):
            return "damaged"
        raise StoreError(f"{db_path}: cannot read the database ({e}); nothing restored") from e
    return "healthy" if problem is None else "damaged"


def restore(
    db_path: str | os.PathLike[str],
    backup_path: str | os.PathLike[str],
    *,
    keep: int = DEFAULT_KEEP,
) -> Path | None:
    """Replace the database at ``db_path`` with the backup at ``backup_path``.

    The backup is checked first (a hitl-desktop database, ``integrity_check`` ok, not of a
    newer version); nothing is touched when it fails. The current database is saved first:
    a healthy one as a ``pre-restore`` backup, a damaged one as it is in ``backups/damaged/``;
    its path is returned (None when there was no database). A healthy database is then
    overwritten through SQLite's backup API in one transaction (other connections see either
    the old or the new content, never a mix; a crash leaves one or the other). A damaged or
    missing one is replaced by a fully written and synced new file, renamed into place after
    its stale ``-wal``/``-shm`` are removed. Close other hitl-desktop windows first: their
    unsaved state refers to the old content.
    """
    db = Path(db_path)
    src_path = Path(backup_path)
    if src_path.exists() and db.exists() and src_path.resolve() == db.resolve():
        raise StoreError(f"{src_path}: is the database itself, not a backup of it")
    check_backup(src_path)
    state = _current_state(db)
    saved: Path | None = None
    if state == "healthy":
        saved = backup_database(db, reason="pre-restore", keep=keep)
    elif state == "damaged":
        try:
            saved = _save_damaged(db)
        except OSError as e:
            raise StoreError(f"{db}: cannot keep a copy of the damaged database ({e}); nothing restored") from e

    try:
        src = _connect_ro(src_path)
    except sqlite3.Error as e:
        raise StoreError(f"{src_path}: cannot open the backup ({e})") from e
    try:
        if state == "healthy":
            try:
                dest = _store.connect(str(db), timeout=_timeout())
            except sqlite3.Error as e:
                raise StoreError(f"{db}: cannot open the database ({e}); nothing restored") from e
            try:
                src.backup(dest)
            except sqlite3.Error as e:
                msg = str(e)
                if "locked" in msg or "busy" in msg:
                    msg = "the database is busy: another hitl-desktop window or command is using it"
                raise StoreError(f"{db}: restore failed ({msg}); the database is unchanged") from e
            finally:
                dest.close()
        else:
            db.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_file(db.parent, prefix=f".{db.name}.", suffix=".restore")
            try:
                _copy(src, tmp, verify=True)
                for suffix in ("-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                os.replace(tmp, db)
                fsync_dir(db.parent)
            except (OSError, sqlite3.Error) as e:
                raise StoreError(f"{db}: restore failed ({e})") from e
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        src.close()

    state_after = _current_state(db)
    if state_after != "healthy":
        raise StoreError(f"{db}: the restored database does not pass the integrity check")
    return saved


def restore_latest(db_path: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> tuple[Path, Path | None]:
    """Restore the latest good backup; returns (the backup used, the saved current database)."""
    db = Path(db_path)
    best = latest_good_backup(db)
    if best is None:
        raise StoreError(f"{db}: no good backup found in {backups_dir(db)}; nothing restored")
    return best, restore(db, best, keep=keep)


# -- while the app runs ------------------------------------------------------------------------


class BackupScheduler:
    """Backs up an open store every ``interval_s`` seconds while it changes.

    Pure Python: the GUI calls :meth:`maybe_backup` from a timer (say once a minute) in the
    thread that owns the store, and :meth:`maybe_backup` with ``force=True`` when closing.
    A change is seen through the store's ``change_marker()`` (this connection's
    ``total_changes`` and ``PRAGMA data_version``, which moves when another connection
    commits), so nothing is copied while nobody works.
    """

    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = SCHEDULE_INTERVAL_S,
        keep: int = DEFAULT_KEEP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.keep = keep
        self._clock = clock
        self._marker = store.change_marker()
        self._last = clock()
        self.last_backup: Path | None = None
        self.last_error: str | None = None

    def changed(self) -> bool:
        """Whether the database changed since the last backup (or since the start)."""
        return self.store.change_marker() != self._marker

    def due(self, *, force: bool = False) -> bool:
        """Whether a backup should be made now: the interval passed (or ``force``) and
        something changed, outside a transaction."""
        if self.store.path is None:
            return False
        if not force and self._clock() - self._last < self.interval_s:
            return False
        return self.changed() and not self.store.db.conn.in_transaction

    def record(self, marker: tuple[int, int], path: Path) -> None:
        """A backup of the state at ``marker`` was written to ``path``."""
        self._marker, self._last = marker, self._clock()
        self.last_backup, self.last_error = path, None

    def maybe_backup(self, *, force: bool = False) -> Path | None:
        """Back up when :meth:`due` (through the store's own connection), and return the path.

        Never raises ``StoreError``: a failure is kept in ``last_error`` (show it in the
        status bar) and retried at the next call. A GUI that must not block copies in a
        worker instead: ``due()``, then ``backup_database(path)`` there, then ``record()``.
        """
        if not self.due(force=force):
            return None
        marker = self.store.change_marker()
        try:
            path = backup_database(self.store, reason="auto", keep=self.keep)
        except StoreError as e:
            self.last_error = str(e)
            return None
        self.record(marker, path)
        return path
