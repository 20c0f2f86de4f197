"""Continuing a conversation: the answer carried forward, and the user's next turn."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.qt.markdown_view import SafeTextView


class ContinueDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, *, answer: str, corrected: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Continue the conversation")
        self.resize(720, 560)
        layout = QVBoxLayout(self)
        head = QLabel(
            "The assistant's reply carried into the conversation "
            + ("(your correction):" if corrected else "(the best-ranked answer):")
        )
        head.setWordWrap(True)
        layout.addWidget(head)
        self.answer_view = SafeTextView(self, accessible_name="Assistant reply carried forward")
        self.answer_view.set_markdown(answer)
        layout.addWidget(self.answer_view, 2)
        layout.addWidget(QLabel("The user's next message:"))
        self.editor = QPlainTextEdit(self)
        self.editor.setPlaceholderText("Type the follow-up question…")
        self.editor.setAccessibleName("Next user message")
        layout.addWidget(self.editor, 1)
        self.error = QLabel("")
        self.error.setObjectName("Error")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Generate answers")
        ok.setShortcut("Ctrl+Return")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.editor.setFocus()

    def text(self) -> str:
        return self.editor.toPlainText().strip()

    def _accept(self) -> None:
        if not self.text():
            self.error.setText("Type the user's next message first.")
            return
        self.accept()
