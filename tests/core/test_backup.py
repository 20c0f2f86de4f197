"""Rolling backups (SQLite's online backup API), integrity check on open, restore."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from hitl_desktop.cli import cli
from hitl_desktop.core import backup
from hitl_desktop.core.backup import (
    BackupScheduler,
    CorruptDatabase,
    backup_database,
    latest_good_backup,
    list_backups,
    restore,
)
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.migrations import MIGRATION_SET, migrations
from hitl_desktop.core.store import NotAHitlDatabase, Store, StoreError

NAME_RE = re.compile(r"^hitl-\d{8}T\d{6}\.\d{6}Z-[a-z0-9_-]+\.db$")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_set(path: Path, n: int, tag: str = "p") -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"{tag}{i}",
                        "prompt": f"{tag} question {i}",
                        "domain": "law",
                        "candidates": [f"{tag} a{i}", f"{tag} b{i}", f"{tag} c{i}"],
                        "ranking": [1, 2, 3],
                        "tutor": "dr-a",
                    }
                )
                + "\n"
            )
    return path


def judgments(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("select count(*) from judgments").fetchone()[0]
    finally:
        conn.close()


def corrupt(path: Path, *, seed: int = 1) -> None:
    """Overwrite a few pages in the middle with noise (the WAL is checkpointed on close)."""
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    start = 4096 * 3
    for off in range(start, min(len(data), start + 4096 * 4)):
        data[off] = rng.randrange(256)
    path.write_bytes(bytes(data))


@pytest.fixture
def filled(tmp_path) -> Path:
    db = tmp_path / "hitl.db"
    with Store.open(db) as s:
        import_file(s, write_set(tmp_path / "set.jsonl", 40))
    return db


# -- making backups ---------------------------------------------------------------------------


def test_backup_is_a_whole_single_file_copy_in_the_backups_folder(filled):
    with Store.open(filled) as s:
        path = backup_database(s, reason="manual")
    assert path.parent == filled.parent / "backups"
    assert NAME_RE.match(path.name), path.name
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    assert path.read_bytes()[18:20] == b"\x01\x01", "rollback-journal mode: one self-contained file"
    backup.check_backup(path)
    assert judgments(path) == judgments(filled) == 40
    assert not list(path.parent.glob("*.partial"))


def test_backup_of_a_database_in_use_is_a_consistent_snapshot(filled, tmp_path):
    with Store.open(filled) as writer:
        import_file(writer, write_set(tmp_path / "more.jsonl", 10, "m"))  # committed, in the WAL
        assert Path(f"{filled}-wal").stat().st_size > 0
        path = backup_database(filled, reason="manual")  # from the file, by another connection
    assert judgments(path) == 50


def test_only_the_newest_backups_are_kept(filled):
    made = [backup_database(filled, reason="auto", keep=3) for _ in range(6)]
    left = [b.path for b in list_backups(filled)]
    assert left == list(reversed(made[-3:]))
    assert all(not p.exists() for p in made[:3])


def test_explicit_out_file_is_never_overwritten(filled, tmp_path):
    out = tmp_path / "copy.db"
    assert backup_database(filled, reason="manual", out=out) == out
    before = digest(out)
    with pytest.raises(StoreError, match="already exists"):
        backup_database(filled, reason="manual", out=out)
    assert digest(out) == before


def test_a_backup_whose_data_cannot_be_synced_is_a_failure_not_a_backup(filled, monkeypatch):
    """fsync failing on the copy's data (EIO) means the copy may not be on disk: the backup
    must fail and leave nothing that passes for a good backup."""
    import errno
    import os
    import stat

    real_fsync = os.fsync

    def failing_fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StoreError, match="cannot write a backup"):
        backup_database(filled, reason="manual")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list_backups(filled) == []
    assert not list((filled.parent / "backups").glob("*.partial"))


def test_bad_reason_memory_store_and_foreign_files_are_refused(tmp_path, filled):
    with pytest.raises(ValueError):
        backup_database(filled, reason="../../etc")
    s = Store.memory()
    with pytest.raises(StoreError, match="in-memory"):
        backup_database(s, reason="manual")
    s.close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(NotAHitlDatabase):
        backup_database(junk, reason="manual")
    with pytest.raises(StoreError, match="no hitl-desktop database"):
        backup_database(tmp_path / "missing.db", reason="manual")


def test_merge_hook_name_exists(filled):
    """The merge code calls ``backup_database(store, reason="merge")``."""
    with Store.open(filled) as s:
        path = backup_database(s, reason="merge")
    assert path.name.endswith("-merge.db")


# -- hooks: on open, before migrations, while running ------------------------------------------


def test_open_backs_up_once_then_only_when_due(filled, monkeypatch):
    for b in list_backups(filled):
        b.path.unlink()
    Store.open(filled).close()
    first = list_backups(filled)
    assert [b.reason for b in first] == ["open"]
    Store.open(filled).close()  # the newest backup is fresh: none
    assert len(list_backups(filled)) == 1
    monkeypatch.setattr(backup, "OPEN_INTERVAL_S", 0.0)
    Store.open(filled).close()  # due by age, but nothing changed since: none
    assert len(list_backups(filled)) == 1
    time.sleep(0.05)  # file times tick coarsely: make the change visibly later
    with Store.open(filled) as s:
        s.ensure_tutor("new tutor")
    Store.open(filled).close()  # changed and due: a new one
    assert [b.reason for b in list_backups(filled)] == ["open", "open"]


def test_a_backup_is_made_before_migrations(tmp_path):
    db = tmp_path / "hitl.db"
    old = Database(sqlite3.connect(db))
    migrations.apply(old, stop_before=migrations._migrations[1].name)
    old["prompts"].insert({"id": "p1", "text": "old", "domain": "law", "created_at": "2026-01-01"})
    old.conn.close()
    with Store.open(db) as s:
        assert len(s.schema_version()) == len(migrations._migrations)
    (pre,) = [b for b in list_backups(db) if b.reason == "migrate"]
    conn = sqlite3.connect(pre.path)
    applied = [r[0] for r in conn.execute("select name from _sqlite_migrations where migration_set = ?", [MIGRATION_SET])]
    conn.close()
    assert applied == [migrations._migrations[0].name], "the backup holds the database as it was"


def test_scheduler_backs_up_every_interval_while_changed(filled):
    now = [0.0]
    with Store.open(filled) as s:
        sched = BackupScheduler(s, interval_s=600, clock=lambda: now[0])
        before = len(list_backups(filled))
        now[0] = 700
        assert sched.maybe_backup() is None, "nothing changed"
        s.ensure_tutor("dr-z")
        now[0] = 750
        first = sched.maybe_backup()
        assert first is not None and first.name.endswith("-auto.db")
        s.ensure_tutor("dr-x")
        now[0] = 1000
        assert sched.maybe_backup() is None, "the interval has not passed since the last backup"
        now[0] = 1400
        assert sched.maybe_backup() is not None
        now[0] = 2100
        assert sched.maybe_backup() is None, "no change since the last backup"
        other = sqlite3.connect(filled)  # another window or command commits
        other.execute("insert into settings (key, value) values ('x', 'y')")
        other.commit()
        other.close()
        assert sched.changed()
        assert sched.maybe_backup() is not None
        s.ensure_tutor("dr-y")
        assert sched.maybe_backup(force=True) is not None, "on close, whatever the interval"
        assert len(list_backups(filled)) == before + 4
        assert judgments(latest_good_backup(filled)) == 40


def test_scheduler_never_raises(filled, monkeypatch):
    with Store.open(filled) as s:
        sched = BackupScheduler(s, interval_s=0)
        s.ensure_tutor("dr-q")

        def fail(*a, **k):
            raise StoreError("disk full")

        monkeypatch.setattr(backup, "backup_database", fail)
        assert sched.maybe_backup() is None
        assert sched.last_error == "disk full"


# -- integrity on open, restore ------------------------------------------------------------------


def test_corrupt_database_is_refused_untouched_naming_the_backup_and_command(filled):
    good = backup_database(filled, reason="manual")
    corrupt(filled)
    before = digest(filled)
    with pytest.raises(CorruptDatabase) as e:
        Store.open(filled)
    msg = str(e.value)
    assert "damaged" in msg and str(good) in msg
    assert f"hitl-desktop restore --latest --db {filled}" in msg
    assert "\n" not in msg
    assert e.value.backup == good
    assert isinstance(e.value, StoreError)
    assert digest(filled) == before
    assert not Path(f"{filled}-wal").exists()


def test_latest_good_backup_skips_damaged_ones(filled):
    good = backup_database(filled, reason="manual")
    bad = backup_database(filled, reason="manual")
    corrupt(bad)
    assert list_backups(filled)[0].path == bad
    assert latest_good_backup(filled) == good


def test_corrupt_database_without_backup_says_so(tmp_path):
    db = tmp_path / "hitl.db"
    with Store.open(db) as s:
        import_file(s, write_set(tmp_path / "set.jsonl", 40))
    corrupt(db)
    with pytest.raises(CorruptDatabase, match="no good backup was found"):
        Store.open(db)


def test_restore_brings_the_backup_back_and_keeps_the_current_database(filled, tmp_path):
    snap = backup_database(filled, reason="manual")
    with Store.open(filled) as s:
        import_file(s, write_set(tmp_path / "later.jsonl", 5, "l"))
    assert judgments(filled) == 45
    saved = restore(filled, snap)
    assert judgments(filled) == 40
    assert saved is not None and saved.name.endswith("-pre-restore.db") and judgments(saved) == 45
    with Store.open(filled) as s:  # opens, migrated, intact
        assert s.db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert s.stats()["judgments"] == 40


def test_restore_while_another_store_is_open_is_seen_by_it(filled, tmp_path):
    snap = backup_database(filled, reason="manual")
    with Store.open(filled) as s:
        import_file(s, write_set(tmp_path / "later.jsonl", 5, "l"))
        restore(filled, snap)
        assert s.db.execute("select count(*) from judgments").fetchone()[0] == 40


def test_restore_replaces_a_damaged_database_and_keeps_it_aside(filled):
    good = backup_database(filled, reason="manual")
    corrupt(filled)
    damaged = filled.read_bytes()
    saved = restore(filled, good)
    assert saved is not None and saved.parent.name == "damaged" and saved.read_bytes() == damaged
    assert latest_good_backup(filled) == good, "a damaged copy is outside the rolling set"
    with Store.open(filled) as s:
        assert s.stats()["judgments"] == 40


def test_restore_over_garbage_and_into_a_missing_file(filled, tmp_path):
    good = backup_database(filled, reason="manual")
    target = tmp_path / "other" / "hitl.db"
    assert restore(target, good) is None
    assert judgments(target) == 40
    target.write_bytes(b"garbage" * 1000)
    assert restore(target, good).parent.name == "damaged"
    assert judgments(target) == 40


@pytest.mark.parametrize("kind", ["garbage", "foreign", "newer", "damaged", "missing", "itself"])
def test_restore_refuses_a_bad_backup_and_changes_nothing(filled, tmp_path, kind):
    bad = tmp_path / "bad.db"
    if kind == "garbage":
        bad.write_bytes(b"\x00garbage" * 500)
    elif kind == "foreign":
        conn = sqlite3.connect(bad)
        conn.execute("create table songs (title)")
        conn.commit()
        conn.close()
    elif kind == "newer":
        backup_database(filled, reason="manual", out=bad)
        conn = sqlite3.connect(bad)
        conn.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) values (?, 'm9999_future', 'x')",
            [MIGRATION_SET],
        )
        conn.commit()
        conn.close()
    elif kind == "damaged":
        backup_database(filled, reason="manual", out=bad)
        corrupt(bad)
    elif kind == "itself":
        bad = filled
    before = digest(filled)
    n_backups = len(list_backups(filled))
    with pytest.raises(StoreError):
        restore(filled, bad)
    assert digest(filled) == before
    assert len(list_backups(filled)) == n_backups, "nothing happens when the backup is refused"


def test_restore_refuses_to_overwrite_another_apps_database(filled, tmp_path):
    good = backup_database(filled, reason="manual")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("create table songs (title)")
    conn.commit()
    conn.close()
    before = digest(other)
    with pytest.raises(NotAHitlDatabase):
        restore(other, good)
    assert digest(other) == before


# -- command line --------------------------------------------------------------------------------


def test_cli_backup_and_restore(filled, tmp_path):
    runner = CliRunner()
    out = tmp_path / "manual.db"
    r = runner.invoke(cli, ["backup", "--db", str(filled), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert judgments(out) == 40
    r = runner.invoke(cli, ["backup", "--db", str(filled)])
    assert r.exit_code == 0 and "backups" in r.output

    with Store.open(filled) as s:
        import_file(s, write_set(tmp_path / "later.jsonl", 5, "l"))
    r = runner.invoke(cli, ["restore", str(out), "--db", str(filled)])
    assert r.exit_code == 0, r.output
    assert "Restored" in r.output and "pre-restore" in r.output
    assert judgments(filled) == 40

    r = runner.invoke(cli, ["restore", "--db", str(filled)])
    assert r.exit_code == 2 and "either a BACKUP file or --latest" in r.output
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"nope" * 100)
    r = runner.invoke(cli, ["restore", str(bad), "--db", str(filled)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_restore_latest_recovers_a_corrupt_database(filled):
    runner = CliRunner()
    assert runner.invoke(cli, ["backup", "--db", str(filled)]).exit_code == 0
    corrupt(filled)
    r = runner.invoke(cli, ["stats", "--db", str(filled)])
    assert r.exit_code == 1
    assert "restore --latest" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["restore", "--latest", "--db", str(filled)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["stats", "--db", str(filled), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["judgments"] == 40


def test_cli_restore_latest_without_backups(tmp_path):
    r = CliRunner().invoke(cli, ["restore", "--latest", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 1 and "no good backup" in r.output
