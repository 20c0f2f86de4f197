"""A read-only view for untrusted text: renders safe HTML, opens nothing, loads nothing.

``core.rendering`` already produces HTML without links, images or raw HTML. This view adds
defence in depth: it never follows a link (``openLinks`` off, ``setSource`` ignored) and its
``loadResource`` returns nothing, so no remote or local resource is ever fetched, whatever
the HTML says.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, QUrl
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

from hitl_desktop.core import rendering
from hitl_desktop.qt import theme


class SafeTextView(QTextBrowser):
    """A QTextBrowser that shows text and nothing else."""

    def __init__(
        self, parent: QWidget | None = None, *, accessible_name: str = "", preferred_height: int | None = None
    ) -> None:
        super().__init__(parent)
        self._preferred_height = preferred_height
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.document().setDocumentMargin(10)
        self.resource_requests: list[str] = []  # what a page tried to load (for tests)
        self._text = ""
        self._html = ""
        self._markdown = True
        if accessible_name:
            self.setAccessibleName(accessible_name)
        self.apply_theme()

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        if self._preferred_height is not None:
            hint.setHeight(self._preferred_height)
        return hint

    # -- defence in depth -------------------------------------------------------------------

    def loadResource(self, type_: int, name: QUrl):  # noqa: N802 (Qt override)
        self.resource_requests.append(name.toString())
        return None

    def setSource(self, name: QUrl, type_=None) -> None:  # noqa: N802
        return None

    def doSetSource(self, name: QUrl, type_=None) -> None:  # noqa: N802
        return None

    # -- content ------------------------------------------------------------------------------

    def apply_theme(self) -> None:
        self.document().setDefaultStyleSheet(theme.current().document_css())
        if self._html:
            self.setHtml(self._html)
        elif self._text:
            self._render()

    def set_markdown(self, text: str) -> None:
        """Show untrusted markdown (model output, guidelines, prompts)."""
        self._text, self._html, self._markdown = text, "", True
        self._render()

    def set_plain(self, text: str) -> None:
        self._text, self._html, self._markdown = text, "", False
        self._render()

    def set_safe_html(self, html: str) -> None:
        """Show HTML made by ``core.rendering`` (already escaped and inert)."""
        self._text, self._html = "", html
        self.setHtml(html)

    def raw_text(self) -> str:
        return self._text

    def _render(self) -> None:
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        old = bar.value()
        html = rendering.render_markdown(self._text) if self._markdown else rendering.render_plain(self._text)
        self.setHtml(html)
        bar.setValue(bar.maximum() if at_end and old > 0 else old)
