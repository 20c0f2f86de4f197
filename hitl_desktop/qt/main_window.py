"""The main window: queue | bench | guidelines, a thin view over ``core.workflow``.

Every workflow rule (the queue, what regenerate may replace, submit, undo, re-judging,
continuing a conversation, samples) lives in :class:`~hitl_desktop.core.workflow.TutorWorkflow`;
the window turns key presses into its calls and its results into widgets. The workflow's
Store belongs to the GUI thread; the model runs in the ``ModelController``'s worker and its
results arrive by signal, to be stored through the workflow.
"""

from __future__ import annotations

import contextlib
import html
import sqlite3
import time
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.backends.base import GenerationResult
from hitl_desktop.core.backup import BackupScheduler, backup_database
from hitl_desktop.core.engine import candidates_from_result
from hitl_desktop.core.guidelines import Guideline, GuidelineLibrary, resources_dir
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import Correction, Judgment, Prompt, Session, Tutor
from hitl_desktop.core.workflow import (
    BenchItem,
    GenerationPlan,
    TutorWorkflow,
    WorkflowError,
    shuffled_positions,
)
from hitl_desktop.qt.bench import BenchView
from hitl_desktop.qt.candidate_card import FLAG_KEYS
from hitl_desktop.qt.markdown_view import SafeTextView
from hitl_desktop.qt.message_bar import MessageBar
from hitl_desktop.qt.models import PromptQueueModel, PromptRole
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.wording import count
from hitl_desktop.qt.workers import (
    BackendFactory,
    GenerationRequest,
    ModelController,
    RestartButton,
    TaskRunner,
)

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)


def _model_label(spec: str | None) -> str:
    """A model's short name for the status bar: a folder or file name, a server's URL as is."""
    if not spec:
        return "Gemma 3 270M (embedded)"
    from hitl_desktop.core.backends.served import is_url  # here: not needed before the window shows

    return spec if is_url(spec) else Path(spec).name


def _sentence(e: Exception) -> str:
    """A workflow's one-line reason as a sentence for the message bar."""
    text = str(e).strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


BACKUP_CHECK_MS = 60_000  # how often to ask whether a backup is due (BackupScheduler decides)


class MainWindow(QMainWindow):
    session_started = Signal(object)  # Session
    prompt_loaded = Signal(object)  # Prompt
    candidates_ready = Signal(str)  # prompt id: the cards can be judged
    judgment_saved = Signal(object)  # Judgment
    judgment_undone = Signal(str)  # judgment id
    generation_failed = Signal(str)
    database_opened = Signal(str)  # path: the window now works on this database (or pack)

    def __init__(
        self,
        *,
        store: Store,
        settings: AppSettings,
        guidelines: GuidelineLibrary | None = None,
        backend_factory: BackendFactory | None = None,
        model_path: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.guidelines = guidelines or GuidelineLibrary()
        self.workflow = TutorWorkflow(store, guidelines=self.guidelines, own_name=settings.tutor_name or None)
        self.model_path_override = model_path
        self.item_started = time.monotonic()
        self.requests: dict[int, GenerationRequest] = {}
        self.plans: dict[int, GenerationPlan] = {}  # request id -> what the model was asked for
        self.last_tokens_per_second: float | None = None
        self._dialogs: list = []
        self.dashboard = None
        self._closed = False

        self.model = ModelController(backend_factory, self)
        self.model.state_changed.connect(self._model_state_changed)
        self.model.load_progressed.connect(self._model_progress)
        self.model.model_loaded.connect(self._model_loaded)
        self.model.load_failed.connect(self._model_load_failed)
        self.model.tokens_streamed.connect(self._tokens_streamed)
        self.model.generated.connect(self._generated)
        self.model.generation_failed.connect(self._generation_failed)

        # Rolling backups while the database changes: the copy runs in a thread of its own,
        # on its own connection, so the window never waits for it.
        self.backups = BackupScheduler(store) if store.path is not None else None
        self.backup_runner = TaskRunner(self, name="backup-thread")
        self.backup_runner.succeeded.connect(self._backup_written)
        self.backup_runner.failed.connect(self._backup_failed)
        self._backup_marker: tuple[int, int] | None = None
        self.backup_timer = QTimer(self)
        self.backup_timer.setInterval(BACKUP_CHECK_MS)
        self.backup_timer.timeout.connect(self.maybe_backup)
        self.backup_timer.start()

        self.setWindowTitle("hitl-desktop")
        icon = resources_dir() / "icons" / "hitl-desktop.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.resize(1440, 900)
        self._build_toolbar()
        self._build_panels()
        self._build_status_bar()
        self._build_shortcuts()
        self._restore_window_state()
        self._update_status()
        from hitl_desktop.qt.menus import install_menus  # the menu bar and file drops

        self.lab_menus = install_menus(self)

    # -- the workflow's state, read by the view (and tests) ----------------------------------------

    @property
    def store(self) -> Store:
        return self.workflow.store

    @property
    def tutor(self) -> Tutor | None:
        return self.workflow.tutor

    @property
    def session(self) -> Session | None:
        return self.workflow.session

    @property
    def guideline(self) -> Guideline | None:
        return self.workflow.guideline

    @property
    def prompt(self) -> Prompt | None:
        return self.workflow.prompt

    @property
    def history(self) -> list[tuple[Judgment, Prompt]]:
        return self.workflow.history

    @property
    def skipped(self) -> set[str]:
        return self.workflow.skipped

    # -- building --------------------------------------------------------------------------------

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("MainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.session_action = QAction("New session…", self)
        self.session_action.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.session_action.triggered.connect(self.open_session_dialog)
        self.end_session_action = QAction("End session", self)
        self.end_session_action.triggered.connect(self.end_session)
        self.export_action = QAction("Export…", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self.open_export_dialog)
        self.settings_action = QAction("Settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.open_settings_dialog)
        self.quality_action = QAction("Quality…", self)
        self.quality_action.setToolTip("Agreement between tutors and per-tutor figures")
        self.quality_action.triggered.connect(self.open_quality_dashboard)
        self.help_action = QAction("Shortcuts (F1)", self)
        self.help_action.setShortcut(QKeySequence("F1"))
        self.help_action.triggered.connect(self.show_help)
        actions = (
            self.session_action,
            self.end_session_action,
            self.export_action,
            self.quality_action,
            self.settings_action,
            self.help_action,
        )
        for a in actions:
            tb.addAction(a)
            self.addAction(a)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.session_label = QLabel("No session")
        self.session_label.setObjectName("SessionInfo")
        self.session_label.setAccessibleName("Session")
        tb.addWidget(self.session_label)

    def _panel(self, title: str) -> tuple[QFrame, QVBoxLayout, QLabel]:
        frame = QFrame()
        frame.setObjectName("Panel")
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        label = QLabel(title)
        label.setObjectName("PanelTitle")
        layout.addWidget(label)
        return frame, layout, label

    def _build_panels(self) -> None:
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("MainSplitter")
        self.splitter.setChildrenCollapsible(False)

        # left: the queue, a new prompt, the session summary
        left, ll, self.queue_title = self._panel("Queue")
        self.queue_model = PromptQueueModel(self)
        self.queue_view = QListView()
        self.queue_view.setModel(self.queue_model)
        self.queue_view.setAccessibleName("Prompt queue")
        self.queue_view.setWordWrap(True)
        self.queue_view.setUniformItemSizes(False)
        self.queue_view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.queue_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.queue_view.setResizeMode(QListView.ResizeMode.Adjust)
        # word-wrapped rows have different heights: laid out all at once, a queue of 20 000
        # prompts took a second on every submit/skip (every row's text measured); in batches
        # the window answers at once and the rest is laid out in the background
        self.queue_view.setLayoutMode(QListView.LayoutMode.Batched)
        self.queue_view.setBatchSize(100)
        self.queue_view.activated.connect(self._queue_activated)
        self.queue_view.clicked.connect(self._queue_activated)
        ll.addWidget(self.queue_view, 1)
        self.new_prompt = QLineEdit()
        self.new_prompt.setPlaceholderText("Type a new prompt, press Enter (Ctrl+N)")
        self.new_prompt.setAccessibleName("New prompt")
        self.new_prompt.returnPressed.connect(self._new_prompt_entered)
        ll.addWidget(self.new_prompt)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("Muted")
        self.summary_label.setWordWrap(True)
        self.summary_label.setAccessibleName("Session summary")
        ll.addWidget(self.summary_label)
        left.setMinimumWidth(220)

        # centre: messages + the bench
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(8)
        self.messages = MessageBar(centre)
        cl.addWidget(self.messages)
        self.bench = BenchView(centre)
        cl.addWidget(self.bench, 1)
        b = self.bench
        b.submit_requested.connect(self.submit)
        b.submit_and_continue_requested.connect(self.submit_and_continue)
        b.skip_requested.connect(self.skip)
        b.undo_requested.connect(self.undo)
        b.continue_requested.connect(lambda: self.continue_conversation())
        b.correction_requested.connect(self.open_correction)
        b.regeneration_requested.connect(self.regenerate_slot)
        b.regenerate_all_requested.connect(lambda: self.regenerate_all())
        b.samples_requested.connect(self.load_samples)
        centre.setMinimumWidth(560)

        # right: guidelines
        right, rl, self.guidelines_title = self._panel("Guidelines")
        row = QHBoxLayout()
        self.guideline_version = QLabel("")
        self.guideline_version.setObjectName("Muted")
        self.guideline_version.setAccessibleName("Guideline version")
        self.guideline_version.setWordWrap(True)  # "v2-… (edited)" in a narrow panel
        self.guideline_version.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edit_guidelines_button = QPushButton("Edit…")
        self.edit_guidelines_button.setAccessibleName("Edit guidelines")
        self.edit_guidelines_button.clicked.connect(self.open_guideline_editor)
        row.addWidget(self.guideline_version, 1)
        row.addWidget(self.edit_guidelines_button)
        rl.addLayout(row)
        self.guideline_view = SafeTextView(right, accessible_name="Guidelines")
        rl.addWidget(self.guideline_view, 1)
        right.setMinimumWidth(240)

        for w in (left, centre, right):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([250, 890, 300])
        host = QWidget()
        hl = QVBoxLayout(host)
        hl.setContentsMargins(10, 10, 10, 8)
        hl.addWidget(self.splitter)
        self.setCentralWidget(host)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
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
        self.speed_label = QLabel("")
        self.speed_label.setAccessibleName("Tokens per second")
        self.items_label = QLabel("")
        self.items_label.setAccessibleName("Items done")
        sb.addWidget(self.model_label)
        sb.addWidget(self.state_label)
        sb.addWidget(self.load_progress)
        self.restart_button = RestartButton(self.model, self)  # shown after a crash or failed load
        sb.addWidget(self.restart_button)
        sb.addPermanentWidget(self.speed_label)
        sb.addPermanentWidget(self.items_label)

    def _shortcut(self, keys: str, slot) -> QShortcut:
        sc = QShortcut(QKeySequence(keys), self)
        sc.setContext(Qt.ShortcutContext.WindowShortcut)
        sc.activated.connect(slot)
        return sc

    def _build_shortcuts(self) -> None:
        b = self.bench
        for n in range(1, 10):
            self._shortcut(str(n), lambda n=n: b.press_position(n))
        self._shortcut("=", b.press_tie)
        self._shortcut("Left", lambda: b.select_step(-1))
        self._shortcut("Right", lambda: b.select_step(1))
        self._shortcut("Up", lambda: b.select_row_step(-1))
        self._shortcut("Down", lambda: b.select_row_step(1))
        self._shortcut("+", lambda: b.move_selected(True))
        self._shortcut("Shift++", lambda: b.move_selected(True))
        self._shortcut("-", lambda: b.move_selected(False))
        self._shortcut("0", b.clear_selected)
        self._shortcut("Backspace", b.clear_selected)
        self._shortcut("Ctrl+Backspace", b.clear_all)
        for flag, key in FLAG_KEYS.items():
            self._shortcut(key, lambda f=flag: b.toggle_flag_selected(f))
        self._shortcut("E", b.correct_selected)
        self._shortcut("B", b.toggle_all_bad)
        self._shortcut("R", b.regenerate_selected)
        self._shortcut("Shift+R", self.regenerate_all)
        self._shortcut("Ctrl+G", self.regenerate_all)
        self._shortcut("Ctrl+Shift+R", lambda: self.regenerate_all(new_set=True))
        for n in (1, 2, 3):
            self._shortcut(f"Ctrl+{n}", lambda n=n: b.set_strength(n))
        self._shortcut("Ctrl+Return", self.submit)
        self._shortcut("Ctrl+Enter", self.submit)
        self._shortcut("Ctrl+Shift+Return", self.submit_and_continue)
        self._shortcut("Ctrl+Shift+Enter", self.submit_and_continue)
        self._shortcut("Ctrl+Right", self.skip)
        self._shortcut("Ctrl+Z", self.undo)
        self._shortcut("Ctrl+N", self.new_prompt.setFocus)
        self._shortcut("Escape", self.escape)

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
        if self.backups is not None:
            self.backups.maybe_backup(force=True)  # the last state, as the window closes
        if self.dashboard is not None:
            self.dashboard.close()
        for d in self._dialogs:
            if hasattr(d, "runner"):
                d.runner.wait(30000)
        self.model.shutdown()
        self.workflow.close_database()

    def apply_theme(self) -> None:
        self.bench.apply_theme()
        self.guideline_view.apply_theme()

    # -- errors ------------------------------------------------------------------------------------

    def maybe_backup(self) -> bool:
        """Start a background backup when one is due; True when one was started."""
        if self.backups is None or self.backup_runner.is_running() or not self.backups.due():
            return False
        self._backup_marker = self.store.change_marker()
        db_path, keep = self.store.path, self.backups.keep
        self.backup_runner.start_task(lambda progress: backup_database(db_path, reason="auto", keep=keep))
        return True

    def _backup_written(self, path) -> None:
        if self.backups is not None and self._backup_marker is not None:
            self.backups.record(self._backup_marker, path)

    def _backup_failed(self, message: str) -> None:
        if self.backups is not None:
            self.backups.last_error = message
        self.messages.show_message(f"Backup failed (your work is saved; retrying later): {message}", severity="warning", timeout_ms=8000)

    def show_error(self, text: str) -> None:
        self.messages.show_error(text)

    # -- model ---------------------------------------------------------------------------------------

    def model_path(self) -> str | None:
        if self.model_path_override:
            return self.model_path_override
        return self.settings.model_path or None

    def start_model(self) -> None:
        spec = self.settings.backend_spec()
        models = [self.model_path(), *self.settings.compare_models]
        self.model_label.setText(" + ".join(_model_label(m) for m in models))
        self.load_progress.setValue(0)
        self.load_progress.show()
        self.model.load(
            models if len(models) > 1 else models[0],
            device=spec["device"],
            served_model=spec["served_model"],
            completions=spec["completions"],
        )

    def _model_state_changed(self, state: str) -> None:
        self._update_status()
        if self.bench.phase == "generating":
            self.bench.set_waiting_text(self._waiting_text())

    def _model_progress(self, fraction: float, message: str) -> None:
        self.load_progress.show()
        self.load_progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.state_label.setText(f"loading · {message}" if message else "loading")

    def _model_loaded(self, backend) -> None:
        self.load_progress.hide()
        name = getattr(backend, "name", "") or "model"
        dtype = getattr(backend, "dtype", "")
        weights = getattr(backend, "weights", "") or dtype
        held = f"{weights} weights, {dtype}" if weights != dtype else dtype
        self.model_label.setText(f"{name}" + (f" · {held}" if held else ""))
        self._update_status()

    def _model_load_failed(self, message: str) -> None:
        self.load_progress.hide()
        self.show_error(f"The model could not be loaded: {message}. Choose another model in Settings (Ctrl+,).")
        self._update_status()

    def _waiting_text(self) -> str:
        if self.model.state == "loading":
            return "Waiting for the model to load…"
        if self.model.state == "error":
            return "The model is not available."
        return "Writing…"

    def _start_generation(self, plan: GenerationPlan) -> None:
        """Ask the model for a plan's K candidates; the cards show them streaming."""
        self.bench.begin_generation(k=plan.k, positions=shuffled_positions(plan.k), waiting=self._waiting_text())
        request = self.model.generate(
            conversation=plan.prompt.conversation(),
            k=plan.k,
            params=self.settings.sampling_params(),
            seeds=plan.seeds,
            purpose="all",
            meta={"prompt_id": plan.prompt.id},
        )
        self.requests[request.request_id] = request
        self.plans[request.request_id] = plan
        self._update_status()

    def _generate_all(self) -> None:
        """Candidates for the item on the bench (seeds from its stable id when it has one)."""
        if self.prompt is None:
            return
        try:
            plan = self.workflow.plan_generation(k=self.settings.k, base_seed=self.settings.seed)
        except DB_ERRORS as e:
            self.show_error(f"Could not clear the old candidates: {e}")
            return
        self._start_generation(plan)

    def regenerate_all(self, *, new_set: bool = False) -> None:
        """Regenerate every candidate (Shift+R). Candidates that came with the prompt are
        kept; ``new_set`` (Ctrl+Shift+R) writes a new, separate set beside them."""
        if self.prompt is None:
            return
        self.model.stop_generation()
        try:
            plan = self.workflow.plan_regenerate_all(k=self.settings.k, new_set=new_set)
        except WorkflowError as e:
            self.messages.show_message(_sentence(e), severity="warning", timeout_ms=8000)
            return
        except DB_ERRORS as e:
            self.show_error(f"Could not clear the old candidates: {e}")
            return
        self._start_generation(plan)

    def regenerate_slot(self, slot: int) -> None:
        """Regenerate one card (R); refused for candidates that came with the prompt."""
        prompt = self.prompt
        if prompt is None or self.bench.state is None:
            return
        old = self.bench.slots[slot] if slot < len(self.bench.slots) else None
        if old is None:
            return
        try:
            plan = self.workflow.plan_regenerate_one(old.id)
        except WorkflowError as e:
            self.messages.show_message(_sentence(e), severity="warning", timeout_ms=8000)
            return
        self.bench.begin_regeneration(slot, waiting=self._waiting_text())
        request = self.model.generate(
            conversation=prompt.conversation(),
            k=1,
            params=self.settings.sampling_params(),
            seeds=plan.seeds,
            slots=[slot],
            purpose="one",
            meta={"prompt_id": prompt.id, "old_id": old.id, "index": old.index},
        )
        self.requests[request.request_id] = request
        self.plans[request.request_id] = plan

    def escape(self) -> None:
        if self.model.is_generating():
            self.stop_generation()
        else:
            self.bench.cancel_tie()

    def stop_generation(self) -> None:
        self.model.stop_generation()
        self.state_label.setText("stopping…")

    def _tokens_streamed(self, request_id: int, batch) -> None:
        request = self.requests.get(request_id)
        if request is None or self.prompt is None or request.meta.get("prompt_id") != self.prompt.id:
            return
        self.bench.stream(batch, slots=request.slots)

    def _generated(self, request: GenerationRequest, result: GenerationResult) -> None:
        self.requests.pop(request.request_id, None)
        plan = self.plans.pop(request.request_id, None)
        if result.seconds and result.tokens:
            self.last_tokens_per_second = result.tokens / result.seconds
        self._update_status()
        prompt = self.prompt
        if plan is None or prompt is None or plan.prompt.id != prompt.id:
            return  # the tutor moved on; nothing is kept
        if request.purpose == "one":
            self._store_regenerated(request, result, plan)
            return
        if any(r.meta.get("prompt_id") == prompt.id and r.purpose == "all" for r in self.requests.values()):
            return  # a newer generation for this prompt is on its way
        try:
            cands = self.workflow.accept_candidates(plan, candidates_from_result(prompt, result))
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be saved: {e}")
            return
        if len(cands) < 2:
            self.bench.show_no_candidates(
                "Generation stopped before two answers were written. Press Ctrl+G to generate again."
                if result.stopped
                else "The model wrote fewer than two answers. Press Ctrl+G to try again."
            )
            return
        kept = {c.index for c in cands}
        if len(kept) == len(self.bench.positions):
            slot_of_index = {c.index: i for i, c in enumerate(cands)}
            positions = [slot_of_index[s] for s in self.bench.positions if s in slot_of_index]
        else:
            positions = shuffled_positions(len(cands))
        self.bench.show_candidates(cands, positions=positions)
        self.item_started = time.monotonic()
        if result.stopped:
            self.messages.show_info("Generation stopped: the answers are shown as far as they were written.")
        self.candidates_ready.emit(prompt.id)

    def _store_regenerated(self, request: GenerationRequest, result: GenerationResult, plan: GenerationPlan) -> None:
        slot = request.slots[0]
        prompt = plan.prompt
        new = None
        try:
            made = self.workflow.accept_candidates(
                plan, candidates_from_result(prompt, result, first_index=plan.first_index)
            )
            new = made[0] if made else None
        except DB_ERRORS as e:
            self.show_error(f"The new candidate could not be saved: {e}")
        self.bench.finish_regeneration(slot, new)
        self.candidates_ready.emit(prompt.id)

    def _generation_failed(self, request: GenerationRequest, message: str) -> None:
        self.requests.pop(request.request_id, None)
        self.plans.pop(request.request_id, None)
        self._update_status()
        self.generation_failed.emit(message)
        if self.prompt is None or request.meta.get("prompt_id") != self.prompt.id:
            return
        self.show_error(f"Generation failed: {message}")
        if request.purpose == "one":
            self.bench.finish_regeneration(request.slots[0], None)
        else:
            self.bench.show_no_candidates("No answers. Press Ctrl+G to try again.")

    # -- sessions ----------------------------------------------------------------------------------

    def start_session(self, *, tutor_name: str, domain: str, tutor_domains: list[str] | None = None) -> Session | None:
        try:
            session = self.workflow.start_session(tutor_name=tutor_name, domain=domain, tutor_domains=tutor_domains)
        except WorkflowError as e:
            self.show_error(_sentence(e))
            return None
        except DB_ERRORS as e:
            self.show_error(f"The session could not be started: {e}")
            return None
        self._show_session()
        return session

    def _show_session(self) -> None:
        """The workflow's new session on the window (and, outside a pack, remembered as this
        machine's own tutor and domain)."""
        self.model.stop_generation()
        session = self.workflow.session
        assert session is not None
        if self.workflow.pack_tutor() is None:  # a pack's tutor is the pack's only
            self.settings.tutor_name = self.workflow.own_name or ""
            self.settings.last_domain = session.domain
        self._show_guideline()
        self._update_title()
        self._show_queue()
        self.load_next()
        self._update_status()
        self.session_started.emit(session)

    def end_session(self) -> None:
        if self.session is None:
            return
        summary = self.session_summary_text()
        try:
            self.workflow.end_session()
        except DB_ERRORS as e:
            self.show_error(f"The session could not be ended: {e}")
            self.workflow.session = None
        self.model.stop_generation()
        self.workflow.item = None
        self.queue_model.set_prompts([])
        self.bench.show_empty(f"Session ended. {summary}\n\nStart a new session (Ctrl+Shift+N).")
        self.session_label.setText("No session")
        self._update_status()

    def open_session_dialog(self) -> None:
        from hitl_desktop.qt.dialogs.tutor import SessionDialog

        try:
            tutors = [t.name for t in self.store.tutors()]
            domains = self.store.domains()
        except DB_ERRORS as e:
            self.show_error(str(e))
            return
        mine = self.tutor.domains if self.tutor else self.settings.tutor_domains
        dialog = SessionDialog(
            self,
            tutors=tutors,
            tutor=self.tutor.name if self.tutor else self.settings.tutor_name,
            domains=[*mine, *domains],
            domain=self.session.domain if self.session else self.settings.last_domain,
        )
        dialog.accepted.connect(lambda: self.start_session(tutor_name=dialog.tutor(), domain=dialog.domain()))
        self._open(dialog)

    def session_summary_text(self) -> str:
        try:
            s = self.workflow.session_summary()
        except DB_ERRORS:
            return ""
        if s is None:
            return ""
        per = s.get("seconds_per_item")
        parts = [count(s["items"], "item")]
        if per:
            parts.append(f"{per:.0f} s per item")
        parts += [count(s["pairs"], "pair"), count(s.get("corrections", 0), "correction")]
        return "This session: " + " · ".join(parts)

    def _update_title(self) -> None:
        """The title names the database, the tutor and domain, and Lead mode."""
        from hitl_desktop.qt.menus import is_lead

        bits = [Path(self.store.path).name if self.store.path else "in memory"]
        if self.session is not None and self.tutor is not None:
            bits.append(f"{self.tutor.name} · {self.session.domain}")
        if is_lead(self):
            bits.append("Lead mode")
        self.setWindowTitle("hitl-desktop — " + " — ".join(bits))

    def _show_guideline(self) -> None:
        g = self.guideline
        if g is None:
            return
        self.guidelines_title.setText(f"Guidelines · {g.domain}")
        self.guideline_version.setText(f"{g.version}" + (" (edited)" if g.edited else ""))
        self.guideline_view.set_markdown(g.text)

    def open_guideline_editor(self) -> None:
        from hitl_desktop.qt.dialogs.guideline_editor import GuidelineEditorDialog

        if self.guideline is None:
            return
        domain = self.guideline.domain
        dialog = GuidelineEditorDialog(self, guideline=self.guideline, history=len(self.guidelines.history(domain)))
        dialog.accepted.connect(lambda: self.save_guideline(domain, dialog.text(), revert=dialog.reverted))
        self._open(dialog)

    def save_guideline(self, domain: str, text: str, *, revert: bool = False) -> Guideline | None:
        try:
            g = self.workflow.save_guideline(domain, text, revert=revert)
        except (OSError, ValueError, *DB_ERRORS) as e:
            self.show_error(f"The guidelines could not be saved: {e}")
            return None
        if self.guideline is not None and self.guideline.domain == domain:
            self._show_guideline()
            self.messages.show_info(f"Guidelines saved as {g.version}; new judgments record it.")
        return g

    # -- the queue -------------------------------------------------------------------------------------

    def refresh_queue(self) -> None:
        try:
            self.workflow.refresh_queue()
        except DB_ERRORS as e:
            self.show_error(f"The queue could not be read: {e}")
            return
        self._show_queue()

    def _show_queue(self) -> None:
        self.queue_model.set_prompts(list(self.workflow.queue))
        self._update_queue_title()
        self._select_in_queue()

    def _update_queue_title(self) -> None:
        n = self.queue_model.rowCount()
        domain = self.session.domain if self.session else ""
        self.queue_title.setText(f"Queue · {domain} ({n})" if domain else "Queue")

    def _select_in_queue(self) -> None:
        sel = self.queue_view.selectionModel()
        if self.prompt is None:
            sel.clearSelection()
            return
        row = self.queue_model.row_of(self.prompt.id)
        if row >= 0:
            idx = self.queue_model.index(row)
            sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.queue_view.scrollTo(idx)

    def _queue_activated(self, index) -> None:
        prompt = index.data(PromptRole)
        if prompt is not None and (self.prompt is None or prompt.id != self.prompt.id):
            self.load_prompt(prompt)

    def load_next(self) -> None:
        choice = self.workflow.next_prompt()
        if choice is None:
            self.workflow.item = None
            samples = self.workflow.samples_path() is not None
            domain = self.session.domain if self.session else ""
            self.bench.show_empty(
                f"Nothing is waiting in {domain or 'this domain'}.\n"
                "Type a prompt in the box on the left (Ctrl+N)"
                + (", or load the sample prompts." if samples else "."),
                samples=samples,
            )
            self._select_in_queue()
            self._update_history_buttons()
            return
        self.load_prompt(choice)

    def load_prompt(self, prompt: Prompt, *, state: JudgingState | None = None, order: list[str] | None = None) -> None:
        """Put a prompt on the bench: its candidate set, or new ones from the model."""
        try:
            item = self.workflow.open_item(prompt, state=state, order=order)
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be read: {e}")
            return
        self._show_item(item)

    def _show_item(self, item: BenchItem) -> None:
        """Show the workflow's item: its cards as they were ordered, else generate."""
        if self.model.is_generating():
            self.model.stop_generation()
        prompt = item.prompt
        self.bench.show_prompt(prompt, meta=self._prompt_meta(prompt))
        self._select_in_queue()
        self.prompt_loaded.emit(prompt)
        self._update_history_buttons()
        if item.needs_generation:
            self._generate_all()
            return
        ids = [c.id for c in item.candidates]
        order = item.order
        if order and set(order) == set(ids) and len(order) == len(ids):
            positions = [ids.index(cid) for cid in order]
        else:
            positions = shuffled_positions(len(ids))
        self.bench.show_candidates(item.candidates, positions=positions, state=item.state)
        self.item_started = time.monotonic()
        self.candidates_ready.emit(prompt.id)

    def _prompt_meta(self, prompt: Prompt) -> str:
        bits = []
        if prompt.external_id:
            bits.append(prompt.external_id)
        if prompt.source:
            bits.append(prompt.source)
        return " · ".join(bits)

    def _new_prompt_entered(self) -> None:
        text = self.new_prompt.text().strip()
        if text and self.add_prompt(text) is not None:
            self.new_prompt.clear()

    def add_prompt(self, text: str) -> Prompt | None:
        if self.session is None:
            self.show_error("Start a session first (Ctrl+Shift+N).")
            return None
        try:
            prompt = self.workflow.add_prompt(text)
        except WorkflowError as e:
            self.show_error(_sentence(e))
            return None
        except DB_ERRORS as e:
            self.show_error(f"The prompt could not be saved: {e}")
            return None
        self.queue_model.insert(0, prompt)
        self._update_queue_title()
        assert self.workflow.item is not None
        self._show_item(self.workflow.item)
        return prompt

    def load_samples(self) -> int:
        """Add the domain's sample prompts (those not added before); returns how many."""
        if self.session is None or self.workflow.samples_path() is None:
            self.show_error("There are no sample prompts for this domain.")
            return 0
        from hitl_desktop.core.importing import ImportFileError  # imported on first use

        try:
            added = self.workflow.load_samples()
        except (WorkflowError, ImportFileError, OSError, *DB_ERRORS) as e:
            self.show_error(f"The sample prompts could not be loaded: {e}")
            return 0
        self._show_queue()
        if self.prompt is None:
            self.load_next()
        self.messages.show_info(f"{count(added, 'sample prompt')} added.")
        return added

    # -- judging ------------------------------------------------------------------------------------

    def submit(self, *, then_load_next: bool = True) -> Judgment | None:
        if self.bench.phase != "judging" or self.prompt is None or self.session is None or self.tutor is None:
            return None
        reasons = self.bench.blocking_reasons()
        if reasons:
            self.messages.show_message("Not submitted: " + "; ".join(reasons) + ".", severity="warning", timeout_ms=6000)
            return None
        assert self.bench.state is not None
        prompt = self.prompt
        try:
            judgment = self.workflow.submit(
                self.bench.state, seconds_spent=round(time.monotonic() - self.item_started, 3)
            )
        except DB_ERRORS as e:
            self.show_error(f"The judgment was not saved: {e}")
            return None
        self.queue_model.remove(prompt.id)
        self._update_queue_title()
        self.messages.hide()
        self._update_status()
        self.judgment_saved.emit(judgment)
        if then_load_next:
            self.load_next()
        self._update_history_buttons()
        return judgment

    def submit_and_continue(self) -> None:
        if self.submit(then_load_next=False) is not None:
            self.continue_conversation()

    def skip(self) -> None:
        if self.prompt is None:
            return
        if self.model.is_generating():
            self.model.stop_generation()
        self.queue_model.move_to_end(self.prompt.id)
        item = self.workflow.skip()
        if item is None:
            self.load_next()
        else:
            self._show_item(item)

    def undo(self) -> bool:
        """Take back the newest submission not yet undone (Ctrl+Z, again for the one before)
        and put the item back on the bench as it was."""
        if not self.workflow.can_undo():
            self.messages.show_info("Nothing to undo.")
            return False
        judgment, _ = self.workflow.history[-1]
        try:
            item = self.workflow.undo()
        except DB_ERRORS as e:
            self.show_error(f"Could not undo: {e}")
            return False
        assert item is not None
        if self.queue_model.row_of(item.prompt.id) < 0:
            self.queue_model.insert(0, item.prompt)
        self._update_queue_title()
        self._show_item(item)
        if judgment.seconds_spent:
            self.item_started = time.monotonic() - judgment.seconds_spent
        self._update_status()
        self._update_history_buttons()
        self.messages.show_info("Last submission undone: it is back on the bench.")
        self.judgment_undone.emit(judgment.id)
        return True

    def reopen_judgment(self, judgment_id: str) -> None:
        """Put a past judgment on the bench with its ranking, flags and correction; the next
        submit saves a new version that supersedes it (the old one is kept for audit)."""
        if self.session is None:
            self.show_error("Start a session first (Ctrl+Shift+N); the new version is saved in it.")
            return
        try:
            item = self.workflow.reopen(judgment_id)
        except WorkflowError as e:
            self.show_error(_sentence(e))
            return
        except DB_ERRORS as e:
            self.show_error(f"The judgment could not be read: {e}")
            return
        self._show_item(item)
        self.messages.show_info(
            "Editing a past judgment: Submit saves a new version; the old one is kept for audit."
        )

    def begin_session(self) -> str:
        """Start the session the database opens in (core ``opening_of``): a pack's tutor, the
        database's last tutor, else this machine's own; returns the reason ("ask": none)."""
        try:
            opening = self.workflow.opening(own_domain=self._own_domain())
        except DB_ERRORS as e:
            self.show_error(f"The database could not be read: {e}")
            return "ask"
        if opening.tutor is not None:
            self.start_session(tutor_name=opening.tutor, domain=opening.domain)
        return opening.reason

    def _own_domain(self) -> str | None:
        return self.settings.last_domain or next(iter(self.settings.tutor_domains), None)

    def start_pack_session(self) -> bool:
        """On a lab's work pack: a session as the pack's tutor. False on an ordinary database."""
        try:
            is_pack = self.workflow.pack_tutor() is not None
        except DB_ERRORS as e:
            self.show_error(f"The pack could not be read: {e}")
            return False
        return is_pack and self.begin_session() == "pack" and self.session is not None

    def open_database(self, path: str) -> bool:
        """Work on another database or a lab's pack (core ``TutorWorkflow.open_database``: it
        opens in its own tutor's session, never the previous database's). False, with a
        message, on a bad file."""
        self.model.stop_generation()
        self.backup_runner.wait(30000)
        if self.backups is not None:
            self.backups.maybe_backup(force=True)
        try:
            self.workflow.open_database(path, own_domain=self._own_domain())
        except (*DB_ERRORS, WorkflowError, OSError) as e:
            self.show_error(f"{Path(path).name} could not be opened: {e}")
            return False
        if self.dashboard is not None:
            self.dashboard.close()
            self.dashboard = None
        self.backups = BackupScheduler(self.store) if self.store.path is not None else None
        self.requests.clear()
        self.plans.clear()
        if self.session is None:
            self.queue_model.set_prompts([])
            self.bench.show_empty("Who is working on this database? Start a session (Ctrl+Shift+N).")
            self.session_label.setText("No session")
        else:
            self._show_session()
        self._update_title()
        self._update_status()
        self.database_opened.emit(str(path))
        return True

    def _update_history_buttons(self) -> None:
        try:
            can_continue = self.workflow.can_continue()
        except DB_ERRORS:
            can_continue = False
        self.bench.set_history(can_undo=self.workflow.can_undo(), can_continue=can_continue)

    def continue_conversation(self, text: str | None = None) -> Prompt | None:
        """Next turn of the last judged conversation: the best (or corrected) answer becomes
        the assistant's turn, ``text`` the user's next one. Without ``text``, asks for it."""
        if not self.history or self.session is None:
            self.messages.show_info("Submit a judgment first; its best answer carries the conversation on.")
            return None
        try:
            carried = self.workflow.carried_answer()
        except DB_ERRORS:
            carried = None
        if carried is None:
            self.show_error("Nothing to carry forward: all answers were bad and none was corrected.")
            return None
        if text is None:
            from hitl_desktop.qt.dialogs.text_entry import ContinueDialog

            _, prompt = self.history[-1]
            answer, corrected = carried
            dialog = ContinueDialog(self, answer=answer, corrected=corrected)
            dialog.accepted.connect(lambda: self.continue_conversation(dialog.text()))
            dialog.rejected.connect(lambda: self.load_next() if self.bench.phase == "judging" and self.prompt and self.prompt.id == prompt.id else None)
            self._open(dialog)
            return None
        try:
            new = self.workflow.continue_conversation(text)
        except WorkflowError as e:
            self.show_error(_sentence(e))
            return None
        except DB_ERRORS as e:
            self.show_error(f"The next turn could not be saved: {e}")
            return None
        self.queue_model.insert(0, new)
        self._update_queue_title()
        assert self.workflow.item is not None
        self._show_item(self.workflow.item)
        return new

    # -- corrections -----------------------------------------------------------------------------------

    def open_correction(self, candidate_id: str) -> None:
        from hitl_desktop.qt.dialogs.correction import CorrectionDialog

        cand = self.bench.candidate_by_id(candidate_id)
        state = self.bench.state
        if cand is None or state is None:
            return
        current = None
        if state.correction is not None and state.correction.candidate_id == candidate_id:
            current = state.correction.text
        position = state.display_order.index(candidate_id) if candidate_id in state.display_order else 0
        dialog = CorrectionDialog(self, original=cand.text, current=current, position=position)
        self.correction_dialog = dialog

        def accepted() -> None:
            if dialog.removed:
                self.bench.set_correction(None)
            else:
                self.apply_correction(candidate_id, dialog.text())

        dialog.accepted.connect(accepted)
        self._open(dialog)

    def apply_correction(self, candidate_id: str, text: str) -> None:
        if self.bench.state is None:
            return
        if not text.strip():
            self.show_error("A correction cannot be empty.")
            return
        self.bench.set_correction(Correction(text=text, candidate_id=candidate_id))

    # -- other dialogs ---------------------------------------------------------------------------------

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
            domains = self.store.domains()
            tutors = [t.name for t in self.store.tutors()]
        except DB_ERRORS as e:
            self.show_error(str(e))
            return
        dialog = ExportDialog(
            self,
            db_path=str(self.store.path),
            domains=domains,
            tutors=tutors,
            domain=self.session.domain if self.session else "",
            default_dir=str(Path.home()),
        )
        self.export_dialog = dialog
        self._open(dialog)

    def open_quality_dashboard(self) -> None:
        """The quality dashboard (agreement, per-tutor figures), a non-modal window."""
        try:
            from hitl_desktop.qt.dashboard import QualityDashboard
        except ImportError as e:  # pragma: no cover - optional module
            self.show_error(f"The quality dashboard is not available: {e}")
            return
        if self.dashboard is None:
            # gold figures for a lead only (View → Lead mode): gold items stay unannounced
            from hitl_desktop.qt.menus import is_lead

            self.dashboard = QualityDashboard(self.store, self, show_gold=is_lead(self))
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

    # -- status ------------------------------------------------------------------------------------------

    def _update_status(self) -> None:
        state = self.model.state
        self.state_label.setText({"idle": "model: not loaded", "loading": "loading…"}.get(state, state))
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)
        if self.last_tokens_per_second:
            self.speed_label.setText(f"{self.last_tokens_per_second:.1f} tok/s")
        done = 0
        if self.session is not None:
            try:
                done = (self.workflow.session_summary() or {}).get("items", 0)
            except DB_ERRORS:
                done = 0
            self.items_label.setText(f"{done} done this session")
            self.summary_label.setText(self.session_summary_text())
            tutor = self.tutor.name if self.tutor else ""
            self.session_label.setText(
                f"<b>{html.escape(tutor)}</b> · {html.escape(self.session.domain)} · {done} done"
            )
        else:
            self.items_label.setText("")
            self.summary_label.setText("")


def process_events_until(predicate, timeout_s: float = 10.0) -> bool:
    """Spin the event loop until ``predicate()`` (helper for scripts and benchmarks)."""
    deadline = time.monotonic() + timeout_s
    app = QApplication.instance()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


