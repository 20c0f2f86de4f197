"""Checkpoints compared, drawn: each model's Bradley-Terry strength with its 95% interval.

``ModelStrengthChart.set_models(figures)`` takes ``core.models_compared.model_figures``'
dict (strongest first): one column per model, a dot at its strength, a whisker over its
bootstrap interval, the strength above it and the win rate and number of comparisons under
the model's name. A dashed line marks 1000, the mean strength. Painted with QPainter like the
dashboard's bar charts.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from hitl_desktop.qt import theme

MEAN = 1000.0


class ModelStrengthChart(QWidget):
    def __init__(self, title: str = "Models compared (Bradley–Terry)",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.models: dict[str, dict[str, Any]] = {}
        self.setMinimumSize(260, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Models compared")
        self.setToolTip("Each model's Bradley–Terry strength (Elo scale, centred on 1000) "
                        "with its 95% bootstrap interval, and its win rate")

    def shown_title(self) -> str:
        """The title as drawn: elided to the chart's width rather than cut mid-letter."""
        return QFontMetrics(self._fonts()[2]).elidedText(
            self.title, Qt.TextElideMode.ElideRight, max(0, self.width() - 24))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(340, 240)

    def set_models(self, figures: dict[str, dict[str, Any]]) -> None:
        self.models = dict(figures)
        self.setToolTip("\n".join(
            f"{name}: strength {m['bradley_terry']:.0f}"
            + (f" ({m['ci95'][0]:.0f}–{m['ci95'][1]:.0f})" if m["ci95"] else "")
            + f", {m['wins']} won, {m['losses']} lost, {m['ties']} tied"
            for name, m in self.models.items()
        ))
        self.update()

    def value_range(self) -> tuple[float, float, float]:
        """``(low, high, tick step)``: round numbers around every strength and interval."""
        values = [MEAN]
        for m in self.models.values():
            values.append(m["bradley_terry"])
            values += list(m["ci95"] or ())
        span = max(max(values) - min(values), 100.0)
        step = next(s for s in (25, 50, 100, 200, 250, 500, 1000, 2000) if s * 4 >= span)
        return math.floor(min(values) / step) * step, math.ceil(max(values) / step) * step, float(step)

    def _fonts(self) -> tuple[QFont, QFont, QFont]:
        base = QFont(self.font())
        small = QFont(base)
        small.setPointSizeF(max(7.0, base.pointSizeF() * 0.85))
        bold = QFont(base)
        bold.setWeight(QFont.Weight.DemiBold)
        return base, small, bold

    def plot_rect(self) -> QRectF:
        """Where the values are drawn (below the title, above the model names)."""
        _, small, bold = self._fonts()
        fm = QFontMetrics(small)
        pad = 12
        top = pad + QFontMetrics(bold).height() + 8 + fm.height()
        axis_w = fm.horizontalAdvance("00000") + 8
        plot = QRectF(pad + axis_w, top, self.width() - 1 - 2 * pad - axis_w, 0)
        plot.setBottom(self.height() - 1 - pad - 2 * fm.height() - 6)
        return plot

    def point_of(self, index: int, value: float) -> QPointF:
        """Where model ``index``'s column shows ``value``."""
        plot = self.plot_rect()
        lo, hi, _ = self.value_range()
        slot = plot.width() / max(1, len(self.models))
        y = plot.bottom() - (min(max(value, lo), hi) - lo) / (hi - lo) * plot.height()
        return QPointF(plot.left() + (index + 0.5) * slot, y)

    def paintEvent(self, event) -> None:  # noqa: N802
        p, t, rect = theme.paint_card(self)

        base, small, bold = self._fonts()
        fm = QFontMetrics(small)
        pad = 12
        title_h = QFontMetrics(bold).height()
        p.setFont(bold)
        p.setPen(QColor(t["text"]))
        p.drawText(QRectF(pad, pad - 2, rect.width() - 2 * pad, title_h),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.shown_title())
        plot = self.plot_rect()
        if not self.models:
            p.setFont(base)
            p.setPen(QColor(t["muted"]))
            p.drawText(QRectF(0, plot.top(), rect.width(), rect.height() - plot.top()),
                       Qt.AlignmentFlag.AlignCenter, "No two models compared yet")
            p.end()
            return
        if plot.height() < 20 or plot.width() < 20:
            p.end()
            return
        lo, hi, step = self.value_range()

        def y_of(v: float) -> float:
            return self.point_of(0, v).y()

        p.setFont(small)
        for i in range(round((hi - lo) / step) + 1):
            v = lo + i * step
            p.setPen(QPen(QColor(t["divider"]), 1))
            p.drawLine(QPointF(plot.left(), y_of(v)), QPointF(plot.right(), y_of(v)))
            p.setPen(QColor(t["muted"]))
            p.drawText(QRectF(pad, y_of(v) - fm.height() / 2, plot.left() - pad - 6, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{v:.0f}")
        p.setPen(QPen(QColor(t["muted"]), 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(plot.left(), y_of(MEAN)), QPointF(plot.right(), y_of(MEAN)))

        slot = plot.width() / len(self.models)
        accent = QColor(t["accent"])
        for i, (name, m) in enumerate(self.models.items()):
            cx = self.point_of(i, MEAN).x()
            y = y_of(m["bradley_terry"])
            if m["ci95"]:
                y_lo, y_hi = y_of(m["ci95"][0]), y_of(m["ci95"][1])
                p.setPen(QPen(accent, 2))
                p.drawLine(QPointF(cx, y_lo), QPointF(cx, y_hi))
                for yy in (y_lo, y_hi):
                    p.drawLine(QPointF(cx - 6, yy), QPointF(cx + 6, yy))
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(accent)
            p.drawEllipse(QPointF(cx, y), 5, 5)
            label = f"{m['bradley_terry']:.0f}"
            w = fm.horizontalAdvance(label) + 6
            box = QRectF(cx + 8, y - fm.height() / 2, w, fm.height())
            p.fillRect(box, QColor(t["surface"]))
            p.setPen(QColor(t["text"]))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
            rate = "n/a" if m["win_rate"] is None else f"{100 * m['win_rate']:.0f}%"
            p.setPen(QColor(t["muted"]))
            for row, text in enumerate((name, f"won {rate} of {m['comparisons']}")):
                p.drawText(
                    QRectF(cx - slot / 2, plot.bottom() + 4 + row * fm.height(), slot, fm.height()),
                    Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                    fm.elidedText(text, Qt.TextElideMode.ElideMiddle, int(slot) - 4),
                )
        p.end()
