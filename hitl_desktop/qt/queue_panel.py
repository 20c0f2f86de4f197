"""The queue panel: what waits for the tutor, a box for a typed prompt, the session's summary line.

It subscribes to the workflow: a change of the queue is applied to the list model as the one
row it is when it is one (a submit removes a row, a skip moves one to the end, a typed prompt
inserts one: no relayout of a 20 000-prompt queue), else the list is reset; a change of the
item selects it. Choosing a row or typing a prompt calls back; the panel changes nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListView, QVBoxLayout

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.types import Prompt
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.models import PromptQueueModel, PromptRole


def panel_frame(title: str) -> tuple[QFrame, QVBoxLayout, QLabel]:
    """A framed panel with a title line (the window's three panels)."""
    frame = QFrame()
    frame.setObjectName("Panel")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 10, 12, 10)
    layout.setSpacing(8)
    label = QLabel(title)
    label.setObjectName("PanelTitle")
    layout.addWidget(label)
    return frame, layout, label


class QueuePanel:
    """The left panel (module docstring). ``frame`` is the widget to place."""

    def __init__(self, workflow: TutorWorkflow, *, on_choose: Callable[[Prompt], None],
                 on_new_prompt: Callable[[str], bool]) -> None:  # fmt: skip
        self.workflow = workflow
        self.on_choose, self.on_new_prompt = on_choose, on_new_prompt
        self.frame, layout, self.title = panel_frame("Queue")
        self.model = PromptQueueModel(self.frame)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Prompt queue")
        self.view.setWordWrap(True)
        self.view.setUniformItemSizes(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        # word-wrapped rows have different heights: laid out all at once, a queue of 20 000
        # prompts took a second on every submit/skip (every row's text measured); in batches
        # the window answers at once and the rest is laid out in the background
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(100)
        self.view.activated.connect(self._activated)
        self.view.clicked.connect(self._activated)
        layout.addWidget(self.view, 1)
        self.new_prompt = QLineEdit()
        self.new_prompt.setPlaceholderText("Type a new prompt, press Enter (Ctrl+N)")
        self.new_prompt.setAccessibleName("New prompt")
        self.new_prompt.returnPressed.connect(self._entered)
        layout.addWidget(self.new_prompt)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("Muted")
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Session summary")
        layout.addWidget(self.summary_label)
        self.frame.setMinimumWidth(220)
        workflow.subscribe(self.changed)

    def changed(self, changes: Changes) -> None:
        if Change.QUEUE in changes or Change.SESSION in changes:
            self.sync()
        if Change.ITEM in changes or Change.QUEUE in changes:
            self.select_current()

    def sync(self) -> None:
        """The list model as the workflow's queue, by the smallest change that gets there (the
        queue and the model hold the same prompt objects: compared by identity, at C speed)."""
        new, old = self.workflow.queue, self.model.prompts()
        new_ids, old_ids = list(map(id, new)), list(map(id, old))
        if new_ids != old_ids:
            if len(new) == len(old) - 1:
                i = next((i for i, (a, b) in enumerate(zip(new_ids, old_ids, strict=False)) if a != b), len(new))
                if new_ids[i:] == old_ids[i + 1 :]:
                    self.model.remove(old[i].id)
            elif len(new) == len(old) + 1 and new_ids[1:] == old_ids:
                self.model.insert(0, new[0])
            elif len(new) == len(old) and new and new_ids[-1] in old_ids:
                j = old_ids.index(new_ids[-1])
                if new_ids[:-1] == old_ids[:j] + old_ids[j + 1 :]:
                    self.model.move_to_end(new[-1].id)
            if list(map(id, self.model.prompts())) != new_ids:  # not one row's change: reset
                self.model.set_prompts(list(new))
        session = self.workflow.session
        n = self.model.rowCount()
        self.title.setText(f"Queue · {session.domain} ({n})" if session else "Queue")

    def select_current(self) -> None:
        sel = self.view.selectionModel()
        prompt = self.workflow.prompt
        if prompt is None:
            sel.clearSelection()
            return
        row = self.model.row_of(prompt.id)
        if row >= 0:
            idx = self.model.index(row)
            sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.view.scrollTo(idx)

    def _activated(self, index) -> None:
        prompt = index.data(PromptRole)
        current = self.workflow.prompt
        if prompt is not None and (current is None or prompt.id != current.id):
            self.on_choose(prompt)

    def _entered(self) -> None:
        text = self.new_prompt.text().strip()
        if text and self.on_new_prompt(text):
            self.new_prompt.clear()
