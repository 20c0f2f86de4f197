"""The lead's rubric review (a tab of the review view): the selected prompt's rubric proposals,
one of which the lead approves as the lab rubric, and the criteria tutors disagree on most; and
:class:`RubricQueue`, the review view's second list: the prompts whose rubric waits for the
lead ("rubrics to approve", ``core.operations.rubrics_to_approve``), newest version first.

Both are read by ``core.operations.rubric_review`` and the approval is
``core.operations.approve_rubric`` (the lead's own name), run off the GUI thread by an
:class:`~hitl_desktop.qt.ops.OperationRunner` on the database file (an in-memory database,
which has no file to reopen, is read and written on its own store). Nothing here holds a rule.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import operations
from hitl_desktop.core.rubrics import Rubric, positive_points
from hitl_desktop.qt import theme
from hitl_desktop.qt.ops import OperationRunner
from hitl_desktop.qt.rubric_common import axis_label, points_text

_Index = QModelIndex | QPersistentModelIndex
LAB_MARK = "✓ lab rubric"


class _Rows(QAbstractTableModel):
    """A read-only table over a list of rows; ``cells(row) -> tuple`` gives the texts."""

    def __init__(self, headers: Sequence[str], cells: Callable[[Any], tuple], parent=None) -> None:
        super().__init__(parent)
        self.headers, self.cells, self.rows = tuple(headers), cells, []
        self.colour: Callable[[Any, int], str | None] = lambda _row, _col: None

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.headers)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return str(self.cells(row)[index.column()])
        if role == Qt.ItemDataRole.ForegroundRole:
            key = self.colour(row, index.column())
            return QColor(theme.current()[key]) if key else None
        return None

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None


def _table(model: QAbstractTableModel, name: str, stretch: int) -> QTableView:
    view = QTableView()
    view.setObjectName(name)
    view.setAccessibleName(name)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    view.setFrameShape(QFrame.Shape.NoFrame)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    header.setHighlightSections(False)
    return view


def _short(text: str, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


class RubricQueue(QWidget):
    """The prompts whose rubric has versions newer than its lab rubric, or proposals and no lab
    rubric (read off the GUI thread, at most ``LIMIT``); ``chosen(prompt_id)`` when the lead
    selects one (None: none selected), ``listed`` once the rows are on show."""

    LIMIT = 500
    chosen = Signal(object)
    listed = Signal()

    def __init__(self, *, store: Callable[[], Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.domain: str | None = None
        self.runner = OperationRunner(self, name="rubric-queue")
        self._again, self._quiet = False, False
        self.rows = _Rows(("Prompt", "Newest", "Versions", "Authors", "Domain"), self._cells, self)
        self.rows.colour = lambda r, col: "warning" if col == 2 and r["lab_version"] is None else None
        self.view = _table(self.rows, "Rubrics to approve", 0)
        self.view.setToolTip("Prompts whose newest rubric version is not the lab rubric, newest first "
                             "(Versions: the newest and the lab rubric's); approve one in the Rubrics tab")  # fmt: skip
        self.view.selectionModel().currentRowChanged.connect(lambda cur, _p: self._chosen(cur.row()))
        self.view.horizontalHeader().setMinimumSectionSize(40)
        self.empty = QLabel("")
        self.empty.setObjectName("Muted")
        self.empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.empty)

    @staticmethod
    def _cells(r: dict) -> tuple:
        """The prompt first (it stretches); the authors as the first and how many more."""
        head = f"[{r['external_id']}] " if r["external_id"] else ""
        who = r["authors"]
        authors = (who[0] + (f" +{len(who) - 1}" if len(who) > 1 else "")) if who else "–"
        lab = f"lab v{r['lab_version']}" if r["lab_version"] else "no lab"
        return (head + _short(r["text"]), (r["newest_at"] or "")[:10], f"v{r['newest']} · {lab}",
                authors, r["domain"])  # fmt: skip

    def current_id(self) -> str | None:
        row = self.view.currentIndex().row()
        return self.rows.rows[row]["prompt_id"] if 0 <= row < len(self.rows.rows) else None

    def row_of(self, prompt_id: str | None) -> int:
        return next((i for i, r in enumerate(self.rows.rows) if r["prompt_id"] == prompt_id), -1)

    def _chosen(self, row: int) -> None:
        if not self._quiet:
            self.chosen.emit(self.rows.rows[row]["prompt_id"] if 0 <= row < len(self.rows.rows) else None)

    def refresh(self, domain: str | None = None) -> None:
        """Read the list again (for ``domain``, None: all), keeping the selected prompt selected."""
        self.domain = domain
        if self.runner.is_running():
            self._again = True
            return
        store = self.store()
        if store.path is None:
            self._listed(operations.rubrics_to_approve_in(store, domain=domain, limit=self.LIMIT))
            return
        path, limit = store.path, self.LIMIT
        self.runner.run(lambda _p, _c: operations.rubrics_to_approve(path, domain=domain, limit=limit),
                        on_success=self._listed, on_failure=self._failed)

    def _listed(self, rows: list[dict]) -> None:
        if self._again:
            self._again = False
            self.refresh(self.domain)
            return
        current = self.current_id()
        self._quiet = True
        try:
            self.rows.set_rows(rows)
            row = self.row_of(current)
            if row >= 0:
                self.view.selectRow(row)
        finally:
            self._quiet = False
        more = f" (the newest {self.LIMIT})" if len(rows) >= self.LIMIT else ""
        self.empty.setText("No rubric waits for approval: every prompt's newest version is its lab rubric."
                           if not rows else f"{len(rows)} prompt{'s' if len(rows) != 1 else ''}{more}")  # fmt: skip
        self.listed.emit()

    def _failed(self, message: str) -> None:
        self.empty.setText(f"The rubrics to approve could not be read: {message}")
        self.listed.emit()

    def close_runner(self) -> None:
        self.runner.wait(30000)


class RubricReview(QWidget):
    """See the module docstring. ``store()``: the review's store (its path is the file the
    operations open); ``lead()``: the lead's own name."""

    approved = Signal(object)  # the Rubric approved
    loaded = Signal()  # the proposals and the disagreed criteria are on show

    def __init__(self, *, store: Callable[[], Any], lead: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.lead = store, lead
        self.prompt_id: str | None = None
        self.lab_id: str | None = None
        self.runner = OperationRunner(self, name="rubric-review")
        self._wanted: str | None | bool = False  # a prompt to read once the runner is free (False: none)
        self.queue = RubricQueue(store=store)  # the review view shows it as its second list
        self.prefer_newest = False  # select the newest version on reading (the rubrics to approve)

        self.proposals = _Rows(("Version", "Author", "Criteria", "Points", "Status", "Written"),
                               self._proposal_cells, self)  # fmt: skip
        self.proposals.colour = lambda r, col: "success" if col == 4 and r.id == self.lab_id else None
        self.proposal_view = _table(self.proposals, "Rubric proposals", 1)
        self.proposal_view.setToolTip("Points: the sum of the positive points (a candidate meeting every "
                                      "positive criterion and no negative one scores 100 %)")
        self.proposal_view.selectionModel().currentRowChanged.connect(lambda cur, _p: self._show_version(cur.row()))
        self.criteria_view = QTextBrowser()
        self.criteria_view.setAccessibleName("Criteria of the selected version")
        self.approve_button = QPushButton("Approve as the lab rubric")
        self.approve_button.setObjectName("Primary")
        self.approve_button.setToolTip("Packs carry the lab rubric and exports use it (the latest approval wins)")
        self.approve_button.clicked.connect(self.approve_selected)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Rubric status")
        self.disagreed = _Rows(("Agreement", "Units", "Points", "Axis", "Criterion", "Prompt"), self._disagreed_cells, self)
        self.disagreed.colour = lambda r, col: "danger" if col == 0 and r["pairwise_raw"] < 0.5 else None
        self.disagreed_view = _table(self.disagreed, "Criteria tutors disagree on most", 4)

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel("<b>Rubric proposals for this prompt</b> (each tutor's versions)"))
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.proposal_view)
        split.addWidget(self.criteria_view)
        split.setSizes([480, 360])
        tl.addWidget(split, 1)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.approve_button)
        tl.addLayout(row)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(QLabel("<b>Criteria tutors disagree on most</b> (pairwise agreement on the same "
                            "candidates, all prompts; lowest first)"))
        bl.addWidget(self.disagreed_view, 1)
        outer = QSplitter(Qt.Orientation.Vertical)
        outer.addWidget(top)
        outer.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(outer)
        self._show_version(-1)

    # -- the rows ------------------------------------------------------------------------------

    def _proposal_cells(self, r: Rubric) -> tuple:
        status = LAB_MARK if r.id == self.lab_id else ("approved earlier" if r.approved_by else "proposed")
        if r.id == self.lab_id and r.approved_by:
            status += f" ({r.approved_by})"
        return (f"v{r.version}", r.author or "–", len(r.criteria), points_text(positive_points(r.criteria)),
                status, (r.created_at or "")[:10])

    @staticmethod
    def _disagreed_cells(d: dict) -> tuple:
        prompt = d.get("external_id") or d["prompt_id"][:8]
        return (f"{d['pairwise_raw']:.0%}", d["units"], points_text(d["points"]), axis_label(d["axis"]) if d["axis"] else "–",
                d["criterion"], prompt)  # fmt: skip

    # -- reading -------------------------------------------------------------------------------

    def show_prompt(self, prompt_id: str | None) -> None:
        """Read the prompt's proposals and the disagreed criteria (off the GUI thread)."""
        self.prompt_id = prompt_id
        if self.runner.is_running():
            self._wanted = prompt_id
            return
        store = self.store()
        if store.path is None:
            self._loaded(operations.rubric_review_of(store, prompt_id=prompt_id))
            return
        path = store.path
        self.runner.run(lambda _p, _c: operations.rubric_review(path, prompt_id=prompt_id),
                        on_success=self._loaded, on_failure=self._failed)

    def _next(self) -> bool:
        if self._wanted is False:
            return False
        wanted, self._wanted = self._wanted, False
        self.show_prompt(wanted)  # type: ignore[arg-type]
        return True

    def _loaded(self, result: dict) -> None:
        if self._next() or result["prompt_id"] != self.prompt_id:
            return
        self.lab_id = result["lab"]
        self.proposals.set_rows(result["versions"])
        self.disagreed.set_rows(result["disagreed"])
        n = len(result["versions"])
        if n:
            lab_row = next((i for i, r in enumerate(result["versions"]) if r.id == self.lab_id), n - 1)
            self.proposal_view.selectRow(n - 1 if self.prefer_newest else lab_row)
        self._show_version(self.proposal_view.currentIndex().row() if n else -1)
        self.loaded.emit()

    def _failed(self, message: str) -> None:
        if not self._next():
            self._say(f"The rubrics could not be read: {message}", "danger")

    def _say(self, text: str, colour: str = "") -> None:
        self.status.setStyleSheet(f"color: {theme.current()[colour]}" if colour else "")
        self.status.setText(text)

    def selected(self) -> Rubric | None:
        row = self.proposal_view.currentIndex().row()
        return self.proposals.rows[row] if 0 <= row < len(self.proposals.rows) else None

    def select_newest(self) -> None:
        """Select the newest version (the one a lead working through the rubrics to approve wants)."""
        if self.proposals.rows and not self.runner.is_running():
            self.proposal_view.selectRow(len(self.proposals.rows) - 1)

    def _show_version(self, row: int) -> None:
        r = self.proposals.rows[row] if 0 <= row < len(self.proposals.rows) else None
        self.approve_button.setEnabled(r is not None and r.id != self.lab_id and not self.runner.is_running())
        if r is None:
            self.criteria_view.setHtml("<p style='color:gray'>No tutor has written a rubric for this prompt.</p>"
                                       if self.prompt_id else "")  # fmt: skip
            self._say("" if self.proposals.rows else "No rubric proposals for this prompt.")
            return
        items = "".join(
            f"<li><b>{html.escape(points_text(c.points))}</b> {html.escape(c.text)}"
            + (f" <span style='color:gray'>· {html.escape(axis_label(c.axis))}</span>" if c.axis else "") + "</li>"
            for c in r.criteria)
        self.criteria_view.setHtml(f"<p><b>v{r.version}</b> by {html.escape(r.author or '–')}</p><ol>{items}</ol>")
        lab = next((x for x in self.proposals.rows if x.id == self.lab_id), None)
        self._say(f"Lab rubric: v{lab.version} by {lab.author}, approved by {lab.approved_by}." if lab
                  else "No lab rubric yet: approve one of the proposals.")  # fmt: skip

    # -- approving -----------------------------------------------------------------------------

    def approve_selected(self) -> bool:
        """Approve the selected version as the lab rubric (off the GUI thread); False when not started."""
        r = self.selected()
        if r is None or self.runner.is_running():
            return False
        lead, store = self.lead(), self.store()
        self.approve_button.setEnabled(False)
        self._say(f"Approving v{r.version}…")
        if store.path is None:
            try:
                self._approved(operations.approve_rubric_in(store, rubric_id=r.id, lead=lead))
            except ValueError as e:
                self._approve_failed(str(e))
            return True
        path = store.path
        self.runner.run(lambda _p, _c: operations.approve_rubric(path, rubric_id=r.id, lead=lead),
                        on_success=self._approved, on_failure=self._approve_failed)
        return True

    def _approved(self, rubric: Rubric) -> None:
        self.approved.emit(rubric)
        self.queue.refresh(self.queue.domain)  # a prompt whose newest version is now approved leaves it
        if not self._next():
            self.show_prompt(self.prompt_id)

    def _approve_failed(self, message: str) -> None:
        self._next()
        self._say(f"Not approved: {message}", "danger")
        self.approve_button.setEnabled(self.selected() is not None)

    def close_runner(self) -> None:
        self.runner.wait(30000)
        self.queue.close_runner()
