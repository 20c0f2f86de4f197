"""The rubric panel: a tutor writes, reorders, removes and saves criteria by keyboard alone,
even inside a window whose one-key shortcuts (arrows, Delete, Ctrl+N) would otherwise take
those keys; the rules are shown inline and a bad draft is never saved."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QMainWindow, QMessageBox
from pytestqt.qt_compat import qt_api

from hitl_desktop.core.rubric_templates import RubricTemplates
from hitl_desktop.core.rubrics import Criterion, Rubric, RubricError, check_criteria
from hitl_desktop.core.types import new_id
from hitl_desktop.qt.rubric_panel import (
    AXIS,
    POINTS,
    TEXT,
    CriteriaModel,
    PointsSpinBox,
    RubricPanel,
)


class VersionedRubrics:
    """A stand-in for the store's "save a new version": checks, copies with new ids, counts."""

    def __init__(self) -> None:
        self.versions: list[Rubric] = []
        self.template_versions: list[str | None] = []  # what each save said it started from

    def save(self, criteria: list[Criterion], *, template_version: str | None = None) -> Rubric:
        check_criteria(criteria)
        self.template_versions.append(template_version)
        stored = [replace(c, id=new_id(), tags=list(c.tags)) for c in criteria]
        rubric = Rubric(prompt_id="p1", criteria=stored, version=len(self.versions) + 1, author="ann",
                        template_version=template_version or "")
        self.versions.append(rubric)
        return rubric


class Window(QMainWindow):
    """A window with the bench's kind of window-wide shortcuts, to prove the panel keeps its keys."""

    def __init__(self, panel: RubricPanel) -> None:
        super().__init__()
        self.setCentralWidget(panel)
        self.fired: list[str] = []
        for key in ("Ctrl+N", "Up", "Down", "Left", "Right", "Delete", "Backspace", "Ctrl+S", "Escape",
                    "Ctrl+Return"):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda key=key: self.fired.append(key))
            sc.activatedAmbiguously.connect(lambda key=key: self.fired.append("ambiguous " + key))


@pytest.fixture
def setup(qtbot, tmp_path):
    store = VersionedRubrics()
    panel = RubricPanel(save=store.save, templates=RubricTemplates(user_dir=tmp_path / "u"))
    window = Window(panel)
    qtbot.addWidget(window)
    window.resize(900, 500)
    window.show()
    qtbot.waitExposed(window)
    panel.show_rubric(None, prompt_id="p1", domain="medicine", author="ann")
    panel.view.setFocus()
    return panel, store, window


def key(qtbot, panel, k, modifier=Qt.KeyboardModifier.NoModifier, times=1):
    for _ in range(times):
        target = qt_api.QtWidgets.QApplication.focusWidget() or panel.view
        qtbot.keyClick(target, k, modifier)
        qt_api.QtWidgets.QApplication.processEvents()  # the delegate commits an editor queued


def type_text(qtbot, text):
    qtbot.keyClicks(qt_api.QtWidgets.QApplication.focusWidget(), text)


def write_criterion(qtbot, panel, text, *, ups=0, downs=0, axis_steps=0):
    """Ctrl+N, the text, Enter; then the points (Left, Enter, arrows, Enter) and the axis."""
    key(qtbot, panel, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    type_text(qtbot, text)
    key(qtbot, panel, Qt.Key.Key_Return)
    key(qtbot, panel, Qt.Key.Key_Left)
    assert panel.view.currentIndex().column() == POINTS
    key(qtbot, panel, Qt.Key.Key_Return)
    assert isinstance(qt_api.QtWidgets.QApplication.focusWidget(), PointsSpinBox)
    key(qtbot, panel, Qt.Key.Key_Up, times=ups)
    key(qtbot, panel, Qt.Key.Key_Down, times=downs)
    key(qtbot, panel, Qt.Key.Key_Return)
    if axis_steps:
        key(qtbot, panel, Qt.Key.Key_Right, times=2)
        assert panel.view.currentIndex().column() == AXIS
        key(qtbot, panel, Qt.Key.Key_Return)
        key(qtbot, panel, Qt.Key.Key_Down, times=axis_steps)
        key(qtbot, panel, Qt.Key.Key_Return)
        key(qtbot, panel, Qt.Key.Key_Left)


def test_a_rubric_is_written_reordered_and_saved_by_keyboard(setup, qtbot):
    panel, store, window = setup
    write_criterion(qtbot, panel, "Stops metformin when eGFR < 30", ups=3, axis_steps=1)
    write_criterion(qtbot, panel, "Recommends the dose without checking kidney function", downs=10,
                    axis_steps=4)
    write_criterion(qtbot, panel, "Explains in plain language", downs=2, axis_steps=3)
    crit = panel.criteria()
    assert [(c.text, c.points, c.tags) for c in crit] == [
        ("Stops metformin when eGFR < 30", 8, ["axis:accuracy"]),
        # 5 down 10 steps skips 0: 4, 3, 2, 1, -1, -2, -3, -4, -5, -6
        ("Recommends the dose without checking kidney function", -6, ["axis:context_awareness"]),
        ("Explains in plain language", 3, ["axis:communication_quality"]),
    ]
    assert all(c.author == "ann" for c in crit)
    assert panel.dirty and "unsaved changes" in panel.version_label.text()

    # Alt+Up moves the selected (third) criterion above the second; Delete removes the first
    key(qtbot, panel, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert [c.text for c in panel.criteria()][1] == "Explains in plain language"
    assert panel.view.currentIndex().row() == 1
    key(qtbot, panel, Qt.Key.Key_Up)
    key(qtbot, panel, Qt.Key.Key_Delete)
    assert [c.text for c in panel.criteria()] == [
        "Explains in plain language", "Recommends the dose without checking kidney function"]
    key(qtbot, panel, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert [c.text for c in panel.criteria()][1] == "Explains in plain language"

    saved = []
    panel.rubric_saved.connect(saved.append)
    key(qtbot, panel, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert len(store.versions) == 1 and saved == store.versions
    assert [(c.text, c.points) for c in store.versions[0].criteria] == [
        ("Recommends the dose without checking kidney function", -6), ("Explains in plain language", 3)]
    assert not panel.dirty and "version 1" in panel.version_label.text()
    assert "Saved as version 1" in panel.message.text()
    # the panel now shows the stored criteria (their ids), so the next save is a new version of them
    assert [c.id for c in panel.criteria()] == [c.id for c in store.versions[0].criteria]
    assert window.fired == [], "no window shortcut fired while the panel had the keys"
    # with nothing to drop, Escape is the window's again; Ctrl+Enter (submit) always is
    key(qtbot, panel, Qt.Key.Key_Escape)
    key(qtbot, panel, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.fired == ["Escape", "Ctrl+Return"]


def test_the_rules_show_inline_and_a_bad_draft_is_refused_with_its_criterion_selected(setup, qtbot):
    panel, store, _ = setup
    write_criterion(qtbot, panel, "Penalise: invents a trial", downs=10)
    assert "positive points" in panel.message.text()  # shown while typing, before any save
    write_criterion(qtbot, panel, "Names the red flags", ups=2)
    assert panel.message.text() == ""
    key(qtbot, panel, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # an empty one, left empty
    key(qtbot, panel, Qt.Key.Key_Escape)
    panel.view.setFocus()
    key(qtbot, panel, Qt.Key.Key_Up, times=2)
    key(qtbot, panel, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert store.versions == []
    assert panel.message.text() == "Not saved: criterion 3: the criterion is empty"
    assert panel.view.currentIndex().row() == 2 and panel.view.currentIndex().column() == TEXT
    key(qtbot, panel, Qt.Key.Key_Delete)
    key(qtbot, panel, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert len(store.versions) == 1


def test_the_domain_template_is_a_starting_point_and_escape_reverts(setup, qtbot, monkeypatch):
    panel, store, _ = setup
    panel.template_button.click()
    template = panel.templates.for_domain("medicine")
    assert [c.text for c in panel.criteria()] == [t for t, _, _ in template.items]
    assert template.version in panel.message.text() and panel.dirty
    key(qtbot, panel, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert len(store.versions) == 1 and len(store.versions[0].criteria) == len(template.items)
    # the save says which template the criteria came from; a later save follows the rubric shown
    assert store.template_versions == [template.version]
    assert panel.template_version is None
    # editing, then Escape, gives back the saved version
    key(qtbot, panel, Qt.Key.Key_Delete)
    assert panel.dirty
    key(qtbot, panel, Qt.Key.Key_Escape)
    assert not panel.dirty and len(panel.criteria()) == len(template.items)
    # the template over a saved rubric asks first; "No" keeps the rubric
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    key(qtbot, panel, Qt.Key.Key_Delete)
    panel.start_from_template()
    assert len(panel.criteria()) == len(template.items) - 1


def test_an_unsaved_draft_comes_back_with_its_prompt(setup, qtbot):
    panel, store, _ = setup
    write_criterion(qtbot, panel, "Asks about pregnancy", ups=1)
    other = Rubric(prompt_id="p2", criteria=[Criterion("Gives the dose in mg/kg", 6)])
    panel.show_rubric(other, prompt_id="p2")
    assert [c.text for c in panel.criteria()] == ["Gives the dose in mg/kg"] and not panel.dirty
    panel.show_rubric(None, prompt_id="p1")
    assert [c.text for c in panel.criteria()] == ["Asks about pregnancy"] and panel.dirty


def test_a_refused_save_changes_nothing(setup, qtbot):
    panel, _, _ = setup

    def refuse(criteria):
        raise RubricError("the database is read-only")

    panel._save = refuse
    write_criterion(qtbot, panel, "Names the red flags", ups=2)
    assert panel.save() is None
    assert panel.dirty and "read-only" in panel.message.text()


def test_the_points_spin_box_never_shows_zero(qtbot):
    box = PointsSpinBox()
    qtbot.addWidget(box)
    box.setValue(2)
    seen = []
    for _ in range(14):
        box.stepBy(-1)
        seen.append(box.value())
    assert seen == [1, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -10, -10, -10]
    box.setValue(-1)
    box.stepBy(3)
    assert box.value() == 3  # -1 -> 1 -> 2 -> 3


def test_the_criteria_model_passes_qt_model_checks(qtmodeltester):
    model = CriteriaModel()
    model.set_criteria([Criterion("Names the red flags", 7, ["axis:completeness", "safety"]),
                        Criterion("Invents a trial", -8, ["axis:accuracy"])])
    qtmodeltester.check(model, force_py=True)
    model.move(0, 1)
    model.insert(1, Criterion("x", 2))
    model.remove(0)
    qtmodeltester.check(model, force_py=True)
    # the model refuses what the rules refuse rather than storing it
    assert not model.setData(model.index(0, POINTS), 0)
    assert not model.setData(model.index(0, POINTS), 11)
    assert not model.setData(model.index(0, AXIS), "style")


def test_an_empty_criterion_says_how_to_fill_it():
    model = CriteriaModel()
    model.set_criteria([Criterion("", 5)])
    assert "Enter" in model.data(model.index(0, TEXT))
    assert model.data(model.index(0, TEXT), Qt.ItemDataRole.EditRole) == ""


def test_a_penalty_is_marked_in_the_danger_colours():
    from PySide6.QtGui import QColor

    from hitl_desktop.qt import theme

    model = CriteriaModel()
    model.set_criteria([Criterion("Names the red flags", 7), Criterion("Invents a trial", -8)])
    t = theme.current()
    assert model.data(model.index(1, POINTS)) == "\u22128"
    assert model.data(model.index(1, POINTS), Qt.ItemDataRole.ForegroundRole) == QColor(t["danger"])
    assert model.data(model.index(1, POINTS), Qt.ItemDataRole.BackgroundRole) == QColor(t["danger_bg"])
    assert model.data(model.index(0, POINTS), Qt.ItemDataRole.BackgroundRole) is None
    assert model.data(model.index(0, POINTS), Qt.ItemDataRole.ForegroundRole) == QColor(t["success"])
