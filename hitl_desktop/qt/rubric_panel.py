"""The rubric panel: the tutor writes the current prompt's criteria, keyboard first.

A table of criteria (points, criterion, axis, free tags) over :class:`CriteriaModel`, an item
model that adapts a plain list of :class:`~hitl_desktop.core.rubrics.Criterion` (the draft)
and never persists anything: saving goes through the ``save`` callable the panel is given
(the core's "save a new rubric version"), which returns the stored :class:`Rubric`.

Keys (while the panel has focus): Ctrl+N add a criterion, Enter or F2 edit the cell,
Delete remove the criterion, Alt+Up / Alt+Down move it, Ctrl+S save a version, Escape
(outside an editor) revert to the saved version. The rules of ``rubrics.check_criteria`` are
shown under the table as the tutor types, and a save that breaks them is refused there,
with the offending criterion selected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.rubric_templates import RubricTemplates
from hitl_desktop.core.rubrics import (
    AXES,
    Criterion,
    Rubric,
    RubricError,
    check_criteria,
    positive_points,
)
from hitl_desktop.qt import theme
from hitl_desktop.qt.rubric_common import (
    ENTER_KEYS,
    NO_AXIS,
    axis_label,
    claim_shortcut_override,
    join_tags,
    keys,
    matches,
    points_text,
    split_tags,
)

POINTS, TEXT, AXIS, TAGS = range(4)
HEADERS = ("Points", "Criterion", "Axis", "Tags")
NEW_POINTS = 5
EMPTY_TEXT = "(empty: press Enter to write the criterion)"

_Index = QModelIndex | QPersistentModelIndex


class CriteriaModel(QAbstractTableModel):
    """The draft criteria as rows. Edits change the draft only; ``edited`` says it changed."""

    edited = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[Criterion] = []

    # -- the draft -------------------------------------------------------------------------------

    def criteria(self) -> list[Criterion]:
        return [replace(c, tags=list(c.tags)) for c in self._rows]

    def set_criteria(self, criteria: list[Criterion]) -> None:
        self.beginResetModel()
        self._rows = [replace(c, tags=list(c.tags)) for c in criteria]
        self.endResetModel()

    def insert(self, row: int, criterion: Criterion) -> None:
        row = max(0, min(row, len(self._rows)))
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.insert(row, criterion)
        self.endInsertRows()
        self.edited.emit()

    def remove(self, row: int) -> Criterion | None:
        if not 0 <= row < len(self._rows):
            return None
        self.beginRemoveRows(QModelIndex(), row, row)
        gone = self._rows.pop(row)
        self.endRemoveRows()
        self.edited.emit()
        return gone

    def move(self, row: int, delta: int) -> int:
        """Move a criterion up (-1) or down (+1); returns its new row."""
        to = row + delta
        if not (0 <= row < len(self._rows) and 0 <= to < len(self._rows)) or delta == 0:
            return row
        # Qt's destination is the row the moved one goes *before*, counted before the move
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), to + 1 if delta > 0 else to)
        self._rows.insert(to, self._rows.pop(row))
        self.endMoveRows()
        self.edited.emit()
        return to

    # -- Qt's model ------------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return HEADERS[section] if 0 <= section < len(HEADERS) else None
        return str(section + 1)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        c = self._rows[index.row()]
        col = index.column()
        axis, free = split_tags(c.tags)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == TEXT and not c.text.strip():
                return EMPTY_TEXT
            return (points_text(c.points), c.text, axis_label(axis), ", ".join(free))[col]
        if role == Qt.ItemDataRole.EditRole:
            return (c.points, c.text, axis or "", ", ".join(free))[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == POINTS:
                return "Penalised behaviour: meeting it lowers the score" if c.points < 0 else \
                    "Points earned when a candidate meets it"
            return (c.text + (f"\n\nTags: {', '.join(free)}" if free else "")) if col == TEXT else None
        if role == Qt.ItemDataRole.ForegroundRole and col == TEXT and not c.text.strip():
            return QColor(theme.current()["muted"])
        if role == Qt.ItemDataRole.ForegroundRole and col == POINTS:
            t = theme.current()
            return QColor(t["danger"] if c.points < 0 else t["success"])
        if role == Qt.ItemDataRole.BackgroundRole and c.points < 0:  # a penalty, as in the grid
            t = theme.current()
            return QColor(t["danger_bg"]) if col == POINTS else None
        if role == Qt.ItemDataRole.FontRole and col == POINTS:
            f = QFont()
            f.setWeight(QFont.Weight.DemiBold)
            return f
        if role == Qt.ItemDataRole.TextAlignmentRole and col == POINTS:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{points_text(c.points)} points: {c.text}" if col == TEXT else None
        return None

    def setData(self, index: _Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        c = self._rows[index.row()]
        col = index.column()
        axis, free = split_tags(c.tags)
        if col == POINTS:
            try:
                points = float(value)
            except (TypeError, ValueError):
                return False
            if points == 0 or abs(points) > 10:
                return False
            c.points = points
        elif col == TEXT:
            c.text = str(value)
        elif col == AXIS:
            value = str(value or "")
            if value and value not in AXES:
                return False
            c.tags = join_tags(value or None, free)
        elif col == TAGS:
            c.tags = join_tags(axis, str(value or "").split(","))
        else:
            return False
        self.dataChanged.emit(index, index)
        self.edited.emit()
        return True


class PointsSpinBox(QSpinBox):
    """-10..10 without 0: stepping down from +1 gives -1."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setRange(-10, 10)
        self.setAccelerated(True)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        old = self.value()
        value = old + steps
        if value == 0 or (old > 0) != (value > 0):  # crossing zero skips it
            value += 1 if steps > 0 else -1
        self.setValue(max(-10, min(10, value)))


class CriteriaDelegate(QStyledItemDelegate):
    """The editors: a spin box for points, a combo of the five axes, line edits for texts."""

    def createEditor(self, parent, option, index):  # noqa: N802
        col = index.column()
        if col == POINTS:
            return PointsSpinBox(parent)
        if col == AXIS:
            combo = QComboBox(parent)
            combo.addItem(NO_AXIS, "")
            for a in AXES:
                combo.addItem(axis_label(a), a)
            return combo
        editor = QLineEdit(parent)
        if col == TEXT:
            editor.setPlaceholderText("What a good answer does (or, with negative points, must not do)")
        else:
            editor.setPlaceholderText("free tags, comma-separated")
        return editor

    def sizeHint(self, option, index):  # noqa: N802
        hint = super().sizeHint(option, index)
        hint.setHeight(hint.height() + 10)  # air between criteria
        return hint

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        value = index.data(Qt.ItemDataRole.EditRole)
        if isinstance(editor, PointsSpinBox):
            editor.setValue(round(value) or NEW_POINTS)
        elif isinstance(editor, QComboBox):
            editor.setCurrentIndex(max(0, editor.findData(value)))
        else:
            editor.setText(value or "")

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        if isinstance(editor, PointsSpinBox):
            editor.interpretText()
            if editor.value() != 0:
                model.setData(index, editor.value())
        elif isinstance(editor, QComboBox):
            model.setData(index, editor.currentData())
        else:
            model.setData(index, editor.text())


class CriteriaView(QTableView):
    """The criteria table; its keys are the panel's (see the module docstring)."""

    KEYS = keys("Ctrl+N", "Ctrl+S", "Delete", "Alt+Up", "Alt+Down", "Return", "Enter", "F2",
                "Up", "Down", "Left", "Right", "Home", "End", "Backspace")

    def _panel(self) -> RubricPanel | None:
        panel = self.parent()
        while panel is not None and not isinstance(panel, RubricPanel):
            panel = panel.parent()
        return panel

    def event(self, event: QEvent) -> bool:
        # Escape is the panel's only while there is something to drop (an editor, a draft)
        panel = self._panel()
        escape = self.state() == QAbstractItemView.State.EditingState or (panel is not None and panel.dirty)
        if claim_shortcut_override(event, self.KEYS + (keys("Escape") if escape else ())):
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        panel = self._panel()
        if panel is not None and panel.handle_key(event):
            event.accept()
            return
        if (event.key() in ENTER_KEYS and self.state() != QAbstractItemView.State.EditingState
                and self.currentIndex().isValid()):
            self.edit(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)


class RubricPanel(QWidget):
    """The rubric of the prompt on the bench, editable. ``show_rubric`` fills it (the window
    calls it when the item or its rubric changes); ``rubric_saved`` fires after a save."""

    rubric_saved = Signal(object)  # the stored Rubric
    dirty_changed = Signal(bool)  # the draft differs from what is saved (or no longer does)

    def __init__(self, *, save: Callable[..., Rubric] | None = None,
                 templates: RubricTemplates | None = None, author: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rubricPanel")
        self._save = save
        self.templates = templates if templates is not None else RubricTemplates()
        self.author = author
        self.prompt_id: str | None = None
        self.domain = "general"
        self.rubric: Rubric | None = None
        self._dirty = False
        self.from_template = False  # the criteria shown are a template the core offered, unsaved
        #: the template version the draft started from ("Start from the domain template");
        #: None: the draft follows the rubric shown (whose own template version the save keeps)
        self.template_version: str | None = None
        self._shown: list[Criterion] = []  # what Escape goes back to
        #: unsaved drafts of other prompts, with the template version each started from
        self._drafts: dict[str, tuple[list[Criterion], str | None]] = {}

        self.model = CriteriaModel(self)
        self.model.edited.connect(self._edited)
        self.view = CriteriaView(self)
        self.view.setModel(self.model)
        self.view.setItemDelegate(CriteriaDelegate(self.view))
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.view.setWordWrap(True)
        self.view.setAlternatingRowColors(True)
        self.view.setAccessibleName("Rubric criteria")
        h = self.view.horizontalHeader()
        h.setSectionResizeMode(POINTS, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(TEXT, QHeaderView.ResizeMode.Stretch)
        h.setSectionResizeMode(AXIS, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(TAGS, QHeaderView.ResizeMode.ResizeToContents)
        # rows fit their wrapped text at the criterion column's real width (ResizeToContents
        # measures before the stretch and leaves rows far too tall)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self.view.resizeRowsToContents)
        h.sectionResized.connect(lambda *_: self._fit_timer.start())
        for sig in (self.model.modelReset, self.model.rowsInserted, self.model.dataChanged, self.model.rowsMoved):
            sig.connect(lambda *_: self._fit_timer.start())

        self.title = QLabel("<b>Rubric</b>")
        self.version_label = QLabel()
        self.version_label.setObjectName("muted")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add a criterion (Ctrl+N)")
        self.add_button.clicked.connect(self.add_criterion)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected criterion (Delete)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.template_button = QPushButton("Start from the domain template")
        self.template_button.clicked.connect(self.start_from_template)
        self.save_button = QPushButton("Save version")
        self.save_button.setToolTip("Save these criteria as a new version of the rubric (Ctrl+S)")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        for b in (self.add_button, self.remove_button, self.template_button, self.save_button):
            b.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Rubric message")
        self.message.setProperty("tone", "muted")  # never read back unset: see rubric_grid.paint
        self.hint = QLabel("Ctrl+N add · Enter edit · Delete remove · Alt+↑/↓ move · Ctrl+S save")
        self.hint.setObjectName("muted")

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.version_label, 1)
        self.version_label.setWordWrap(True)  # "7 criteria · 30 positive points · version 1 (...)" in a side pane
        self.hint.setWordWrap(True)
        self.template_button.setToolTip("Replace the draft by the domain's template")
        # two rows of buttons: the panel lives in a side pane a few hundred pixels wide
        buttons = QVBoxLayout()
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.add_button)
        row1.addWidget(self.remove_button)
        row1.addStretch(1)
        row1.addWidget(self.save_button)
        row2.addWidget(self.template_button)
        row2.addStretch(1)
        buttons.addLayout(row1)
        buttons.addLayout(row2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(self.hint)
        self.show_rubric(None)

    COMPACT_WIDTH = 520  # narrower: the tags column hides (they show in the criterion's tooltip)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        compact = self.width() < self.COMPACT_WIDTH
        self.view.setColumnHidden(TAGS, compact)
        h = self.view.horizontalHeader()  # the axis wraps onto two lines rather than squeeze the criterion
        h.setSectionResizeMode(AXIS, QHeaderView.ResizeMode.Fixed if compact else QHeaderView.ResizeMode.ResizeToContents)
        if compact:
            h.resizeSection(AXIS, 104)

    @property
    def dirty(self) -> bool:
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        if value != self._dirty:
            self._dirty = value
            self.dirty_changed.emit(value)

    # -- what is shown ---------------------------------------------------------------------------

    def show_rubric(self, rubric: Rubric | None, *, prompt_id: str | None = None,
                    domain: str | None = None, author: str | None = None) -> None:
        """Show ``rubric`` (None: the prompt has none yet) for ``prompt_id``. An unsaved draft
        of the prompt shown before is kept and comes back when that prompt does."""
        new_prompt = prompt_id if prompt_id is not None else (rubric.prompt_id if rubric else self.prompt_id)
        if self.dirty and self.prompt_id is not None and new_prompt != self.prompt_id:
            self._drafts[self.prompt_id] = (self.model.criteria(), self.template_version)
        if domain is not None:
            self.domain = domain
        if author is not None:
            self.author = author
        self.prompt_id = new_prompt
        # a rubric of version 0 is not stored: the core shows a domain template until it is saved
        self.from_template = rubric is not None and rubric.version == 0
        self.rubric = None if self.from_template else rubric
        draft, self.template_version = (
            self._drafts.pop(new_prompt, (None, None)) if new_prompt is not None else (None, None))
        self._shown = list(rubric.criteria) if rubric else []
        self.model.set_criteria(draft if draft is not None else self._shown)
        self.dirty = draft is not None
        self.setEnabled(new_prompt is not None)
        self._refresh(show_rules=False)

    def criteria(self) -> list[Criterion]:
        """The criteria as they stand in the panel (copies)."""
        return self.model.criteria()

    def version_text(self) -> str:
        crit = self.model.criteria()
        n = len(crit)
        parts = [f"{n} criteri{'on' if n == 1 else 'a'}", f"{positive_points(crit):g} positive points"]
        if self.rubric is not None:
            r = self.rubric
            mine = not self.author or r.author == self.author
            whose = "" if mine else f", by {r.author}" if r.author else ""
            parts.append(f"version {r.version} ({r.status}{whose})")
        elif self.from_template:
            parts.append(f"from the {self.domain} template, not saved yet")
        else:
            parts.append("not saved yet")
        if self.dirty:
            parts.append("unsaved changes")
        return " · ".join(parts)

    def _edited(self) -> None:
        self.dirty = True
        self._refresh(show_rules=True)

    def _refresh(self, *, show_rules: bool) -> None:
        self.version_label.setText(self.version_text())
        self.remove_button.setEnabled(self.model.rowCount() > 0)
        self.save_button.setEnabled((self.dirty or self.from_template) and self._save is not None)
        problem = self.problem()
        if problem and show_rules:
            self._say(problem, "warning")
        elif not problem and self.message.property("tone") in ("warning", "danger"):
            self._say("", "muted")

    def problem(self) -> str | None:
        """What ``check_criteria`` says of the draft (None when it may be saved)."""
        try:
            check_criteria(self.model.criteria())
        except RubricError as e:
            return str(e)
        return None

    def apply_theme(self) -> None:
        """The theme changed: recolour the message and the points."""
        self._say(self.message.text(), self.message.property("tone") or "muted")
        self.view.viewport().update()

    def _say(self, text: str, tone: str) -> None:
        t = theme.current()
        color = {"warning": t["warning"], "danger": t["danger"], "success": t["success"]}.get(tone, t["muted"])
        self.message.setProperty("tone", tone)
        self.message.setStyleSheet(f"color: {color};")
        self.message.setText(text)

    # -- editing ---------------------------------------------------------------------------------

    def current_row(self) -> int:
        idx = self.view.currentIndex()
        return idx.row() if idx.isValid() else -1

    def add_criterion(self) -> None:
        """A new criterion under the selected one, its text open for typing."""
        if self.prompt_id is None:
            return
        row = self.current_row() + 1 if self.current_row() >= 0 else self.model.rowCount()
        self.model.insert(row, Criterion(text="", points=NEW_POINTS, author=self.author))
        idx = self.model.index(row, TEXT)
        self.view.setCurrentIndex(idx)
        self.view.setFocus()
        self.view.edit(idx)

    def remove_selected(self) -> None:
        row = self.current_row()
        if row < 0:
            return
        col = self.view.currentIndex().column()
        self.model.remove(row)
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(min(row, self.model.rowCount() - 1), col))

    def move_selected(self, delta: int) -> None:
        idx = self.view.currentIndex()
        if not idx.isValid():
            return
        to = self.model.move(idx.row(), delta)
        self.view.setCurrentIndex(self.model.index(to, idx.column()))

    def start_from_template(self) -> None:
        """Replace the draft by the domain's template (not saved until Ctrl+S)."""
        if self.prompt_id is None:
            return
        try:
            template = self.templates.for_domain(self.domain)
        except RubricError as e:
            self._say(str(e), "danger")
            return
        if template is None:
            self._say(f"No rubric template for {self.domain}.", "danger")
            return
        if self.model.rowCount() and (self.dirty or self.rubric is not None):
            answer = QMessageBox.question(
                self, "Start from the template",
                f"Replace the {self.model.rowCount()} criteria shown by the {template.domain} template? "
                "Nothing is saved until you save a version.")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.model.set_criteria(template.criteria(author=self.author))
        self.template_version = template.version
        self._edited()
        self.view.setCurrentIndex(self.model.index(0, TEXT))
        self.view.setFocus()
        self._say(f"Started from the {template.domain} template ({template.version}). "
                  "Edit it, then save a version (Ctrl+S).", "muted")

    def revert(self) -> None:
        """Back to the saved version, dropping the unsaved changes."""
        self.model.set_criteria(self._shown)
        self.template_version = None
        self.dirty = False
        self._refresh(show_rules=False)
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0, TEXT))
        self._say("Back to the saved version.", "muted")

    def save(self) -> Rubric | None:
        """Save the draft as a new version; a draft that breaks the rules is refused here."""
        if self._save is None or self.prompt_id is None:
            return None
        if self.view.state() == QAbstractItemView.State.EditingState:
            editor = self.view.indexWidget(self.view.currentIndex()) or self.view.focusWidget()
            if editor is not None and editor is not self.view:
                self.view.commitData(editor)
                self.view.closeEditor(editor, QStyledItemDelegate.EndEditHint.NoHint)
        problem = self.problem()
        if problem:
            self._say(f"Not saved: {problem}", "danger")
            self._select_problem(problem)
            return None
        try:
            # the template the draft started from goes with it (RubricBench.save_rubric records it)
            extra = {} if self.template_version is None else {"template_version": self.template_version}
            rubric = self._save(self.model.criteria(), **extra)
        except RubricError as e:
            self._say(f"Not saved: {e}", "danger")
            return None
        where = self.view.currentIndex()
        self.dirty = False
        self.show_rubric(rubric, prompt_id=self.prompt_id)
        if self.model.rowCount():  # the cursor stays where it was
            self.view.setCurrentIndex(self.model.index(
                min(max(where.row(), 0), self.model.rowCount() - 1), where.column() if where.isValid() else TEXT))
        self._say(f"Saved as version {rubric.version}.", "success")
        self.rubric_saved.emit(rubric)
        return rubric

    def _select_problem(self, problem: str) -> None:
        words = problem.split(":", 1)[0].split()
        if len(words) == 2 and words[0] == "criterion" and words[1].isdigit():
            row = int(words[1]) - 1
            col = POINTS if "points" in problem.split(":", 1)[0] else TEXT
            self.view.setCurrentIndex(self.model.index(row, col))
        self.view.setFocus()

    # -- keys ------------------------------------------------------------------------------------

    def handle_key(self, event) -> bool:
        """The panel's own keys, from the table; True when handled."""
        if matches(event, keys("Ctrl+N")):
            self.add_criterion()
        elif matches(event, keys("Ctrl+S")):
            self.save()
        elif matches(event, keys("Delete")):
            self.remove_selected()
        elif matches(event, keys("Alt+Up")):
            self.move_selected(-1)
        elif matches(event, keys("Alt+Down")):
            self.move_selected(1)
        elif matches(event, keys("Escape")) and self.dirty:
            self.revert()
        else:
            return False
        return True

    def event(self, event: QEvent) -> bool:
        # Ctrl+S and Ctrl+N from the panel's editors and buttons too, not only from the table
        if claim_shortcut_override(event, keys("Ctrl+N", "Ctrl+S")):
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if matches(event, keys("Ctrl+N", "Ctrl+S")) and self.handle_key(event):
            event.accept()
            return
        super().keyPressEvent(event)
