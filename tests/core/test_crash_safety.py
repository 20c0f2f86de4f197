"""No judgment lost: a writer process SIGKILLed at random points loses nothing it acknowledged,
leaves no half-saved judgment and no half-imported file, and the database stays intact."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

WRITER = Path(__file__).resolve().parents[1] / "helpers" / "writer.py"
K = 4  # candidates per prompt


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == expected:
                return
            if not line:
                break
    proc.kill()
    raise AssertionError(f"child never said {expected!r}: {proc.stderr.read()[-2000:]}")


def kill_after(proc: subprocess.Popen, delay: float) -> list[str]:
    """SIGKILL the child after ``delay`` s; the complete lines it printed before dying."""
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=15)
    assert "Traceback" not in err, err
    # a line is acknowledged only when complete (the newline was written after the save)
    return [line for line in out.split("\n")[:-1] if line]


def integrity_ok(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def queue_file(path: Path, n: int, tag: str, *, ranked: bool = False) -> Path:
    with path.open("w") as f:
        for i in range(n):
            rec = {
                "id": f"{tag}-{i}",
                "prompt": f"{tag} question {i}: what is the dose?",
                "domain": "medicine",
                "candidates": [f"{tag} answer {i}.{k}" for k in range(K)],
            }
            if ranked:
                rec.update(ranking=[1, 2, 2, 3], tutor="dr-import", correction=f"fixed {i}", corrected_index=0)
            f.write(json.dumps(rec) + "\n")
    return path


def test_judgments_survive_sigkill_at_random_points(tmp_path):
    db = tmp_path / "crash.db"
    with Store.open(db) as s:
        import_file(s, queue_file(tmp_path / "queue.jsonl", 3000, "q"))
    rng = random.Random(6)
    acknowledged: list[str] = []
    rounds = 12
    for _ in range(rounds):
        proc = spawn("judge", str(db), "dr-crash", "3000")
        wait_for_line(proc, "ready")
        lines = kill_after(proc, rng.uniform(0.0, 0.25))
        acknowledged += [x for x in lines if x not in ("ready", "finished")]
        integrity_ok(db)

    assert len(acknowledged) > rounds, "the kills should land while judgments are being saved"
    with Store.open(db) as s:  # opens: quick_check passes, nothing to recover by hand
        conn = s.db.conn
        saved = {r[0] for r in conn.execute("select id from judgments")}
        missing = set(acknowledged) - saved
        assert not missing, f"{len(missing)} acknowledged judgment(s) lost"
        # every judgment (acknowledged or not) is whole: all K rankings, none half-written
        per = dict(conn.execute("select judgment_id, count(*) from rankings group by judgment_id"))
        assert all(per.get(j) == K for j in saved), "a judgment without all its rankings"
        assert conn.execute(
            "select count(*) from rankings where judgment_id not in (select id from judgments)"
        ).fetchone()[0] == 0
        # the ones acknowledged read back as saved
        items = {i.judgment.id: i for i in s.judged_items()}
        for jid in acknowledged[:: max(1, len(acknowledged) // 50)]:
            assert sorted(items[jid].judgment.ranks.values()) != []
            assert len(items[jid].judgment.ranks) == K


def test_import_is_all_or_nothing_under_sigkill(tmp_path):
    db = tmp_path / "crash.db"
    Store.open(db).close()
    n = 2000
    # How long an uninterrupted import takes here, to spread the kills over it.
    probe = queue_file(tmp_path / "probe.jsonl", n, "probe", ranked=True)
    proc = spawn("import", str(db), str(probe))
    wait_for_line(proc, "ready")
    t0 = time.monotonic()
    wait_for_line(proc, "done", timeout=30)
    duration = time.monotonic() - t0
    proc.wait(timeout=10)

    rng = random.Random(7)
    # most kills land while the import's one transaction is being written (about 70% of the
    # time after "ready"); the last one comes after it finished
    delays = [rng.uniform(0.2 * duration, 1.0 * duration) for _ in range(5)] + [2.0 * duration + 0.5]
    outcomes = []
    for r, delay in enumerate(delays):
        path = queue_file(tmp_path / f"set-{r}.jsonl", n, f"r{r}", ranked=True)
        proc = spawn("import", str(db), str(path))
        wait_for_line(proc, "ready")
        lines = kill_after(proc, delay)
        integrity_ok(db)
        conn = sqlite3.connect(db)
        try:
            prompts = conn.execute("select count(*) from prompts where source = ?", [path.name]).fetchone()[0]
            judged = conn.execute(
                "select count(*) from judgments j join prompts p on p.id = j.prompt_id where p.source = ?",
                [path.name],
            ).fetchone()[0]
            cands = conn.execute(
                "select count(*) from candidates c join prompts p on p.id = c.prompt_id where p.source = ?",
                [path.name],
            ).fetchone()[0]
        finally:
            conn.close()
        assert (prompts, cands, judged) in ((0, 0, 0), (n, n * K, n)), (prompts, cands, judged)
        if "done" in lines:
            assert prompts == n, "an acknowledged import must be all there"
        outcomes.append(prompts == n)
    assert outcomes[-1], "the import that was left to finish is all there"
    with Store.open(db) as s:
        assert s.db.execute("select count(*) from corrections").fetchone()[0] == s.db.execute(
            "select count(*) from judgments"
        ).fetchone()[0]


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    """After a writer dies mid-transaction, the next writer goes ahead at once."""
    db = tmp_path / "crash.db"
    with Store.open(db) as s:
        import_file(s, queue_file(tmp_path / "queue.jsonl", 200, "q"))
    proc = spawn("judge", str(db), "dr-a", "200")
    wait_for_line(proc, "ready")
    kill_after(proc, 0.05)
    t0 = time.monotonic()
    proc = spawn("judge", str(db), "dr-b", "5")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip().endswith("finished")
    assert time.monotonic() - t0 < 8
    assert os.path.exists(db)
