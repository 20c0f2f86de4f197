"""Editing a domain's guidelines; each save is a new version."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.guidelines import Guideline
from hitl_desktop.qt.markdown_view import SafeTextView
from hitl_desktop.qt.wording import count


class GuidelineEditorDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, *, guideline: Guideline, history: int = 1) -> None:
        super().__init__(parent)
        self.reverted = False
        self.setWindowTitle(f"Guidelines: {guideline.domain}")
        self.resize(980, 680)
        layout = QVBoxLayout(self)
        info = QLabel(
            f"Version {guideline.version} ({count(history, 'version')} so far). Markdown. Saving makes a "
            "new version; judgments keep the version they were made under."
        )
        info.setObjectName("Muted")
        info.setWordWrap(True)
        layout.addWidget(info)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.editor = QPlainTextEdit(split)
        self.editor.setPlainText(guideline.text)
        self.editor.setAccessibleName("Guideline text (markdown)")
        self.preview = SafeTextView(split, accessible_name="Guideline preview")
        split.addWidget(self.editor)
        split.addWidget(self.preview)
        layout.addWidget(split, 1)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        revert = buttons.addButton("Restore shipped text", QDialogButtonBox.ButtonRole.ResetRole)
        revert.clicked.connect(self._revert)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(200)
        self._timer.timeout.connect(lambda: self.preview.set_markdown(self.text()))
        self.editor.textChanged.connect(self._timer.start)
        self.preview.set_markdown(guideline.text)

    def text(self) -> str:
        return self.editor.toPlainText()

    def _revert(self) -> None:
        self.reverted = True
        self.accept()
