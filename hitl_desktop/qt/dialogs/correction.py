"""Correcting a candidate: an editor pre-filled with its text and a live diff."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import rendering
from hitl_desktop.core.ranking import is_unchanged_correction
from hitl_desktop.qt import theme
from hitl_desktop.qt.markdown_view import SafeTextView
from hitl_desktop.qt.wording import count


class CorrectionDialog(QDialog):
    """Rewrite a candidate. ``text()`` is the rewrite; ``removed`` when the tutor drops it."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        original: str,
        current: str | None = None,
        position: int = 0,
    ) -> None:
        super().__init__(parent)
        self.original = original
        self.removed = False
        self.setWindowTitle(f"Correct candidate {position + 1}")
        self.resize(900, 680)
        layout = QVBoxLayout(self)
        t = theme.current()  # the legend in the diff's own colours, legible in both themes
        intro = QLabel(
            "Rewrite the answer into one you would sign. The changes are shown below, word by word "
            f"(<span style='background:{t['del_bg']}; color:{t['text']}; text-decoration:line-through'>"
            "removed</span>, "
            f"<span style='background:{t['ins_bg']}; color:{t['text']}'>added</span>). "
            "Ctrl+Enter saves the correction."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        split = QSplitter(Qt.Orientation.Vertical, self)
        self.editor = QPlainTextEdit(split)
        self.editor.setPlainText(current if current is not None else original)
        self.editor.setAccessibleName("Corrected answer")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
        font.setPointSizeF(max(font.pointSizeF(), 10.5))
        self.editor.setFont(QFont(font))
        self.diff_view = SafeTextView(split, accessible_name="Changes against the original")
        split.addWidget(self.editor)
        split.addWidget(self.diff_view)
        split.setSizes([380, 220])
        layout.addWidget(split, 1)
        self.stats = QLabel("")
        self.stats.setObjectName("Muted")
        layout.addWidget(self.stats)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setText("Use correction")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setShortcut("Ctrl+Return")
        if current is not None:
            remove = self.buttons.addButton("Remove correction", QDialogButtonBox.ButtonRole.DestructiveRole)
            remove.clicked.connect(self._remove)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.update_diff)
        self.editor.textChanged.connect(self._timer.start)
        self.update_diff()
        self.editor.setFocus()

    def text(self) -> str:
        return self.editor.toPlainText()

    def update_diff(self) -> None:
        self.diff_view.set_safe_html(rendering.diff_html(self.original, self.text()))
        ins, dele = rendering.diff_stats(self.original, self.text())
        self.stats.setText(f"{count(ins, 'word')} added · {dele} removed" if ins or dele else "No changes yet")

    def _accept(self) -> None:
        if not self.text().strip():
            self.stats.setText("A correction cannot be empty.")
            return
        if is_unchanged_correction(self.original, self.text()):
            self.stats.setText(
                "This is the answer as it was: an unchanged correction is not saved. "
                "Rewrite it, or Cancel."
            )
            return
        self.accept()

    def _remove(self) -> None:
        self.removed = True
        self.accept()
