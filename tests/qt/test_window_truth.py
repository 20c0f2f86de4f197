"""The window tells the truth: the judging fields clear with the next item, a finished pack says
which file to hand back, undo reaches the previous session's last judgment after a restart, Lead
mode shows, and one submit reads the session's summary once."""

from __future__ import annotations

import json

from fakes import fake_factory, press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import DEFAULT_STRENGTH
from hitl_desktop.core.workflow import PACK_TUTOR_KEY

K = Qt.Key
CTRL = Qt.KeyboardModifier.ControlModifier


def rank_all(qtbot, window):
    wait_ready(qtbot, window)
    for n in range(1, len(window.bench.cards) + 1):
        window.bench.press_position(n)


def fields(window):
    b = window.bench
    flags = [f for card in b.cards for f, button in card.flag_buttons.items() if button.isChecked()]
    ratings = [box.currentData() for card in b.cards for box in card.rating_boxes.values() if box.currentData()]
    return b.rationale.text(), b.all_bad_button.isChecked(), b.strength_box.currentData(), flags, ratings


def test_rationale_flags_ratings_and_strength_clear_with_the_next_item(qtbot, fake_window):
    window = fake_window
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.load_samples()
    rank_all(qtbot, window)
    window.bench.select(0)
    window.bench.toggle_flag_selected("incomplete")
    window.bench.set_strength(3)
    qtbot.keyClicks(window.bench.rationale, "B is the only safe answer")
    card = window.bench.cards[1]
    box = next(iter(card.rating_boxes.values()))
    box.setCurrentIndex(box.count() - 1)
    assert fields(window) != ("", False, DEFAULT_STRENGTH, [], [])
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        window.submit()
    assert saved.args[0].rationale == "B is the only safe answer"
    # while the next prompt's candidates are being written, nothing of the last one shows
    assert fields(window)[:3] == ("", False, DEFAULT_STRENGTH)
    wait_ready(qtbot, window)
    assert fields(window) == ("", False, DEFAULT_STRENGTH, [], [])
    rank_all(qtbot, window)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        window.submit()
    assert saved.args[0].rationale == "" and not saved.args[0].flags


def test_a_finished_pack_names_the_file_to_hand_back(qtbot, fake_window, tmp_path):
    window = fake_window
    src = tmp_path / "pack.jsonl"
    src.write_text("".join(json.dumps({"id": f"k{i}", "prompt": f"Q{i}?", "domain": "medicine",
                                       "candidates": ["a", "b"]}) + "\n" for i in range(2)))  # fmt: skip
    pack = tmp_path / "ann-medicine.db"
    with Store.open(pack) as s:
        import_file(s, src)
        s.set_setting(PACK_TUTOR_KEY, "ann")
    assert window.open_database(str(pack))
    for _ in range(2):
        rank_all(qtbot, window)
        with qtbot.waitSignal(window.judgment_saved, timeout=5000):
            press(qtbot, window, K.Key_Return, CTRL)
    text = window.bench.empty_label.text()
    assert "This pack is done: hand back ann-medicine.db" in text
    assert "Load sample prompts" not in text and "Nothing is waiting" not in text
    assert not window.bench.samples_button.isVisible()


def test_undo_reaches_the_last_judgment_of_the_previous_session_after_a_restart(qtbot, tmp_path, app_settings,
                                                                                guideline_library, fake_backend):  # fmt: skip
    from hitl_desktop.app import begin
    from hitl_desktop.qt.main_window import MainWindow

    db = tmp_path / "work.db"
    app_settings.tutor_name, app_settings.last_domain = "Dr. Test", "medicine"

    def launch():
        store = Store.open(db)
        w = MainWindow(store=store, settings=app_settings, guidelines=guideline_library,
                       backend_factory=fake_factory(fake_backend))  # fmt: skip
        qtbot.addWidget(w)
        w.show()
        begin(w, ask=False)
        qtbot.waitUntil(lambda: w.model.state == "ready", timeout=20000)
        return w, store

    w, store = launch()
    w.load_samples()
    rank_all(qtbot, w)
    with qtbot.waitSignal(w.judgment_saved, timeout=5000) as saved:
        w.submit()
    judgment = saved.args[0]
    w.close()  # as after a crash: the next launch is a new session
    store.close()

    w, store = launch()
    assert w.session.id != judgment.session_id
    wait_ready(qtbot, w)
    assert w.bench.undo_button.isEnabled()
    w.lab_menus.menus["edit"].aboutToShow.emit()
    assert w.lab_menus.undo_action.isEnabled()
    with qtbot.waitSignal(w.judgment_undone, timeout=5000) as undone:
        press(qtbot, w, K.Key_Z, CTRL)
    assert undone.args[0] == judgment.id and w.prompt.id == judgment.prompt_id
    assert w.bench.state.ranks() == judgment.ranks
    assert store.judgments_for(judgment.prompt_id) == []
    w.close()
    store.close()


def test_lead_mode_shows_on_the_main_window(fake_window):
    window = fake_window
    window.start_session(tutor_name="lead", domain="medicine")
    assert "Lead mode" not in window.windowTitle() and not window.status.lead_label.isVisible()
    window.lab_menus.set_lead(True)
    assert window.settings.lead_mode
    assert "Lead mode" in window.windowTitle() and window.status.lead_label.isVisible()
    assert window.lab_menus.lead_action.isChecked() and window.lab_menus.review_action.isEnabled()
    window.lab_menus.set_lead(False)
    assert "Lead mode" not in window.windowTitle() and not window.settings.lead_mode


def test_one_summary_computation_per_submit(qtbot, fake_window, monkeypatch):
    window = fake_window
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.load_samples()
    rank_all(qtbot, window)
    calls = []
    real = window.store.session_summary
    monkeypatch.setattr(window.store, "session_summary", lambda sid: calls.append(sid) or real(sid))
    with qtbot.waitSignal(window.judgment_saved, timeout=5000):
        window.submit()
    wait_ready(qtbot, window)
    assert calls == [window.session.id]
    assert window.summary_label.text().startswith("This session: 1 item")
    assert "1 done" in window.session_label.text() and "1 done this session" in window.status.items_label.text()
