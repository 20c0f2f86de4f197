"""Identity is per database, through the real window: a pack's tutor stays with the pack; the
default database, a relaunch and a new database never open as the pack's tutor; the title and
status bar name the tutor; the Review view's adjudicator is the lead's own name."""

from __future__ import annotations

import json

from fakes import fake_factory, press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.app import begin
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store
from hitl_desktop.core.workflow import PACK_TUTOR_KEY

K = Qt.Key
CTRL = Qt.KeyboardModifier.ControlModifier


def make_pack(tmp_path, tutor="ann"):
    src = tmp_path / "pack.jsonl"
    src.write_text("".join(json.dumps({"id": f"k{i}", "prompt": f"Pack question {i}?", "domain": "medicine",
                                       "candidates": ["a", "b", "c"]}) + "\n" for i in range(2)))  # fmt: skip
    pack = tmp_path / f"{tutor}.db"
    with Store.open(pack) as s:
        import_file(s, src)
        s.set_setting(PACK_TUTOR_KEY, tutor)
    return pack


def judge_one(qtbot, window):
    wait_ready(qtbot, window)
    for key in (K.Key_1, K.Key_2, K.Key_3):
        press(qtbot, window, key)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        press(qtbot, window, K.Key_Return, CTRL)
    return saved.args[0]


def test_a_pack_tutor_never_follows_into_another_database(qtbot, fake_window, tmp_path, app_settings, guideline_library,
                                                          fake_backend, file_store):  # fmt: skip
    window = fake_window
    window.start_session(tutor_name="lead", domain="medicine")
    window.load_samples()
    default = window.store.path
    pack = make_pack(tmp_path)

    assert window.open_database(str(pack))
    assert window.tutor.name == "ann"
    assert "ann" in window.windowTitle() and "ann.db" in window.windowTitle()
    assert "ann" in window.session_label.text()
    assert app_settings.tutor_name == "lead"  # the pack did not change who sits here

    assert window.open_database(str(default))
    assert window.tutor.name == "lead" != "ann"
    assert "lead" in window.windowTitle() and "ann" not in window.windowTitle()
    judgment = judge_one(qtbot, window)
    (saved,) = [i for i in window.store.judged_items() if i.judgment.id == judgment.id]
    assert saved.tutor_name == "lead"

    # a brand-new database: this machine's own tutor, never the pack's
    assert window.open_database(str(tmp_path / "new.db"))
    assert window.tutor.name == "lead"

    # the lead's review: the adjudicator is the lead's own name, even after a pack was open
    assert window.open_database(str(pack))
    window.lab_menus.lead_action.setChecked(True)
    window.lab_menus.open_review()
    assert window.lab_menus.review_view.adjudicator_edit.text() == "lead"


def test_a_relaunch_after_a_pack_opens_as_the_databases_own_tutor(qtbot, tmp_path, app_settings, guideline_library,
                                                                  fake_backend):  # fmt: skip
    from hitl_desktop.qt.main_window import MainWindow

    default = tmp_path / "default.db"
    pack = make_pack(tmp_path)

    def launch(path):
        store = Store.open(path)
        w = MainWindow(store=store, settings=app_settings, guidelines=guideline_library,
                       backend_factory=fake_factory(fake_backend))  # fmt: skip
        qtbot.addWidget(w)
        w.show()
        begin(w, ask=False)
        return w, store

    app_settings.tutor_name = "lead"
    w, store = launch(default)
    assert w.tutor.name == "lead"
    assert w.open_database(str(pack)) and w.tutor.name == "ann"
    w.close()  # quit while the pack is open
    store.close()
    w, store = launch(default)  # the next launch
    assert w.tutor.name == "lead"
    w.close()
    store.close()
