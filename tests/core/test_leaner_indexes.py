"""m0009_leaner_indexes: an older database keeps every row and answers the same lookups from
fewer B-trees (no duplicate candidates index, partial indexes for mostly-null columns)."""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from hitl_desktop.core.migrations import migrations
from hitl_desktop.core.store import Store

STEP = "m0009_leaner_indexes"


def _older_database(path):
    """A database of the steps before m0009, with two judgments (one superseding the other)."""
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before=STEP)
    t = "2026-11-01T00:00:00.000000+00:00"
    db["tutors"].insert({"id": "t1", "name": "dr-a", "domains": "[]", "created_at": t})
    db["sessions"].insert({"id": "s1", "tutor_id": "t1", "domain": "medicine", "guideline_version": "v1", "started_at": t})
    db["prompts"].insert({"id": "p1", "text": "Dose of ibuprofen?", "domain": "medicine", "created_at": t})
    for i in range(3):
        db["candidates"].insert({"id": f"c{i}", "prompt_id": "p1", "idx": i, "text": f"answer {i}", "created_at": t})
    for j, supersedes in (("j1", None), ("j2", "j1")):
        db["judgments"].insert({"id": j, "prompt_id": "p1", "tutor_id": "t1", "session_id": "s1", "created_at": t,
                                "display_order": '["c0","c1","c2"]', "supersedes": supersedes})
        for i, rank in enumerate((2, 1, 3)):
            db["rankings"].insert({"judgment_id": j, "candidate_id": f"c{i}", "rank": rank,
                                   "flags": '["unsafe"]' if i == 2 else "[]", "ratings": "{}"})
    tables = ("judgments", "rankings", "candidates")
    rows = {t: sorted(db.execute(f"select * from {t}").fetchall()) for t in tables}
    db.conn.close()
    return rows


def _plan(store: Store, sql: str, args: list) -> str:
    return " ".join(r[-1] for r in store.db.execute(f"explain query plan {sql}", args).fetchall())


def test_an_older_database_keeps_every_row_and_opens_again(tmp_path):
    path = tmp_path / "old.db"
    before = _older_database(path)
    store = Store.open(path)
    assert STEP in store.schema_version()
    assert {t: sorted(store.db.execute(f"select * from {t}").fetchall()) for t in before} == before
    [judgment] = [j for j in store.judgments_for("p1") if j.id == "j2"]
    assert judgment.ranks == {"c0": 2, "c1": 1, "c2": 3} and judgment.flags == {"c2": ["unsafe"]}
    assert store.superseding_judgment("j1") == "j2" and store.superseding_judgment("j2") is None
    store.close()
    Store.open(path).close()  # the migrated schema is the one hitl-desktop makes: it opens again


def test_the_lookups_still_use_an_index(tmp_path):
    path = tmp_path / "old.db"
    _older_database(path)
    store = Store.open(path)
    names = {r[0] for r in store.db.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_candidates_prompt_id" not in names
    assert "idx_candidates_prompt_id_set_id" in _plan(store, "select id from candidates where prompt_id = ?", ["p1"])
    assert "idx_judgments_supersedes" in _plan(store, "select id from judgments where supersedes = ?", ["j1"])
    assert "idx_judgments_session_id" in _plan(store, "select id from judgments where session_id = ?", ["s1"])
    for column in ("session_id", "supersedes"):
        sql = store.db.execute("select sql from sqlite_master where name = ?", [f"idx_judgments_{column}"]).fetchone()[0]
        assert f"where {column} is not null" in sql.lower()
    store.close()


def test_a_new_database_is_made_with_the_leaner_indexes(tmp_path):
    store = Store.open(tmp_path / "new.db")
    names = {r[0] for r in store.db.execute("select name from sqlite_master where type = 'index'")}
    assert "idx_candidates_prompt_id" not in names and "idx_judgments_supersedes" in names
    store.close()
