"""Dialogs: first run, session, settings, export (worker thread with its own Store), help."""

from __future__ import annotations

import json

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
