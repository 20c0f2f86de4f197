"""Untrusted databases (issue 19, item 6): a pack, a tutor's database or a backup holding what
hitl-desktop's migrations did not make (a trigger, a view named like a table, an extra table
or index, a future migration, a damaged or truncated file, an oversized field) is refused by
every way in (open, open read-only, merge, restore), naming the objects, with nothing written:
the file's bytes unchanged, no file beside it, the lead's database unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core import backup, dbfile, dbschema
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.merging import merge_databases
from hitl_desktop.core.migrations import MIGRATION_SET, migrations
from hitl_desktop.core.sqlitelib import Database, database
from hitl_desktop.core.store import NotAHitlDatabase, Store, StoreError, UntrustedDatabase


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_set(path: Path, n: int, tutor: str = "dr-a") -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"question {i}", "domain": "law",
                                "candidates": [f"a{i}", f"b{i}", f"c{i}"], "ranking": [1, 2, 3],
                                "tutor": tutor}) + "\n")  # fmt: skip
    return path


def make_db(folder: Path, name: str, tutor: str = "dr-a", n: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / name
    with Store.open(db) as s:
        import_file(s, write_set(folder / f"{name}.jsonl", n, tutor))
    shutil.rmtree(folder / "backups", ignore_errors=True)
    (folder / f"{name}.jsonl").unlink()
    return db


def craft(path: Path, *sql: str, params: tuple = ()) -> Path:
    """Change a database behind hitl-desktop's back, with a plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    for i, statement in enumerate(sql):
        conn.execute(statement, params if i == len(sql) - 1 else ())
    conn.commit()
    conn.close()
    return path


def trigger_on_judgments(db: Path) -> Path:
    return craft(db, "create trigger spy after insert on judgments begin delete from prompts; end")


def view_named_like_a_table(db: Path) -> Path:
    return craft(db, "drop table guidelines", "create view guidelines as select 'd' domain, 'v' version, 't' text, 'c' created_at")


def extra_table(db: Path) -> Path:
    return craft(db, "create table notes (id integer primary key, body text)")


def extra_column(db: Path) -> Path:
    return craft(db, "alter table judgments add column payload text")


def index_with_a_condition(db: Path) -> Path:
    return craft(
        db,
        "drop index idx_judgments_prompt_id",
        "create index idx_judgments_prompt_id on judgments (prompt_id) where all_bad = 0",
    )


def future_migration(db: Path) -> Path:
    return craft(
        db,
        "insert into _sqlite_migrations (migration_set, name, applied_at) values (?, 'm9999_future', 'x')",
        params=(MIGRATION_SET,),
    )


def truncated(db: Path) -> Path:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    return db


HOSTILE = {
    "trigger-on-judgments": (trigger_on_judgments, "trigger spy on judgments"),
    "view-named-like-a-table": (view_named_like_a_table, "view guidelines (hitl-desktop makes a table there)"),
    "extra-table": (extra_table, "table notes"),
    "extra-column": (extra_column, "columns hitl-desktop did not make: payload"),
    "index-with-a-condition": (index_with_a_condition, "index idx_judgments_prompt_id on judgments"),
    "future-migration": (future_migration, "newer hitl-desktop (schema steps m9999_future)"),
    "truncated": (truncated, ""),
}


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def dump(store: Store) -> dict[str, list]:
    return {
        t: sorted(map(repr, store.db.execute(f"select * from [{t}]").fetchall()))
        for t in [*Store.MERGE_TABLES, "settings"]
    }


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_database_is_refused_by_open_and_read_only_open_untouched(tmp_path, kind):
    make, named = HOSTILE[kind]
    db = make(make_db(tmp_path / "pack", "ann.db"))
    before, beside = digest(db), siblings(db)
    for opener in (Store.open, Store.open_readonly, lambda p: Store.open(p, read_only=True)):
        with pytest.raises(StoreError) as e:
            opener(db)
        msg = str(e.value)
        assert str(db) in msg and "\n" not in msg and named in msg, msg
        assert digest(db) == before, "the file was modified"
        if opener is Store.open:  # (a read-only reader of a WAL file may leave an empty -shm)
            assert siblings(db) == beside, "a file appeared next to it"
    r = CliRunner().invoke(cli, ["stats", "--db", str(db)])
    assert r.exit_code != 0 and "Traceback" not in r.output and named in r.output, r.output
    assert digest(db) == before


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_merging_a_hostile_database_changes_nothing(tmp_path, kind):
    make, named = HOSTILE[kind]
    lead_path = make_db(tmp_path / "lead", "lab.db", tutor="lead")
    good = make_db(tmp_path / "ws1", "bob.db", tutor="bob")
    bad = make(make_db(tmp_path / "ws2", "ann.db", tutor="ann"))
    bad_before, good_before = digest(bad), digest(good)
    with Store.open(lead_path) as lead:
        before, saved = dump(lead), [b.path for b in backup.list_backups(lead_path)]
        with pytest.raises(StoreError) as e:
            merge_databases(lead, [good, bad])
        assert str(bad) in str(e.value) and named in str(e.value)
        assert dump(lead) == before
        assert [b.path for b in backup.list_backups(lead_path)] == saved, "refused before the merge's backup"
    assert digest(bad) == bad_before and digest(good) == good_before
    r = CliRunner().invoke(cli, ["merge", str(bad), "--db", str(lead_path)])
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    with Store.open(lead_path) as lead:
        assert dump(lead) == before


def test_the_trigger_never_ran(tmp_path):
    """The point of the refusal: a submit on a refused pack cannot happen, so neither can the
    trigger's ``delete from prompts``; the prompts are all there, read by sqlite3 itself."""
    db = trigger_on_judgments(make_db(tmp_path, "ann.db"))
    with pytest.raises(UntrustedDatabase):
        Store.open(db)
    conn = sqlite3.connect(db)
    assert conn.execute("select count(*) from prompts").fetchone()[0] == 8
    conn.close()


def test_a_restore_from_a_hostile_backup_is_refused(tmp_path):
    db = make_db(tmp_path, "mine.db")
    hostile = trigger_on_judgments(make_db(tmp_path / "elsewhere", "mine-copy.db"))
    before = digest(db)
    with pytest.raises(UntrustedDatabase, match="trigger spy on judgments"):
        backup.check_backup(hostile)
    with pytest.raises(StoreError):
        backup.restore(db, hostile)
    assert digest(db) == before


def test_an_oversized_field_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A 4 GB text field cannot be made in a test; the limit it meets is the same one, set lower
    (``dbfile.MAX_VALUE_BYTES``, 64 MiB by default) and a 2 MiB field put against 1 MiB."""
    db = make_db(tmp_path, "ann.db")
    craft(db, "update judgments set rationale = ? where rowid = 1", params=("x" * (2 << 20),))
    monkeypatch.setattr(dbfile, "MAX_VALUE_BYTES", 1 << 20)
    before, beside = digest(db), siblings(db)
    for opener in (Store.open, Store.open_readonly):
        with pytest.raises(UntrustedDatabase, match=r"judgments \(a row of 2\.0 MB\)") as e:
            opener(db)
        assert "1.0 MB" in str(e.value) and str(db) in str(e.value)
        assert digest(db) == before
        if opener is Store.open:
            assert siblings(db) == beside
    lead = tmp_path / "lead" / "lab.db"
    make_db(lead.parent, lead.name)
    with Store.open(lead) as s:
        before_lead = dump(s)
        with pytest.raises(UntrustedDatabase):
            merge_databases(s, [db])
        assert dump(s) == before_lead


def test_the_size_check_without_dbstat_finds_the_table_too(tmp_path, monkeypatch):
    """Where SQLite is built without ``dbstat``, the columns are measured, and a value over the
    connection's length limit fails to load at all."""
    db = make_db(tmp_path, "ann.db")
    craft(db, "update candidates set text = ? where rowid = 2", params=("y" * (3 << 20),))
    monkeypatch.setattr(dbfile, "MAX_VALUE_BYTES", 1 << 20)
    conn = dbfile.connect(str(db))
    try:
        with pytest.raises(sqlite3.DataError):  # the limit is on the connection itself
            conn.execute("select text from candidates where rowid = 2").fetchall()

        class NoDbstat:
            def execute(self, sql, *args):
                if "dbstat" in sql:
                    raise sqlite3.OperationalError("no such table: dbstat")
                return conn.execute(sql, *args)

        assert [t for t, _ in dbschema.oversized_tables(NoDbstat(), 1 << 20)] == ["candidates"]
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 8 << 20)  # measured (not refused) under it
        assert dbschema.oversized_tables(NoDbstat(), 4 << 20) == []
        assert [t for t, n in dbschema.oversized_tables(NoDbstat(), 2 << 20)] == ["candidates"]
    finally:
        conn.close()


def test_every_connection_runs_with_trusted_schema_off(tmp_path):
    db = make_db(tmp_path, "ann.db")

    def trusted(conn: sqlite3.Connection) -> int:
        return conn.execute("pragma trusted_schema").fetchone()[0]

    with Store.open(db) as s:
        assert trusted(s.db.conn) == 0
    with Store.open_readonly(db) as s:
        assert trusted(s.db.conn) == 0
    with Store.memory() as s:
        assert trusted(s.db.conn) == 0
    assert trusted(dbfile.connect(":memory:")) == 0
    plain = sqlite3.connect(":memory:")
    assert trusted(plain) == 1  # SQLite's default, which database() turns off
    database(plain)
    assert trusted(plain) == 0


def test_an_older_schema_is_checked_against_its_own_steps(tmp_path):
    """A database of an older version (fewer steps) is what those steps make: it opens (and is
    migrated), while an object no step makes is refused there too."""
    old = tmp_path / "old.db"
    db = Database(sqlite3.connect(old))
    migrations.apply(db, stop_before="m0004_lab")
    db.execute(f"PRAGMA application_id = {0x4849544C}")
    db.conn.commit()
    db.conn.close()
    with Store.open_readonly(old) as s:
        assert "m0004_lab" not in s.schema_version()
    spare = tmp_path / "spare.db"
    shutil.copy(old, spare)
    with Store.open(old) as s:
        assert s.schema_version() == [m.name for m in migrations._migrations]
    # guidelines is made by m0004: in a database before it, a "guidelines" table is foreign
    craft(spare, "create table guidelines (domain text, version text, text text, created_at text)")
    with pytest.raises(UntrustedDatabase, match="table guidelines"):
        Store.open_readonly(spare)


def test_the_expected_schema_is_what_a_fresh_database_has(tmp_path):
    with Store.open(tmp_path / "fresh.db") as s:
        assert dbschema.unexpected_objects(s.db.conn) == []
        steps = frozenset(s.schema_version())
        have = dbschema.read_schema(s.db.conn)
    assert set(have) == set(dbschema.expected_schema(steps))
    assert dbschema.expected_schema(steps) is dbschema.expected_schema(steps)  # built once


def test_a_refusal_is_a_not_a_hitl_database(tmp_path):
    db = extra_table(make_db(tmp_path, "ann.db"))
    with pytest.raises(NotAHitlDatabase):
        Store.open(db)
