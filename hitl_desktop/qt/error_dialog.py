"""An unexpected error in the app: one line in a dialog, its traceback in the log.

What the CLI does for a command (``cli_errors``), the app does for a slot, a timer or a
callback that raises: :class:`ErrorReporter` is ``sys.excepthook`` while the app runs. It keeps
the traceback with ``core.errors.log_traceback`` (``errors.log`` in the user's data folder) and
shows ``core.errors.one_line`` in a dialog that says the work is saved and where the details
are. Only one dialog at a time: an error raised while it shows is logged, not shown again.
A refusal of bad input never comes here: views show those messages themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import QMessageBox, QWidget

from hitl_desktop.core.errors import log_traceback, one_line

TITLE = "hitl-desktop: something went wrong"


def message_for(exc: BaseException, log: object) -> str:
    where = f"The details for a bug report are in {log}." if log else "The details could not be written to the log."
    return f"{one_line(exc)}\n\nEvery judgment you submitted is saved. {where}"


class ErrorReporter:
    """``sys.excepthook`` for the app's lifetime (``install`` / ``uninstall``)."""

    def __init__(self, parent: Callable[[], QWidget | None] = lambda: None) -> None:
        self.parent = parent
        self.previous = sys.excepthook
        self.showing = False
        self.reported: list[str] = []  # the lines shown, newest last

    def install(self) -> ErrorReporter:
        self.previous = sys.excepthook
        sys.excepthook = self.hook
        return self

    def uninstall(self) -> None:
        if sys.excepthook == self.hook:
            sys.excepthook = self.previous

    def hook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            self.previous(kind, exc, tb)
            return
        if exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        log = log_traceback(exc, context="app")
        if self.showing:
            return
        text = message_for(exc, log)
        self.reported.append(text)
        self.showing = True
        try:
            QMessageBox.critical(self.parent(), TITLE, text)
        finally:
            self.showing = False
