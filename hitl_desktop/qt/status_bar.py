"""The status bar: the model (name, state, loading progress, speed, restart), the session's
figures (also in the toolbar's session label and the queue's summary line) and Lead mode.

It subscribes to the workflow and to the model's controller and redraws what changed: the
session's summary is computed once per change of the history or the session (one
``session_summary`` read per submit), never on a model state change.
"""

from __future__ import annotations

import html
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.store import StoreError
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.load_progress import LoadProgress
from hitl_desktop.qt.wording import count
from hitl_desktop.qt.workers import ModelController, RestartButton

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)


def model_label(spec: str | None) -> str:
    """A model's short name for the status bar: a folder or file name, a server's URL as is."""
    if not spec:
        return "Gemma 3 270M (embedded)"
    from hitl_desktop.core.backends.served import is_url  # here: not needed before the window shows

    return spec if is_url(spec) else Path(spec).name


def summary_text(s: dict[str, Any] | None) -> str:
    """The session's figures in one line ("" without a session)."""
    if s is None:
        return ""
    per = s.get("seconds_per_item")
    parts = [count(s["items"], "item")]
    if per:
        parts.append(f"{per:.0f} s per item")
    parts += [count(s["pairs"], "pair"), count(s.get("corrections", 0), "correction")]
    return "This session: " + " · ".join(parts)


class StatusView:
    """The status bar's widgets (module docstring); ``session_label`` and ``summary_label``
    live elsewhere (toolbar, queue panel) and are redrawn here."""

    def __init__(self, bar: QStatusBar, *, workflow: TutorWorkflow, model: ModelController, session_label: QLabel,
                 summary_label: QLabel, lead: Callable[[], bool]) -> None:  # fmt: skip
        self.workflow, self.model, self.lead = workflow, model, lead
        self.session_label, self.summary_label = session_label, summary_label
        self.last_tokens_per_second: float | None = None
        self.model_label = QLabel("")
        self.model_label.setAccessibleName("Model")
        self.state_label = QLabel("idle")
        self.state_label.setObjectName("ModelState")
        self.state_label.setAccessibleName("Model state")
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 1000)
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setMaximumHeight(12)
        self.load_progress.setTextVisible(False)
        self.load_progress.setAccessibleName("Model loading progress")
        self.load_progress.hide()
        self.load_state = LoadProgress()  # the loader's words and percent (qt/load_progress.py)
        self.speed_label = QLabel("")
        self.speed_label.setAccessibleName("Tokens per second")
        self.items_label = QLabel("")
        self.items_label.setAccessibleName("Items done")
        self.lead_label = QLabel("Lead mode")
        self.lead_label.setObjectName("LeadMode")
        self.lead_label.setAccessibleName("Lead mode")
        self.lead_label.setToolTip("Every tutor's judgments, the review of disagreements, gold figures")
        bar.addWidget(self.model_label)
        bar.addWidget(self.state_label)
        bar.addWidget(self.load_progress)
        self.restart_button = RestartButton(model, bar)  # shown after a crash or failed load
        bar.addWidget(self.restart_button)
        bar.addPermanentWidget(self.lead_label)
        bar.addPermanentWidget(self.speed_label)
        bar.addPermanentWidget(self.items_label)
        model.state_changed.connect(lambda _s: self.show_model_state())
        model.load_progressed.connect(self.show_progress)
        model.model_loaded.connect(self.show_loaded)
        model.load_failed.connect(lambda _m: (self.load_progress.hide(), self.show_model_state()))
        workflow.subscribe(self.changed)
        self.show_model_state()
        self.show_session()
        self.show_lead()

    def changed(self, changes: Changes) -> None:
        if Change.SESSION in changes or Change.HISTORY in changes:
            self.show_session()

    # -- the model ---------------------------------------------------------------------------

    def show_models(self, specs: list[str | None]) -> None:
        self.model_label.setText(" + ".join(model_label(m) for m in specs))
        self.load_progress.setValue(0)
        self.load_progress.show()
        self.load_state.reset()

    def show_model_state(self) -> None:
        state = self.model.state
        self.state_label.setText({"idle": "model: not loaded", "loading": self.load_state.status()}.get(state, state))
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def show_progress(self, fraction: float, message: str) -> None:
        self.load_progress.show()
        self.load_progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.load_state.update(fraction, message)
        self.state_label.setText(self.load_state.status())

    def show_loaded(self, backend) -> None:
        self.load_progress.hide()
        name = getattr(backend, "name", "") or "model"
        dtype = getattr(backend, "dtype", "")
        weights = getattr(backend, "weights", "") or dtype
        held = f"{weights} weights, {dtype}" if weights != dtype else dtype
        self.model_label.setText(f"{name}" + (f" · {held}" if held else ""))
        self.show_model_state()

    def show_speed(self, tokens: int, seconds: float) -> None:
        if seconds and tokens:
            self.last_tokens_per_second = tokens / seconds
            self.speed_label.setText(f"{self.last_tokens_per_second:.1f} tok/s")

    def show_stopping(self) -> None:
        self.state_label.setText("stopping…")

    # -- the session ---------------------------------------------------------------------------

    def show_session(self) -> None:
        """The session's figures, computed once, in the status bar, toolbar and queue panel."""
        wf = self.workflow
        if wf.session is None or wf.tutor is None:
            self.items_label.setText("")
            self.summary_label.setText("")
            self.session_label.setText("No session")
            return
        try:
            summary = wf.session_summary()
        except DB_ERRORS:
            summary = None
        done = (summary or {}).get("items", 0)
        tutor = html.escape(wf.tutor.name)
        self.items_label.setText(f"{wf.tutor.name} · {done} done this session")
        self.summary_label.setText(summary_text(summary))
        self.session_label.setText(f"<b>{tutor}</b> · {html.escape(wf.session.domain)} · {done} done")

    def show_lead(self) -> None:
        self.lead_label.setVisible(self.lead())


__all__ = ["StatusView", "model_label", "summary_text"]
