"""A slim bar above the bench for errors and notices; the window stays usable."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget


class MessageBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.icon = QLabel("")
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setAccessibleName("Message")
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.severity = ""
        self.hide()

    def show_message(self, text: str, *, severity: str = "info", timeout_ms: int = 0) -> None:
        self.severity = severity
        self.setProperty("severity", severity)
        self.style().unpolish(self)
        self.style().polish(self)
        self.icon.setText({"error": "⚠", "warning": "⚠", "info": "ℹ"}.get(severity, ""))
        self.label.setText(text)
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def show_error(self, text: str) -> None:
        self.show_message(text, severity="error")

    def show_info(self, text: str, timeout_ms: int = 6000) -> None:
        self.show_message(text, severity="info", timeout_ms=timeout_ms)

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
