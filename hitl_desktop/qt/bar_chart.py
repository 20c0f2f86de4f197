"""A small bar chart painted with QPainter (the quality dashboard's charts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from hitl_desktop.qt import theme


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str  # a theme colour key


class BarChart(QWidget):
    """A small bar chart painted with QPainter: categories along x, one bar per series each.

    ``markers`` (optional, one per category) draw a short dashed line across the category's
    bars: a reference value such as the share expected by chance.
    """

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.categories: list[str] = []
        self.series: list[Series] = []
        self.markers: list[float | None] = []
        self.marker_label = ""
        self.lo, self.hi = 0.0, 1.0
        self.label_format: Callable[[float], str] = lambda v: f"{v:.2f}"
        self.empty_text = "Nothing to show yet"
        self.setMinimumSize(260, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(340, 240)

    def set_data(
        self,
        categories: Sequence[str],
        series: Sequence[Series],
        *,
        lo: float | None = None,
        hi: float | None = None,
        markers: Sequence[float | None] = (),
        marker_label: str = "",
        label_format: Callable[[float], str] | None = None,
    ) -> None:
        self.categories = list(categories)
        self.series = list(series)
        self.markers = list(markers)
        self.marker_label = marker_label
        values = [v for s in self.series for v in s.values if v is not None]
        values += [m for m in self.markers if m is not None]
        self.lo = lo if lo is not None else min([0.0, *values])
        top = max([0.0, *values]) if values else 1.0
        self.hi = hi if hi is not None else (_nice_ceiling(top) if top > 0 else 1.0)
        if self.hi <= self.lo:
            self.hi = self.lo + 1.0
        if label_format is not None:
            self.label_format = label_format
        self.update()

    # -- painting ---------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802
        p, t, rect = theme.paint_card(self)

        base = QFont(self.font())
        small = QFont(base)
        small.setPointSizeF(max(7.0, base.pointSizeF() * 0.85))
        bold = QFont(base)
        bold.setWeight(QFont.Weight.DemiBold)
        fm_small = QFontMetrics(small)

        pad = 12
        p.setFont(bold)
        p.setPen(QColor(t["text"]))
        title_h = QFontMetrics(bold).height()
        p.drawText(
            QRectF(pad, pad - 2, rect.width() - 2 * pad, title_h),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            self.title,
        )
        legend_h = self._paint_legend(
            p, t, small, QRectF(pad, pad + title_h + 2, rect.width() - 2 * pad, fm_small.height())
        )

        has_data = self.categories and any(v is not None for s in self.series for v in s.values)
        top = pad + title_h + legend_h + 10
        if not has_data:
            p.setFont(base)
            p.setPen(QColor(t["muted"]))
            p.drawText(
                QRectF(0, top, rect.width(), rect.height() - top),
                Qt.AlignmentFlag.AlignCenter,
                self.empty_text,
            )
            p.end()
            return

        ticks = _ticks(self.lo, self.hi)
        axis_w = max(fm_small.horizontalAdvance(self.label_format(v)) for v in ticks) + 8
        label_h = fm_small.height() + 6
        plot = QRectF(pad + axis_w, top + fm_small.height(), rect.width() - 2 * pad - axis_w, 0)
        plot.setBottom(rect.height() - pad - label_h)
        if plot.height() < 20 or plot.width() < 20:
            p.end()
            return

        def y_of(v: float) -> float:
            v = min(max(v, self.lo), self.hi)
            return plot.bottom() - (v - self.lo) / (self.hi - self.lo) * plot.height()

        # grid and axis labels
        p.setFont(small)
        for v in ticks:
            y = y_of(v)
            p.setPen(QPen(QColor(t["divider"]), 1))
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.setPen(QColor(t["muted"]))
            p.drawText(
                QRectF(pad, y - fm_small.height() / 2, axis_w - 6, fm_small.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                self.label_format(v),
            )
        zero = y_of(0.0) if self.lo <= 0 <= self.hi else plot.bottom()
        p.setPen(QPen(QColor(t["muted"]), 1))
        p.drawLine(QPointF(plot.left(), zero), QPointF(plot.right(), zero))

        n_cat, n_ser = len(self.categories), max(1, len(self.series))
        slot = plot.width() / n_cat
        group_w = min(slot * 0.72, 34.0 * n_ser)
        bar_w = group_w / n_ser
        labels: list[tuple[QRectF, str]] = []
        for i, cat in enumerate(self.categories):
            x0 = plot.left() + i * slot + (slot - group_w) / 2
            for k, s in enumerate(self.series):
                v = s.values[i] if i < len(s.values) else None
                bx = x0 + k * bar_w
                if v is None:
                    p.setPen(QColor(t["disabled"]))
                    p.drawText(
                        QRectF(
                            bx - 10, zero - fm_small.height() - 2, bar_w + 20, fm_small.height()
                        ),
                        Qt.AlignmentFlag.AlignCenter,
                        "n/a",
                    )
                    continue
                y = y_of(v)
                bar = QRectF(bx + 1, min(y, zero), max(2.0, bar_w - 2), max(1.0, abs(zero - y)))
                bar_path = QPainterPath()
                bar_path.addRoundedRect(bar, 3, 3)
                p.fillPath(bar_path, QColor(t[s.color]))
                text_y = bar.top() - fm_small.height() - 1 if v >= 0 else bar.bottom() + 1
                labels.append(
                    (QRectF(bx - 12, text_y, bar_w + 24, fm_small.height()), self.label_format(v))
                )
            if i < len(self.markers) and self.markers[i] is not None:
                my = y_of(self.markers[i])
                pen = QPen(QColor(t["danger"]), 2, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.drawLine(QPointF(x0 - 4, my), QPointF(x0 + group_w + 4, my))
            p.setPen(QColor(t["muted"]))
            label = fm_small.elidedText(cat, Qt.TextElideMode.ElideRight, int(slot) - 4)
            p.drawText(
                QRectF(plot.left() + i * slot, plot.bottom() + 4, slot, fm_small.height()),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                label,
            )
        # value labels last, on a patch of background, so that marker lines never cross them
        for box, text in labels:
            w = fm_small.horizontalAdvance(text) + 6
            patch = QRectF(box.center().x() - w / 2, box.top(), w, box.height())
            p.fillRect(patch, QColor(t["surface"]))
            p.setPen(QColor(t["text"]))
            p.drawText(patch, Qt.AlignmentFlag.AlignCenter, text)
        p.end()

    def _legend_entries(self) -> list[tuple[str, str, bool]]:
        entries = [(s.name, s.color, False) for s in self.series if s.name]
        if self.marker_label:
            entries.append((self.marker_label, "danger", True))
        return entries

    def legend_width(self, font: QFont) -> float:
        """How wide the legend is drawn: swatch, name and gap per entry (as _paint_legend)."""
        fm = QFontMetrics(font)
        return sum(18 + fm.horizontalAdvance(name) + 14 for name, _c, _d in self._legend_entries()) - 14

    def _paint_legend(self, p: QPainter, t: theme.Theme, font: QFont, area: QRectF) -> float:
        entries = self._legend_entries()
        if len(entries) < 2 and not self.marker_label:
            return 0.0
        fm = QFontMetrics(font)
        p.setFont(font)
        x = area.left()
        cy = area.center().y()
        for name, color, dashed in entries:
            if dashed:
                p.setPen(QPen(QColor(t[color]), 2, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(x, cy), QPointF(x + 14, cy))
            else:
                p.fillRect(QRectF(x, cy - 5, 10, 10), QColor(t[color]))
            x += 18
            p.setPen(QColor(t["muted"]))
            p.drawText(QPointF(x, cy + fm.ascent() / 2 - 1), name)
            x += fm.horizontalAdvance(name) + 14
        return area.height()


def _nice_ceiling(v: float) -> float:
    """A round number >= v: 1, 2, 2.5, 5 times a power of ten."""
    import math

    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v - 1e-12:
            return m * exp
    return 10 * exp


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]
