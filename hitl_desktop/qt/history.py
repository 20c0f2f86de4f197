"""The judgment history: this session's judgments (a lead: everyone's), searchable by prompt
text, tutor, domain and flag; "Re-judge" puts one of one's own back on the bench (the
``on_rejudge`` callback; the rule is the workflow's ``can_rejudge`` / ``reopen``). The rows come
from ``core.review.history``; the table model only adapts them and never writes anything. The
view takes the workflow and a callback, never the window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import review
from hitl_desktop.core.types import FLAGS
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.wording import count

EntryRole = Qt.ItemDataRole.UserRole + 1
SEARCH_DELAY_MS = 200


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ")


def _marks(e: review.HistoryEntry) -> str:
    bits = []
    if e.all_bad:
        bits.append("all bad")
    if e.corrected:
        bits.append("corrected")
    return ", ".join(bits)


COLUMNS: tuple[tuple[str, Any], ...] = (
    ("When (UTC)", lambda e: _when(e.created_at)),
    ("Tutor", lambda e: e.tutor),
    ("Domain", lambda e: e.domain),
    ("Prompt", lambda e: " ".join(e.prompt.split())),
    ("Flags", lambda e: ", ".join(e.flags)),
    ("", _marks),
)


class HistoryModel(QAbstractTableModel):
    """A read-only table over ``HistoryEntry`` rows."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[review.HistoryEntry] = []

    def set_entries(self, entries: Sequence[review.HistoryEntry]) -> None:
        self.beginResetModel()
        self._rows = list(entries)
        self.endResetModel()

    def entries(self) -> list[review.HistoryEntry]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or not 0 <= index.column() < len(COLUMNS):
            return None
        entry = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[index.column()][1](entry)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 3:
            return entry.prompt[:2000] + (f"\n\nRationale: {entry.rationale}" if entry.rationale else "")
        if role == EntryRole:
            return entry
        return None

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(COLUMNS):
            return COLUMNS[section][0]
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class HistoryView(QDialog):
    """Past judgments, searchable; Re-judge reopens the selected one on the bench."""

    rejudge_requested = Signal(str)  # judgment id

    def __init__(self, parent: QWidget | None, *, workflow: TutorWorkflow, on_rejudge: Callable[[str], Any],
                 lead: bool = False) -> None:  # fmt: skip
        super().__init__(parent)
        self.workflow = workflow
        self.rejudge_requested.connect(on_rejudge)
        self.setObjectName("HistoryView")
        self.setWindowTitle("Judgment history")
        self.setModal(False)
        self.resize(1040, 600)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 14, 14, 14)
        layout.setSpacing(8)

        search = QHBoxLayout()
        self.scope_box = QComboBox()
        self.scope_box.setAccessibleName("Whose judgments")
        self.scope_box.addItem("This session", "session")
        self.scope_box.addItem("All mine", "mine")
        self.scope_box.addItem("All tutors (lead)", "all")
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("Search the prompts…")
        self.text_edit.setAccessibleName("Search prompt text")
        self.text_edit.setClearButtonEnabled(True)
        self.tutor_box = QComboBox()
        self.tutor_box.setAccessibleName("Tutor")
        self.domain_box = QComboBox()
        self.domain_box.setAccessibleName("Domain")
        self.flag_box = QComboBox()
        self.flag_box.setAccessibleName("Flag")
        self.flag_box.addItem("Any flag", None)
        for f in FLAGS:
            self.flag_box.addItem(f, f)
        search.addWidget(self.scope_box)
        search.addWidget(self.text_edit, 1)
        search.addWidget(self.tutor_box)
        search.addWidget(self.domain_box)
        search.addWidget(self.flag_box)
        layout.addLayout(search)

        self.model = HistoryModel(self)
        self.table = QTableView()
        self.table.setObjectName("HistoryTable")
        self.table.setAccessibleName("Past judgments")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.rejudge())
        layout.addWidget(self.table, 1)

        bottom = QHBoxLayout()
        self.count_label = QLabel("")
        self.count_label.setObjectName("Muted")
        bottom.addWidget(self.count_label, 1)
        self.rejudge_button = QPushButton("Re-judge")
        self.rejudge_button.setObjectName("Primary")
        self.rejudge_button.clicked.connect(self.rejudge)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom.addWidget(self.rejudge_button)
        bottom.addWidget(close)
        layout.addLayout(bottom)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.text_edit.textChanged.connect(lambda _t: self._timer.start())
        for box in (self.scope_box, self.tutor_box, self.domain_box, self.flag_box):
            box.currentIndexChanged.connect(self._filters_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self._filling = False
        self.set_lead(lead)

    def set_lead(self, lead: bool) -> None:
        """A lead may list every tutor's judgments, and starts there; a tutor sees this
        session's (or all their own)."""
        self.lead = lead
        self._filling = True
        self.scope_box.model().item(2).setEnabled(lead)
        self.scope_box.setCurrentIndex(self.scope_box.findData("all") if lead else 0)
        self.tutor_box.setVisible(lead and self.scope_box.currentData() == "all")
        self._filling = False
        self.refresh()

    def _filters_changed(self, _index: int) -> None:
        if not self._filling:
            self.tutor_box.setVisible(self.lead and self.scope_box.currentData() == "all")
            self.refresh()

    def _fill_box(self, box: QComboBox, label: str, values: Sequence[str]) -> None:
        wanted = box.currentData()
        box.clear()
        box.addItem(label, None)
        for v in values:
            box.addItem(v, v)
        box.setCurrentIndex(max(0, box.findData(wanted)) if wanted is not None else 0)

    def refresh(self) -> None:
        """Run the search with the current filters."""
        store = self.workflow.store
        self._filling = True
        try:
            self._fill_box(self.tutor_box, "All tutors", [t.name for t in store.tutors()])
            self._fill_box(self.domain_box, "All domains", store.domains())
        finally:
            self._filling = False
        scope = self.scope_box.currentData()
        session, tutor = self.workflow.session, self.workflow.tutor
        if scope == "all" and self.lead:
            tutor_name = self.tutor_box.currentData()
        else:
            tutor_name = tutor.name if tutor else None
        if scope != "all" and (session is None or tutor is None):
            entries: list[review.HistoryEntry] = []
            self.count_label.setText("Start a session to see your judgments.")
        else:
            entries = review.history(
                store,
                session_id=session.id if scope == "session" and session else None,
                text=self.text_edit.text(),
                tutor=tutor_name,
                domain=self.domain_box.currentData(),
                flag=self.flag_box.currentData(),
            )
            where = {"session": "this session", "mine": "yours", "all": "all tutors"}[scope]
            self.count_label.setText(f"{count(len(entries), 'judgment')}: {where}")
        self.model.set_entries(entries)
        if entries:
            self.table.selectRow(0)
        self._update_buttons()

    def selected(self) -> review.HistoryEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(EntryRole) if rows else None

    def _update_buttons(self) -> None:
        entry = self.selected()
        own = entry is not None and self.workflow.can_rejudge(entry.tutor)
        self.rejudge_button.setEnabled(own)
        self.rejudge_button.setToolTip(
            "Put this judgment back on the bench; the new one replaces it in exports"
            if own or entry is None
            else "Only your own judgments can be re-judged; a lead rules on others' in Review disagreements"
        )

    def rejudge(self) -> None:
        entry = self.selected()
        if entry is None or not self.rejudge_button.isEnabled():
            return
        self.rejudge_requested.emit(entry.id)  # the window's callback puts it on the bench
        self.hide()
