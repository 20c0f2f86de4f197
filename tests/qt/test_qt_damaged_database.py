"""Opening a damaged database in the app: a clear way out, through the latest good backup."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QMessageBox

from hitl_desktop import app
from hitl_desktop.core.backup import backup_database
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store


def damaged_with_backup(tmp_path):
    db = tmp_path / "hitl.db"
    src = tmp_path / "set.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}", "domain": "law"}) for i in range(200)))
    with Store.open(db) as s:
        import_file(s, src)
    good = backup_database(db, reason="manual")
    data = bytearray(db.read_bytes())
    for off in range(4096 * 2, min(len(data), 4096 * 6)):
        data[off] = (off * 7919) % 256
    db.write_bytes(bytes(data))
    return db, good


def test_a_damaged_database_offers_its_latest_good_backup(qtbot, tmp_path, monkeypatch):
    db, good = damaged_with_backup(tmp_path)
    asked = []

    def answer_yes(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    store = app.open_store(str(db))
    assert store is not None, "the backup was restored and opened"
    try:
        assert good.name in asked[0] and "damaged" in asked[0]
        assert store.db["prompts"].count == 200
        assert store.db.execute("pragma integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()
    assert list((db.parent / "backups" / "damaged").iterdir()), "the damaged file is kept"


def test_declining_leaves_the_damaged_file_as_it_is(qtbot, tmp_path, monkeypatch):
    db, _ = damaged_with_backup(tmp_path)
    before = db.read_bytes()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    assert app.open_store(str(db)) is None
    assert db.read_bytes() == before
