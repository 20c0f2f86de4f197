"""The one way to run an operation off the GUI thread (in the spirit of Anki's ``CollectionOp``):
``runner.run(op, on_success=..., on_failure=..., on_progress=...)``.

``op(progress, cancelled)`` runs in a QThread of its own: ``progress(fraction, message)`` reports
back (queued, on the GUI thread), ``cancelled()`` says whether :meth:`OperationRunner.cancel`
was asked. The callbacks, and the runner's ``progressed`` / ``succeeded`` / ``failed`` signals,
arrive on the GUI thread. An operation never touches the GUI thread's Store: the lab's operations
(core/operations.py) open their own connection on the database file. The model's controller
(qt/workers.py) is not an operation: it is a long-lived process.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from hitl_desktop.core.collector import paused as collector_paused
from hitl_desktop.core.errors import log_traceback

__all__ = ["OperationRunner", "collector_paused", "describe_error", "preload", "process_events_until"]

Progress = Callable[[float, str], None]
Op = Callable[[Progress, Callable[[], bool]], Any]


def preload(context: QObject, *modules: str, delay_ms: int = 1500) -> None:
    """Import ``modules`` in a daemon thread ``delay_ms`` after now (while ``context`` lives):
    a view opened later (the Quality dashboard: some 60 ms of imports) then doesn't import on
    the GUI thread at the click. The thread runs Python code, so it yields the GIL every few
    milliseconds; a click before it is done waits on the import lock, as it would import."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - the click imports it again and reports
                continue

    QTimer.singleShot(delay_ms, context, lambda: threading.Thread(target=run, name="preload", daemon=True).start())


def describe_error(e: BaseException) -> str:
    """One line: a model's own message as it is, else the kind of error and its message."""
    from hitl_desktop.core.backends.base import ModelError

    text = str(e).strip() or type(e).__name__
    return text if isinstance(e, ModelError) else f"{type(e).__name__}: {text}"


class _Task(QObject):
    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, op: Op, cancel: threading.Event) -> None:
        super().__init__()
        self.op, self.cancel = op, cancel

    @Slot()
    def run(self) -> None:
        try:
            result = self.op(self.progressed.emit, self.cancel.is_set)
        except BaseException as e:  # noqa: BLE001 - reported to the GUI, never lost
            log_traceback(e, context="operation")  # for a bug report; the view shows one line
            self.failed.emit(describe_error(e))
            return
        finally:
            # The thread ends with its operation, not when the GUI thread gets the result:
            # a GUI thread that waits for it (a view closing, OperationRunner.wait) is not
            # processing that result, and would otherwise wait out its whole timeout.
            QThread.currentThread().quit()
        self.succeeded.emit(result)


class OperationRunner(QObject):
    """Runs one operation at a time in its own thread (module docstring)."""

    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, name: str = "operation") -> None:
        super().__init__(parent)
        self.name = name
        self._thread: QThread | None = None
        self._task: _Task | None = None
        self._cancel = threading.Event()
        self._pending = False  # an operation whose result has not reached the callbacks yet
        self._on_success: Callable[[Any], None] | None = None
        self._on_failure: Callable[[str], None] | None = None
        self._on_progress: Progress | None = None

    def run(
        self,
        op: Op,
        *,
        on_success: Callable[[Any], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running")
        self._pending = True
        self._on_success, self._on_failure, self._on_progress = on_success, on_failure, on_progress
        self._cancel = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(self.name)
        self._task = _Task(op, self._cancel)
        self._task.moveToThread(self._thread)
        self._thread.started.connect(self._task.run)
        self._task.progressed.connect(self._progressed)
        self._task.succeeded.connect(self._done)
        self._task.failed.connect(self._failed)
        self._thread.start()

    def is_running(self) -> bool:
        """Until its result (or failure) has reached the GUI thread's callbacks: the thread may
        have ended before (:meth:`wait` returns then), the runner is still busy with it."""
        return self._pending or (self._thread is not None and self._thread.isRunning())

    def cancel(self) -> None:
        """Ask the operation under way to stop at its next progress report (nothing is kept)."""
        self._cancel.set()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Whether the operation's thread ended within ``timeout_ms`` (its result may still be
        on its way to the callbacks: they run once the GUI thread runs its event loop)."""
        return True if self._thread is None else self._thread.wait(timeout_ms)

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(10000)

    def _progressed(self, fraction: float, message: str) -> None:
        if self._on_progress is not None:
            self._on_progress(fraction, message)
        self.progressed.emit(fraction, message)

    def _done(self, result: object) -> None:
        self._pending = False
        self._stop_thread()
        if self._on_success is not None:
            self._on_success(result)
        self.succeeded.emit(result)

    def _failed(self, message: str) -> None:
        self._pending = False
        self._stop_thread()
        if self._on_failure is not None:
            self._on_failure(message)
        self.failed.emit(message)


def process_events_until(predicate, timeout_s: float = 10.0) -> bool:
    """Spin the event loop until ``predicate()`` (helper for scripts and benchmarks)."""
    deadline = time.monotonic() + timeout_s
    app = QCoreApplication.instance()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True
