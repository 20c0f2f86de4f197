"""The grading grid: criteria down, candidates across, each cell met / not met / to grade.

:class:`GradeGridModel` is a Qt table model that adapts the core's grid state (a
:class:`GradeSource`, which ``core.rubric_bench.RubricBench`` is): it reads the criteria,
the cells and the live scores from it and passes every change back to it; it keeps nothing
of its own. Columns: the points, the criterion, then one column per candidate in the order
the bench shows them (labelled by their card's number), whose header carries the candidate's
score live (HealthBench's, may be negative: "62 %").

Keys in the grid (taken before the window's one-key shortcuts): arrows move, Space toggles
met / not met, Y met and X not met (then down to the next criterion), Delete back to
ungraded, N or Enter writes a note on the cell, P uses the proposed ranking. A click
toggles a cell.

Penalised criteria (negative points) are drawn apart: their points in the danger colour
with a red bar, and a candidate that *meets* one (shows the behaviour) is marked in red, not
green. Under the grid, the ranking proposed from the scores (equal scores tie); "Use this
ranking" hands it to the bench (``ranking_accepted``), which the tutor may still change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.events import Change
from hitl_desktop.core.rubrics import Criterion, positive_points
from hitl_desktop.qt import theme
from hitl_desktop.qt.rubric_common import (
    ENTER_KEYS,
    axis_label,
    claim_shortcut_override,
    keys,
    matches,
    points_text,
    score_text,
)

POINTS, CRITERION = 0, 1
FIRST = 2  # the first candidate column
MET_ROLE = Qt.ItemDataRole.UserRole + 1  # True / False / None
NOTE_ROLE = Qt.ItemDataRole.UserRole + 2
NEGATIVE_ROLE = Qt.ItemDataRole.UserRole + 3  # the row's criterion is penalised
MET_MARK, NOT_MET_MARK, TO_GRADE_MARK = "\u2713 met", "\u2717 not met", "\u2013"

_Index = QModelIndex | QPersistentModelIndex


class GradeCell(Protocol):
    met: bool | None
    note: str


class GradeSource(Protocol):
    """The core's grid state, as the grid uses it (``core.rubric_bench.RubricBench``)."""

    @property
    def criteria(self) -> list[Criterion]: ...
    @property
    def candidate_ids(self) -> list[str]: ...
    def cell(self, candidate_id: str, criterion_id: str) -> GradeCell: ...
    def set_grade(self, candidate_id: str, criterion_id: str, met: bool | None,
                  note: str | None = None) -> None: ...
    def scores(self) -> dict[str, float | None]: ...
    def proposed_ranks(self) -> dict[str, int]: ...
    def graded(self, candidate_id: str) -> bool: ...


class GradeGridModel(QAbstractTableModel):
    """The grid as a table over a :class:`GradeSource` (see the module docstring)."""

    grades_changed = Signal()
    scores_changed = Signal(int)  # the column whose score a grade set here changed

    def __init__(self, source: GradeSource | None = None, parent=None) -> None:
        super().__init__(parent)
        self.source = source
        self._criteria: list[Criterion] = []
        self._order: list[str] = []  # candidate ids, as the bench shows them
        self._wanted_order: list[str] | None = None
        self._scores: dict[str, float | None] | None = None  # the source's, until a grade changes
        self._writing = False  # a change this model is passing to the source
        self.reload()

    # -- following the source ------------------------------------------------------------------

    def set_source(self, source: GradeSource | None) -> None:
        self.source = source
        self.reload()

    def set_order(self, candidate_ids: Sequence[str] | None) -> None:
        """Show the candidates in the bench's display order (None: the source's order)."""
        self._wanted_order = list(candidate_ids) if candidate_ids is not None else None
        self.reload()

    def prefer_order(self, candidate_ids: Sequence[str]) -> None:
        """Like :meth:`set_order`, taking effect at the next :meth:`reload`."""
        self._wanted_order = list(candidate_ids)

    def reload(self) -> None:
        """The criteria or the candidates changed: rebuild the table."""
        self.beginResetModel()
        if self.source is None:
            self._criteria, self._order = [], []
        else:
            self._criteria = list(self.source.criteria)
            ids = list(self.source.candidate_ids)
            wanted = [c for c in (self._wanted_order or []) if c in ids]
            self._order = wanted + [c for c in ids if c not in wanted]
        self._scores = None
        self.endResetModel()
        self.grades_changed.emit()

    @property
    def writing(self) -> bool:
        """Whether the change being announced is one this model passed to the source."""
        return self._writing

    def refresh_grades(self) -> None:
        """The grades changed (elsewhere: undo, reopen): redraw the cells and the scores."""
        self._scores = None
        if self._criteria and self._order:
            self.dataChanged.emit(self.index(0, FIRST), self.index(len(self._criteria) - 1, self.columnCount() - 1))
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, FIRST, self.columnCount() - 1)
        self.grades_changed.emit()

    # -- what the grid holds -------------------------------------------------------------------

    @property
    def criteria(self) -> list[Criterion]:
        return list(self._criteria)

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def candidate_at(self, column: int) -> str | None:
        i = column - FIRST
        return self._order[i] if 0 <= i < len(self._order) else None

    def column_of(self, candidate_id: str) -> int:
        return FIRST + self._order.index(candidate_id)

    def label(self, candidate_id: str) -> str:
        """The candidate's card number on the bench (1-based, display order)."""
        return str(self._order.index(candidate_id) + 1)

    def met(self, row: int, column: int) -> bool | None:
        cid = self.candidate_at(column)
        if self.source is None or cid is None or not 0 <= row < len(self._criteria):
            return None
        return self.source.cell(cid, self._criteria[row].id).met

    def scores(self) -> dict[str, float | None]:
        if self.source is None:
            return {}
        if self._scores is None:  # headers ask many times per repaint: once per change
            self._scores = dict(self.source.scores())
        return self._scores

    def set_met(self, index: _Index, met: bool | None) -> bool:
        return self.setData(index, met, MET_ROLE)

    def toggle(self, index: _Index) -> bool:
        """Space or a click: to grade / not met -> met, met -> not met."""
        if self.candidate_at(index.column()) is None:
            return False
        return self.set_met(index, self.met(index.row(), index.column()) is not True)

    def graded_count(self) -> tuple[int, int]:
        """(cells graded, cells in all)."""
        total = len(self._criteria) * len(self._order)
        if self.source is None:
            return 0, total
        done = sum(1 for c in self._order for k in self._criteria if self.source.cell(c, k.id).met is not None)
        return done, total

    # -- Qt's model ----------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._criteria)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else FIRST + len(self._order)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        if index.column() < FIRST:
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Vertical:
            return str(section + 1) if role == Qt.ItemDataRole.DisplayRole else None
        cid = self.candidate_at(section)
        if cid is None:
            if role == Qt.ItemDataRole.DisplayRole:
                return ("Points", "Criterion")[section] if section < FIRST else None
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            left = self.left_to_grade(cid)
            more = f" · {left} left" if left and left < len(self._criteria) else ""
            return f"Candidate {self.label(cid)}\n{score_text(self.scores().get(cid))}{more}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.score_tooltip(cid)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ForegroundRole:
            s = self.scores().get(cid)
            return QColor(theme.current()["danger"]) if s is not None and s < 0 else None
        return None

    def left_to_grade(self, candidate_id: str) -> int:
        if self.source is None:
            return 0
        return sum(1 for k in self._criteria if self.source.cell(candidate_id, k.id).met is None)

    def score_tooltip(self, candidate_id: str) -> str:
        crits = self._criteria
        if self.source is None or not crits:
            return ""
        earned = sum(k.points for k in crits if self.source.cell(candidate_id, k.id).met)
        left = sum(1 for k in crits if self.source.cell(candidate_id, k.id).met is None)
        text = (f"Candidate {self.label(candidate_id)}: {earned:g} of {positive_points(crits):g} "
                f"positive points ({score_text(self.scores().get(candidate_id))})")
        return text + (f"; {left} criteri{'on' if left == 1 else 'a'} to grade" if left else "; all graded")

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._criteria):
            return None
        k = self._criteria[index.row()]
        col = index.column()
        if role == NEGATIVE_ROLE:
            return k.points < 0
        if col == POINTS:
            if role == Qt.ItemDataRole.DisplayRole:
                return points_text(k.points)
            if role == Qt.ItemDataRole.ToolTipRole:
                return "Penalised behaviour: a candidate that meets it loses these points" if k.points < 0 \
                    else "Points a candidate earns by meeting it"
            return None
        if col == CRITERION:
            if role == Qt.ItemDataRole.DisplayRole:
                return k.text
            if role == Qt.ItemDataRole.ToolTipRole:
                axis = axis_label(k.axis)
                return f"{k.text}\n{points_text(k.points)} points" + (f" · {axis}" if axis else "")
            return None
        cid = self.candidate_at(col)
        if cid is None or self.source is None:
            return None
        cell = self.source.cell(cid, k.id)
        if role == MET_ROLE:
            return cell.met
        if role in (NOTE_ROLE, Qt.ItemDataRole.EditRole):
            return cell.note
        if role == Qt.ItemDataRole.DisplayRole:
            mark = {True: MET_MARK, False: NOT_MET_MARK, None: TO_GRADE_MARK}[cell.met]
            return mark + (" \u270e" if cell.note else "")
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            state = {True: "meets", False: "does not meet", None: "is not graded on"}[cell.met]
            text = f"Candidate {self.label(cid)} {state} criterion {index.row() + 1} ({points_text(k.points)})"
            return text + (f"\nNote: {cell.note}" if cell.note else "")
        return None

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        cid = self.candidate_at(index.column()) if index.isValid() else None
        if cid is None or self.source is None or not 0 <= index.row() < len(self._criteria):
            return False
        crit = self._criteria[index.row()].id
        if role == MET_ROLE and value not in (True, False, None):
            return False
        if role not in (MET_ROLE, NOTE_ROLE, Qt.ItemDataRole.EditRole):
            return False
        self._writing = True
        try:
            if role == MET_ROLE:
                self.source.set_grade(cid, crit, value)
            else:
                self.source.set_grade(cid, crit, self.source.cell(cid, crit).met, str(value or "").strip())
        finally:
            self._writing = False
            self._scores = None
        self.dataChanged.emit(index, index)
        # the column's header (its score) changed too; not headerDataChanged, which makes a
        # header re-measure itself and the table lay out and repaint every cell (30 ms at
        # 30 x 9): the header's two lines keep their size, so a repaint of it is enough
        self.scores_changed.emit(index.column())
        self.grades_changed.emit()
        return True


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() * (1 - t) + b.red() * t), round(a.green() * (1 - t) + b.green() * t),
                  round(a.blue() * (1 - t) + b.blue() * t))


def cell_colours(met: bool | None, negative: bool, t: theme.Theme) -> tuple[str, str]:
    """``(fill, ink)`` of a cell: met is green, or red on a penalty (the candidate shows the
    behaviour); not met is a neutral chip; to grade is an outline on the surface."""
    if met is True:
        return (t["danger_bg"], t["danger"]) if negative else (t["success_bg"], t["success"])
    if met is False:
        return t["chip"], t["muted"]
    return t["surface"], t["muted"]


class GradeCellDelegate(QStyledItemDelegate):
    """Paints a cell as a pill in the theme's colours (met / not met / to grade, penalties in
    red), the current cell with an accent ring, and edits a cell's note in a line edit."""

    CACHE_LIMIT = 4000

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._cache: dict[tuple, QPixmap] = {}

    def paint(self, painter: QPainter, option, index) -> None:
        """Each cell is drawn once into a pixmap per look (theme, state, text, size, focus) and
        then only copied: one call into Qt per cell and repaint. Besides being quicker, this
        keeps PySide6 6.12.0 on CPython 3.11, which drops a reference to None on every call
        that returns nothing, from draining None by a dozen per cell on every repaint."""
        t = theme.current()
        col = index.column()
        negative = bool(index.data(NEGATIVE_ROLE))
        kind = min(col, FIRST)
        met = None
        if kind == FIRST:
            # the model's own method, not index.data(MET_ROLE): no empty QVariant round trip
            model = index.model()
            met = model.met(index.row(), col) if isinstance(model, GradeGridModel) else index.data(MET_ROLE)
        focused = kind == FIRST and bool(
            option.state & (QStyle.StateFlag.State_HasFocus | QStyle.StateFlag.State_Selected))
        rect = option.rect
        dpr = painter.device().devicePixelRatioF()
        key = (t.name, kind, met, negative, index.data() or "", rect.width(), rect.height(), focused, dpr,
               option.font.key())
        pixmap = self._cache.get(key)
        if pixmap is None:
            if len(self._cache) > self.CACHE_LIMIT:
                self._cache.clear()
            pixmap = self._cache[key] = self._render(key, option.font)
        painter.drawPixmap(rect.topLeft(), pixmap)

    def _render(self, key: tuple, base_font: QFont) -> QPixmap:
        _, kind, met, negative, text, w, h, focused, dpr, _ = key
        t = theme.current()
        pixmap = QPixmap(max(1, round(w * dpr)), max(1, round(h * dpr)))
        pixmap.setDevicePixelRatio(dpr)
        pixmap.fill(QColor(t["surface"]))  # also covers the style's selection fill
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(0, 0, w, h)
        if kind == POINTS:
            if negative:
                painter.fillRect(rect, QColor(t["danger_bg"]))
                painter.fillRect(QRectF(0, 0, 3, h), QColor(t["danger"]))
            font = QFont(base_font)
            font.setWeight(QFont.Weight.DemiBold)
            painter.setFont(font)
            painter.setPen(QColor(t["danger"] if negative else t["success"]))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        elif kind == CRITERION:
            if negative:
                painter.fillRect(rect, _mix(QColor(t["surface"]), QColor(t["danger_bg"]), 0.45))
            painter.setPen(QColor(t["text"]))
            painter.setFont(base_font)
            painter.drawText(rect.adjusted(8, 4, -8, -4),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
                             text)
        else:
            pill = rect.adjusted(6, 5, -6, -5)
            path = QPainterPath()
            path.addRoundedRect(pill, 6, 6)
            fill, ink = cell_colours(met, negative, t)
            if met is None:  # to grade: an outline only, so that what is left stands out
                painter.setPen(QPen(QColor(ink), 1, Qt.PenStyle.DashLine))
                painter.drawPath(path)
            else:
                painter.fillPath(path, QColor(fill))
            font = QFont(base_font)
            if met is True:
                font.setWeight(QFont.Weight.DemiBold)
            painter.setFont(font)
            painter.setPen(QColor(ink))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
            if focused:
                ring = QPainterPath()
                ring.addRoundedRect(rect.adjusted(2.5, 2.5, -2.5, -2.5), 8, 8)
                painter.setPen(QPen(QColor(t["accent"]), 2))
                painter.drawPath(ring)
        painter.end()
        return pixmap

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        if index.column() >= FIRST:  # a pill: the same for every cell, no text to measure
            return QSize(96, 34)
        hint = super().sizeHint(option, index)
        return QSize(hint.width(), max(hint.height(), 34))

    def createEditor(self, parent, option, index):  # noqa: N802
        editor = QLineEdit(parent)
        editor.setPlaceholderText("A note on this grade (optional); Enter to keep, Esc to drop")
        return editor

    def setEditorData(self, editor, index) -> None:  # noqa: N802
        editor.setText(index.data(NOTE_ROLE) or "")

    def setModelData(self, editor, model, index) -> None:  # noqa: N802
        model.setData(index, editor.text(), NOTE_ROLE)

    def updateEditorGeometry(self, editor, option, index) -> None:  # noqa: N802
        r = option.rect
        editor.setGeometry(r.adjusted(2, 2, -2, -2).united(r.adjusted(0, 0, 160, 0)) if r.width() < 220 else r)


class GradeGridView(QTableView):
    """The grid's keys (see the module docstring); the cursor stays on candidate columns."""

    KEYS = keys("Up", "Down", "Left", "Right", "Home", "End", "PgUp", "PgDown", "Space", "N", "Y",
                "X", "P", "Return", "Enter", "Delete", "Backspace", "Tab", "Shift+Tab")
    EDITING_KEYS = KEYS + keys("Escape")  # Escape drops a note being written, else it is the window's

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setItemDelegate(GradeCellDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.setShowGrid(False)
        self.setTabKeyNavigation(True)
        self.setAccessibleName("Grading grid")
        self.clicked.connect(self._clicked)
        h = self.horizontalHeader()
        h.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        h.setMinimumSectionSize(44)
        # rows fit the criterion's wrapped text when the criteria or the widths change, not on
        # every grade (ResizeToContents would measure every cell of every row on each one)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setVisible(False)
        self._fit = QTimer(self)
        self._fit.setSingleShot(True)
        self._fit.setInterval(0)
        self._fit.timeout.connect(self.resizeRowsToContents)
        h.sectionResized.connect(lambda *_: self._fit.start())

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        model.modelReset.connect(self._layout_columns)
        model.modelReset.connect(self._fit.start)
        # the header's viewport fetched once, here: PySide builds its wrapper's enums on the
        # first call (~25 ms), which would otherwise be the first grade's event-loop gap
        header_viewport = self.horizontalHeader().viewport()
        model.scores_changed.connect(lambda _col: header_viewport.update())
        self._layout_columns()
        self._fit.start()

    def _layout_columns(self) -> None:
        m = self.model()
        h = self.horizontalHeader()
        if m is None or m.columnCount() <= CRITERION:
            return
        h.setSectionResizeMode(POINTS, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(CRITERION, QHeaderView.ResizeMode.Stretch)
        for c in range(FIRST, m.columnCount()):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.Fixed)
            h.resizeSection(c, 112)
        if m.rowCount() and not self.currentIndex().isValid():
            self.setCurrentIndex(m.index(0, FIRST))

    def event(self, event: QEvent) -> bool:
        # claimed while a note is edited too: the key then goes to the editor, not the window
        editing = self.state() == QAbstractItemView.State.EditingState
        if claim_shortcut_override(event, self.EDITING_KEYS if editing else self.KEYS):
            return True
        return super().event(event)

    def moveCursor(self, action, modifiers):  # noqa: N802
        index = super().moveCursor(action, modifiers)
        m = self.model()
        if m is not None and index.isValid() and index.column() < FIRST and m.columnCount() > FIRST:
            return m.index(index.row(), FIRST)
        return index

    def _clicked(self, index: QModelIndex) -> None:
        if index.column() >= FIRST:
            self.model().toggle(index)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        m: GradeGridModel = self.model()
        index = self.currentIndex()
        on_cell = m is not None and index.isValid() and index.column() >= FIRST
        if on_cell and matches(event, keys("Space")):
            m.toggle(index)
        elif on_cell and (matches(event, keys("N")) or event.key() in ENTER_KEYS) \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            self.edit(index)
        elif on_cell and matches(event, keys("Y", "X")):
            m.set_met(index, event.key() == Qt.Key.Key_Y)
            if index.row() + 1 < m.rowCount():
                self.setCurrentIndex(m.index(index.row() + 1, index.column()))
        elif on_cell and matches(event, keys("Delete", "Backspace")):
            m.set_met(index, None)
        elif matches(event, keys("P")) and isinstance(self.parent(), GradingGrid):
            self.parent().accept_ranking()
        else:
            super().keyPressEvent(event)
            return
        event.accept()


class GradingGrid(QWidget):
    """The grid with its summary and the proposed ranking. ``follow(events)`` redraws it on
    ``Change.RUBRIC`` / ``CANDIDATES`` / ``ITEM`` (rebuild) and ``Change.GRADES`` (cells)."""

    ranking_accepted = Signal(object)  # {candidate id: rank}, proposed from the scores

    def __init__(self, source: GradeSource | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gradingGrid")
        self.model = GradeGridModel(source, self)
        self.view = GradeGridView(self)
        self.view.setModel(self.model)
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        self.notice = QLabel()  # e.g. the rubric panel has unsaved changes
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.legend = QLabel(
            f"{MET_MARK} · {NOT_MET_MARK} · {TO_GRADE_MARK} to grade · red rows penalise: meeting them "
            "lowers the score · Space toggle · Y / X met / not met · N note · P use the ranking")
        self.legend.setObjectName("muted")
        self.legend.setWordWrap(True)
        self.ranking_label = QLabel()
        self.ranking_label.setAccessibleName("Proposed ranking")
        self.ranking_label.setTextFormat(Qt.TextFormat.PlainText)
        self.accept_button = QPushButton("Use this ranking (P)")
        self.accept_button.setToolTip("Put the ranking proposed from the scores on the bench; you can still change it")
        self.accept_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.accept_button.clicked.connect(self.accept_ranking)
        self.model.grades_changed.connect(self._update_summary)
        self._unsubscribe = None

        row = QHBoxLayout()
        row.addWidget(self.ranking_label, 1)
        row.addWidget(self.accept_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QHBoxLayout()
        title.addWidget(QLabel("<b>Grades</b>"))
        title.addWidget(self.summary, 1)
        layout.addLayout(title)
        layout.addWidget(self.notice)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        layout.addWidget(self.legend)
        self._update_summary()

    def set_source(self, source: GradeSource | None) -> None:
        self.model.set_source(source)

    def follow(self, events: Any) -> None:
        """Subscribe to an ``Evented`` (the rubric bench, or the workflow announcing for it)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = events.subscribe(self.on_changes)

    def unfollow(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_changes(self, changes: Any) -> None:
        if any(p in changes for p in (Change.RUBRIC, Change.ITEM, Change.CANDIDATES)):
            where = self.view.currentIndex()
            self.model.reload()
            if where.isValid() and where.row() < self.model.rowCount() and where.column() < self.model.columnCount():
                self.view.setCurrentIndex(self.model.index(where.row(), where.column()))
        elif Change.GRADES in changes and not self.model.writing:
            # a grade set from this grid has already redrawn its cell and column
            self.model.refresh_grades()

    def proposed_ranks(self) -> dict[str, int]:
        return {} if self.model.source is None else dict(self.model.source.proposed_ranks())

    def complete(self) -> bool:
        """Every candidate graded on every criterion."""
        src = self.model.source
        return src is not None and bool(self.model.order) and all(src.graded(c) for c in self.model.order)

    def proposed_text(self) -> str:
        """``Proposed ranking: 2 (71 %) > 1 (62 %) = 3 (62 %) > 4 (−8 %)``, in the cards' numbers."""
        ranks, scores = self.proposed_ranks(), self.model.scores()
        if not ranks:
            return "Proposed ranking: grade the candidates to see it"
        levels: dict[int, list[str]] = {}
        for cid in self.model.order:
            if cid in ranks:
                levels.setdefault(ranks[cid], []).append(cid)
        parts = [" = ".join(f"{self.model.label(c)} ({score_text(scores.get(c))})" for c in level)
                 for _, level in sorted(levels.items())]
        return "Proposed ranking: " + " > ".join(parts)

    def _update_summary(self) -> None:
        done, total = self.model.graded_count()
        n = len(self.model.order)
        if not self.model.criteria:
            self.summary.setText("no rubric yet: write criteria in the rubric panel")
        else:
            graded = sum(1 for c in self.model.order if self.model.source.graded(c))
            self.summary.setText(f"{graded} of {n} candidates graded · {done} of {total} cells")
        text = self.proposed_text()
        if self.proposed_ranks() and not self.complete():
            text += "  (grade every cell to use it)"
        self.ranking_label.setText(text)
        self.accept_button.setEnabled(self.complete() and len(self.model.order) >= 2)

    def accept_ranking(self) -> dict[str, int] | None:
        if not self.complete():
            return None
        ranks = self.proposed_ranks()
        self.ranking_accepted.emit(ranks)
        return ranks

    def set_notice(self, text: str) -> None:
        """A line above the grid in the warning colour ("" hides it)."""
        self.notice.setText(text)
        self.notice.setStyleSheet(f"color: {theme.current()['warning']};")
        self.notice.setVisible(bool(text))

    def apply_theme(self) -> None:
        self.set_notice(self.notice.text())
        self.view.viewport().update()
        self.view.horizontalHeader().viewport().update()
