"""Several writers on one database lose no write; a writer kept waiting too long gets a clear
StoreError, never a raw "database is locked" traceback."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import hitl_desktop.core.store as store_module
from hitl_desktop.cli import cli
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import BUSY_MESSAGE, DatabaseBusy, Store, StoreError
from hitl_desktop.core.types import Judgment

WRITER = Path(__file__).resolve().parents[1] / "helpers" / "writer.py"
ROOT = Path(__file__).resolve().parents[2]


def seed(db: Path, tmp_path: Path, n: int) -> None:
    path = tmp_path / "queue.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "prompt": f"question {i}", "domain": "law",
                                "candidates": [f"a{i}", f"b{i}", f"c{i}"]}) + "\n")
    with Store.open(db) as s:
        import_file(s, path)


def judge_all(store: Store, tutor_name: str, count: int) -> list[str]:
    tutor = store.ensure_tutor(tutor_name)  # read-then-write: contended on purpose
    saved = []
    for n, prompt in enumerate(store.queued_prompts(tutor_id=tutor.id, limit=count)):
        ids = [c.id for c in store.candidates_for(prompt.id)]
        j = Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={c: (i + n) % 3 + 1 for i, c in enumerate(ids)},
                     display_order=ids)
        store.save_judgment(j)
        saved.append(j.id)
    return saved


def test_two_stores_in_two_threads_lose_no_write(tmp_path):
    db = tmp_path / "hitl.db"
    seed(db, tmp_path, 200)
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            with Store.open(db) as s:
                barrier.wait()
                results[name] = judge_all(s, name, 200)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("dr-a", "dr-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with Store.open(db) as s:
        ids = {r[0] for r in s.db.execute("select id from judgments")}
        assert len(ids) == 400
        assert ids == set(results["dr-a"]) | set(results["dr-b"])
        assert s.db.execute("select count(*) from rankings").fetchone()[0] == 400 * 3


def test_two_processes_and_this_one_writing_at_once_lose_no_write(tmp_path):
    db = tmp_path / "hitl.db"
    seed(db, tmp_path, 150)
    procs = [
        subprocess.Popen([sys.executable, str(WRITER), "judge", str(db), name, "150"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for name in ("dr-p1", "dr-p2")
    ]
    with Store.open(db) as s:
        mine = judge_all(s, "dr-main", 150)
    acked: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        lines = out.split()
        assert lines[0] == "ready" and lines[-1] == "finished"
        acked += lines[1:-1]
    assert len(acked) == 300 and len(mine) == 150
    conn = sqlite3.connect(db)
    try:
        ids = {r[0] for r in conn.execute("select id from judgments")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert ids == set(acked) | set(mine)
    assert len(ids) == 450


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)


@pytest.fixture
def locked(tmp_path):
    """A database with an open write transaction held by another connection."""
    db = tmp_path / "hitl.db"
    seed(db, tmp_path, 3)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("insert into settings (key, value) values ('held', 'by another window')")
    yield db, other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_a_writer_blocked_beyond_the_busy_timeout_gets_a_clear_store_error(locked, short_timeout):
    db, other = locked
    with Store.open(db) as s:  # reading goes on while another connection writes (WAL)
        assert s.db.execute("pragma busy_timeout").fetchone()[0] == 200
        prompt = s.queued_prompts()[0]
        tutor_row = None
        with pytest.raises(StoreError) as e:
            tutor_row = s.ensure_tutor("dr-a")
        assert str(e.value) == BUSY_MESSAGE
        assert "database is locked" not in str(e.value)
        assert isinstance(e.value, DatabaseBusy) and isinstance(e.value, sqlite3.OperationalError)
        assert tutor_row is None and not s.db.conn.in_transaction

        other.execute("ROLLBACK")  # the other window finishes
        tutor = s.ensure_tutor("dr-a")
        ids = [c.id for c in s.candidates_for(prompt.id)]
        other.execute("BEGIN IMMEDIATE")
        j = Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks=dict(zip(ids, [1, 2, 3])), display_order=ids)
        with pytest.raises(StoreError, match="the database is busy"):
            s.save_judgment(j)
        assert s.db.execute("select count(*) from judgments").fetchone()[0] == 0
        other.execute("ROLLBACK")
        s.save_judgment(j)  # the same judgment goes in once the lock is gone
        assert s.db.execute("select count(*) from rankings").fetchone()[0] == 3


def test_the_cli_says_busy_in_one_line_and_imports_nothing(locked, short_timeout, tmp_path):
    db, _ = locked
    f = tmp_path / "more.jsonl"
    f.write_text(json.dumps({"prompt": "another question", "domain": "law"}) + "\n")
    r = CliRunner().invoke(cli, ["import", str(f), "--db", str(db)])
    assert r.exit_code == 1
    assert "the database is busy" in r.output and "nothing was imported" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not isinstance(r.exception, sqlite3.Error) or isinstance(r.exception, SystemExit)


def test_an_exclusively_locked_database_is_refused_clearly_and_untouched(tmp_path, short_timeout):
    db = tmp_path / "hitl.db"
    seed(db, tmp_path, 3)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="the database is busy"):
            Store.open(db)
        r = CliRunner().invoke(cli, ["stats", "--db", str(db)])
        assert r.exit_code == 1 and "busy" in r.output and "Traceback" not in r.output
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store.open(db) as s:
        assert s.stats()["prompts"] == 3
