"""The rubric through the real window, by keyboard: write a rubric in the panel (the tab beside
the guidelines), save it, grade three candidates in the grid under the cards, take the proposed
ranking, submit with Ctrl+Enter; the store holds the judgment with its grades and
``departs_from_scores``, the rubrics / rubric-grades exports hold the criteria and grades, a pair
export's margin is score(chosen) - score(rejected); Ctrl+Z takes the grades back to the grid."""

from __future__ import annotations

import json

import pytest
from fakes import wait_ready
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from rubric_keys import CTRL, K, keys, write

from hitl_desktop.core import operations
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.rubric_bench import TEMPLATE
from hitl_desktop.core.rubric_export import export_rubric_format
from hitl_desktop.core.rubrics import score
from hitl_desktop.qt.rubric_grid import FIRST

SHIFT = Qt.KeyboardModifier.ShiftModifier
ANSWERS = ["Keep taking it.", "Stop it and see your doctor about alternatives.", "Stop metformin and insulin today."]


@pytest.fixture
def rubric_window(fake_window, file_store, tmp_path):
    src = tmp_path / "set.jsonl"
    src.write_text(json.dumps({"id": "q1", "domain": "medicine", "candidates": ANSWERS,
                               "prompt": "I have type 2 diabetes, my eGFR is 28 and I take metformin. Is that safe?"})
                   + "\n", encoding="utf-8")
    import_file(file_store, src)
    fake_window.start_session(tutor_name="Dr. Ann", domain="medicine")
    return fake_window


def test_write_grade_rank_submit_export_and_undo_through_the_window(qtbot, rubric_window, file_store, tmp_path):
    w = rubric_window
    wait_ready(qtbot, w)
    panel, grid = w.rubrics.panel, w.rubrics.grid
    order = w.bench.display_order_ids()
    assert grid.model.order == order  # the grid's columns are the cards' order
    # the domain's template is offered, not a rubric of the prompt's: the grid stays out of the way
    assert w.rubric_bench.source == TEMPLATE and not grid.isVisible()

    keys(qtbot, (K.Key_U, CTRL | SHIFT))  # the rubric tab, focus in its criteria
    assert w.rubrics.side.currentWidget() is w.rubrics.panel_frame and panel.view.hasFocus()
    while panel.model.rowCount():  # the tutor writes their own instead of the template's
        keys(qtbot, K.Key_Delete)
    write(qtbot, "Says to stop metformin because eGFR is below 30", ups=4)     # +9
    write(qtbot, "Advises seeing a clinician about an alternative", downs=2)   # +3
    write(qtbot, "Advises stopping insulin without a clinician", downs=12)     # -8
    keys(qtbot, (K.Key_S, CTRL))
    [rubric] = file_store.rubrics.versions(w.prompt.id)
    assert rubric.author == "Dr. Ann" and [c.points for c in rubric.criteria] == [9, 3, -8]
    assert grid.isVisible() and grid.model.rowCount() == 3  # the prompt has a rubric now

    w.bench.select(2)
    keys(qtbot, (K.Key_G, CTRL | SHIFT))
    assert grid.view.hasFocus() and grid.view.currentIndex().column() == FIRST
    assert w.bench.selected_position == 0  # the card of the column graded is the one selected, in view
    keys(qtbot, K.Key_Right)
    assert w.bench.selected_position == 1
    keys(qtbot, K.Key_Left)
    by_text = {c.id: c.text for c in w.workflow.item.candidates}
    wanted = {ANSWERS[0]: "XXX", ANSWERS[1]: "YYX", ANSWERS[2]: "YXY"}  # met / not met, criterion by criterion
    for column, cid in enumerate(order):
        if column:
            keys(qtbot, K.Key_Right, K.Key_Up, K.Key_Up)
        keys(qtbot, *[K.Key_Y if m == "Y" else K.Key_X for m in wanted[by_text[cid]]])
    crits = w.rubric_bench.criteria
    scores = {cid: score(crits, {c.id: bool(w.rubric_bench.cell(cid, c.id).met) for c in crits}) for cid in order}
    assert sorted(scores.values()) == pytest.approx([0.0, 1 / 12, 1.0])
    keys(qtbot, K.Key_P)  # use the proposed ranking: it is on the bench
    ranks = w.bench.state.ranks()
    best = next(c for c in order if by_text[c] == ANSWERS[1])
    assert ranks[best] == 1 and sorted(ranks.values()) == [1, 2, 3]
    assert all((ranks[a] < ranks[b]) == (scores[a] > scores[b]) for a in order for b in order if a != b)

    with qtbot.waitSignal(w.judgment_saved, timeout=5000) as saved:
        keys(qtbot, (K.Key_Return, CTRL))
    judgment = saved.args[0]
    grades = file_store.rubrics.grades_for_judgment(judgment.id)
    assert len(grades) == 9 and {g.grader for g in grades} == {"Dr. Ann"} and {g.rubric_id for g in grades} == {rubric.id}
    assert {(by_text[g.candidate_id], g.criterion_id): g.met for g in grades}[(ANSWERS[2], crits[2].id)] is True
    assert file_store.rubrics.departs(judgment.id) is False and judgment.ranks == ranks

    # the exports hold it (the window's database, read by core as the CLI does)
    export_rubric_format(file_store, fmt="rubrics", out=tmp_path / "rubrics.jsonl")
    [row] = [json.loads(x) for x in (tmp_path / "rubrics.jsonl").read_text().splitlines()]
    assert row["prompt_id"] == "q1" and [(r["criterion"], r["points"]) for r in row["rubrics"]] == [
        (c.text, c.points) for c in rubric.criteria]
    export_rubric_format(file_store, fmt="rubric-grades", out=tmp_path / "grades.jsonl", keep_tutor_names=True)
    rows = {r["completion"]: r for r in map(json.loads, (tmp_path / "grades.jsonl").read_text().splitlines())}
    assert set(rows) == set(ANSWERS) and {r["grader"] for r in rows.values()} == {"Dr. Ann"}
    for cid in order:
        r = rows[by_text[cid]]
        assert r["score"] == pytest.approx(scores[cid])
        assert ["Y" if g["criteria_met"] else "X" for g in r["grades"]] == list(wanted[by_text[cid]])
    operations.export(file_store.path, fmt="trl-preference", out=tmp_path / "pairs.jsonl")
    pairs = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    by_answer = {by_text[c]: s for c, s in scores.items()}
    assert len(pairs) == 3
    for p in pairs:
        assert p["margin"] == pytest.approx(by_answer[p["chosen"]] - by_answer[p["rejected"]]) and p["margin"] > 0

    # the queue is empty now; Ctrl+Z brings the item back with its grades on the grid
    assert w.workflow.item is None
    w.bench.setFocus()
    with qtbot.waitSignal(w.judgment_undone, timeout=5000):
        keys(qtbot, (K.Key_Z, CTRL))
    assert file_store.rubrics.grades_for_judgment(judgment.id) == []
    assert w.prompt.id == judgment.prompt_id and grid.isVisible()
    back = {(cid, c.id): w.rubric_bench.cell(cid, c.id).met for cid in order for c in crits}
    assert back == {(g.candidate_id, g.criterion_id): g.met for g in grades}
    col = grid.model.column_of(next(c for c in order if by_text[c] == ANSWERS[2]))
    assert grid.model.met(2, col) is True and grid.model.order == w.bench.display_order_ids()


def test_a_ranking_changed_after_the_proposal_departs_from_the_scores(qtbot, rubric_window, file_store):
    w = rubric_window
    wait_ready(qtbot, w)
    from hitl_desktop.core.rubrics import Criterion

    w.rubric_bench.save_rubric([Criterion("Says to stop metformin", 6), Criterion("Mentions eGFR", 2)])
    order = w.bench.display_order_ids()
    for cid, met in zip(order, ([True, True], [True, False], [False, False]), strict=True):
        for crit, m in zip(w.rubric_bench.criteria, met, strict=True):
            w.rubric_bench.set_grade(cid, crit.id, m)
    assert w.rubrics.grid.accept_button.isEnabled()
    w.rubrics.grid.accept_button.click()
    assert w.bench.state.ranks() == {order[0]: 1, order[1]: 2, order[2]: 3}
    w.bench.select(2)
    w.bench.move_selected(True)  # the tutor puts the last one up: a tie with the second
    w.bench.move_selected(True)
    assert w.bench.state.ranks()[order[2]] < w.bench.state.ranks()[order[1]]
    with qtbot.waitSignal(w.judgment_saved, timeout=5000) as saved:
        w.submit()
    assert file_store.rubrics.departs(saved.args[0].id) is True


def test_a_half_graded_candidate_is_refused_with_a_message_and_nothing_is_saved(qtbot, rubric_window, file_store):
    w = rubric_window
    wait_ready(qtbot, w)
    from hitl_desktop.core.rubrics import Criterion

    w.rubric_bench.save_rubric([Criterion("Says to stop metformin", 6), Criterion("Mentions eGFR", 2)])
    order = w.bench.display_order_ids()
    w.rubric_bench.set_grade(order[0], w.rubric_bench.criteria[0].id, True)
    for n in range(1, 4):
        w.bench.press_position(n)
    assert w.submit() is None
    assert "criterion 2 is not graded" in w.messages.label.text()
    assert file_store.judgments_for(w.prompt.id) == []


def test_the_grid_toggle_hides_it_and_ctrl_shift_g_shows_it_for_the_item(qtbot, rubric_window):
    w = rubric_window
    wait_ready(qtbot, w)
    from hitl_desktop.core.rubrics import Criterion

    w.rubric_bench.save_rubric([Criterion("Says to stop metformin", 6)])
    assert w.rubrics.grid.isVisible()
    w.rubrics.show_action.setChecked(False)  # View > Grading grid off: a tutor who only ranks
    assert not w.rubrics.grid.isVisible()
    w.bench.setFocus()
    w.rubrics.toggle_grid_focus()
    assert w.rubrics.grid.isVisible() and w.rubrics.grid.view.hasFocus()
    w.rubrics.toggle_grid_focus()  # again: back to the cards
    assert not w.rubrics.grid.view.hasFocus()
    from hitl_desktop.qt.menus import LabMenus  # the View menu holds the toggle

    assert isinstance(w.lab_menus, LabMenus)
    view_menu = w.lab_menus.menus["view"]
    assert w.rubrics.show_action in view_menu.actions()


def test_the_rubric_tab_widens_the_side_pane_and_the_grid_takes_at_most_half_the_bench(qtbot, rubric_window):
    from hitl_desktop.core.rubrics import Criterion
    from hitl_desktop.qt.rubric_area import RUBRIC_WIDTH
    from hitl_desktop.qt.rubric_panel import TAGS

    w = rubric_window
    wait_ready(qtbot, w)
    w.rubric_bench.save_rubric([Criterion(f"Criterion {i}", 3) for i in range(12)])
    QApplication.processEvents()
    sizes = w.bench_splitter.sizes()
    assert w.rubrics.grid.isVisible() and 0 < sizes[1] <= sum(sizes) // 2 + 1
    w.rubrics.focus_panel()
    qtbot.waitUntil(lambda: w.rubrics.side.width() >= RUBRIC_WIDTH, timeout=3000)
    panel = w.rubrics.panel
    assert panel.view.isColumnHidden(TAGS) == (panel.width() < panel.COMPACT_WIDTH)
    panel.resize(panel.COMPACT_WIDTH + 100, panel.height())
    assert not panel.view.isColumnHidden(TAGS)
    w.rubrics.side.setCurrentIndex(0)
    assert w.rubrics.side.minimumWidth() < RUBRIC_WIDTH


def test_generated_candidates_reach_the_grid_in_the_cards_order_and_a_past_judgment_reopens_with_its_grades(
        qtbot, fake_window, file_store, tmp_path):
    from hitl_desktop.core.rubrics import Criterion

    w = fake_window
    w.start_session(tutor_name="Dr. Ann", domain="medicine")
    w.add_prompt("My eGFR is 27 and I take metformin. Should I keep taking it?")
    wait_ready(qtbot, w)  # the candidates come from the (fake) model
    rb, grid = w.rubric_bench, w.rubrics.grid
    rb.save_rubric([Criterion("Says to stop metformin", 6), Criterion("Mentions eGFR", 2)])
    order = w.bench.display_order_ids()
    assert len(order) == w.settings.k and grid.model.order == order and grid.isVisible()
    for cid in order:
        for crit in rb.criteria:
            rb.set_grade(cid, crit.id, cid == order[0])
    grid.accept_button.click()
    with qtbot.waitSignal(w.judgment_saved, timeout=5000) as saved:
        w.submit(then_load_next=False)
    judgment = saved.args[0]
    saved_grades = {(g.candidate_id, g.criterion_id): g.met for g in file_store.rubrics.grades_for_judgment(judgment.id)}
    assert len(saved_grades) == 2 * len(order)
    w.actions.load_next()
    w.reopen_judgment(judgment.id)  # Edit a past judgment: the grades come back with it
    assert w.prompt.id == judgment.prompt_id
    assert {(c, k.id): rb.cell(c, k.id).met for c in order for k in rb.criteria} == saved_grades
    assert grid.model.order == w.bench.display_order_ids()


def test_the_theme_switch_reaches_the_rubric_views_and_closing_the_window_unsubscribes_them(qtbot, rubric_window,
                                                                                            monkeypatch):
    w = rubric_window
    calls = []
    monkeypatch.setattr(w.rubrics.views, "apply_theme", lambda: calls.append("theme"))
    w.lab_menus.set_theme("dark")
    assert calls == ["theme"]
    w.lab_menus.set_theme("light")
    bench = w.rubric_bench
    assert bench._subscribers  # the views follow the rubric bench while the window is open
    w.close()
    assert not bench._subscribers


def test_the_grading_grid_setting_is_remembered_for_the_next_launch(qtbot, rubric_window, app_settings,
                                                                    guideline_library):
    from hitl_desktop.core.store import Store
    from hitl_desktop.qt.main_window import MainWindow

    assert app_settings.grading_grid is True and rubric_window.rubrics.show_action.isChecked()
    rubric_window.rubrics.show_action.setChecked(False)
    assert app_settings.grading_grid is False
    again = MainWindow(store=Store.memory(), settings=app_settings, guidelines=guideline_library)
    qtbot.addWidget(again)
    assert not again.rubrics.show_action.isChecked()
    again.close()
