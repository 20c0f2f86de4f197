"""The menu bar, file drops, background import and merge, the history view, the review mode and
the gold figures, driven through the real window (fake model backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import wait_ready
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store
from hitl_desktop.qt import theme
from hitl_desktop.qt.review import DisagreementModel

TEXTS = ["alpha answer", "beta answer", "gamma answer", "delta answer"]
RANKINGS = {
    "lab-1": {"ann": [1, 2, 3, 4], "bob": [1, 2, 3, 4]},
    "lab-2": {"ann": [1, 2, 3, 4], "bob": [4, 3, 2, 1]},
    "lab-3": {"ann": [1, 2, 3, 4], "bob": [2, 1, 3, 4], "cem": [1, 3, 2, 4]},
}


def lab_file(path: Path, *, gold: bool = False) -> Path:
    lines = []
    for ext, by_tutor in RANKINGS.items():
        for tutor, ranking in by_tutor.items():
            rec = {"id": ext, "prompt": f"Lab question {ext} about dosing", "domain": "medicine",
                   "candidates": TEXTS, "ranking": ranking, "tutor": tutor}  # fmt: skip
            if ext == "lab-2" and tutor == "bob":
                rec["flags"] = [["unsafe"], [], [], []]
                rec["correction"] = "A careful answer."
                rec["corrected_index"] = 3
            if gold and ext == "lab-1":
                rec["gold_ranking"] = [1, 2, 4, 3]
            lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prompts_file(path: Path, n: int = 3, *, domain: str = "medicine") -> Path:
    path.write_text("".join(json.dumps({"id": f"{path.stem}-{i}", "prompt": f"Dropped prompt {i}", "domain": domain}) + "\n" for i in range(n)))
    return path


def bad_file(path: Path) -> Path:
    path.write_text(
        json.dumps({"prompt": "fine", "domain": "medicine"}) + "\n"
        + json.dumps({"prompt": "two answers", "candidates": ["a", "b"], "ranking": [1, 2, 3]}) + "\n"
        + "{not json\n"
    )  # fmt: skip
    return path


@pytest.fixture
def win(fake_window):
    fake_window.start_session(tutor_name="lead", domain="medicine")
    return fake_window


def run_job(qtbot, win, trigger) -> None:
    """Trigger a background file job and wait until its result is on the window."""
    with qtbot.waitSignal(win.lab_menus.runner.succeeded, timeout=20000):
        trigger()
    qtbot.waitUntil(lambda: not win.lab_menus.runner.is_running(), timeout=5000)


def queued_texts(win) -> set[str]:
    return {p.text for p in win.queue_model.prompts()}


def send_drop(win, path: Path) -> tuple[bool, bool]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, enter)
    drop = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(win, drop)
    return enter.isAccepted(), drop.isAccepted()


# -- the menu bar -----------------------------------------------------------------------------


def test_the_menu_bar_has_the_desktop_conventions(win):
    bar = win.menuBar()
    assert [a.text() for a in bar.actions()] == ["&File", "&Edit", "&View", "&Help"]
    texts = {k: [a.text().replace("&", "") for a in m.actions() if a.text()] for k, m in win.lab_menus.menus.items()}
    for wanted in ("Open database or pack…", "Import prompts or judgments…", "Export…", "Merge databases…",
                   "Back up now", "Restore from a backup…", "Recent files", "Quit"):  # fmt: skip
        assert wanted in texts["file"]
    assert {"Undo submission\tCtrl+Z", "Edit a past judgment…"} <= set(texts["edit"])
    win.lab_menus.menus["edit"].aboutToShow.emit()  # nothing submitted yet: nothing to undo
    assert not win.lab_menus.undo_action.isEnabled()
    assert {"Queue", "Guidelines", "Quality…", "Theme", "Judgment history…", "Review disagreements…"} <= set(texts["view"])
    assert {"Shortcuts (F1)", "About hitl-desktop"} <= set(texts["help"])


def test_import_action_imports_off_the_gui_thread_and_refreshes_the_queue(qtbot, win, tmp_path, monkeypatch):
    path = prompts_file(tmp_path / "set.jsonl")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    progress = []
    win.lab_menus.runner.progressed.connect(lambda f, m: progress.append(f))
    run_job(qtbot, win, win.lab_menus.import_action.trigger)
    assert {"Dropped prompt 0", "Dropped prompt 1", "Dropped prompt 2"} <= queued_texts(win)
    assert len(win.store.queued_prompts()) == 3
    assert progress and progress[-1] == pytest.approx(1.0)
    assert not win.lab_menus.progress.isVisible()
    assert "Imported 3 records" in win.messages.text()
    assert win.lab_menus.recent_files()[0] == str(path.resolve())


def test_dropping_a_good_file_imports_it(qtbot, win, tmp_path):
    path = prompts_file(tmp_path / "dropped.jsonl")
    with qtbot.waitSignal(win.lab_menus.runner.succeeded, timeout=20000):
        accepted = send_drop(win, path)
    assert accepted == (True, True)
    qtbot.waitUntil(lambda: "Dropped prompt 2" in queued_texts(win), timeout=5000)
    assert win.queue_title.text() == "Queue · medicine (3)"


def test_dropping_a_bad_file_lists_its_errors_and_imports_nothing(qtbot, win, tmp_path):
    path = bad_file(tmp_path / "bad.jsonl")
    before = win.store.table_counts()
    with qtbot.waitSignal(win.lab_menus.runner.succeeded, timeout=20000):
        send_drop(win, path)
    qtbot.waitUntil(lambda: win.lab_menus.import_errors is not None and win.lab_menus.import_errors.isVisible(), timeout=5000)
    text = win.lab_menus.import_errors.text()
    assert f"{path}:2: ranking:" in text and f"{path}:3:" in text
    assert "nothing was imported" in win.messages.text()
    assert win.store.table_counts() == before
    assert queued_texts(win) == set()


def test_a_drop_of_something_else_is_refused(win, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert send_drop(win, other) == (False, False)
    assert not win.lab_menus.runner.is_running()


def test_open_database_and_recent_files(qtbot, win, tmp_path, monkeypatch):
    first = Path(win.store.path)
    other = tmp_path / "pack.db"
    with Store.open(other) as s:
        import_file(s, prompts_file(tmp_path / "pack.jsonl", 2))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(other), ""))
    win.lab_menus.open_action.trigger()
    assert Path(win.store.path) == other
    assert len(win.store.queued_prompts()) == 2
    assert win.lab_menus.recent_files()[0] == str(other.resolve())
    recent = [a for a in win.lab_menus.recent_menu.actions() if a.data()]
    assert [a.data() for a in recent] == [str(other.resolve())]
    win.lab_menus.remember(str(first))
    (back,) = [a for a in win.lab_menus.recent_menu.actions() if a.data() == str(first.resolve())]
    back.trigger()
    assert Path(win.store.path) == first


def test_merge_action_merges_in_the_background(qtbot, win, tmp_path, monkeypatch):
    src = tmp_path / "tutor.db"
    with Store.open(src) as s:
        import_file(s, lab_file(tmp_path / "lab.jsonl"))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(src)], ""))
    run_job(qtbot, win, win.lab_menus.merge_action.trigger)
    assert win.lab_menus.last_merge.added["judgments"] == 7
    assert len(list(win.store.judged_items())) == 7
    assert win.lab_menus.last_merge.backup and Path(win.lab_menus.last_merge.backup).exists()


def test_back_up_and_restore(qtbot, win, tmp_path, monkeypatch):
    done = []
    win.lab_menus.runner.succeeded.connect(done.append)
    run_job(qtbot, win, win.lab_menus.backup_action.trigger)
    backup = Path(done[-1])
    assert backup.exists() and "manual" in backup.name
    win.add_prompt("typed after the backup")
    assert any(p.text == "typed after the backup" for p in win.store.queued_prompts())
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(backup), ""))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    run_job(qtbot, win, win.lab_menus.restore_action.trigger)
    assert not any(p.text == "typed after the backup" for p in win.store.queued_prompts())
    assert "Restored from" in win.messages.text()


def test_undo_and_edit_a_past_judgment(qtbot, win):
    assert win.load_samples() == 5
    wait_ready(qtbot, win)
    prompt = win.prompt
    for n in range(1, 5):
        win.bench.press_position(n)
    with qtbot.waitSignal(win.judgment_saved, timeout=5000):
        win.submit()
    saved = list(win.store.judged_items())
    assert len(saved) == 1
    wait_ready(qtbot, win)
    # Edit → Edit a past judgment: the history lists it; Re-judge puts it back on the bench
    win.lab_menus.edit_past_action.trigger()
    view = win.lab_menus.history_view
    assert view.isVisible() and view.model.rowCount() == 1
    assert view.count_label.text().startswith("1 judgment:")
    assert view.model.entries()[0].id == saved[0].judgment.id
    view.rejudge_button.click()
    assert not view.isVisible()
    qtbot.waitUntil(lambda: win.prompt is not None and win.prompt.id == prompt.id, timeout=5000)
    wait_ready(qtbot, win)
    assert win.bench.state.ranks() == saved[0].judgment.ranks
    # Edit → Undo submission takes the judgment back
    win.load_next()
    wait_ready(qtbot, win)
    win.lab_menus.menus["edit"].aboutToShow.emit()
    assert win.lab_menus.undo_action.isEnabled()
    with qtbot.waitSignal(win.judgment_undone, timeout=5000):
        win.lab_menus.undo_action.trigger()
    assert list(win.store.judged_items()) == []


def test_view_and_help_actions(qtbot, win):
    m = win.lab_menus
    queue_panel = win.queue_view.parentWidget()
    m.queue_action.trigger()
    assert not queue_panel.isVisible()
    m.queue_action.trigger()
    assert queue_panel.isVisible()
    m.guidelines_action.trigger()
    assert not win.guideline_view.isVisible()
    m.theme_actions["dark"].trigger()
    assert theme.current().name == "dark"
    m.theme_actions["light"].trigger()
    assert theme.current().name == "light"
    win.quality_action.trigger()
    assert win.dashboard is not None and win.dashboard.isVisible()
    win.help_action.trigger()
    assert any(type(d).__name__ == "ShortcutsDialog" and d.isVisible() for d in win._dialogs)
    m.about_action.trigger()
    assert m.about_dialog.isVisible()
    assert "Gemma Terms of Use" in m.about_dialog.label.text()
    assert "https://ai.google.dev/gemma/terms" in m.about_dialog.label.text()
    assert not m.review_action.isEnabled()
    m.lead_action.trigger()
    assert m.review_action.isEnabled()
    m.review_action.trigger()
    assert m.review_view.isVisible()
    win.export_action.trigger()
    assert win.export_dialog.isVisible()
    win.export_dialog.reject()
    m.quit_action.trigger()
    assert not win.isVisible()


# -- history -----------------------------------------------------------------------------------


def test_history_search_for_a_lead(qtbot, qtmodeltester, win, tmp_path):
    import_file(win.store, lab_file(tmp_path / "lab.jsonl"))
    m = win.lab_menus
    m.open_history()
    view = m.history_view
    assert view.model.rowCount() == 0  # this session: nothing judged yet
    assert not view.scope_box.model().item(2).isEnabled()
    m.lead_action.setChecked(True)  # a lead starts on every tutor's judgments
    assert view.scope_box.currentData() == "all" and view.model.rowCount() == 7
    view.flag_box.setCurrentIndex(view.flag_box.findData("unsafe"))
    assert [(e.tutor, e.flags, e.corrected) for e in view.model.entries()] == [("bob", ("unsafe",), True)]
    view.flag_box.setCurrentIndex(0)
    view.tutor_box.setCurrentIndex(view.tutor_box.findData("cem"))
    assert [e.tutor for e in view.model.entries()] == ["cem"]
    view.tutor_box.setCurrentIndex(0)
    qtbot.keyClicks(view.text_edit, "lab-3")
    qtbot.waitUntil(lambda: view.model.rowCount() == 3, timeout=3000)
    assert {e.tutor for e in view.model.entries()} == {"ann", "bob", "cem"}
    assert not view.rejudge_button.isEnabled()  # another tutor's judgment: review it instead
    assert view.model.index(0, 3).data() == "Lab question lab-3 about dosing"
    qtmodeltester.check(view.model)


# -- review and adjudication -------------------------------------------------------------------


def test_review_mode_records_an_adjudication_that_export_uses(qtbot, win, tmp_path):
    import_file(win.store, lab_file(tmp_path / "lab.jsonl"))
    m = win.lab_menus
    m.lead_action.setChecked(True)
    m.review_action.trigger()
    view = m.review_view
    assert [view.list_model.row(i).prompt.external_id for i in range(view.list_model.rowCount())] == ["lab-2", "lab-3", "lab-1"]
    assert view.list_model.index(0, 0).data() == "-1.00"
    assert view.count_label.text().startswith("3 prompts judged by several tutors")
    # lab-2: ann and bob side by side; bob's flag and correction visible
    assert [view.grid_model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)] == ["Candidate", "ann", "bob", "Adjudicated"]
    assert view.grid_model.cell_text(0, 1) == "1"
    assert view.grid_model.cell_text(0, 2) == "4   ⚑ unsafe"
    assert view.grid_model.cell_text(3, 2) == "1   ✎ corrected"
    view.show_candidate(3)
    assert "A careful answer." in view.detail.toPlainText()
    # the lead ranks D best, then A, B and C tied
    grid = view.grid_model
    for row, rank in enumerate([2, 3, 3, 1]):
        assert grid.setData(grid.index(row, 3), rank)
    assert view.ranking_label.text() == "D > A > B = C"
    view.rationale_edit.setPlainText("")
    assert view.record() is None and "rationale" in view.status.text()
    assert win.store.adjudications() == []
    view.rationale_edit.setPlainText("D is the only safe answer")
    with qtbot.waitSignal(view.adjudicated, timeout=3000):
        view.record_button.click()
    (adj,) = win.store.adjudications()
    ids = [c.id for c in win.store.candidates_for(adj.prompt_id)]
    assert adj.ranks == dict(zip(ids, [2, 3, 3, 1], strict=True))
    assert adj.adjudicator == win.settings.tutor_name == "lead"
    assert view.list_model.index(0, DisagreementModel.DONE).data() == "✓"
    assert "Adjudicated by lead" in view.status.text()

    # File → Export with "adjudicated": the ruling is the prompt's only ranking judgment
    win.export_action.trigger()
    dialog = win.export_dialog
    out = tmp_path / "adj.jsonl"
    dialog.out_edit.setText(str(out))
    dialog.keep_names.setChecked(True)
    dialog.adjudicated.setChecked(True)
    with qtbot.waitSignal(dialog.runner.exported, timeout=20000):
        dialog.export_button.click()
    dialog.reject()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [r for r in rows if r["prompt_id"] == adj.prompt_id]
    # a lead's ruling says so (issue 19): source "adjudication", the adjudicator as its tutor
    assert {r["judgment_id"] for r in mine if r["source"] == "adjudication"} == {adj.id}
    assert {r["tutor"] for r in mine if r["source"] == "adjudication"} == {"lead"}
    assert {(r["chosen"], r["rejected"]) for r in mine if r["source"] == "adjudication"} == {
        ("delta answer", t) for t in TEXTS[:3]
    } | {("alpha answer", "beta answer"), ("alpha answer", "gamma answer")}
    assert [r["tutor"] for r in mine if r["source"] == "correction"] == ["bob"] * 4


def test_export_dialog_writes_the_consensus(qtbot, win, tmp_path):
    """File → Export with "consensus": only majority pairs; a 1-1 split prompt has none."""
    import_file(win.store, lab_file(tmp_path / "lab.jsonl"))
    win.export_action.trigger()
    dialog = win.export_dialog
    out = tmp_path / "consensus.jsonl"
    dialog.out_edit.setText(str(out))
    dialog.consensus.setChecked(True)
    with qtbot.waitSignal(dialog.runner.exported, timeout=20000):
        dialog.export_button.click()
    dialog.reject()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = win.store.prompt_ids_by_external_id(list(RANKINGS))
    ranked = {ext: {(r["chosen"], r["rejected"]) for r in rows if r["prompt_id"] == pid and r["source"] != "correction"}
              for ext, pid in ids.items()}  # fmt: skip
    a, b, c, d = TEXTS
    assert ranked["lab-1"] == {(a, b), (a, c), (a, d), (b, c), (b, d), (c, d)}  # both agree
    assert ranked["lab-2"] == set()  # ann 1234, bob 4321: every pair is 1-1
    # lab-3: ann 1234, bob 2134, cem 1324 -> A>B 2-1, A>C 3-0, B>C 2-1, and D last for all
    assert ranked["lab-3"] == {(a, b), (a, c), (b, c), (a, d), (b, d), (c, d)}
    assert {r["source"] for r in rows if r["source"] != "correction"} == {"consensus"}


def test_review_side_by_side_model(qtmodeltester, win, tmp_path):
    import_file(win.store, lab_file(tmp_path / "lab.jsonl"))
    win.lab_menus.lead_action.setChecked(True)
    win.lab_menus.open_review()
    view = win.lab_menus.review_view
    view.select_prompt(win.store.prompt_ids_by_external_id(["lab-3"])["lab-3"])
    assert view.grid_model.tutors() == ["ann", "bob", "cem"]
    # starts from the tutors' consensus: a majority puts A over B, B over C... (ranked pairs)
    assert view.ranking_label.text() == "A > B > C > D"
    qtmodeltester.check(view.grid_model)
    qtmodeltester.check(view.list_model)


# -- gold figures ------------------------------------------------------------------------------


def test_gold_figures_for_leads_only_and_only_with_gold_keys(qtbot, win, tmp_path):
    import_file(win.store, lab_file(tmp_path / "lab.jsonl", gold=True))
    win.open_quality_dashboard()
    dash = win.dashboard
    qtbot.waitUntil(lambda: dash.summary is not None, timeout=5000)
    assert not dash.gold_panel.isVisible()  # a tutor: no gold figures
    win.lab_menus.lead_action.setChecked(True)
    assert dash.gold_panel.isVisible()
    rows = {r["tutor"]: (r["agreement_with_gold"], r["gold_items"]) for r in dash.gold_model.rows()}
    # ann and bob ranked lab-1 as 1,2,3,4 against gold 1,2,4,3: tau = (5 - 1) / 6
    assert rows == {"ann": (pytest.approx(4 / 6), 1), "bob": (pytest.approx(4 / 6), 1)}
    win.lab_menus.lead_action.setChecked(False)
    assert not dash.gold_panel.isVisible()


def test_no_gold_panel_without_gold_keys(qtbot, win, tmp_path):
    import_file(win.store, lab_file(tmp_path / "lab.jsonl"))
    win.lab_menus.lead_action.setChecked(True)
    win.open_quality_dashboard()
    dash = win.dashboard
    assert dash.show_gold
    assert not dash.gold_panel.isVisible()


def test_the_readme_lists_every_menu_item(win):
    """README's "The menu bar" table and the real menus stay in step."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### The menu bar", 1)[1].split("\n\n", 2)[1]
    rows = {line.split("|")[1].strip(" *").lower(): line.split("|")[2] for line in table.splitlines()[2:]}
    assert set(rows) == set(win.lab_menus.menus)
    for key, menu in win.lab_menus.menus.items():
        for action in menu.actions():
            text = action.text().replace("&", "").split("\t")[0].split(" (")[0].rstrip("…")
            if text:
                assert text in rows[key], f"README's menu table lacks {key} → {text}"
