"""GUI review fixes: a narrow window never cuts cards off, labels show no stray mnemonics."""

from __future__ import annotations

import html

from fakes import wait_ready
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def _start(window, qtbot):
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    assert window.load_samples() == 5
    wait_ready(qtbot, window)


def test_cards_fit_a_small_window(fake_window, qtbot):
    """At 1024x700 the cards re-flow into fewer columns instead of running off the right edge
    (the bench has no horizontal scroll bar), and grow back to two columns when wide."""
    w = fake_window
    _start(w, qtbot)
    assert len(w.bench.cards) == 4
    w.resize(1024, 700)
    qtbot.waitUntil(lambda: w.bench.columns == 1, timeout=3000)
    viewport = w.bench.scroll.viewport()
    for card in w.bench.cards:
        assert card.geometry().right() <= viewport.width(), "a card is cut off at the right"
    # up/down walks the single column
    w.bench.select(0)
    w.bench.select_row_step(1)
    assert w.bench.selected_position == 1
    w.resize(1440, 900)
    qtbot.waitUntil(lambda: w.bench.columns == 2, timeout=3000)


def test_export_dialog_labels_have_buddies(fake_window, qtbot):
    """'&Save to' was added with a layout as its field: no buddy, so the '&' showed literally."""
    fake_window.open_export_dialog()
    dialog = fake_window.export_dialog
    labels = [lb for lb in dialog.findChildren(QLabel) if "&" in lb.text()]
    assert labels, "the destination label keeps its mnemonic"
    for lb in labels:
        assert lb.buddy() is not None, f"{lb.text()!r} shows its '&' literally"
    assert next(lb for lb in labels if "Save to" in lb.text()).buddy() is dialog.out_edit
    dialog.reject()


def test_bad_model_file_is_one_line_on_stderr(qtbot, capfd):
    """A bad model file is an expected failure (the window explains it): stderr gets one line,
    not a traceback that looks like a crash. An unexpected error keeps its traceback."""
    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.qt.workers import ModelController

    def broken(path, on_progress):
        raise ModelError(f"{path}: not a GGUF file")

    ctl = ModelController(broken)
    with qtbot.waitSignal(ctl.load_failed, timeout=5000):
        ctl.load("/tmp/bad.gguf")
    assert ctl.shutdown()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "/tmp/bad.gguf: not a GGUF file" in err

    def buggy(path, on_progress):
        raise KeyError("oops")

    ctl = ModelController(buggy)
    with qtbot.waitSignal(ctl.load_failed, timeout=5000):
        ctl.load(None)
    assert ctl.shutdown()
    assert "Traceback" in capfd.readouterr().err


def test_bench_dashboard_hides_gold_agreement(fake_window, qtbot):
    """Gold items are unannounced: the dashboard opened from the tutor's bench has no
    per-tutor "vs gold" column (its n would tell which submitted item was gold)."""
    from hitl_desktop.qt.dashboard import TUTOR_COLUMNS

    fake_window.open_quality_dashboard()
    dash = fake_window.dashboard
    gold = [i for i, c in enumerate(TUTOR_COLUMNS) if "gold" in c.key]
    assert gold and all(dash.tutor_view.isColumnHidden(i) for i in gold)
    shown = [dash.tutor_model.headerData(i, Qt.Orientation.Horizontal) for i in range(len(TUTOR_COLUMNS))
             if not dash.tutor_view.isColumnHidden(i)]
    assert not any("gold" in str(h) for h in shown)
    dash.close()


def test_dashboard_controls_have_accessible_names(fake_window):
    fake_window.open_quality_dashboard()
    dash = fake_window.dashboard
    for w in (dash.domain_box, dash.tutor_view, dash.domain_view):
        assert w.accessibleName(), w.objectName()
    dash.close()


def test_export_result_is_selectable(fake_window):
    """The written paths are shown so that the tutor can copy them."""
    fake_window.open_export_dialog()
    dialog = fake_window.export_dialog
    assert dialog.result.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    dialog.reject()


def test_help_shows_every_shortcut(fake_window, qtbot):
    """F1: the table was cut off at the bottom (last rows: Ctrl+E export and on)."""
    from hitl_desktop.qt.bench import KEY_TABLE

    fake_window.show_help()
    dialog = fake_window._dialogs[-1]
    qtbot.waitExposed(dialog)
    label = dialog.label
    assert label.height() >= label.sizeHint().height()
    assert label.geometry().bottom() <= dialog.height()
    assert html.escape(KEY_TABLE[-1][0]) in label.text()
    dialog.reject()


def test_settings_local_model_needs_a_path(qtbot, app_settings):
    from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog

    d = SettingsDialog(settings=app_settings)
    qtbot.addWidget(d)
    d.show()
    d.local.setChecked(True)
    d.path_edit.setText("  ")
    d.accept()
    assert d.isVisible() and d.path_error.isVisible(), "an empty path silently meant the embedded model"
    d.path_edit.setText("/models/my.gguf")
    d.accept()
    assert not d.isVisible()


def test_settings_ok_retries_a_failed_model(qtbot, file_store, app_settings, guideline_library):
    """The model failed to load (a bad file); the tutor fixes the file and presses OK in
    Settings without changing the path: the model is loaded again."""
    from fakes import FakeBackend

    from hitl_desktop.core.backends.base import ModelError
    from hitl_desktop.qt.main_window import MainWindow

    calls = []

    def flaky(path, on_progress):
        calls.append(path)
        if len(calls) == 1:
            raise ModelError("model.gguf: truncated file")
        return FakeBackend()

    w = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library, backend_factory=flaky)
    qtbot.addWidget(w)
    w.show()
    w.start_model()
    qtbot.waitUntil(lambda: w.model.state == "error", timeout=5000)
    w.open_settings_dialog()
    w._dialogs[-1].accept()
    qtbot.waitUntil(lambda: w.model.state == "ready", timeout=5000)
    assert len(calls) == 2
    w.close()


def test_big_queue_does_not_freeze_submit_or_skip(fake_window, qtbot, file_store):
    """With 20 000 queued prompts every submit/skip froze the window for about a second:
    selecting the next prompt laid out (measured the wrapped text of) every row of the queue.
    Laid out in batches, a skip takes milliseconds (the bound is generous for slow machines)."""
    import time

    from hitl_desktop.core.types import Prompt

    w = fake_window
    _start(w, qtbot)
    file_store.bulk_insert(prompts=[Prompt(text=f"question {i} " * 8, domain="medicine") for i in range(20000)])
    w.refresh_queue()
    qtbot.wait(20)
    started = time.perf_counter()
    w.skip()
    w.skip()
    took = time.perf_counter() - started
    assert w.queue_model.rowCount() == 20005
    assert took < 0.4, f"two skips took {took:.2f} s"


def test_wording_counts_singular_and_plural():
    from hitl_desktop.qt.wording import count

    assert count(1, "prompt") == "1 prompt"
    assert count(0, "prompt") == "0 prompts"
    assert count(4, "new prompt") == "4 new prompts"
    assert count(2, "analysis", "analyses") == "2 analyses"
