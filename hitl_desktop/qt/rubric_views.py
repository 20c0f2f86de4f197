"""The rubric panel and the grading grid, following one ``core.rubric_bench.RubricBench``.

The window builds one :class:`RubricViews` and places its two widgets (the panel beside the
guidelines, the grid under or beside the cards)::

    self.rubric_bench = RubricBench(workflow)            # core: follows workflow.item itself
    self.rubric_views = RubricViews(self.rubric_bench, workflow)
    guidelines_tabs.addTab(self.rubric_views.panel, "Rubric")
    bench_splitter.addWidget(self.rubric_views.grid)
    self.rubric_views.grid.ranking_accepted.connect(self.bench.apply_ranks)   # {candidate id: rank}

and calls ``rubric_bench.submit(state)``, ``rubric_bench.undo()`` and
``rubric_bench.reopen(id)`` where it called the workflow's, so the grades go with the
judgment. When the bench reshuffles its cards, ``rubric_views.set_order(ids)`` keeps the
grid's columns in the cards' order. Nothing here persists anything: the panel saves through
``RubricBench.save_rubric``, the grid grades through ``RubricBench.set_grade``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.rubric_templates import RubricTemplates
from hitl_desktop.qt.rubric_grid import GradingGrid
from hitl_desktop.qt.rubric_panel import RubricPanel


class RubricViews(QObject):
    """Owns the panel and the grid; redraws them on the bench's ``Change.RUBRIC`` /
    ``Change.GRADES`` (and the workflow's ``Change.SESSION`` for the tutor's name)."""

    def __init__(self, bench: Any, workflow: Any | None = None, *,
                 templates: RubricTemplates | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bench = bench
        self.workflow = workflow if workflow is not None else getattr(bench, "workflow", None)
        if templates is None:  # the bench's loader: the panel offers the template the bench does
            templates = getattr(bench, "templates", None)
        self.panel = RubricPanel(save=bench.save_rubric, templates=templates)
        self.grid = GradingGrid(bench)
        self.panel.dirty_changed.connect(self._draft_changed)
        self._unsubscribe = [bench.subscribe(self.on_changes)]
        if self.workflow is not None and hasattr(self.workflow, "subscribe") and self.workflow is not bench:
            self._unsubscribe.append(self.workflow.subscribe(self._on_workflow))
        self.show_rubric()

    def close(self) -> None:
        """Stop following (the window's close)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def set_order(self, candidate_ids: Sequence[str] | None) -> None:
        """The bench's display order of the cards: the grid's columns follow it."""
        self.grid.model.set_order(candidate_ids)

    def apply_theme(self) -> None:
        """Call after ``theme.apply`` (the window's theme switch)."""
        self.panel.apply_theme()
        self.grid.apply_theme()

    def _draft_changed(self, dirty: bool) -> None:
        self.grid.set_notice(
            "The rubric panel has unsaved changes: the grid grades the saved version until you "
            "save (Ctrl+S in the panel)." if dirty else "")

    def _tutor(self) -> str:
        tutor = getattr(self.workflow, "tutor", None)
        return getattr(tutor, "name", "") or ""

    def show_rubric(self) -> None:
        item = getattr(self.workflow, "item", None)
        prompt = getattr(item, "prompt", None)
        self.panel.show_rubric(
            self.bench.rubric,
            prompt_id=getattr(prompt, "id", None),
            domain=getattr(prompt, "domain", None) or None,
            author=self._tutor(),
        )
        if item is not None:
            order = getattr(getattr(item, "state", None), "display_order", None) or getattr(item, "order", None)
            if order:
                self.grid.model.prefer_order(order)

    def on_changes(self, changes: Changes) -> None:
        if Change.RUBRIC in changes:
            self.show_rubric()
        self.grid.on_changes(changes)

    def _on_workflow(self, changes: Changes) -> None:
        if Change.CANDIDATES in changes and Change.ITEM not in changes:  # generated or regenerated
            self.grid.on_changes(changes)  # (a new item comes through the bench's Change.RUBRIC)
        if Change.SESSION in changes:
            self.panel.author = self._tutor()
            self.panel.version_label.setText(self.panel.version_text())
