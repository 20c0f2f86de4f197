"""Wires the desktop app: QApplication, Store, main window, model loading in the background.

``run(db_path, model_path, argv)`` is what ``hitl-desktop`` (no subcommand) calls. The window
shows at once; torch and transformers are imported later, in the model process. Nothing that
the first window does not draw runs before it is on screen: the model process starts, and the
first-run dialog asks, once the window is exposed (``when_exposed``); sqlite-utils comes without
pandas and numpy (see core/sqlitelib.py), markdown-it with the first rendered answer.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from hitl_desktop.core.backup import CorruptDatabase, restore
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import DEFAULT_DOMAINS
from hitl_desktop.qt import theme
from hitl_desktop.qt.error_dialog import ErrorReporter
from hitl_desktop.qt.main_window import MainWindow
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.workers import BackendFactory

ORGANIZATION = "hitl-desktop"
APPLICATION = "hitl-desktop"


def _application(argv: Sequence[str] | None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv else [sys.argv[0] if sys.argv else "hitl-desktop"])
    if not QCoreApplication.organizationName():
        QCoreApplication.setOrganizationName(ORGANIZATION)
    if not QCoreApplication.applicationName() or QCoreApplication.applicationName() == "python":
        QCoreApplication.setApplicationName(APPLICATION)
    return app  # type: ignore[return-value]


def create_window(
    *,
    store: Store,
    settings: AppSettings | None = None,
    model_path: str | None = None,
    backend_factory: BackendFactory | None = None,
) -> MainWindow:
    window = MainWindow(
        store=store,
        settings=settings or AppSettings(),
        model_path=model_path,
        backend_factory=backend_factory,
    )
    theme.follow_system(QApplication.instance(), lambda _t: window.apply_theme())  # type: ignore[arg-type]
    return window


def tear_down(app: QApplication, window: MainWindow) -> None:
    """After the event loop: end what outlives it, in PySide's order. The window's shutdown
    (idempotent) stops the model thread and its process and waits for the background tasks;
    then the Python callables connected to the application's signals are let go, the window
    and its children are deleted while the QApplication still exists, and the events their
    deletion posts are delivered, so that nothing Qt owns is left for the interpreter's
    finalization to destroy in whatever order it takes."""
    window.shutdown()
    theme.stop_following()
    with contextlib.suppress(RuntimeError, TypeError):
        app.aboutToQuit.disconnect(window.shutdown)
    window.hide()
    app.processEvents()
    if shiboken6.isValid(window):
        shiboken6.delete(window)  # now, while the QApplication exists (its children with it)
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


#: Start anyway after this long when the window is not reported exposed (a platform that
#: never sends the event, a window started minimised).
EXPOSE_FALLBACK_MS = 2000


class _FirstExpose(QObject):
    def __init__(self, window: QWidget, then: Callable[[], None]) -> None:
        super().__init__(window)
        self._window, self._then = window, then
        self._done = False
        QTimer.singleShot(EXPOSE_FALLBACK_MS, self, self._fire)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Expose and obj.isWindowType() and obj.isExposed():  # type: ignore[attr-defined]
            QTimer.singleShot(0, self, self._fire)  # after this first frame is drawn
        return False

    def _fire(self) -> None:
        if self._done:
            return
        self._done = True
        handle = self._window.windowHandle()
        if handle is not None:
            handle.removeEventFilter(self)
        self._then()


def when_exposed(window: QWidget, then: Callable[[], None]) -> None:
    """Call ``then`` once, on the GUI thread, right after ``window`` (shown) is first on
    screen, or after EXPOSE_FALLBACK_MS if that is never reported; work queued before the
    first frame (starting the model process, a dialog) would only delay it."""
    watcher = _FirstExpose(window, then)
    handle = window.windowHandle()
    if handle is None or handle.isExposed():
        QTimer.singleShot(0, watcher, watcher._fire)
    else:
        handle.installEventFilter(watcher)


def begin(window: MainWindow, *, ask: bool = True) -> None:
    """After the window shows: load the model, start the session the database opens in (a
    pack's tutor, the database's last one, this machine's own: core ``opening_of``), else ask
    who the tutor is (first run)."""
    window.start_model()
    if window.begin_session() != "ask":
        return
    settings = window.settings
    name, domains = settings.tutor_name, settings.tutor_domains
    if not name and ask:
        from hitl_desktop.qt.dialogs.tutor import FirstRunDialog

        dialog = FirstRunDialog(window, domains=domains)
        if dialog.exec() != FirstRunDialog.DialogCode.Accepted:
            window.bench.show_empty("Start a session when you are ready (Ctrl+Shift+N).")
            return
        name, domains = dialog.name(), dialog.domains()
        settings.tutor_name, settings.tutor_domains = name, domains
        settings.sync()
    if not name:
        return
    domain = settings.last_domain or (domains[0] if domains else DEFAULT_DOMAINS[0])
    window.start_session(tutor_name=name, domain=domain, tutor_domains=domains or None)


def open_store(db_path: str | None) -> Store | None:
    """Open the database; a damaged one offers its latest good backup. None: not opened."""
    try:
        return Store.open(db_path)
    except CorruptDatabase as e:
        if e.backup is None:
            QMessageBox.critical(None, "hitl-desktop", f"The database is damaged:\n\n{e}")
            return None
        answer = QMessageBox.question(
            None,
            "hitl-desktop: the database is damaged",
            f"{e.path} is damaged ({e.detail}).\n\nRestore the latest good backup, {e.backup.name}? "
            "The damaged file is kept beside the backups.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return None
        try:
            restore(e.path, e.backup)
            return Store.open(e.path)
        except StoreError as again:
            QMessageBox.critical(None, "hitl-desktop", f"The backup could not be restored:\n\n{again}")
            return None
    except StoreError as e:
        QMessageBox.critical(None, "hitl-desktop", f"The database could not be opened:\n\n{e}")
        return None


def run(db_path: str | None, model_path: str | None, argv: Sequence[str] | None = None) -> int:
    """Open the app on ``db_path`` (None: the default database) and run until it closes."""
    app = _application(argv)
    theme.apply(app)
    store = open_store(db_path)
    if store is None:
        return 2
    reporter = ErrorReporter().install()  # an unexpected error: one line in a dialog, traceback in the log
    try:
        window = create_window(store=store, model_path=model_path)
        reporter.parent = lambda: window
        window.show()
        when_exposed(window, lambda: begin(window))
        app.aboutToQuit.connect(window.shutdown)
        code = app.exec()
        tear_down(app, window)
        return code
    finally:
        reporter.uninstall()
        store.close()


def main(argv: Sequence[str] | None = None) -> int:  # python -m hitl_desktop.app [DB] [MODEL]
    args = list(sys.argv[1:] if argv is None else argv)
    db = args[0] if args else None
    model = args[1] if len(args) > 1 else None
    return run(db, model, [sys.argv[0]])


if __name__ == "__main__":
    raise SystemExit(main())
