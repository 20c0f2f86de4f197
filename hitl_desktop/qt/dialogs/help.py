"""F1: the keyboard scheme."""

from __future__ import annotations

import html

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
            "number. Everything is saved when you submit.</p>"
            f"<table>{rows}</table>"
        )
        label.setWordWrap(True)
        label.setAccessibleName("Keyboard shortcuts")
        layout.addWidget(label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
