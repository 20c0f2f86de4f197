"""The rubric in the tutor's window: the panel in a tab beside the guidelines, the grading grid
under the cards, and when the grid shows.

:class:`RubricArea` builds the :class:`~hitl_desktop.qt.rubric_views.RubricViews` over the
window's ``RubricBench`` and gives the window two widgets to place: ``side`` (a tab widget:
the guidelines frame it is given, and the rubric panel) and ``grid`` (the grading grid). It
takes the workflow, the rubric bench and callbacks, never the window:

- ``on_ranking(ranks)``: "Use this ranking" (the bench view's public ``set_ranking``);
- ``focus_cards()``: where focus goes back from the grid (Ctrl+Shift+G again);
- ``show_card(position)``: the grid's cursor moved to another candidate: select (and scroll to)
  its card, so the answer being graded is the one in view.

The grid is shown when the prompt on the bench has a rubric (the tutor's own version or the
lab's), not for a template nobody has saved, so a tutor who only ranks is not crowded; the
View menu's "Grading grid" (``show_action``) turns it off altogether, and Ctrl+Shift+G shows
it for the item on the bench and moves the focus into it (again: back to the cards).
Ctrl+Shift+U opens the rubric tab with the focus in the criteria.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QSplitter, QTabWidget, QVBoxLayout, QWidget

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.rubric_bench import LAB, OWN
from hitl_desktop.qt.rubric_views import RubricViews

RUBRIC_WIDTH = 430  # the side pane's least width while the rubric tab is open
GRID_KEY = "Ctrl+Shift+G"
PANEL_KEY = "Ctrl+Shift+U"


class RubricArea(QObject):
    """See the module docstring. ``show_grid``: the View menu's setting (default on);
    ``remember_grid(on)``: called when the tutor changes it."""

    def __init__(self, workflow: Any, rubric_bench: Any, *, guidelines: QWidget, on_ranking: Callable[[dict], None],
                 focus_cards: Callable[[], None], show_card: Callable[[int], None] | None = None,
                 show_grid: bool = True, remember_grid: Callable[[bool], None] | None = None,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.workflow, self.rubric_bench = workflow, rubric_bench
        self.views = RubricViews(rubric_bench, workflow, parent=self)
        self.panel, self.grid = self.views.panel, self.views.grid
        self.focus_cards = focus_cards
        self.side = QTabWidget()
        self.side.setObjectName("SideTabs")
        self.side.setDocumentMode(True)
        self.side.addTab(guidelines, "Guidelines")
        self.panel_frame = QFrame()  # framed like the guidelines panel beside it
        self.panel_frame.setObjectName("Panel")
        framed = QVBoxLayout(self.panel_frame)
        framed.setContentsMargins(12, 10, 12, 10)
        framed.addWidget(self.panel)
        self.side.addTab(self.panel_frame, "Rubric")
        self.side.setTabToolTip(1, f"The prompt's criteria: write, reorder, save a version ({PANEL_KEY})")
        self.side.setMinimumWidth(260)
        # the rubric's table needs more room than the guidelines' text: its tab widens the pane
        self.side.currentChanged.connect(lambda i: self.side.setMinimumWidth(RUBRIC_WIDTH if i == 1 else 260))
        self._splitter: QSplitter | None = None
        self.grid.setMinimumHeight(160)
        self.grid.ranking_accepted.connect(on_ranking)
        self.show_card = show_card
        self.grid.view.selectionModel().currentChanged.connect(lambda cur, prev: self._cursor_moved(cur, prev))
        self.show_action = QAction("&Grading grid", self)
        self.show_action.setCheckable(True)
        self.show_action.setChecked(show_grid)
        self.show_action.setToolTip("Show the grading grid under the cards when the prompt has a rubric")
        self.show_action.toggled.connect(lambda _on: self.update_visibility())
        if remember_grid is not None:  # the tutor's choice, for the next launch too
            self.show_action.toggled.connect(remember_grid)
        self._forced_for: str | None = None  # the prompt Ctrl+Shift+G showed the grid for
        self._unsubscribe = [rubric_bench.subscribe(self._changed)]
        self.update_visibility()

    # -- the window's calls ------------------------------------------------------------------

    def install_shortcuts(self, host: QWidget) -> None:
        for keys, slot in ((GRID_KEY, self.toggle_grid_focus), (PANEL_KEY, self.focus_panel)):
            sc = QShortcut(QKeySequence(keys), host)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)

    def under(self, cards: QWidget) -> QSplitter:
        """A vertical splitter: ``cards`` (the bench) over the grid; the window places it."""
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("BenchSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(cards)
        splitter.addWidget(self.grid)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self._splitter = splitter
        return splitter

    def fit_grid(self) -> None:
        """Give the grid the height of its rows (at most half the bench's), the cards the rest."""
        s = self._splitter
        if s is None or not self.grid.isVisible():
            return
        total = sum(s.sizes())
        rows = self.grid.model.rowCount()
        line = self.grid.view.fontMetrics().height()
        want = self.grid.view.horizontalHeader().sizeHint().height() + rows * max(34, line + 14) + 4 * line + 40
        grid = max(self.grid.minimumHeight(), min(want, total // 2))
        if total > grid:
            s.setSizes([total - grid, grid])

    def set_order(self, candidate_ids: Sequence[str]) -> None:
        """The cards were shown or reshuffled: the grid's columns in the cards' order."""
        self.views.set_order(candidate_ids)

    def apply_theme(self) -> None:
        self.views.apply_theme()

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self.views.close()

    # -- showing -------------------------------------------------------------------------------

    def _prompt_id(self) -> str | None:
        item = getattr(self.workflow, "item", None)
        return None if item is None else item.prompt.id

    def has_rubric(self) -> bool:
        """The prompt on the bench has a rubric (the tutor's own or the lab's, not a template)."""
        return self.rubric_bench.rubric is not None and self.rubric_bench.source in (OWN, LAB)

    def grid_wanted(self) -> bool:
        pid = self._prompt_id()
        if pid is None or not self.show_action.isChecked() and self._forced_for != pid:
            return False
        return self.has_rubric() or self._forced_for == pid

    def update_visibility(self) -> None:
        shown = self.grid.isVisible()
        self.grid.setVisible(self.grid_wanted())
        if self.grid.isVisible() and not shown:
            self.fit_grid()

    def _changed(self, changes: Changes) -> None:
        if Change.RUBRIC in changes:
            if self._forced_for is not None and self._forced_for != self._prompt_id():
                self._forced_for = None
            self.update_visibility()
            self.fit_grid()

    def toggle_grid_focus(self) -> None:
        """Ctrl+Shift+G: into the grid (shown for this prompt if it was not); again: the cards."""
        if self.grid.isVisible() and self.grid.view.hasFocus():
            self.focus_cards()
            return
        if self._prompt_id() is None:
            return
        if not self.grid.isVisible():
            self._forced_for = self._prompt_id()
            self.grid.setVisible(True)
            self.fit_grid()
        self.grid.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
        cid = self.grid.model.candidate_at(self.grid.view.currentIndex().column())
        if cid is not None and self.show_card is not None:
            self.show_card(self.grid.model.order.index(cid))

    def _cursor_moved(self, current, previous) -> None:
        if self.show_card is None or not current.isValid() or not self.grid.view.hasFocus():
            return
        if previous.isValid() and previous.column() == current.column():
            return
        cid = self.grid.model.candidate_at(current.column())
        if cid is not None:
            self.show_card(self.grid.model.order.index(cid))

    def focus_panel(self) -> None:
        """Ctrl+Shift+U: the rubric tab, the focus in its criteria."""
        self.side.setCurrentWidget(self.panel_frame)
        self.side.show()
        self.panel.view.setFocus(Qt.FocusReason.ShortcutFocusReason)
