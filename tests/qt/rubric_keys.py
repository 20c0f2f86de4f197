"""Keys pressed into the rubric panel and grid, as a tutor does (test_rubric_views, test_rubric_window)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

K = Qt.Key
CTRL = Qt.KeyboardModifier.ControlModifier


def keys(qtbot, *presses):
    """Each press (a key, or (key, modifiers)) into the focused widget, events processed."""
    for p in presses:
        k, mod = p if isinstance(p, tuple) else (p, Qt.KeyboardModifier.NoModifier)
        qtbot.keyClick(QApplication.focusWidget(), k, mod)
        QApplication.processEvents()


def write(qtbot, text, *, ups=0, downs=0):
    """Ctrl+N, the text, then the points (Left to the points column, up/down from 5)."""
    keys(qtbot, (K.Key_N, CTRL))
    qtbot.keyClicks(QApplication.focusWidget(), text)
    keys(qtbot, K.Key_Return, K.Key_Left, K.Key_Return, *([K.Key_Up] * ups), *([K.Key_Down] * downs),
         K.Key_Return)
