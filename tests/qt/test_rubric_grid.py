"""The grading grid over the core's RubricBench: three candidates graded by keyboard inside a
window whose one-key shortcuts would otherwise take the keys; the scores in the column
headers are HealthBench's (computed here independently with rubrics.score); the proposed
ranking ties equal scores and goes to the bench on request; penalties are drawn apart."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QMainWindow

from hitl_desktop.core.events import Change
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.rubric_bench import RubricBench
from hitl_desktop.core.rubrics import Criterion, ranks_from_scores, score
from hitl_desktop.core.workflow import TutorWorkflow, import_prompts
from hitl_desktop.qt import theme
from hitl_desktop.qt.rubric_common import score_text
from hitl_desktop.qt.rubric_grid import FIRST, MET_ROLE, NOTE_ROLE, GradeGridModel, GradingGrid

CRITERIA = [
    ("Stops metformin when eGFR is below 30", 8, "accuracy"),
    ("Mentions the lactic acidosis risk", 5, "completeness"),
    ("Asks about contrast imaging or surgery", 3, "context_awareness"),
    ("Advises stopping insulin without a clinician", -6, "accuracy"),
]


@pytest.fixture
def wf(store, tmp_path):
    rec = {"id": "q1", "prompt": "My eGFR is 28 and I take metformin 1 g twice a day. Is that safe?",
           "domain": "medicine", "candidates": ["Answer one", "Answer two", "Answer three"]}
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    import_prompts(store, path)
    w = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=tmp_path / "g"))
    w.start_session(tutor_name="ann", domain="medicine")
    w.open_item(w.queue[0])
    return w


@pytest.fixture
def bench(wf):
    b = RubricBench(wf)
    b.save_rubric([Criterion(t, p, [f"axis:{a}"]) for t, p, a in CRITERIA])
    return b


class Window(QMainWindow):
    def __init__(self, widget) -> None:
        super().__init__()
        self.setCentralWidget(widget)
        self.fired: list[str] = []
        for key in ("Up", "Down", "Left", "Right", "Space", "N", "Y", "X", "P", "Return", "Backspace", "Delete",
                    "Ctrl+Return", "Escape"):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda key=key: self.fired.append(key))


@pytest.fixture
def grid(qtbot, bench):
    g = GradingGrid(bench)
    g.follow(bench)
    w = Window(g)
    qtbot.addWidget(w)
    w.resize(1000, 520)
    w.show()
    qtbot.waitExposed(w)
    g.view.setFocus()
    return g, w


def press(qtbot, grid, *ks):
    for k in ks:
        qtbot.keyClick(grid.view, k)
        QApplication.processEvents()


def expected_score(bench, cid) -> float:
    met = {c.id: bool(bench.cell(cid, c.id).met) for c in bench.criteria}
    return score(bench.criteria, met)


def test_three_candidates_graded_by_keyboard_show_their_scores_and_the_proposed_ranking(grid, bench, qtbot):
    g, window = grid
    K = Qt.Key
    assert g.view.currentIndex().row() == 0 and g.view.currentIndex().column() == FIRST
    assert not g.accept_button.isEnabled()
    # candidate 1: met, met, not met, not met (Y / X move down the column)
    press(qtbot, g, K.Key_Y, K.Key_Y, K.Key_X, K.Key_X)
    # candidate 2: to the top of the next column; Space toggles (to grade -> met -> not met)
    press(qtbot, g, K.Key_Right, K.Key_Up, K.Key_Up, K.Key_Up)
    press(qtbot, g, K.Key_Space, K.Key_Down, K.Key_Space, K.Key_Down, K.Key_Space, K.Key_Space,
          K.Key_Down, K.Key_Space, K.Key_Space)
    # candidate 3: the same grades as candidate 1 (a tie), typed another way
    press(qtbot, g, K.Key_Right, K.Key_Up, K.Key_Up, K.Key_Up)
    press(qtbot, g, K.Key_Space, K.Key_Down, K.Key_Space, K.Key_Down, K.Key_X, K.Key_X)
    assert window.fired == [], "no window shortcut fired while the grid had the keys"
    # the bench's submit and stop still reach the window from the grid
    qtbot.keyClick(g.view, K.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(g.view, K.Key_Escape)
    assert window.fired == ["Ctrl+Return", "Escape"]
    window.fired.clear()

    cands = g.model.order
    assert [bench.cell(cands[1], c.id).met for c in bench.criteria] == [True, True, False, False]
    scores = [expected_score(bench, c) for c in cands]
    assert scores == pytest.approx([13 / 16, 13 / 16, 13 / 16])
    # change candidate 2: not met on the first criterion, met on the penalty -> negative
    g.view.setCurrentIndex(g.model.index(0, FIRST + 1))
    press(qtbot, g, K.Key_Space)
    g.view.setCurrentIndex(g.model.index(3, FIRST + 1))
    press(qtbot, g, K.Key_Space)
    scores = [expected_score(bench, c) for c in cands]
    assert scores == pytest.approx([13 / 16, (5 - 6) / 16, 13 / 16])
    for i, cid in enumerate(cands):
        header = g.model.headerData(FIRST + i, Qt.Orientation.Horizontal)
        assert header == f"Candidate {i + 1}\n{score_text(scores[i])}"
        assert score_text(bench.scores()[cid]) == score_text(scores[i])
    assert g.model.headerData(FIRST + 1, Qt.Orientation.Horizontal).endswith("\u22126 %")
    assert "-1 of 16 positive points" in g.model.headerData(FIRST + 1, Qt.Orientation.Horizontal,
                                                             Qt.ItemDataRole.ToolTipRole)
    # proposed ranking: 1 and 3 tie above 2, as ranks_from_scores says
    assert g.proposed_ranks() == dict(zip(cands, ranks_from_scores(scores)))
    assert g.proposed_ranks() == {cands[0]: 1, cands[1]: 3, cands[2]: 1}
    assert g.ranking_label.text() == "Proposed ranking: 1 (81 %) = 3 (81 %) > 2 (\u22126 %)"
    assert "3 of 3 candidates graded · 12 of 12 cells" in g.summary.text()
    accepted = []
    g.ranking_accepted.connect(accepted.append)
    assert g.accept_button.isEnabled()
    g.accept_button.click()
    press(qtbot, g, K.Key_P)  # the same by keyboard
    assert accepted == [{cands[0]: 1, cands[1]: 3, cands[2]: 1}] * 2
    assert window.fired == []


def test_a_click_toggles_a_note_is_written_and_delete_clears(grid, bench, qtbot):
    g, _ = grid
    view, model = g.view, g.model
    cell = model.index(1, FIRST + 2)
    rect = view.visualRect(cell)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert model.data(cell, MET_ROLE) is True
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert model.data(cell, MET_ROLE) is False
    # N opens the note editor; typing and Enter keep the note on the cell, not the grade
    assert view.currentIndex() == cell
    press(qtbot, g, Qt.Key.Key_N)
    editor = QApplication.focusWidget()
    qtbot.keyClicks(editor, "Mentions it only in passing")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.wait(10)
    cid, crit = model.candidate_at(FIRST + 2), bench.criteria[1].id
    assert bench.cell(cid, crit).note == "Mentions it only in passing"
    assert bench.cell(cid, crit).met is False
    assert model.data(cell, NOTE_ROLE) == "Mentions it only in passing"
    assert "\u270e" in model.data(cell) and "Note: Mentions" in model.data(cell, Qt.ItemDataRole.ToolTipRole)
    view.setFocus()
    press(qtbot, g, Qt.Key.Key_Delete)
    assert bench.cell(cid, crit).met is None
    # the cursor never lands on the points or criterion columns
    view.setCurrentIndex(model.index(0, FIRST))
    press(qtbot, g, Qt.Key.Key_Left, Qt.Key.Key_Left, Qt.Key.Key_Home)
    assert view.currentIndex().column() == FIRST


def test_the_grid_follows_the_bench_undo_and_a_new_rubric_version(grid, bench, wf, qtbot):
    g, _ = grid
    cands = g.model.order
    bench.set_grade(cands[0], bench.criteria[0].id, True)  # a change made elsewhere
    assert g.model.data(g.model.index(0, FIRST), MET_ROLE) is True
    assert score_text(8 / 16) in g.model.headerData(FIRST, Qt.Orientation.Horizontal)
    crit = [*bench.criteria, Criterion("Gives a follow-up plan", 4, ["axis:completeness"])]
    bench.save_rubric(crit)
    assert g.model.rowCount() == 5
    assert g.model.data(g.model.index(0, FIRST), MET_ROLE) is True  # carried over by the core
    # the bench's display order is the grid's
    g.model.set_order(list(reversed(cands)))
    assert g.model.order == list(reversed(cands))
    assert g.model.data(g.model.index(0, g.model.column_of(cands[0])), MET_ROLE) is True
    bench.load()  # e.g. the item reopened: the grid rebuilds from the bench
    assert g.model.rowCount() == 5


def test_penalties_are_drawn_apart_in_both_themes(grid, bench, qtbot):
    g, _ = grid
    cid = g.model.order[0]
    bench.set_grade(cid, bench.criteria[0].id, True)  # a positive criterion met: green
    bench.set_grade(cid, bench.criteria[3].id, True)  # the penalty met: red
    g.view.setCurrentIndex(g.model.index(2, FIRST + 2))  # the focus ring away from both
    for dark in (False, True):
        theme.apply(QApplication.instance(), dark=dark)
        g.apply_theme()
        qtbot.wait(10)
        t = theme.current()
        image = g.view.viewport().grab().toImage()
        ratio = image.width() / g.view.viewport().width()

        def colour_at(row, col, image=image, ratio=ratio):
            r = g.view.visualRect(g.model.index(row, col))
            # inside the pill, left of its text
            return QColor(image.pixel(int((r.left() + 12) * ratio), int(r.center().y() * ratio)))

        assert colour_at(0, FIRST) == QColor(t["success_bg"])
        assert colour_at(3, FIRST) == QColor(t["danger_bg"])
        assert colour_at(3, 0) == QColor(t["danger_bg"])  # the penalty's points cell
        assert colour_at(0, 0) != QColor(t["danger_bg"])
    theme.apply(QApplication.instance(), dark=False)


def test_the_grid_model_passes_qt_model_checks(qtmodeltester, bench, wf):
    model = GradeGridModel(bench)
    qtmodeltester.check(model, force_py=True)
    cid = model.order[0]
    bench.set_grade(cid, bench.criteria[0].id, True, note="clear")
    model.refresh_grades()
    assert model.setData(model.index(1, FIRST), True, MET_ROLE)
    assert not model.setData(model.index(1, 0), True, MET_ROLE)  # not a candidate column
    assert not model.setData(model.index(1, FIRST), "yes", MET_ROLE)
    qtmodeltester.check(model, force_py=True)
    empty = GradeGridModel(None)
    qtmodeltester.check(empty, force_py=True)
    assert Change.GRADES  # the events the grid follows exist in core


def _contrast(a: str, b: str) -> float:
    def lum(h: str) -> float:
        r, g, b_ = (int(h[i:i + 2], 16) / 255 for i in (1, 3, 5))
        f = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b_)]
        return 0.2126 * f[0] + 0.7152 * f[1] + 0.0722 * f[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("palette", [theme.LIGHT, theme.DARK], ids=["light", "dark"])
def test_every_cell_state_is_legible_in_both_themes(palette):
    from hitl_desktop.qt.rubric_grid import cell_colours

    t = theme.Theme("x", palette)
    seen = set()
    for met in (True, False, None):
        for negative in (False, True):
            fill, ink = cell_colours(met, negative, t)
            assert _contrast(fill, ink) >= 4.5, (met, negative, fill, ink)  # WCAG AA for text
            seen.add((fill, ink))
    # met on a penalty never looks like met on a good criterion
    assert cell_colours(True, True, t) != cell_colours(True, False, t)
    assert len(seen) == 4



def test_a_grade_redraws_its_columns_score_in_the_header(grid, qtbot):
    g, _ = grid
    header = g.view.horizontalHeader()
    g.view.setCurrentIndex(g.model.index(0, FIRST))
    qtbot.wait(20)
    before = header.grab().toImage()
    press(qtbot, g, Qt.Key.Key_Space)  # candidate 1 meets the +8 criterion: 50 %
    qtbot.wait(20)
    assert g.model.headerData(FIRST, Qt.Orientation.Horizontal).endswith("50 % · 3 left")
    after = header.grab().toImage()
    x0, x1 = header.sectionViewportPosition(FIRST), header.sectionViewportPosition(FIRST + 1)
    ratio = after.width() / header.width()
    changed = {x for x in range(int(x0 * ratio), int(x1 * ratio)) for y in range(after.height())
               if after.pixel(x, y) != before.pixel(x, y)}
    assert changed, "the first candidate's header shows the new score"
    other = [x for x in range(int(x1 * ratio), int(header.sectionViewportPosition(FIRST + 2) * ratio))
             for y in range(after.height()) if after.pixel(x, y) != before.pixel(x, y)]
    assert not other, "the second candidate's header did not change"
