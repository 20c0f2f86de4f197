"""Light and dark themes that follow the system colour scheme (Qt 6 style hints).

One accent colour, soft borders and generous spacing: a calm tool for long sessions. The
style sheet is ``resources/styles/bench.qss`` with ``@token`` placeholders filled from the
palette below; the markdown views get a matching CSS.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QApplication

from hitl_desktop.core.guidelines import resources_dir

LIGHT = {
    "window": "#f3f4f6",
    "surface": "#ffffff",
    "input": "#ffffff",
    "border": "#d5d9e0",
    "divider": "#eceef1",
    "chip": "#eef0f3",
    "text": "#1d232b",
    "muted": "#5d6773",
    "disabled": "#a0a7b1",
    "accent": "#2f6fbd",
    "accent_hover": "#275fa3",
    "accent_bg": "#e6effa",
    "accent_text": "#225b9e",
    "on_accent": "#ffffff",
    "success": "#1f7a45",
    "success_bg": "#e3f3e8",
    "warning": "#8a5a00",
    "warning_bg": "#fdf3dc",
    "danger": "#b42330",
    "danger_bg": "#fbe9ea",
    "code_bg": "#f4f5f7",
    "ins_bg": "#d8f1de",
    "del_bg": "#fadadd",
}
DARK = {
    "window": "#1a1d22",
    "surface": "#22262d",
    "input": "#1d2026",
    "border": "#373d47",
    "divider": "#2c3139",
    "chip": "#2d323a",
    "text": "#e4e7eb",
    "muted": "#9aa4b0",
    "disabled": "#5d6570",
    "accent": "#5b9bf0",
    "accent_hover": "#74abf3",
    "accent_bg": "#22344d",
    "accent_text": "#8dbaf5",
    "on_accent": "#0f1419",
    "success": "#5cc78a",
    "success_bg": "#1e3a2a",
    "warning": "#e0b04f",
    "warning_bg": "#3b3020",
    "danger": "#f07a84",
    "danger_bg": "#3f2227",
    "code_bg": "#1b1e24",
    "ins_bg": "#1f4a2e",
    "del_bg": "#54242b",
}


@dataclass(frozen=True)
class Theme:
    name: str  # "light" | "dark"
    colors: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.colors[key]

    def document_css(self) -> str:
        """CSS for QTextDocument views (markdown answers, guidelines, diffs)."""
        c = self.colors
        return f"""
        body {{ color: {c['text']}; }}
        p {{ margin-top: 0px; margin-bottom: 8px; }}
        h1 {{ font-size: 13pt; margin-bottom: 6px; }}
        h2 {{ font-size: 11.5pt; margin-top: 12px; margin-bottom: 4px; }}
        h3 {{ font-size: 11pt; margin-top: 10px; margin-bottom: 4px; }}
        pre.code {{ background-color: {c['code_bg']}; font-family: 'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace;
                    font-size: 9.5pt; white-space: pre-wrap; padding: 6px; margin-bottom: 8px; }}
        pre.diff {{ font-family: inherit; white-space: pre-wrap; }}
        code {{ background-color: {c['code_bg']}; font-family: 'DejaVu Sans Mono', monospace; font-size: 9.5pt; }}
        div.lang {{ color: {c['muted']}; font-size: 8pt; margin-top: 4px; }}
        span.math {{ font-family: 'DejaVu Serif', 'Cambria Math', serif; font-style: italic; }}
        span.link {{ color: {c['accent_text']}; text-decoration: underline; }}
        span.href, span.image {{ color: {c['muted']}; font-size: 9pt; }}
        span.ctrl {{ color: {c['danger']}; background-color: {c['danger_bg']}; font-size: 8pt; }}
        span.ins {{ background-color: {c['ins_bg']}; }}
        span.del {{ background-color: {c['del_bg']}; text-decoration: line-through; }}
        table.table {{ border-color: {c['border']}; margin-bottom: 8px; }}
        th {{ background-color: {c['chip']}; font-weight: 600; }}
        blockquote {{ color: {c['muted']}; margin-left: 12px; }}
        p.note {{ color: {c['muted']}; font-style: italic; }}
        div.turn {{ margin-bottom: 6px; }}
        span.role {{ color: {c['muted']}; font-size: 8.5pt; font-weight: 600; }}
        div.plain {{ white-space: pre-wrap; }}
        """


_current: Theme | None = None


def system_is_dark() -> bool:
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    # Unknown (e.g. offscreen): judge by the palette the platform gave us.
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def current() -> Theme:
    global _current
    if _current is None:
        _current = Theme("dark", DARK) if system_is_dark() else Theme("light", LIGHT)
    return _current


def style_sheet(theme: Theme) -> str:
    """bench.qss with its tokens filled: ``@<colour>`` from the palette, ``@icons`` (the icons
    folder, for the arrows' ``url()``s) and ``@theme`` ("light" or "dark": which arrows)."""
    path = resources_dir() / "styles" / "bench.qss"
    try:
        template = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    tokens = dict(theme.colors)
    tokens["icons"] = (resources_dir() / "icons").resolve().as_posix()
    tokens["theme"] = theme.name
    # longest tokens first so that @accent_bg is not read as @accent + "_bg"
    keys = sorted(tokens, key=len, reverse=True)
    pattern = re.compile("@(" + "|".join(map(re.escape, keys)) + ")")
    return pattern.sub(lambda m: tokens[m.group(1)], template)


def _palette(theme: Theme) -> QPalette:
    c = theme.colors
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"],
        QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["surface"],
        QPalette.ColorRole.AlternateBase: c["chip"],
        QPalette.ColorRole.Text: c["text"],
        QPalette.ColorRole.Button: c["surface"],
        QPalette.ColorRole.ButtonText: c["text"],
        QPalette.ColorRole.Highlight: c["accent"],
        QPalette.ColorRole.HighlightedText: c["on_accent"],
        QPalette.ColorRole.ToolTipBase: c["surface"],
        QPalette.ColorRole.ToolTipText: c["text"],
        QPalette.ColorRole.PlaceholderText: c["muted"],
        QPalette.ColorRole.Link: c["accent_text"],
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c["disabled"]))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c["disabled"]))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(c["disabled"]))
    return p


def apply(app: QApplication, *, dark: bool | None = None) -> Theme:
    """Apply the light or dark theme (by the system's scheme unless ``dark`` is given)."""
    global _current
    if dark is None:
        dark = system_is_dark()
    _current = Theme("dark", DARK) if dark else Theme("light", LIGHT)
    app.setStyle("Fusion")
    app.setPalette(_palette(_current))
    app.setStyleSheet(style_sheet(_current))
    return _current


_followers: list = []  # the callables follow_system connected (stop_following lets them go)


def follow_system(app: QApplication, on_change=None) -> None:
    """Re-apply the theme when the system switches between light and dark."""

    def changed(_scheme) -> None:
        apply(app)
        if on_change is not None:
            on_change(current())

    QGuiApplication.styleHints().colorSchemeChanged.connect(changed)
    _followers.append(changed)


def stop_following() -> None:
    """Disconnect what follow_system connected (at quit: the callables hold the window)."""
    hints = QGuiApplication.styleHints()
    while _followers:
        changed = _followers.pop()
        with contextlib.suppress(RuntimeError, TypeError):
            hints.colorSchemeChanged.disconnect(changed)


def paint_card(widget) -> tuple[QPainter, Theme, QRectF]:
    """Begin painting ``widget`` as a card (the charts'): a rounded frame in the theme's
    surface and border colours. Returns the painter, the theme and the card's rect."""
    t = current()
    p = QPainter(widget)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = QRectF(widget.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
    frame = QPainterPath()
    frame.addRoundedRect(rect, 8, 8)
    p.fillPath(frame, QColor(t["surface"]))
    p.setPen(QPen(QColor(t["border"]), 1))
    p.drawPath(frame)
    return p, t, rect
