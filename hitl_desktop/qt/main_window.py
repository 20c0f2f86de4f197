"""The main window: a shell (toolbar, splitter, shortcuts, window state) around the views.

The views each take the workflow and callbacks, never the window: the queue panel
(qt/queue_panel.py), the bench and its controller (qt/bench.py, qt/bench_controller.py), the
generation controller (qt/generation.py), the guidelines panel, the status bar
(qt/status_bar.py) and the menus (qt/menus.py). They subscribe to the workflow
(``core.workflow.TutorWorkflow``, evented: every mutation announces what changed) and redraw
what changed. Every rule is the workflow's; the window holds none. Long file work runs as an
operation (qt/ops.py); the model runs in the ``ModelController``'s process.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.guidelines import GuidelineLibrary, resources_dir
from hitl_desktop.core.operations import AutoBackup
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.rubric_bench import RubricBench
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.workflow import TutorWorkflow, WorkflowError
from hitl_desktop.qt.bench import BenchView
from hitl_desktop.qt.bench_controller import BenchController, install_shortcuts
from hitl_desktop.qt.generation import GenerationController
from hitl_desktop.qt.guidelines_panel import GuidelinesPanel
from hitl_desktop.qt.menus import LabMenus, MenuCommands
from hitl_desktop.qt.message_bar import MessageBar
from hitl_desktop.qt.ops import OperationRunner, preload
from hitl_desktop.qt.queue_panel import QueuePanel
from hitl_desktop.qt.rubric_area import RubricArea
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.status_bar import StatusView
from hitl_desktop.qt.workers import BackendFactory, ModelController

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)
BACKUP_CHECK_MS = 60_000  # how often to ask whether a backup is due (core's AutoBackup decides)


class MainWindow(QMainWindow):
    generation_failed = Signal(str)
    database_opened = Signal(str)  # path: the window now works on this database (or pack)

    def __init__(self, *, store: Store, settings: AppSettings, guidelines: GuidelineLibrary | None = None,
                 backend_factory: BackendFactory | None = None, model_path: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.settings = settings
        self.guidelines = guidelines or GuidelineLibrary()
        self.workflow = wf = TutorWorkflow(store, guidelines=self.guidelines, own_name=settings.tutor_name or None)
        self.model_path_override = model_path
        self._dialogs: list = []
        self.dashboard = self.export_dialog = None
        preload(self, "hitl_desktop.qt.dashboard")  # opened at a click: imported before it
        self._closed = False
        self.model = ModelController(backend_factory, self)
        self.setWindowTitle("hitl-desktop")
        icon = resources_dir() / "icons" / "hitl-desktop.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1440, 900)
        self._build_toolbar()

        self.queue = QueuePanel(wf, on_choose=lambda p: self.actions.load_prompt(p),
                                on_new_prompt=lambda text: self.actions.add_prompt(text) is not None)  # fmt: skip
        self.queue_model, self.queue_view, self.queue_title = self.queue.model, self.queue.view, self.queue.title
        self.summary_label = self.queue.summary_label
        self.status = StatusView(self.statusBar(), workflow=wf, model=self.model, session_label=self.session_label,
                                 summary_label=self.summary_label, lead=lambda: self.settings.lead_mode)  # fmt: skip
        self.state_label, self.restart_button = self.status.state_label, self.status.restart_button
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(8)
        self.messages = MessageBar(centre)
        self.bench = BenchView(centre)
        cl.addWidget(self.messages)
        centre.setMinimumWidth(560)
        self.generation = GenerationController(
            workflow=wf, model=self.model, bench=self.bench, settings=settings, status=self.status,
            show_error=self.show_error, show_info=self.messages.show_info,
            show_warning=lambda text: self.messages.show_message(text, severity="warning", timeout_ms=8000),
            on_ready=lambda pid: self.actions.ready(pid), on_failed=self.generation_failed.emit,
        )  # fmt: skip
        self.actions = BenchController(workflow=wf, bench=self.bench, generation=self.generation, messages=self.messages,
                                       settings=settings, parent=self, open_dialog=self._open,
                                       judge=(rb := RubricBench(wf)))  # fmt: skip
        for name in ("session_started", "prompt_loaded", "candidates_ready", "judgment_saved", "judgment_undone"):
            setattr(self, name, getattr(self.actions, name))
        self.guidelines_panel = GuidelinesPanel(wf, on_edit=self.actions.open_guideline_editor)
        self.guideline_view, self.guideline_version = self.guidelines_panel.view, self.guidelines_panel.version
        self.rubric_bench, self.rubrics = rb, RubricArea(wf, rb, guidelines=self.guidelines_panel.frame, parent=self,
                                                         on_ranking=self.bench.set_ranking, focus_cards=self.bench.setFocus,
                                                         show_card=self.bench.select, show_grid=settings.grading_grid,
                                                         remember_grid=lambda on: setattr(settings, "grading_grid", on))  # fmt: skip
        self.bench.cards_shown.connect(self.rubrics.set_order)
        self.bench_splitter = self.rubrics.under(self.bench)  # the cards over the grading grid
        cl.addWidget(self.bench_splitter, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("MainSplitter")
        self.splitter.setChildrenCollapsible(False)
        for i, (w, stretch) in enumerate(((self.queue.frame, 0), (centre, 1), (self.rubrics.side, 0))):
            self.splitter.addWidget(w)
            self.splitter.setStretchFactor(i, stretch)
        self.splitter.setSizes([250, 890, 300])
        host = QWidget()
        hl = QVBoxLayout(host)
        hl.setContentsMargins(10, 10, 10, 8)
        hl.addWidget(self.splitter)
        self.setCentralWidget(host)

        # Rolling backups while the database changes (core's AutoBackup decides when), copied
        # by an operation on its own connection, so the window never waits for it.
        self.autobackup = AutoBackup(store)
        self.backup_runner = OperationRunner(self, name="backup-thread")
        self.backup_timer = QTimer(self)
        self.backup_timer.setInterval(BACKUP_CHECK_MS)
        self.backup_timer.timeout.connect(self.maybe_backup)
        self.backup_timer.start()

        install_shortcuts(self, bench=self.bench, actions=self.actions, generation=self.generation,
                          new_prompt=self.queue.new_prompt.setFocus, escape=self.escape)  # fmt: skip
        self.rubrics.install_shortcuts(self)
        self._restore_window_state()
        self.lab_menus = LabMenus(self, workflow=wf, settings=settings, commands=self._menu_commands())
        wf.subscribe(self._changed)
        self.bench.show_empty("Start a session (Ctrl+Shift+N).")
        self._update_title()

    # -- the workflow's state, read by the view (and tests) --------------------------------------

    store = property(lambda self: self.workflow.store)
    tutor = property(lambda self: self.workflow.tutor)
    session = property(lambda self: self.workflow.session)
    guideline = property(lambda self: self.workflow.guideline)
    prompt = property(lambda self: self.workflow.prompt)
    history = property(lambda self: self.workflow.history)
    skipped = property(lambda self: self.workflow.skipped)
    backups = property(lambda self: self.autobackup.scheduler)
    last_tokens_per_second = property(lambda self: self.status.last_tokens_per_second)
    correction_dialog = property(lambda self: getattr(self.actions, "correction_dialog", None))

    # -- the tutor's actions (the bench controller's) ---------------------------------------------

    def submit(self, *, then_load_next: bool = True):
        return self.actions.submit(then_load_next=then_load_next)

    def start_session(self, *, tutor_name: str, domain: str, tutor_domains: list[str] | None = None):
        return self.actions.start_session(tutor_name=tutor_name, domain=domain, tutor_domains=tutor_domains)

    def __getattr__(self, name: str):
        """The bench controller's actions by name (``window.skip()``, ``window.undo()``...)."""
        actions = self.__dict__.get("actions")
        if name in _ACTIONS and actions is not None:
            return getattr(actions, name)
        raise AttributeError(name)

    # -- building --------------------------------------------------------------------------------

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("MainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)

        def action(text: str, slot, shortcut: str = "", tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            if tip:
                a.setToolTip(tip)
            a.triggered.connect(lambda _checked=False: slot())
            tb.addAction(a)
            self.addAction(a)
            return a

        self.session_action = action("New session…", lambda: self.actions.open_session_dialog(), "Ctrl+Shift+N")
        self.end_session_action = action("End session", lambda: self.actions.end_session())
        self.export_action = action("Export…", self.open_export_dialog, "Ctrl+E")
        self.quality_action = action("Quality…", self.open_quality_dashboard, tip="Agreement between tutors and per-tutor figures")
        self.settings_action = action("Settings…", self.open_settings_dialog, "Ctrl+,")
        self.help_action = action("Shortcuts (F1)", self.show_help, "F1")
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.session_label = QLabel("No session")
        self.session_label.setObjectName("SessionInfo")
        self.session_label.setAccessibleName("Session")
        tb.addWidget(self.session_label)

    def _menu_commands(self) -> MenuCommands:
        return MenuCommands(
            open_database=self.open_database, undo=lambda: self.actions.undo(), close=self.close,
            load_next=lambda: self.actions.load_next(), reopen=lambda jid: self.actions.reopen_judgment(jid),
            show_error=self.show_error, show_info=self.messages.show_info, open_dialog=self._open,
            apply_theme=self.apply_theme, lead_changed=self._lead_changed,
            toolbar_actions={"export": self.export_action, "settings": self.settings_action, "session": self.session_action,
                             "end_session": self.end_session_action, "quality": self.quality_action, "help": self.help_action},
            panels={"queue": self.queue.frame, "guidelines": self.rubrics.side}, view_actions=(self.rubrics.show_action,),
        )  # fmt: skip

    # -- what changed ----------------------------------------------------------------------------

    def _changed(self, changes: Changes) -> None:
        if Change.SESSION in changes or Change.DATABASE in changes:
            self._update_title()
        if Change.DATABASE in changes:
            self.autobackup = AutoBackup(self.workflow.store)

    def _update_title(self) -> None:
        """The title names the database, the tutor and domain, and Lead mode."""
        path = self.store.path
        bits = [Path(path).name if path else "in memory"]
        if self.session is not None and self.tutor is not None:
            bits.append(f"{self.tutor.name} · {self.session.domain}")
        if self.settings.lead_mode:
            bits.append("Lead mode")
        self.setWindowTitle("hitl-desktop — " + " — ".join(bits))

    def _lead_changed(self, on: bool) -> None:
        self._update_title()
        self.status.show_lead()
        if self.dashboard is not None:
            self.dashboard.set_show_gold(on)

    # -- databases and sessions --------------------------------------------------------------------

    def open_database(self, path: str) -> bool:
        """Work on another database or a lab's pack (core ``TutorWorkflow.open_database``: it
        opens in its own tutor's session, never the previous database's). False, with a
        message, on a bad file (and nothing changes)."""
        self.generation.clear()  # the model's work under way was for this database
        self.backup_runner.wait(30000)
        self.autobackup.final()
        try:
            self.workflow.open_database(path, own_domain=self.actions.own_domain())
        except (*DB_ERRORS, WorkflowError, OSError) as e:
            self.show_error(f"{Path(path).name} could not be opened: {e}")
            return False
        if self.dashboard is not None:
            self.dashboard.close()
            self.dashboard = None
        if self.session is None:
            self.bench.show_empty("Who is working on this database? Start a session (Ctrl+Shift+N).")
        self.database_opened.emit(str(path))
        return True

    # -- window state ------------------------------------------------------------------------------

    def _restore_window_state(self) -> None:
        geometry = self.settings.state("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.settings.state("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def save_window_state(self) -> None:
        self.settings.save_state("geometry", self.saveGeometry())
        self.settings.save_state("splitter", self.splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save the window state, end the session, stop the model thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):
            self.save_window_state()
        with contextlib.suppress(*DB_ERRORS):
            self.workflow.end_session()
        self.backup_timer.stop()
        self.backup_runner.wait(30000)
        self.autobackup.final()  # the last state, as the window closes
        if self.dashboard is not None:
            self.dashboard.close()
        for d in (*self._dialogs, self.lab_menus.review_view):  # an operation under way ends first
            if hasattr(d, "runner"):
                d.runner.wait(30000)
        self.model.shutdown()
        self.rubrics.close()
        self.workflow.close_database()

    def apply_theme(self) -> None:
        self.bench.apply_theme()
        self.guideline_view.apply_theme()
        self.rubrics.apply_theme()

    def maybe_backup(self) -> bool:
        """Start a background backup when one is due; True when one was started."""
        job = self.autobackup.job()
        if job is None:
            return False
        self.backup_runner.run(job, on_success=self.autobackup.done, on_failure=self._backup_failed)
        return True

    def _backup_failed(self, message: str) -> None:
        self.autobackup.failed(message)
        self.messages.show_message(f"Backup failed (your work is saved; retrying later): {message}", severity="warning", timeout_ms=8000)

    def show_error(self, text: str) -> None:
        self.messages.show_error(text)

    # -- the model -----------------------------------------------------------------------------------

    def model_path(self) -> str | None:
        return self.model_path_override or self.settings.model_path or None

    def start_model(self) -> None:
        self.generation.start_model(self.model_path())

    def escape(self) -> None:
        if self.model.is_generating():
            self.generation.stop()
        else:
            self.bench.cancel_tie()

    # -- dialogs -------------------------------------------------------------------------------------

    def _open(self, dialog) -> None:
        """Show a window-modal dialog without blocking (tests drive it directly)."""
        self._dialogs.append(dialog)
        dialog.finished.connect(lambda _r: self._dialogs.remove(dialog) if dialog in self._dialogs else None)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()

    def open_export_dialog(self) -> None:
        from hitl_desktop.qt.dialogs.export_dialog import ExportDialog

        if self.store.path is None:
            self.show_error("This database lives in memory; there is no file to export from.")
            return
        try:
            domains, tutors = self.store.domains(), [t.name for t in self.store.tutors()]
        except DB_ERRORS as e:
            self.show_error(str(e))
            return
        self.export_dialog = ExportDialog(self, db_path=str(self.store.path), domains=domains, tutors=tutors,
                                          domain=self.session.domain if self.session else "",
                                          default_dir=str(Path(self.store.path).parent))  # fmt: skip
        self._open(self.export_dialog)

    def open_quality_dashboard(self) -> None:
        """The quality dashboard (agreement, per-tutor figures), a non-modal window; gold
        figures for a lead only (Lead mode: gold items stay unannounced)."""
        from hitl_desktop.qt.dashboard import QualityDashboard

        if self.dashboard is None:
            self.dashboard = QualityDashboard(self.store, self, show_gold=self.settings.lead_mode)
        else:
            self.dashboard.refresh()
        self.dashboard.show()
        self.dashboard.raise_()

    def open_settings_dialog(self) -> None:
        from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self, settings=self.settings)

        def accepted() -> None:
            failed = self.model.state == "error"
            if dialog.apply() or failed:  # after a failed load, OK tries again (file fixed?)
                self.model_path_override = None
                self.start_model()

        dialog.accepted.connect(accepted)
        self._open(dialog)

    def show_help(self) -> None:
        from hitl_desktop.qt.dialogs.help import ShortcutsDialog

        self._open(ShortcutsDialog(self))


#: the bench controller's actions a window answers to by name (tests, scripts, app.py)
_ACTIONS = frozenset({
    "skip", "undo", "reopen_judgment", "continue_conversation", "add_prompt", "load_samples", "load_next",
    "load_prompt", "refresh_queue", "end_session", "open_session_dialog", "save_guideline", "open_guideline_editor",
    "session_summary_text", "open_correction", "apply_correction", "submit_and_continue", "begin_session", "start_pack_session",
})  # fmt: skip
