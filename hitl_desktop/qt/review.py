"""The lead's review mode: prompts by disagreement, every tutor's ranking side by side, and the
adjudicated ranking (with a rationale) recorded through ``core.review.adjudicate``.

Left, two lists (tabs): the prompts two or more tutors ranked, lowest mean Kendall tau-b first,
and the rubrics to approve (prompts whose newest rubric version is not the lab rubric; selecting
one opens its proposals in the Rubrics tab, where the lead approves one). Right, the
chosen prompt: candidates as rows, one column per tutor (rank, flags, ✎ where that tutor
corrected the candidate), and an editable "Adjudicated" column, filled from the current
adjudication or else from the tutors' consensus (ranked pairs). The models adapt core rows;
nothing is written until "Record adjudication".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStyledItemDelegate,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import review
from hitl_desktop.core.store import StoreError
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt import theme
from hitl_desktop.qt.dashboard import heading, panel
from hitl_desktop.qt.review_rubrics import RubricReview
from hitl_desktop.qt.wording import count

FLAG_MARK = "⚑"
CORRECTED_MARK = "✎"


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else str(i + 1)


def _tau(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2f}"


class DisagreementModel(QAbstractTableModel):
    """The prompts to review, most disagreement first (``core.review.Disagreement`` rows)."""

    HEADERS = ("τ-b mean", "τ-b min", "Tutors", "Domain", "Done", "Prompt")
    DONE, PROMPT = 4, 5  # the prompt is last: it stretches to the table's right edge

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[review.Disagreement] = []

    def set_rows(self, rows: Sequence[review.Disagreement]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, i: int) -> review.Disagreement:
        return self._rows[i]

    def row_of(self, prompt_id: str) -> int:
        return next((i for i, d in enumerate(self._rows) if d.prompt.id == prompt_id), -1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        d, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                _tau(d.mean_tau),
                _tau(d.min_tau),
                str(len(d.tutors)),
                d.domain,
                "✓" if d.adjudicated else "",
                " ".join(d.prompt.text.split()),
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{', '.join(d.tutors)}\n\n{d.prompt.text[:1500]}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col < 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.DONE:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole and col == self.DONE:
            return "adjudicated" if d.adjudicated else "not adjudicated"
        if role == Qt.ItemDataRole.ForegroundRole and col == 0 and d.mean_tau is not None and d.mean_tau < 0:
            return QColor(theme.current()["danger"])
        if role == Qt.ItemDataRole.ForegroundRole and col == self.DONE:
            return QColor(theme.current()["success"])
        return None

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == self.DONE:
            return "✓: a lead has adjudicated this prompt"
        return None


class SideBySideModel(QAbstractTableModel):
    """One prompt: candidates as rows; a column per tutor; the editable adjudicated ranking.

    ``pending`` holds the adjudicated ranks being edited (candidate id -> rank, 0 = unranked);
    it lives in memory only."""

    pending_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.item: review.ReviewItem | None = None
        self.pending: dict[str, int] = {}

    def set_item(self, item: review.ReviewItem | None, pending: dict[str, int]) -> None:
        self.beginResetModel()
        self.item = item
        self.pending = dict(pending)
        self.endResetModel()
        self.pending_changed.emit()

    def set_pending(self, pending: dict[str, int]) -> None:
        self.pending = dict(pending)
        n = self.rowCount()
        if n:
            col = self.columnCount() - 1
            self.dataChanged.emit(self.index(0, col), self.index(n - 1, col))
        self.pending_changed.emit()

    def tutors(self) -> list[str]:
        return [j.tutor_name for j in self.item.judged] if self.item else []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() or self.item is None else len(self.item.candidates)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() or self.item is None else len(self.item.judged) + 2

    def cell_text(self, row: int, col: int) -> str:
        assert self.item is not None
        cand = self.item.candidates[row]
        if col == 0:
            first = " ".join(cand.text.split())
            return f"{_letter(row)}  {first[:90]}{'…' if len(first) > 90 else ''}"
        if col == self.columnCount() - 1:
            r = self.pending.get(cand.id, 0)
            return str(r) if r else "–"
        j = self.item.judged[col - 1].judgment
        rank = j.ranks.get(cand.id)
        bits = [str(rank) if rank is not None else "–"]
        if j.flags.get(cand.id):
            bits.append(f"{FLAG_MARK} {', '.join(j.flags[cand.id])}")
        if j.correction is not None and j.correction.candidate_id == cand.id:
            bits.append(f"{CORRECTED_MARK} corrected")
        if j.all_bad and rank is not None:
            bits.append("all bad")
        return "   ".join(bits)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if self.item is None or not index.isValid():
            return None
        row, col = index.row(), index.column()
        last = self.columnCount() - 1
        cand = self.item.candidates[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(row, col)
        if role == Qt.ItemDataRole.EditRole and col == last:
            return self.pending.get(cand.id, 0)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 0:
                return cand.text[:3000]
            if 0 < col < last:
                j = self.item.judged[col - 1].judgment
                return j.rationale or None
            return "Double-click to set the adjudicated rank (1 = best, equal ranks tie, 0 = unranked)"
        if role == Qt.ItemDataRole.TextAlignmentRole and col > 0:
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and col > 0:
            rank = self.pending.get(cand.id) if col == last else self.item.judged[col - 1].judgment.ranks.get(cand.id)
            if rank == 1:
                f = QFont()
                f.setWeight(QFont.Weight.DemiBold)
                return f
        if role == Qt.ItemDataRole.BackgroundRole and col == last:
            return QColor(theme.current()["accent_bg"])
        if role == Qt.ItemDataRole.ForegroundRole and 0 < col < last:
            j = self.item.judged[col - 1].judgment
            if {"unsafe", "incorrect", "hallucination"} & set(j.flags.get(cand.id, ())):
                return QColor(theme.current()["danger"])
        return None

    def setData(self, index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if self.item is None or not index.isValid() or index.column() != self.columnCount() - 1:
            return False
        if role != Qt.ItemDataRole.EditRole:
            return False
        try:
            rank = int(value)
        except (TypeError, ValueError):
            return False
        cid = self.item.candidates[index.row()].id
        self.pending[cid] = max(0, rank)
        self.dataChanged.emit(index, index)
        self.pending_changed.emit()
        return True

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.column() == self.columnCount() - 1:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if self.item is None or role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Vertical:
            return None
        if section == 0:
            return "Candidate"
        if section == self.columnCount() - 1:
            return "Adjudicated"
        return self.tutors()[section - 1]


class RankDelegate(QStyledItemDelegate):
    """A spin box for an adjudicated rank: 0 (unranked) to K."""

    def createEditor(self, parent: QWidget, option, index):  # noqa: N802
        spin = QSpinBox(parent)
        spin.setRange(0, max(1, index.model().rowCount()))
        spin.setSpecialValueText("–")
        spin.setAccessibleName("Adjudicated rank")
        return spin


class _Runners:
    """Several OperationRunners as one: ``wait`` waits for each, ``is_running`` while any runs."""

    def __init__(self, *runners) -> None:
        self.runners = runners

    def is_running(self) -> bool:
        return any(r.is_running() for r in self.runners)

    def wait(self, timeout_ms: int = 30000) -> bool:
        return all([r.wait(timeout_ms) for r in self.runners])


class ReviewView(QDialog):
    """The lead's review of disagreements (module docstring)."""

    adjudicated = Signal(object)  # Adjudication

    def __init__(self, parent: QWidget | None, *, workflow: TutorWorkflow, adjudicator: str) -> None:
        """``adjudicator``: the lead's own name (this machine's), never a pack's tutor."""
        super().__init__(parent)
        self.workflow = workflow
        self.setObjectName("ReviewView")
        self.setWindowTitle("Review disagreements and rubrics")
        self.setModal(False)
        self.resize(1380, 820)
        self.item: review.ReviewItem | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 14, 14, 14)
        outer.setSpacing(10)

        top = QHBoxLayout()
        top.addWidget(heading("Review"))
        top.addSpacing(12)
        self.domain_box = QComboBox()
        self.domain_box.setAccessibleName("Domain")
        self.domain_box.currentIndexChanged.connect(lambda _i: None if self._filling else self.refresh())
        top.addWidget(self.domain_box)
        top.addStretch(1)
        self.count_label = QLabel("")
        self.count_label.setObjectName("Muted")
        top.addWidget(self.count_label)
        outer.addLayout(top)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        self.list_model = DisagreementModel(self)
        self.list_view = self._table(self.list_model, "DisagreementTable")
        self.list_view.setAccessibleName("Prompts by disagreement")
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list_view.horizontalHeader().setSectionResizeMode(DisagreementModel.PROMPT, QHeaderView.ResizeMode.Stretch)
        self.list_view.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: None if self.showing_rubrics() else self.show_row(cur.row()))

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(8)
        self.prompt_label = QLabel("Choose a prompt on the left.")
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setTextFormat(Qt.TextFormat.PlainText)
        self.prompt_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.prompt_label.setAccessibleName("Prompt")
        rl.addWidget(self._panel("Prompt", self.prompt_label))
        self.grid_model = SideBySideModel(self)
        self.grid_view = self._table(self.grid_model, "SideBySide")
        self.grid_view.setAccessibleName("Every tutor's ranking side by side")
        self.grid_view.setItemDelegate(RankDelegate(self.grid_view))
        self.grid_view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.grid_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.grid_view.selectionModel().currentChanged.connect(lambda cur, _prev: self.show_candidate(cur.row()))
        self.grid_model.pending_changed.connect(self._pending_changed)
        rl.addWidget(self._panel("Rankings: 1 = best, equal ranks tie (⚑ flags, ✎ corrected)", self.grid_view), 2)
        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.detail.setAccessibleName("Candidate text, corrections and rationales")
        # the candidate's text, and the rubric tab: the prompt's proposals (approve the lab
        # rubric) and the criteria tutors disagree on most (qt/review_rubrics.py)
        self.rubric_review = RubricReview(store=lambda: self.workflow.store, lead=lambda: self.adjudicator_edit.text())
        self.detail_tabs = QTabWidget()
        self.detail_tabs.setDocumentMode(True)
        self.detail_tabs.addTab(self.detail, "Candidate, corrections and rationales")
        self.detail_tabs.addTab(self.rubric_review, "Rubrics")
        self.rubric_review.loaded.connect(self._rubric_tab_title)
        # the left: "Show" disagreements or the rubrics to approve (Alt+D / Alt+A, or the arrows)
        self.queue = self.rubric_review.queue
        self.queue.chosen.connect(self._queue_chosen)
        self.queue.listed.connect(self._queue_listed)
        self.lists = QTabWidget()
        self.lists.setObjectName("ReviewLists")
        self.lists.setAccessibleName("Show")
        self.lists.setDocumentMode(True)
        self.lists.addTab(self._panel("Most disagreement first (mean Kendall τ-b between tutors)", self.list_view),
                          "&Disagreements")
        self.lists.addTab(self._panel("Newest proposal first: select a prompt, approve a version in the Rubrics tab",
                                      self.queue), "Rubrics to &approve")  # fmt: skip
        self.lists.setTabToolTip(1, "Prompts whose newest rubric version is not the lab rubric (or that have none)")
        self.lists.currentChanged.connect(self._list_changed)
        splitter.addWidget(self.lists)
        rl.addWidget(self.detail_tabs, 4)

        form = QFrame()
        form.setObjectName("Panel")
        fl = QVBoxLayout(form)
        fl.setContentsMargins(12, 10, 12, 10)
        row = QHBoxLayout()
        label = QLabel("Adjudication")
        label.setObjectName("PanelTitle")
        row.addWidget(label)
        row.addSpacing(8)
        row.addWidget(QLabel("start from"))
        self.start_box = QComboBox()
        self.start_box.setAccessibleName("Start the adjudicated ranking from")
        self.start_box.activated.connect(lambda _i: self.use_start())
        row.addWidget(self.start_box)
        self.ranking_label = QLabel("")
        self.ranking_label.setObjectName("Muted")
        self.ranking_label.setAccessibleName("Adjudicated ranking")
        row.addWidget(self.ranking_label, 1)
        fl.addLayout(row)
        self.rationale_edit = QPlainTextEdit()
        self.rationale_edit.setPlaceholderText("Rationale: why this ranking (required)")
        self.rationale_edit.setAccessibleName("Rationale")
        self.rationale_edit.setMaximumHeight(70)
        fl.addWidget(self.rationale_edit)
        row = QHBoxLayout()
        row.addWidget(QLabel("Adjudicator"))
        self.adjudicator_edit = QLineEdit(adjudicator)
        self.adjudicator_edit.setAccessibleName("Adjudicator")
        self.adjudicator_edit.setMaximumWidth(220)
        row.addWidget(self.adjudicator_edit)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Adjudication status")
        row.addWidget(self.status, 1)
        self.record_button = QPushButton("Record adjudication")
        self.record_button.setObjectName("Primary")
        self.record_button.clicked.connect(self.record)
        row.addWidget(self.record_button)
        fl.addLayout(row)
        rl.addWidget(form)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([520, 840])
        outer.addWidget(splitter, 1)
        self._filling = False

    def _table(self, model: QAbstractTableModel, name: str) -> QTableView:
        view = QTableView()
        view.setObjectName(name)
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.setWordWrap(False)
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 12)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setHighlightSections(False)
        view.setFrameShape(QFrame.Shape.NoFrame)
        return view

    def _panel(self, title: str, body: QWidget) -> QFrame:
        return panel(title, body, caption="Muted")

    # -- the list ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the list (keeping the prompt on show selected)."""
        store = self.workflow.store
        self._filling = True
        try:
            wanted = self.domain_box.currentData()
            self.domain_box.clear()
            self.domain_box.addItem("All domains", None)
            for d in store.domains():
                self.domain_box.addItem(d, d)
            self.domain_box.setCurrentIndex(max(0, self.domain_box.findData(wanted)) if wanted else 0)
        finally:
            self._filling = False
        self.queue.refresh(self.domain_box.currentData())
        current = self.item.prompt.id if self.item else None
        rows = review.disagreements(store, domain=self.domain_box.currentData())
        self.list_model.set_rows(rows)
        done = sum(d.adjudicated for d in rows)
        self.count_label.setText(f"{count(len(rows), 'prompt')} judged by several tutors · {done} adjudicated")
        row = self.list_model.row_of(current) if current else -1
        if row < 0 and rows:
            row = 0
        if not self.showing_rubrics():
            if row >= 0:
                self.list_view.selectRow(row)
                self.show_row(row)
            else:
                self.show_row(-1)
        elif row >= 0:
            self.list_view.selectRow(row)

    # -- the rubrics to approve --------------------------------------------------------------

    def showing_rubrics(self) -> bool:
        return self.lists.currentIndex() == 1

    def show_rubrics_to_approve(self) -> None:
        self.lists.setCurrentIndex(1)

    def _list_changed(self, index: int) -> None:
        self.rubric_review.prefer_newest = index == 1
        if index == 1:
            if not self.queue.rows.rows:
                self._show_nothing("No rubric waits for approval.")
            elif self.queue.current_id() is None:
                self.queue.view.selectRow(0)  # shows it (chosen)
            else:
                self._queue_chosen(self.queue.current_id())
            self.queue.view.setFocus()
        else:
            self.show_row(self.list_view.currentIndex().row())
            self.list_view.setFocus()

    def _queue_chosen(self, prompt_id: str | None) -> None:
        if not self.showing_rubrics():
            return
        if prompt_id is None:  # keep the prompt on show (one just approved leaves the list)
            return
        self._show_prompt(prompt_id)
        if self.rubric_review.prompt_id == prompt_id:
            self.rubric_review.select_newest()  # when already read; else on reading (prefer_newest)
        self.detail_tabs.setCurrentWidget(self.rubric_review)

    def _queue_listed(self) -> None:
        n = self.queue.rows.rowCount()
        self.lists.setTabText(1, f"Rubrics to &approve ({n})" if n else "Rubrics to &approve")
        if self.showing_rubrics() and self.queue.current_id() is None and self.item is None and n:
            self.queue.view.selectRow(0)

    def select_prompt(self, prompt_id: str) -> None:
        if self.showing_rubrics():
            row = self.queue.row_of(prompt_id)
            if row >= 0:
                self.queue.view.selectRow(row)
            self._show_prompt(prompt_id)
            return
        row = self.list_model.row_of(prompt_id)
        if row >= 0:
            self.list_view.selectRow(row)
            self.show_row(row)

    # -- one prompt ------------------------------------------------------------------------------

    def show_row(self, row: int) -> None:
        if row < 0 or row >= self.list_model.rowCount():
            self._show_nothing("Nothing to review: no prompt was ranked by two or more tutors.")
            return
        self._show_prompt(self.list_model.row(row).prompt.id)

    def _show_nothing(self, text: str) -> None:
        self.item = None
        self.grid_model.set_item(None, {})
        self.prompt_label.setText(text)
        self.detail.clear()
        self.rubric_review.show_prompt(None)

    def _show_prompt(self, pid: str) -> None:
        if self.item is not None and self.item.prompt.id == pid and self.grid_model.item is not None:
            return
        self.item = review.review_item(self.workflow.store, pid)
        self.rubric_review.show_prompt(pid)
        p = self.item.prompt
        head = f"[{p.external_id}] " if p.external_id else ""
        self.prompt_label.setText(head + p.text)
        self._fill_start_box()
        self.use_start()
        a = self.item.adjudication
        self.rationale_edit.setPlainText(a.rationale if a else "")
        self._show_status()
        self.grid_view.resizeColumnsToContents()
        self.grid_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.show_candidate(0)

    @property
    def runner(self) -> _Runners:
        """The rubric tab's and the rubrics-to-approve list's operations (the window waits for them on close)."""
        return _Runners(self.rubric_review.runner, self.queue.runner)

    def _rubric_tab_title(self) -> None:
        n = self.rubric_review.proposals.rowCount()
        self.detail_tabs.setTabText(1, f"Rubrics ({n} version{'s' if n != 1 else ''})" if n else "Rubrics")

    def done(self, result: int) -> None:  # noqa: D102 - closing waits for a rubric read under way
        self.rubric_review.close_runner()
        super().done(result)

    def _consensus(self) -> dict[str, int]:
        assert self.item is not None
        return review.consensus_ranks(self.item)

    def _fill_start_box(self) -> None:
        assert self.item is not None
        self.start_box.clear()
        if self.item.adjudication is not None:
            self.start_box.addItem("the current adjudication", ("adjudication", None))
        self.start_box.addItem("the tutors' consensus (ranked pairs)", ("consensus", None))
        for j in self.item.judged:
            self.start_box.addItem(f"{j.tutor_name}'s ranking", ("tutor", j.judgment.id))
        self.start_box.setCurrentIndex(0)

    def use_start(self) -> None:
        """Fill the adjudicated column from the choice in "start from"."""
        if self.item is None:
            return
        kind, jid = self.start_box.currentData() or ("consensus", None)
        if kind == "adjudication" and self.item.adjudication is not None:
            ranks = self.item.adjudication.ranks
        elif kind == "tutor":
            ranks = next(j.judgment.ranks for j in self.item.judged if j.judgment.id == jid)
        else:
            ranks = self._consensus()
        pending = {c.id: ranks.get(c.id, 0) for c in self.item.candidates}
        if self.grid_model.item is self.item:
            self.grid_model.set_pending(pending)
        else:
            self.grid_model.set_item(self.item, pending)

    def _pending_changed(self) -> None:
        if self.item is None:
            self.ranking_label.setText("")
            return
        ranks = {c: r for c, r in self.grid_model.pending.items() if r > 0}
        self.ranking_label.setText(review.describe_ranks(ranks, self.item.candidates) or "nothing ranked")

    def show_candidate(self, row: int) -> None:
        if self.item is None or not 0 <= row < len(self.item.candidates):
            self.detail.clear()
            return
        cand = self.item.candidates[row]
        parts = [f"<p><b>Candidate {_letter(row)}</b> <span style='color:gray'>{html.escape(cand.model)}</span></p>",
                 f"<div style='white-space:pre-wrap'>{html.escape(cand.text)}</div>"]  # fmt: skip
        for judged in self.item.judged:
            j = judged.judgment
            name = html.escape(judged.tutor_name)
            if j.correction is not None:
                of = next((_letter(i) for i, c in enumerate(self.item.candidates) if c.id == j.correction.candidate_id), "–")
                parts.append(f"<p><b>{CORRECTED_MARK} {name}'s correction of {of}</b></p>"
                             f"<div style='white-space:pre-wrap'>{html.escape(j.correction.text)}</div>")  # fmt: skip
            if j.rationale:
                parts.append(f"<p><b>{name}:</b> {html.escape(j.rationale)}</p>")
        self.detail.setHtml("".join(parts))

    def _show_status(self, error: str = "") -> None:
        if error:
            self.status.setStyleSheet(f"color: {theme.current()['danger']}")
            self.status.setText(error)
            return
        self.status.setStyleSheet("")
        a = self.item.adjudication if self.item else None
        if a is None:
            self.status.setText("Not adjudicated yet.")
            return
        earlier = len(self.item.history) - 1 if self.item else 0
        more = f" (supersedes {earlier} earlier)" if earlier else ""
        self.status.setText(f"Adjudicated by {a.adjudicator}, {a.created_at[:16].replace('T', ' ')} UTC{more}.")

    def record(self) -> review.Adjudication | None:
        """Record the adjudicated column as this prompt's adjudication."""
        if self.item is None:
            return None
        ranks = {c: r for c, r in self.grid_model.pending.items() if r > 0}
        try:
            a = review.adjudicate(
                self.workflow.store,
                prompt_id=self.item.prompt.id,
                ranks=ranks,
                rationale=self.rationale_edit.toPlainText(),
                adjudicator=self.adjudicator_edit.text(),
            )
        except (review.ReviewError, StoreError) as e:
            self._show_status(f"Not recorded: {e}")
            return None
        pid = self.item.prompt.id
        self.item = None
        self.refresh()
        self.select_prompt(pid)
        self.adjudicated.emit(a)
        return a
