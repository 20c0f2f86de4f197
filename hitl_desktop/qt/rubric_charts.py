"""The Quality dashboard's rubric charts: where tutors disagree on criteria, and whether a
model grader may be trusted, per axis.

Both take plain data, the ``"rubrics"`` dict of ``stats --json`` (README "Rubrics"):

- :class:`CriterionAgreementChart` ``.set_agreement(tutor_agreement, by_criterion=None)``:
  ``tutor_agreement`` = ``{"pairwise_raw", "krippendorff_alpha", "units", "by_axis"}``; one
  horizontal bar per criterion (``by_criterion``: rows ``{"criterion", "pairwise_raw",
  "units", "axis"?, "points"?}``, or ``tutor_agreement["by_criterion"]``), least agreement
  first, so the criteria tutors disagree on most are on top; without per-criterion rows, one
  bar per axis from ``by_axis``. The title carries the overall raw agreement and alpha.
- :class:`GraderF1Chart` ``.set_graders(graders)``: ``{NAME: {"macro_f1", "n", "by_axis"}}``;
  for each axis (and "all") one bar per grader at its macro-F1 against the tutors' majority.

``by_axis`` values may be numbers or dicts holding the figure (``pairwise_raw`` /
``macro_f1``) and ``units`` / ``n``. Painted with QPainter on the theme's card, like
``models_chart.py``. :class:`RubricCharts` holds both: ``set_stats(stats["rubrics"])``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPen
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QWidget

from hitl_desktop.core.rubrics import AXES
from hitl_desktop.qt import theme
from hitl_desktop.qt.rubric_common import axis_label

PAD = 12
SERIES = ("accent", "success", "warning", "danger", "muted")  # one theme colour per grader


def _figure(value: Any, key: str) -> tuple[float | None, int | None]:
    """``(figure, count)`` of a by-axis value: a number, or a dict with ``key`` and n/units."""
    if isinstance(value, dict):
        v = value.get(key)
        n = value.get("units", value.get("n"))
        return (float(v) if isinstance(v, (int, float)) else None), (int(n) if isinstance(n, int) else None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), None
    return None, None


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{round(100 * v)} %"


def _fonts(widget: QWidget) -> tuple[QFont, QFont, QFont]:
    base = QFont(widget.font())
    small = QFont(base)
    small.setPointSizeF(max(7.0, base.pointSizeF() * 0.85))
    bold = QFont(base)
    bold.setWeight(QFont.Weight.DemiBold)
    return base, small, bold


def _title(p, t, widget, rect, text: str) -> float:
    """Draw the title (elided); returns the y under it."""
    _, _, bold = _fonts(widget)
    fm = QFontMetrics(bold)
    p.setFont(bold)
    p.setPen(QColor(t["text"]))
    p.drawText(QRectF(PAD, PAD - 2, rect.width() - 2 * PAD, fm.height()),
               Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
               fm.elidedText(text, Qt.TextElideMode.ElideRight, int(rect.width() - 2 * PAD)))
    return PAD + fm.height() + 8


class CriterionAgreementChart(QWidget):
    """Tutors' agreement per criterion (or per axis), least first (module docstring)."""

    MAX_BARS = 12

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overall: dict[str, Any] = {}
        self.bars: list[tuple[str, float | None, int | None, bool]] = []  # label, share, units, penalty
        self.by = "criterion"
        self.setMinimumSize(300, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Tutors' agreement on criteria")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(440, 300)

    def set_agreement(self, tutor_agreement: dict[str, Any] | None,
                      by_criterion: list[dict[str, Any]] | None = None) -> None:
        ta = dict(tutor_agreement or {})
        self.overall = ta
        rows = by_criterion if by_criterion is not None else ta.get("by_criterion")
        bars: list[tuple[str, float | None, int | None, bool]] = []
        if rows:
            self.by = "criterion"
            for r in rows:
                share, n = _figure(r, "pairwise_raw")
                points = r.get("points")
                bars.append((str(r.get("criterion", "")), share, n, isinstance(points, (int, float)) and points < 0))
        else:
            self.by = "axis"
            for axis, value in (ta.get("by_axis") or {}).items():
                share, n = _figure(value, "pairwise_raw")
                bars.append((axis_label(axis), share, n, False))
        # least agreement first: those are what a lead reviews; unknown shares last
        bars.sort(key=lambda b: (b[1] is None, b[1] if b[1] is not None else 0.0, b[0]))
        self.bars = bars
        self.setToolTip("\n".join(f"{label}: {_pct(share)} agreement" + (f" over {n} units" if n else "")
                                  for label, share, n, _ in bars[:self.MAX_BARS]))
        self.update()

    def title(self) -> str:
        ta = self.overall
        alpha = ta.get("krippendorff_alpha")
        parts = [f"Tutors' agreement by {self.by}"]
        if ta.get("pairwise_raw") is not None:
            parts.append(f"raw {_pct(ta['pairwise_raw'])}")
        if alpha is not None:
            parts.append(f"α {alpha:.2f}")
        if ta.get("units"):
            parts.append(f"{ta['units']} units")
        return " · ".join(parts)

    def bar_rect(self, i: int) -> QRectF:
        """The full-width slot of bar ``i`` (its label sits left of the bar)."""
        _, small, bold = _fonts(self)
        top = PAD + QFontMetrics(bold).height() + 8
        shown = min(len(self.bars), self.MAX_BARS) or 1
        slot = min(28.0, (self.height() - top - PAD) / shown)
        return QRectF(PAD, top + i * slot, self.width() - 2 * PAD, slot)

    def paintEvent(self, event) -> None:  # noqa: N802
        p, t, rect = theme.paint_card(self)
        base, small, _ = _fonts(self)
        _title(p, t, self, rect, self.title())
        if not self.bars:
            p.setFont(base)
            p.setPen(QColor(t["muted"]))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "No criterion graded by two tutors yet")
            p.end()
            return
        fm = QFontMetrics(small)
        p.setFont(small)
        label_w = min(rect.width() * 0.45, 260.0)
        value_w = fm.horizontalAdvance("100 % · 9999") + 8
        for i, (label, share, n, penalty) in enumerate(self.bars[:self.MAX_BARS]):
            slot = self.bar_rect(i)
            p.setPen(QColor(t["danger"] if penalty else t["text"]))
            p.drawText(QRectF(slot.left(), slot.top(), label_w - 8, slot.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(label, Qt.TextElideMode.ElideRight, int(label_w - 8)))
            track = QRectF(slot.left() + label_w, slot.top() + slot.height() * 0.2,
                           slot.width() - label_w - value_w, slot.height() * 0.6)
            p.fillRect(track, QColor(t["chip"]))
            if share is not None:
                # low agreement in the warning colour: those are the criteria to review
                color = t["warning"] if share < 0.67 else t["accent"]
                p.fillRect(QRectF(track.left(), track.top(), track.width() * max(0.0, min(1.0, share)),
                                  track.height()), QColor(color))
            p.setPen(QColor(t["muted"]))
            p.drawText(QRectF(track.right() + 6, slot.top(), value_w - 6, slot.height()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       _pct(share) + (f" · {n}" if n else ""))
        p.end()


class GraderF1Chart(QWidget):
    """Each grader's macro-F1 against the tutors' majority, per axis (module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graders: dict[str, dict[str, Any]] = {}
        self.setMinimumSize(300, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Graders' macro-F1 per axis")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(480, 300)

    def set_graders(self, graders: dict[str, dict[str, Any]] | None) -> None:
        self.graders = dict(graders or {})
        lines = []
        for name, g in self.graders.items():
            lines.append(f"{name}: macro-F1 {_f1(g.get('macro_f1'))} over {g.get('n', 0)}")
            for axis in self.axes()[1:]:
                f1, n = self.value(name, axis)
                if f1 is not None:
                    lines.append(f"  {axis_label(axis)}: {_f1(f1)}" + (f" ({n})" if n else ""))
        self.setToolTip("\n".join(lines))
        self.update()

    def axes(self) -> list[str]:
        """"all", then the axes any grader has a figure for (HealthBench's order first)."""
        seen = {a for g in self.graders.values() for a in (g.get("by_axis") or {})}
        return ["all"] + [a for a in AXES if a in seen] + sorted(seen - set(AXES))

    def value(self, name: str, axis: str) -> tuple[float | None, int | None]:
        g = self.graders.get(name, {})
        if axis == "all":
            f1 = g.get("macro_f1")
            return (float(f1) if isinstance(f1, (int, float)) else None), g.get("n")
        return _figure((g.get("by_axis") or {}).get(axis), "macro_f1")

    def plot_rect(self) -> QRectF:
        _, small, bold = _fonts(self)
        fm = QFontMetrics(small)
        top = PAD + QFontMetrics(bold).height() + 8 + 2 * fm.height() + 6  # title, legend, a bar's value
        left = PAD + fm.horizontalAdvance("1.0") + 8
        return QRectF(left, top, self.width() - PAD - left, self.height() - top - PAD - 2 * fm.height() - 4)

    def bar_rect(self, group: int, series: int) -> QRectF:
        """The bar of grader ``series`` in axis group ``group``, at full height (F1 = 1)."""
        plot = self.plot_rect()
        groups, names = len(self.axes()), max(1, len(self.graders))
        slot = plot.width() / groups
        width = min(22.0, slot * 0.8 / names)
        x0 = plot.left() + group * slot + (slot - width * names) / 2
        return QRectF(x0 + series * width, plot.top(), width - 2, plot.height())

    def paintEvent(self, event) -> None:  # noqa: N802
        p, t, rect = theme.paint_card(self)
        base, small, _ = _fonts(self)
        y = _title(p, t, self, rect, "Graders against the tutors (macro-F1, met / not met)")
        if not self.graders:
            p.setFont(base)
            p.setPen(QColor(t["muted"]))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "No model has graded yet (hitl-desktop grade)")
            p.end()
            return
        fm = QFontMetrics(small)
        p.setFont(small)
        x = float(PAD)
        for i, name in enumerate(self.graders):  # legend
            color = QColor(t[SERIES[i % len(SERIES)]])
            p.fillRect(QRectF(x, y + fm.height() / 2 - 4, 8, 8), color)
            p.setPen(QColor(t["text"]))
            label = fm.elidedText(name, Qt.TextElideMode.ElideMiddle, 180)
            p.drawText(QRectF(x + 12, y, fm.horizontalAdvance(label) + 4, fm.height()),
                       Qt.AlignmentFlag.AlignVCenter, label)
            x += 12 + fm.horizontalAdvance(label) + 16
        plot = self.plot_rect()
        if plot.height() < 20 or plot.width() < 40:
            p.end()
            return
        for v in (0.0, 0.5, 1.0):
            yy = plot.bottom() - v * plot.height()
            p.setPen(QPen(QColor(t["divider"]), 1))
            p.drawLine(plot.left(), yy, plot.right(), yy)
            p.setPen(QColor(t["muted"]))
            p.drawText(QRectF(PAD, yy - fm.height() / 2, plot.left() - PAD - 6, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{v:.1f}")
        axes = self.axes()
        slot = plot.width() / len(axes)
        for gi, axis in enumerate(axes):
            for si, name in enumerate(self.graders):
                f1, _ = self.value(name, axis)
                bar = self.bar_rect(gi, si)
                if f1 is None:
                    continue
                h = max(0.0, min(1.0, f1)) * plot.height()
                p.fillRect(QRectF(bar.left(), plot.bottom() - h, bar.width(), h), QColor(t[SERIES[si % len(SERIES)]]))
                if bar.width() >= fm.horizontalAdvance(".00"):
                    p.setPen(QColor(t["muted"]))
                    p.drawText(QRectF(bar.left() - 6, plot.bottom() - h - fm.height() - 1, bar.width() + 12, fm.height()),
                               Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, f"{f1:.2f}".lstrip("0"))
            p.setPen(QColor(t["muted"] if axis != "all" else t["text"]))
            label = "all" if axis == "all" else axis_label(axis)
            words = label.split(" ", 1)
            for row, text in enumerate(words if len(words) == 2 and fm.horizontalAdvance(label) > slot - 4 else [label]):
                p.drawText(QRectF(plot.left() + gi * slot, plot.bottom() + 4 + row * fm.height(), slot, fm.height()),
                           Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                           fm.elidedText(text, Qt.TextElideMode.ElideRight, int(slot) - 2))
        p.end()


def _f1(v: Any) -> str:
    return "n/a" if not isinstance(v, (int, float)) else f"{v:.2f}"


class RubricCharts(QWidget):
    """Both charts side by side; ``set_stats`` takes ``stats --json``'s ``"rubrics"`` dict."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.agreement = CriterionAgreementChart(self)
        self.graders = GraderF1Chart(self)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.agreement, 1)
        row.addWidget(self.graders, 1)

    def set_stats(self, rubrics: dict[str, Any] | None, *,
                  by_criterion: list[dict[str, Any]] | None = None) -> None:
        rubrics = rubrics or {}
        self.agreement.set_agreement(rubrics.get("tutor_agreement"), by_criterion)
        self.graders.set_graders(rubrics.get("graders"))
