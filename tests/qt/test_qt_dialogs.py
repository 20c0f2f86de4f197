"""Dialogs: first run, session, settings, export (worker thread with its own Store), help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.qt.dialogs.export_dialog import ExportDialog
from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog
from hitl_desktop.qt.dialogs.tutor import FirstRunDialog, SessionDialog


def test_first_run_dialog(qtbot):
    d = FirstRunDialog()
    qtbot.addWidget(d)
    d._accept()
    assert "name" in d.error.text() and d.result() == 0
    d.name_edit.setText("  Dr. Kim ")
    d.custom_edit.setText("Cardiology")
    d._add_custom()
    d.domain_list.item(0).setCheckState(Qt.CheckState.Checked)
    d._accept()
    assert d.result() == FirstRunDialog.DialogCode.Accepted
    assert d.name() == "Dr. Kim" and d.domains() == ["medicine", "cardiology"]


def test_first_run_domains_are_readable_rows_ticked_by_a_click_anywhere(qtbot):
    d = FirstRunDialog()
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    view = d.domain_list
    rects = [view.visualItemRect(view.item(i)) for i in range(view.count())]
    assert all(r.height() >= 24 for r in rects), "rows must not squeeze their text"
    assert all(a.bottom() < b.top() for a, b in zip(rects, rects[1:])), "rows must not overlap"
    finance = view.item(1)
    text_spot = rects[1].center()  # on the word, not on the box
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=text_spot)
    assert finance.checkState() == Qt.CheckState.Checked
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=text_spot)
    assert finance.checkState() == Qt.CheckState.Unchecked


def test_session_dialog(qtbot):
    d = SessionDialog(tutors=["Dr. Kim"], tutor="Dr. Kim", domains=["cardiology"], domain="cardiology")
    qtbot.addWidget(d)
    assert d.domain_box.findText("medicine") >= 0
    d.domain_box.setCurrentText("../bad")
    d._accept()
    assert d.result() == 0 and d.error.text()
    d.domain_box.setCurrentText("Cardiology")
    d._accept()
    assert d.result() == SessionDialog.DialogCode.Accepted and d.domain() == "cardiology"


def test_settings_dialog(qtbot, app_settings):
    d = SettingsDialog(settings=app_settings)
    qtbot.addWidget(d)
    assert d.embedded.isChecked() and not d.path_edit.isEnabled()
    d.k_spin.setValue(6)
    d.temp_spin.setValue(0.7)
    d.fixed_seed.setChecked(True)
    d.seed_spin.setValue(42)
    assert d.apply() is False  # model unchanged
    assert app_settings.k == 6 and app_settings.temperature == 0.7 and app_settings.seed == 42
    d.local.setChecked(True)
    d.path_edit.setText("/models/my.gguf")
    assert d.apply() is True and app_settings.model_path == "/models/my.gguf"


def test_export_dialog_runs_in_a_worker(fake_window, qtbot, db_file, tmp_path):
    w = fake_window
    w.start_session(tutor_name="Dr. Test", domain="medicine")
    w.load_samples()
    wait_ready(qtbot, w)
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4):
        press(qtbot, w, key)
    w.submit()
    d = ExportDialog(w, db_path=str(db_file), domains=["medicine", "law"], tutors=["Dr. Test"], domain="medicine")
    qtbot.addWidget(d)
    assert d.domain_box.currentData() == "medicine"
    out = tmp_path / "out.jsonl"
    d.out_edit.setText(str(out))
    d.format_box.setCurrentIndex(d.format_box.findData("trl-preference"))
    d.keep_names.setChecked(True)
    with qtbot.waitSignal(d.runner.exported, timeout=20000):
        d.start()
    assert d.summary.rows == 6 and d.summary.pairs == 6
    assert "6 rows" in d.result.text()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {r["tutor"] for r in rows} == {"Dr. Test"}
    # a bad destination is reported, not raised
    d.out_edit.setText(str(tmp_path / "out.csv"))
    with qtbot.waitSignal(d.runner.failed, timeout=20000):
        d.start()
    assert "Export failed" in d.result.text()
    d.close()


def test_toolbar_dialogs_open_without_blocking(fake_window, qtbot):
    w = fake_window
    w.start_session(tutor_name="Dr. Test", domain="stem")
    press(qtbot, w, Qt.Key.Key_F1)
    w.open_settings_dialog()
    w.open_export_dialog()
    w.open_session_dialog()
    w.open_guideline_editor()
    assert len(w._dialogs) == 5
    for d in list(w._dialogs):
        d.reject()
    assert w._dialogs == []
    w.open_quality_dashboard()
    assert w.dashboard is not None and w.dashboard.isVisible()
    w.dashboard.close()


# -- the export dialog's defaults (issue 19 item 4) -------------------------------------------------

from PySide6.QtCore import QDate, QLocale  # noqa: E402

from hitl_desktop.qt.dialogs import export_dialog  # noqa: E402


def _export_dialog(qtbot, db, settings, **kw):
    d = ExportDialog(None, db_path=str(db), domains=["medicine"], tutors=["Dr. Test"], settings=settings, **kw)
    qtbot.addWidget(d)
    return d


def test_export_starts_in_the_database_folder_then_the_last_one_used(qtbot, tmp_path, app_settings, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    db = tmp_path / "work" / "tutor.db"
    db.parent.mkdir()
    d = _export_dialog(qtbot, db, app_settings, default_dir=str(home))
    assert Path(d.out_edit.text()) == db.parent / "preferences.jsonl"  # not ~/preferences.jsonl
    # an export made elsewhere: the next dialog starts there
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    d.out_edit.setText(str(elsewhere / "round1.jsonl"))
    d._remember_folder()
    assert app_settings.export_dir == str(elsewhere.resolve())
    d2 = _export_dialog(qtbot, db, app_settings)
    assert Path(d2.out_edit.text()) == elsewhere.resolve() / "preferences.jsonl"
    # an earlier export is never proposed for overwriting
    (elsewhere / "preferences.jsonl").write_text("{}\n")
    d3 = _export_dialog(qtbot, db, app_settings)
    assert Path(d3.out_edit.text()) == elsewhere.resolve() / "preferences-2.jsonl"
    # a remembered folder that is gone: back to the database's
    (elsewhere / "preferences.jsonl").unlink()
    elsewhere.rmdir()
    d4 = _export_dialog(qtbot, db, app_settings)
    assert Path(d4.out_edit.text()) == db.parent / "preferences.jsonl"


def test_a_finished_export_remembers_its_folder(fake_window, qtbot, db_file, tmp_path, app_settings):
    w = fake_window
    w.start_session(tutor_name="Dr. Test", domain="medicine")
    w.load_samples()
    wait_ready(qtbot, w)
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4):
        press(qtbot, w, key)
    w.submit()
    w.open_export_dialog()
    d = w.export_dialog
    assert Path(d.out_edit.text()).parent == Path(db_file).parent  # the window's database's folder
    out_dir = tmp_path / "round2"
    out_dir.mkdir()
    d.out_edit.setText(str(out_dir / "pairs.jsonl"))
    with qtbot.waitSignal(d.runner.exported, timeout=20000):
        d.start()
    assert app_settings.export_dir == str(out_dir.resolve())
    d.close()
    w.open_export_dialog()
    assert Path(w.export_dialog.out_edit.text()).parent == out_dir.resolve()
    w.export_dialog.close()


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        (QLocale(QLocale.Language.C), "2026-11-01"),
        (QLocale(QLocale.Language.English, QLocale.Country.UnitedStates), "11/1/2026"),
        (QLocale(QLocale.Language.English, QLocale.Country.UnitedKingdom), "01/11/2026"),
        (QLocale(QLocale.Language.German, QLocale.Country.Germany), "01.11.2026"),
    ],
)
def test_export_dates_are_written_in_the_system_locale(locale, shown):
    fmt = export_dialog.date_format(locale)
    assert locale.toString(QDate(2026, 11, 1), fmt) == shown
    assert locale.toString(QDate(2026, 11, 1), fmt) != "1 11 2026"


def test_the_date_fields_use_that_format(qtbot, tmp_path, app_settings, monkeypatch):
    monkeypatch.setattr(export_dialog, "date_format", lambda locale=None: "yyyy-MM-dd")
    d = _export_dialog(qtbot, tmp_path / "x.db", app_settings)
    d.since_edit.setDate(QDate(2026, 11, 1))
    assert d.since_edit.text() == "2026-11-01" and d.until_edit.displayFormat() == "yyyy-MM-dd"
