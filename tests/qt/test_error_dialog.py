"""An unexpected error in the app (issue 20): one line in a dialog, the traceback in the log,
never a traceback on the terminal or a silent failure; an operation's failure is logged too."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from hitl_desktop.core import errors
from hitl_desktop.qt.error_dialog import TITLE, ErrorReporter
from hitl_desktop.qt.ops import OperationRunner


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def dialogs(monkeypatch):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a, **k: shown.append((title, text)))
    return shown


@pytest.mark.qt_no_exception_capture
def test_a_slot_that_raises_shows_one_line_and_logs_the_traceback(qtbot, data_home, dialogs, capsys):
    reporter = ErrorReporter().install()
    try:
        def broken_slot():
            raise OverflowError("Python int too large to convert to SQLite INTEGER\nsecond line")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=5000)
    finally:
        reporter.uninstall()
    assert sys.excepthook is not reporter.hook
    title, text = dialogs[0]
    first = text.splitlines()[0]
    assert title == TITLE
    assert first == "OverflowError: Python int too large to convert to SQLite INTEGER second line"
    assert "Traceback" not in text and str(errors.log_path()) in text
    logged = errors.log_path().read_text()
    assert "Traceback (most recent call last)" in logged and "in broken_slot" in logged
    assert "Traceback" not in capsys.readouterr().err


def test_an_error_while_the_dialog_shows_is_logged_not_shown_again(data_home, dialogs):
    reporter = ErrorReporter()
    reporter.showing = True  # a dialog is up
    try:
        raise KeyError("again")
    except KeyError as e:
        reporter.hook(type(e), e, e.__traceback__)
    assert dialogs == [] and "KeyError: 'again'" in errors.log_path().read_text()


def test_a_failed_operation_is_one_line_for_the_view_and_its_traceback_in_the_log(qtbot, data_home, capsys):
    runner = OperationRunner(name="test")
    failures: list[str] = []

    def op(progress, cancelled):
        raise ZeroDivisionError("division by zero")

    with qtbot.waitSignal(runner.failed, timeout=5000):
        runner.run(op, on_success=lambda _r: None, on_failure=failures.append)
    runner.wait()
    assert failures == ["ZeroDivisionError: division by zero"]
    assert "Traceback" in errors.log_path().read_text() and "in op" in errors.log_path().read_text()
    assert "Traceback" not in capsys.readouterr().err
