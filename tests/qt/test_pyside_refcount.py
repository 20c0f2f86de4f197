"""The Qt binding itself must keep Python's reference counts: PySide6 6.12.0 on CPython 3.11 loses
one reference to None on every call that returns nothing, and the app then aborts with "Fatal
Python error: none_dealloc" (or bool_dealloc, through signals carrying True) after a few thousand
calls or at exit. pyproject.toml keeps that release out; this test fails on any binding that leaks."""

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel


class _Emitter(QObject):
    toggled = Signal(bool)


def test_calls_returning_nothing_keep_none_alive(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for i in range(2000):
        label.setText(str(i % 7))
    assert abs(sys.getrefcount(None) - before) < 50


def test_signals_carrying_booleans_keep_true_alive(qtbot):
    emitter = _Emitter()
    seen = []
    emitter.toggled.connect(seen.append)
    before = sys.getrefcount(True)
    for _ in range(2000):
        emitter.toggled.emit(True)
    assert len(seen) == 2000
    gained = sys.getrefcount(True) - before
    assert abs(gained - len(seen)) < 50  # seen holds exactly 2000 references, nothing else may change
