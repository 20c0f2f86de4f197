"""The main window: queue | bench | guidelines, wired to the store and the model worker.

The window owns the Store (GUI thread) and writes every judgment at once. The model runs in
the ``ModelController``'s thread; its results arrive by signal and are stored here.
"""

from __future__ import annotations

import contextlib
import html
import json
import random
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
from hitl_desktop.core.engine import candidates_from_result, seeds_for
from hitl_desktop.core.guidelines import Guideline, GuidelineLibrary, resources_dir
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import Correction, Judgment, Message, Prompt, Session, Tutor
from hitl_desktop.qt.bench import BenchView
from hitl_desktop.qt.candidate_card import FLAG_KEYS
from hitl_desktop.qt.markdown_view import SafeTextView
from hitl_desktop.qt.message_bar import MessageBar
from hitl_desktop.qt.models import PromptQueueModel, PromptRole
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.workers import (
    BackendFactory,
    GenerationRequest,
    ModelController,
    RestartButton,
    TaskRunner,
)

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)


def _shuffled(n: int) -> list[int]:
    order = list(range(n))
    random.SystemRandom().shuffle(order)
    return order


BACKUP_CHECK_MS = 60_000  # how often to ask whether a backup is due (BackupScheduler decides)


class MainWindow(QMainWindow):
    session_started = Signal(object)  # Session
    prompt_loaded = Signal(object)  # Prompt
    candidates_ready = Signal(str)  # prompt id: the cards can be judged
    judgment_saved = Signal(object)  # Judgment
    judgment_undone = Signal(str)  # judgment id
    generation_failed = Signal(str)

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
        self.store = store
        self.settings = settings
        self.guidelines = guidelines or GuidelineLibrary()
        self.model_path_override = model_path
        self.tutor: Tutor | None = None
        self.session: Session | None = None
        self.guideline: Guideline | None = None
        self.prompt: Prompt | None = None
        self.item_started = time.monotonic()
        self.history: list[tuple[Judgment, Prompt]] = []
        self.skipped: set[str] = set()
        self.requests: dict[int, GenerationRequest] = {}
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
        b.regenerate_all_requested.connect(self.regenerate_all)
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
        if self.session is not None:
            with contextlib.suppress(*DB_ERRORS):
                self.store.end_session(self.session.id)
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
        path = self.model_path()
        self.model_label.setText(Path(path).name if path else "Gemma 3 270M (embedded)")
        self.load_progress.setValue(0)
        self.load_progress.show()
        self.model.load(path, device=self.settings.device)

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
        self.model_label.setText(f"{name}" + (f" · {dtype}" if dtype else ""))
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

    def _conversation(self, prompt: Prompt) -> list[Message]:
        return prompt.conversation()

    def _generate_all(self) -> None:
        prompt = self.prompt
        if prompt is None:
            return
        k = self.settings.k
        base = self.settings.seed
        seeds = seeds_for(prompt, base_seed=base, k=k) if base is not None else self.settings.seeds(k)
        self.bench.begin_generation(k=k, positions=_shuffled(k), waiting=self._waiting_text())
        request = self.model.generate(
            conversation=self._conversation(prompt),
            k=k,
            params=self.settings.sampling_params(),
            seeds=seeds,
            purpose="all",
            meta={"prompt_id": prompt.id},
        )
        self.requests[request.request_id] = request
        self._update_status()

    def regenerate_all(self) -> None:
        """Throw away the unjudged candidates and generate K new ones."""
        if self.prompt is None:
            return
        self.model.stop_generation()
        try:
            self.store.delete_unjudged_candidates(self.prompt.id)
        except DB_ERRORS as e:
            self.show_error(f"Could not clear the old candidates: {e}")
            return
        self._generate_all()

    def regenerate_slot(self, slot: int) -> None:
        prompt = self.prompt
        if prompt is None or self.bench.state is None:
            return
        old = self.bench.slots[slot] if slot < len(self.bench.slots) else None
        if old is None:
            return
        self.bench.begin_regeneration(slot, waiting=self._waiting_text())
        request = self.model.generate(
            conversation=self._conversation(prompt),
            k=1,
            params=self.settings.sampling_params(),
            seeds=self.settings.seeds(1, fresh=True),
            slots=[slot],
            purpose="one",
            meta={"prompt_id": prompt.id, "old_id": old.id, "index": old.index},
        )
        self.requests[request.request_id] = request

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
        if result.seconds and result.tokens:
            self.last_tokens_per_second = result.tokens / result.seconds
        self._update_status()
        prompt = self.prompt
        if prompt is None or request.meta.get("prompt_id") != prompt.id:
            return  # the tutor moved on; nothing is kept
        if request.purpose == "one":
            self._store_regenerated(request, result)
            return
        if any(r.meta.get("prompt_id") == prompt.id and r.purpose == "all" for r in self.requests.values()):
            return  # a newer generation for this prompt is on its way
        # a candidate stopped before it wrote anything is dropped; an empty answer the model
        # chose to give (it ended at once) is kept: it is a (bad) answer to judge
        cands = [
            c
            for c in candidates_from_result(prompt, result)
            if c.text.strip() or c.params.get("finish_reason") != "stopped"
        ]
        if len(cands) < 2:
            self.bench.show_no_candidates(
                "Generation stopped before two answers were written. Press Ctrl+G to generate again."
                if result.stopped
                else "The model wrote fewer than two answers. Press Ctrl+G to try again."
            )
            return
        try:
            self.store.add_candidates(cands)
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be saved: {e}")
            return
        kept = {c.index for c in cands}
        if len(kept) == len(self.bench.positions):
            slot_of_index = {c.index: i for i, c in enumerate(cands)}
            positions = [slot_of_index[s] for s in self.bench.positions if s in slot_of_index]
        else:
            positions = _shuffled(len(cands))
        self.bench.show_candidates(cands, positions=positions)
        self.item_started = time.monotonic()
        if result.stopped:
            self.messages.show_info("Generation stopped: the answers are shown as far as they were written.")
        self.candidates_ready.emit(prompt.id)

    def _store_regenerated(self, request: GenerationRequest, result: GenerationResult) -> None:
        slot = request.slots[0]
        prompt = self.prompt
        assert prompt is not None
        new = None
        made = candidates_from_result(prompt, result, first_index=int(request.meta.get("index", 0)))
        if made and (made[0].text.strip() or made[0].params.get("finish_reason") != "stopped"):
            new = made[0]
            try:
                self.store.replace_candidate(request.meta["old_id"], new)
            except DB_ERRORS as e:
                self.show_error(f"The new candidate could not be saved: {e}")
                new = None
        self.bench.finish_regeneration(slot, new)
        self.candidates_ready.emit(prompt.id)

    def _generation_failed(self, request: GenerationRequest, message: str) -> None:
        self.requests.pop(request.request_id, None)
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
        domain = domain.strip().lower()
        try:
            guideline = self.guidelines.current(domain)
        except (ValueError, OSError) as e:
            self.show_error(f"Guidelines for {domain!r} could not be read: {e}")
            return None
        try:
            if self.session is not None:
                self.store.end_session(self.session.id)
            tutor = self.store.ensure_tutor(tutor_name, tutor_domains)
            session = self.store.start_session(tutor_id=tutor.id, domain=domain, guideline_version=guideline.version)
        except DB_ERRORS as e:
            self.show_error(f"The session could not be started: {e}")
            return None
        self.model.stop_generation()
        self.tutor, self.session, self.guideline = tutor, session, guideline
        self.history.clear()
        self.skipped.clear()
        self.settings.tutor_name = tutor.name
        self.settings.last_domain = domain
        self._show_guideline()
        self.setWindowTitle(f"hitl-desktop — {domain} · {tutor.name}")
        self.refresh_queue()
        self.load_next()
        self._update_status()
        self.session_started.emit(session)
        return session

    def end_session(self) -> None:
        if self.session is None:
            return
        summary = self.session_summary_text()
        try:
            self.store.end_session(self.session.id)
        except DB_ERRORS as e:
            self.show_error(f"The session could not be ended: {e}")
        self.model.stop_generation()
        self.session = None
        self.prompt = None
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
        if self.session is None:
            return ""
        try:
            s = self.store.session_summary(self.session.id)
        except DB_ERRORS:
            return ""
        per = s.get("seconds_per_item")
        per_text = f"{per:.0f} s per item" if per else "— per item"
        return (
            f"This session: {s['items']} item(s) · {per_text} · {s['pairs']} pair(s)"
            f" · {s.get('corrections', 0)} correction(s)"
        )

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
            g = self.guidelines.revert(domain) if revert else self.guidelines.save(domain, text)
        except (OSError, ValueError) as e:
            self.show_error(f"The guidelines could not be saved: {e}")
            return None
        if self.guideline is not None and self.guideline.domain == domain:
            self.guideline = g
            self._show_guideline()
            self.messages.show_info(f"Guidelines saved as {g.version}; new judgments record it.")
        return g

    # -- the queue -------------------------------------------------------------------------------------

    def refresh_queue(self) -> None:
        if self.session is None or self.tutor is None:
            self.queue_model.set_prompts([])
            return
        try:
            prompts = self.store.queued_prompts(domain=self.session.domain, tutor_id=self.tutor.id)
        except DB_ERRORS as e:
            self.show_error(f"The queue could not be read: {e}")
            return
        fresh = [p for p in prompts if p.id not in self.skipped]
        later = [p for p in prompts if p.id in self.skipped]
        self.queue_model.set_prompts(fresh + later)
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
        current = self.prompt.id if self.prompt else None
        prompts = self.queue_model.prompts()
        choice = next((p for p in prompts if p.id != current and p.id not in self.skipped), None)
        if choice is None:
            choice = next((p for p in prompts if p.id != current), None)
        if choice is None:
            self.prompt = None
            samples = self._samples_path() is not None
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
        """Put a prompt on the bench: its stored candidates, or new ones from the model."""
        if self.model.is_generating():
            self.model.stop_generation()
        self.prompt = prompt
        self.bench.show_prompt(prompt, meta=self._prompt_meta(prompt))
        self._select_in_queue()
        self.prompt_loaded.emit(prompt)
        try:
            cands = self.store.candidates_for(prompt.id)
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be read: {e}")
            return
        self._update_history_buttons()
        if len(cands) >= 2:
            ids = [c.id for c in cands]
            if order and set(order) <= set(ids) and len(order) == len(ids):
                positions = [ids.index(cid) for cid in order]
            else:
                positions = _shuffled(len(cands))
            self.bench.show_candidates(cands, positions=positions, state=state)
            self.item_started = time.monotonic()
            self.candidates_ready.emit(prompt.id)
            return
        if cands:
            try:
                self.store.delete_unjudged_candidates(prompt.id)
            except DB_ERRORS as e:
                self.show_error(str(e))
                return
        self._generate_all()

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
        prompt = Prompt(text=text, domain=self.session.domain, source="typed")
        try:
            self.store.add_prompt(prompt)
        except DB_ERRORS as e:
            self.show_error(f"The prompt could not be saved: {e}")
            return None
        self.queue_model.insert(0, prompt)
        self._update_queue_title()
        self.load_prompt(prompt)
        return prompt

    def _samples_path(self) -> Path | None:
        if self.session is None:
            return None
        p = resources_dir() / "samples" / f"{self.session.domain}.jsonl"
        return p if p.is_file() else None

    def load_samples(self) -> int:
        """Add the domain's sample prompts (those not added before); returns how many."""
        path = self._samples_path()
        if path is None or self.session is None:
            self.show_error("There are no sample prompts for this domain.")
            return 0
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            known = self.store.prompt_ids_by_external_id(r["id"] for r in records if r.get("id"))
            prompts = [
                Prompt(text=r["prompt"], domain=self.session.domain, external_id=r.get("id"), source="sample")
                for r in records
                if r.get("id") not in known
            ]
            if prompts:
                self.store.bulk_insert(prompts=prompts)
        except (*DB_ERRORS, OSError, ValueError, KeyError) as e:
            self.show_error(f"The sample prompts could not be loaded: {e}")
            return 0
        self.refresh_queue()
        if self.prompt is None:
            self.load_next()
        self.messages.show_info(f"{len(prompts)} sample prompt(s) added.")
        return len(prompts)

    # -- judging ------------------------------------------------------------------------------------

    def submit(self, *, then_load_next: bool = True) -> Judgment | None:
        if self.bench.phase != "judging" or self.prompt is None or self.session is None or self.tutor is None:
            return None
        reasons = self.bench.blocking_reasons()
        if reasons:
            self.messages.show_message("Not submitted: " + "; ".join(reasons) + ".", severity="warning", timeout_ms=6000)
            return None
        assert self.bench.state is not None
        judgment = self.bench.state.to_judgment(
            prompt_id=self.prompt.id,
            tutor_id=self.tutor.id,
            session_id=self.session.id,
            guideline_version=self.guideline.version if self.guideline else "",
            seconds_spent=round(time.monotonic() - self.item_started, 3),
        )
        try:
            self.store.save_judgment(judgment)
        except DB_ERRORS as e:
            self.show_error(f"The judgment was not saved: {e}")
            return None
        prompt = self.prompt
        self.history.append((judgment, prompt))
        self.queue_model.remove(prompt.id)
        self.skipped.discard(prompt.id)
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
        self.skipped.add(self.prompt.id)
        self.queue_model.move_to_end(self.prompt.id)
        self.load_next()

    def undo(self) -> bool:
        """Take back the last submission and put the item back on the bench as it was."""
        if not self.history:
            self.messages.show_info("Nothing to undo.")
            return False
        judgment, prompt = self.history[-1]
        try:
            self.store.delete_judgment(judgment.id)
        except DB_ERRORS as e:
            self.show_error(f"Could not undo: {e}")
            return False
        self.history.pop()
        if self.queue_model.row_of(prompt.id) < 0:
            self.queue_model.insert(0, prompt)
        self._update_queue_title()
        state = JudgingState.from_judgment(judgment, judgment.display_order)
        self.load_prompt(prompt, state=state, order=judgment.display_order)
        if judgment.seconds_spent:
            self.item_started = time.monotonic() - judgment.seconds_spent
        self._update_status()
        self._update_history_buttons()
        self.messages.show_info("Last submission undone: it is back on the bench.")
        self.judgment_undone.emit(judgment.id)
        return True

    def _update_history_buttons(self) -> None:
        can_continue = False
        if self.history:
            j, _ = self.history[-1]
            can_continue = j.correction is not None or not j.all_bad
        self.bench.set_history(can_undo=bool(self.history), can_continue=can_continue)

    def _carried_answer(self, judgment: Judgment) -> tuple[str, bool] | None:
        if judgment.correction is not None:
            return judgment.correction.text, True
        if judgment.all_bad:
            return None
        try:
            cands = {c.id: c for c in self.store.candidates_for(judgment.prompt_id)}
        except DB_ERRORS:
            return None
        best = min(judgment.ranks.values())
        order = judgment.display_order or list(judgment.ranks)
        for cid in order:
            if judgment.ranks.get(cid) == best and cid in cands:
                return cands[cid].text, False
        return None

    def continue_conversation(self, text: str | None = None) -> Prompt | None:
        """Next turn of the last judged conversation: the best (or corrected) answer becomes
        the assistant's turn, ``text`` the user's next one. Without ``text``, asks for it."""
        if not self.history or self.session is None:
            self.messages.show_info("Submit a judgment first; its best answer carries the conversation on.")
            return None
        judgment, prompt = self.history[-1]
        carried = self._carried_answer(judgment)
        if carried is None:
            self.show_error("Nothing to carry forward: all answers were bad and none was corrected.")
            return None
        answer, corrected = carried
        if text is None:
            from hitl_desktop.qt.dialogs.text_entry import ContinueDialog

            dialog = ContinueDialog(self, answer=answer, corrected=corrected)
            dialog.accepted.connect(lambda: self.continue_conversation(dialog.text()))
            dialog.rejected.connect(lambda: self.load_next() if self.bench.phase == "judging" and self.prompt and self.prompt.id == prompt.id else None)
            self._open(dialog)
            return None
        new = Prompt(
            text=text,
            domain=self.session.domain,
            messages=[*prompt.messages, Message("user", prompt.text), Message("assistant", answer)],
            parent_judgment_id=judgment.id,
            source="continued",
        )
        try:
            self.store.add_prompt(new)
        except DB_ERRORS as e:
            self.show_error(f"The next turn could not be saved: {e}")
            return None
        self.queue_model.insert(0, new)
        self._update_queue_title()
        self.load_prompt(new)
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
                done = self.store.session_summary(self.session.id)["items"]
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

    # --- labgui stand-ins: app's implementations replace these at merge

    def open_database(self, path: str) -> bool:
        """Switch the window to another database (or a tutor's pack); False when refused."""
        try:
            store = Store.open(path)
        except DB_ERRORS as e:
            self.show_error(f"The database could not be opened: {e}")
            return False
        tutor, domain = (self.tutor.name, self.session.domain) if self.tutor and self.session else (None, None)
        self.model.stop_generation()
        if self.session is not None:
            with contextlib.suppress(*DB_ERRORS):
                self.store.end_session(self.session.id)
        old, self.store, self.session, self.prompt = self.store, store, None, None
        old.close()
        self.backups = BackupScheduler(store)
        self.history.clear()
        if self.dashboard is not None:
            self.dashboard.close()
        self.dashboard = None
        self.queue_model.set_prompts([])
        if tutor and domain:
            self.start_session(tutor_name=tutor, domain=domain)
        self.setWindowTitle(f"hitl-desktop — {Path(path).name}")
        return True

    def reopen_judgment(self, judgment_id: str) -> None:
        """Put a past judgment back on the bench as it was, to judge again."""
        item = next((i for i in self.store.judged_items() if i.judgment.id == judgment_id), None)
        if item is None:
            self.show_error("That judgment is no longer in the database.")
            return
        j = item.judgment
        self.load_prompt(item.prompt, state=JudgingState.from_judgment(j, j.display_order), order=j.display_order)


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


