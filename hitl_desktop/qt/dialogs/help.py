"""F1: the keyboard scheme."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from hitl_desktop.qt.bench import KEY_TABLE


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        rows = "".join(
            f"<tr><td style='padding:3px 14px 3px 0'><b>{html.escape(k)}</b></td>"
            f"<td style='padding:3px 0'>{html.escape(v)}</td></tr>"
            for k, v in KEY_TABLE
        )
        label = QLabel(
            "<p>Rank by pressing the cards' numbers, best first. Ties: press <b>=</b> before a "
            "number.<br>Everything is saved when you submit.</p>"
            f"<table>{rows}</table>"
        )
        # no word wrap: a wrapped rich-text table gets a wrong height-for-width and its last
        # rows were cut off; unwrapped, the label's size hint is exact
        label.setWordWrap(False)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setAccessibleName("Keyboard shortcuts")
        self.label = label
        layout.addWidget(label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
