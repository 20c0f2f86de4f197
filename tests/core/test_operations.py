"""The lab's operations over a database path (core/operations.py): progress, cancellation (nothing
kept), summaries, one rule for reading (integrity check) whoever calls."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core import operations
from hitl_desktop.core.store import Store


def records(path, n=4):
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Q{i}?", "domain": "medicine", "candidates": ["a", "b"],
                                        "ranking": [1, 2], "tutor": "ann"}) + "\n" for i in range(n)))  # fmt: skip
    return path


def test_import_reports_progress_and_a_summary(tmp_path):
    db = tmp_path / "a.db"
    seen = []
    summary = operations.import_file(db, records(tmp_path / "r.jsonl"), create=True, progress=lambda f, m: seen.append(f))
    assert summary.prompts == 4 and summary.judgments == 4
    assert seen and seen[-1] == pytest.approx(1.0)


def test_a_cancelled_import_keeps_nothing(tmp_path):
    db = tmp_path / "a.db"
    Store.open(db).close()
    with pytest.raises(operations.OperationCancelled):
        operations.import_file(db, records(tmp_path / "r.jsonl"), cancelled=lambda: True)
    with Store.open(db) as s:
        assert s.all_prompts() == []


def test_export_merge_backup_restore_review(tmp_path):
    db = tmp_path / "a.db"
    operations.import_file(db, records(tmp_path / "r.jsonl"), create=True)
    out = tmp_path / "pairs.jsonl"
    summary = operations.export(db, fmt="trl-preference", out=out)
    assert summary.rows == 4 and out.exists()
    lab = tmp_path / "lab.db"
    Store.open(lab).close()
    merged = operations.merge(lab, [db], backup=False)
    assert merged.added["judgments"] == 4
    copy = operations.backup(lab, reason="manual")
    assert copy.exists()
    operations.import_file(lab, records(tmp_path / "more.jsonl", 6))
    used, _saved = operations.restore(lab, copy)
    assert used == copy
    with Store.open(lab) as s:
        assert len(s.all_prompts()) == 4
    assert operations.review(lab) == []  # one tutor: nothing to review


def test_reading_checks_integrity_for_every_caller(tmp_path, monkeypatch):
    from hitl_desktop.core import backup
    from hitl_desktop.core.store import StoreError

    db = tmp_path / "a.db"
    operations.import_file(db, records(tmp_path / "r.jsonl"), create=True)
    checked = []

    def damaged(store, *, for_work=True):
        checked.append(for_work)
        raise StoreError(f"{store.path}: damaged")

    monkeypatch.setattr(backup, "check_integrity", damaged)
    for read in (lambda: operations.export(db, fmt="trl-preference", out=tmp_path / "x.jsonl"), lambda: operations.review(db)):
        with pytest.raises(StoreError, match="damaged"):
            read()
    assert checked == [False, False] and not (tmp_path / "x.jsonl").exists()


def test_backup_timing(tmp_path):
    db = tmp_path / "a.db"
    with Store.open(db) as store:
        auto = operations.AutoBackup(store)
        assert auto.job() is None  # nothing changed yet
        store.ensure_tutor("ann")
        assert auto.job() is None  # changed, but the interval has not passed
        auto.scheduler.interval_s = 0
        job = auto.job()
        assert job is not None and auto.job() is None  # one at a time
        path = job()
        auto.done(path)
        assert path.exists() and auto.scheduler.last_backup == path
        assert auto.job() is None  # nothing changed since
        store.ensure_tutor("bob")
        job = auto.job()
        auto.failed("disk full")
        assert auto.scheduler.last_error == "disk full" and auto.job() is not None  # retried
    with Store.memory() as mem:
        assert operations.AutoBackup(mem).job() is None and operations.AutoBackup(mem).final() is None
