"""The guidelines panel: the session's domain guidelines, their version, and "Edit…".

It subscribes to the workflow and shows the guideline of the session whenever the session (or
its guideline version) changes; "Edit…" calls back.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.markdown_view import SafeTextView
from hitl_desktop.qt.queue_panel import panel_frame


class GuidelinesPanel:
    """The right panel (module docstring). ``frame`` is the widget to place."""

    def __init__(self, workflow: TutorWorkflow, *, on_edit: Callable[[], None]) -> None:
        self.workflow = workflow
        self.frame, layout, self.title = panel_frame("Guidelines")
        row = QHBoxLayout()
        self.version = QLabel("")
        self.version.setObjectName("Muted")
        self.version.setAccessibleName("Guideline version")
        self.version.setWordWrap(True)  # "v2-… (edited)" in a narrow panel
        self.version.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setAccessibleName("Edit guidelines")
        self.edit_button.clicked.connect(on_edit)
        row.addWidget(self.version, 1)
        row.addWidget(self.edit_button)
        layout.addLayout(row)
        self.view = SafeTextView(self.frame, accessible_name="Guidelines")
        layout.addWidget(self.view, 1)
        self.frame.setMinimumWidth(240)
        self._shown: tuple[str, str] | None = None
        workflow.subscribe(self.changed)

    def changed(self, changes: Changes) -> None:
        if Change.SESSION in changes:
            self.show()

    def show(self) -> None:
        g = self.workflow.guideline
        if g is None:
            return
        shown = (g.domain, g.version)
        self.title.setText(f"Guidelines · {g.domain}")
        self.version.setText(f"{g.version}" + (" (edited)" if g.edited else ""))
        if shown != self._shown:
            self.view.set_markdown(g.text)
            self._shown = shown
