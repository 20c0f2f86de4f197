"""One candidate answer on the bench: its text (safe markdown), rank, flags and ratings.

A card knows its *position* on screen (0-based; the tutor presses position + 1 to rank
it). It never changes the judgment itself: it reports what the tutor did by signal and the
bench updates the judgment and then the card.

Drag and drop: drag a card by its header onto another card. Dropping on the upper third
ranks it just above that card, the middle third ties them, the lower third ranks it just
below.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.types import FLAGS, RATING_SCALES, Candidate
from hitl_desktop.qt.flow_layout import expanding_flow_host
from hitl_desktop.qt.markdown_view import SafeTextView

CARD_MIME = "application/x-hitl-candidate-position"

#: The key that toggles each flag on the selected card (shown on the buttons' tooltips).
FLAG_KEYS: dict[str, str] = {
    "incorrect": "I",
    "unsafe": "U",
    "hallucination": "H",
    "incomplete": "N",
    "off-topic": "O",
    "style": "S",
}
FLAG_LABELS: dict[str, str] = {
    "incorrect": "Incorrect",
    "unsafe": "Unsafe",
    "hallucination": "Hallucination",
    "incomplete": "Incomplete",
    "off-topic": "Off-topic",
    "style": "Style",
}


def drop_zone(y: int, height: int) -> str:
    """Where a drop at height ``y`` of a card lands: above, tie or below."""
    if height <= 0 or y < height / 3:
        return "above"
    if y < 2 * height / 3:
        return "tie"
    return "below"


class ElidedLabel(QLabel):
    """A one-line label that shows "…" instead of cutting its text when squeezed."""

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment()), text)


def _repolish(w: QWidget) -> None:
    w.style().unpolish(w)
    w.style().polish(w)


class CandidateCard(QFrame):
    selected = Signal(int)  # position: the tutor clicked or focused the card
    correction_requested = Signal(int)
    regeneration_requested = Signal(int)
    flag_toggled = Signal(int, str, bool)
    rating_changed = Signal(int, str, object)  # position, scale, 1..5 or None
    dropped = Signal(int, int, str)  # source position, target position, "above"|"tie"|"below"

    def __init__(self, position: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.position = position
        self.candidate: Candidate | None = None
        self._press: QPoint | None = None
        self._updating = False
        self.setObjectName("CandidateCard")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(220)
        self.setAccessibleName(f"Candidate {position + 1}")

        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 8, 10, 8)
        outer.setSpacing(6)

        # header: position, rank, status ... actions, grip
        self.header = QWidget(self)
        self.header.setCursor(Qt.CursorShape.OpenHandCursor)
        self.header.setToolTip("Drag onto another card: upper third = better, middle = tie, lower third = worse")
        h = QHBoxLayout(self.header)
        h.setContentsMargins(0, 0, 0, 0)
        h.setSpacing(8)
        self.position_label = QLabel(str(position + 1), self.header)
        self.position_label.setObjectName("CardPosition")
        self.position_label.setToolTip(f"Press {position + 1} to give this card the next rank")
        self.rank_badge = QLabel("unranked", self.header)
        self.rank_badge.setObjectName("RankBadge")
        self.rank_badge.setAccessibleName(f"Rank of candidate {position + 1}")
        self.status = ElidedLabel("", self.header)
        self.status.setObjectName("CardStatus")
        # the status gives way (it is also in its tooltip) so that every card keeps its width
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(0)
        self.status.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.correct_button = QToolButton(self.header)
        self.correct_button.setObjectName("CardAction")
        self.correct_button.setText("✎ Correct")
        self.correct_button.setToolTip("Rewrite this answer (E)")
        self.correct_button.setAccessibleName(f"Correct candidate {position + 1}")
        self.correct_button.clicked.connect(lambda: self.correction_requested.emit(self.position))
        self.regen_button = QToolButton(self.header)
        self.regen_button.setObjectName("CardAction")
        self.regen_button.setText("↻")
        self.regen_button.setToolTip("Regenerate this answer (R)")
        self.regen_button.setAccessibleName(f"Regenerate candidate {position + 1}")
        self.regen_button.clicked.connect(lambda: self.regeneration_requested.emit(self.position))
        grip = QLabel("⠿", self.header)
        grip.setObjectName("DragGrip")
        grip.setToolTip(self.header.toolTip())
        h.addWidget(self.position_label)
        h.addWidget(self.rank_badge)
        h.addWidget(self.status, 1)
        h.addWidget(self.correct_button)
        h.addWidget(self.regen_button)
        h.addWidget(grip)
        outer.addWidget(self.header)

        # after "Use correction": the card shows the rewrite (what is exported as chosen), says
        # so on a line of its own (it wraps, it is never cut), and the original is one click away
        self.correction_bar = QFrame(self)
        self.correction_bar.setObjectName("CorrectionBar")
        cb = QHBoxLayout(self.correction_bar)
        cb.setContentsMargins(8, 4, 4, 4)
        cb.setSpacing(8)
        self.corrected_badge = QLabel("", self.correction_bar)
        self.corrected_badge.setObjectName("CorrectedBadge")
        self.corrected_badge.setWordWrap(True)
        self.corrected_badge.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.original_button = QToolButton(self.correction_bar)
        self.original_button.setObjectName("CardAction")
        self.original_button.setCheckable(True)
        self.original_button.setAccessibleName(f"Show the original text of candidate {position + 1}")
        self.original_button.toggled.connect(self._show_original)
        cb.addWidget(self.corrected_badge, 1)
        cb.addWidget(self.original_button, 0, Qt.AlignmentFlag.AlignTop)
        self.correction_bar.hide()
        outer.addWidget(self.correction_bar)
        self.correction_text: str | None = None  # the tutor's rewrite of this card, if any
        self._shown: tuple[str, str] | None = None  # ("markdown", text) the view shows

        self.view = SafeTextView(
            self, accessible_name=f"Text of candidate {position + 1}", preferred_height=110
        )
        self.view.setMinimumHeight(90)
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.viewport().installEventFilter(self)
        self.view.installEventFilter(self)
        outer.addWidget(self.view, 1)

        # footer: flags (wrapping) and ratings
        flags_host, flow = expanding_flow_host(self)
        self.flag_buttons: dict[str, QToolButton] = {}
        for flag in FLAGS:
            b = QToolButton(flags_host)
            b.setObjectName("FlagButton")
            b.setCheckable(True)
            b.setText(FLAG_LABELS.get(flag, flag))
            key = FLAG_KEYS.get(flag, "")
            b.setToolTip(f"Flag this answer: {flag}" + (f" ({key})" if key else ""))
            b.setAccessibleName(f"Flag {flag} on candidate {position + 1}")
            b.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            b.toggled.connect(lambda on, f=flag: self._flag_toggled(f, on))
            flow.addWidget(b)
            self.flag_buttons[flag] = b
        # ratings flow with the flags (one or two lines, whatever the card's width)
        self.rating_boxes: dict[str, QComboBox] = {}
        for scale in RATING_SCALES:
            holder = QWidget(flags_host)
            hl = QHBoxLayout(holder)
            hl.setContentsMargins(6 if scale == RATING_SCALES[0] else 0, 0, 0, 0)
            hl.setSpacing(4)
            label = QLabel(scale.capitalize(), holder)
            label.setObjectName("RatingLabel")
            box = QComboBox(holder)
            box.setObjectName("RatingBox")
            box.addItem("–", None)
            for v in range(1, 6):
                box.addItem(str(v), v)
            box.setAccessibleName(f"{scale.capitalize()} rating of candidate {position + 1}")
            box.setToolTip(f"{scale.capitalize()}: 1 (poor) to 5 (excellent), optional")
            box.currentIndexChanged.connect(lambda _i, s=scale: self._rating_changed(s))
            label.setBuddy(box)
            hl.addWidget(label)
            hl.addWidget(box)
            flow.addWidget(holder)
            self.rating_boxes[scale] = box
        outer.addWidget(flags_host)
        self.set_judging_enabled(False)

    # -- content ---------------------------------------------------------------------------------

    def set_candidate(self, candidate: Candidate | None, *, status: str = "") -> None:
        self.candidate = candidate
        self._forget_correction()
        self._show("markdown", candidate.text if candidate is not None else "")
        self.set_status(status)

    def set_streaming_text(self, text: str) -> None:
        self._forget_correction()
        self._show("markdown", text)

    def set_placeholder(self, text: str) -> None:
        self.candidate = None
        self._forget_correction()
        self._show("plain", text)

    def _show(self, kind: str, text: str) -> None:
        if self._shown == (kind, text):
            return  # the bench refreshes often; the view renders only what changed
        self._shown = (kind, text)
        if kind == "plain":
            self.view.set_plain(text)
        else:
            self.view.set_markdown(text)

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def text(self) -> str:
        """The answer the card shows (the correction, when it shows one); "" while it shows a
        placeholder ("Waiting for the model to load…"), which the bench may replace."""
        if self._shown is not None and self._shown[0] == "plain":
            return ""
        return self.view.raw_text()

    def placeholder(self) -> str:
        """The placeholder shown instead of an answer ("" when it shows one)."""
        return self.view.raw_text() if self._shown is not None and self._shown[0] == "plain" else ""

    def set_rank(self, rank: int | None, *, tied: bool = False, best: bool = False) -> None:
        if rank is None:
            self.rank_badge.setText("unranked")
        else:
            self.rank_badge.setText(f"Rank {rank}" + (" · tie" if tied else ""))
        self.rank_badge.setProperty("ranked", rank is not None)
        self.rank_badge.setProperty("best", bool(best and rank is not None))
        _repolish(self.rank_badge)
        name = f"Candidate {self.position + 1}, " + ("unranked" if rank is None else f"rank {rank}")
        self.setAccessibleName(name + (", tied" if tied else ""))

    def set_selected(self, on: bool) -> None:
        if self.property("selected") == on:
            return
        self.setProperty("selected", on)
        _repolish(self)
        _repolish(self.position_label)

    def set_flags(self, flags: set[str]) -> None:
        self._updating = True
        try:
            for flag, b in self.flag_buttons.items():
                b.setChecked(flag in flags)
        finally:
            self._updating = False

    def set_ratings(self, ratings: dict[str, int]) -> None:
        self._updating = True
        try:
            for scale, box in self.rating_boxes.items():
                value = ratings.get(scale)
                box.setCurrentIndex(0 if value is None else int(value))
        finally:
            self._updating = False

    def set_corrected(self, on: bool, text: str | None = None) -> None:
        """Whether the tutor's correction rewrites this card, and its text: the card then
        shows the rewrite (the original stays a click away on ``original_button``)."""
        if not on:
            self._forget_correction()
            if self.candidate is not None:
                self._show("markdown", self.candidate.text)
            return
        if text is not None and text != self.correction_text:
            self.correction_text = text
            self.original_button.setChecked(False)
        self.correction_bar.show()
        self._show_original(self.original_button.isChecked())

    def showing_original(self) -> bool:
        """True while a corrected card shows the model's original text."""
        return self.correction_text is not None and self.original_button.isChecked()

    def _forget_correction(self) -> None:
        self.correction_text = None
        self.correction_bar.hide()
        if self.original_button.isChecked():
            self.original_button.blockSignals(True)
            self.original_button.setChecked(False)
            self.original_button.blockSignals(False)

    def _show_original(self, original: bool) -> None:
        if original or self.correction_text is None:
            self.corrected_badge.setText(
                "The model's original answer. Your correction replaces it as the chosen answer."
            )
            self.original_button.setText("Show your correction")
            self.original_button.setToolTip("Show the corrected text again")
            self._show("markdown", self.candidate.text if self.candidate is not None else "")
        else:
            self.corrected_badge.setText(
                "✎ Your correction, shown here: it is exported as the chosen answer."
            )
            self.original_button.setText("Show the original")
            self.original_button.setToolTip("Show the model's answer as it was written")
            self._show("markdown", self.correction_text)
        self.corrected_badge.setToolTip(self.corrected_badge.text())

    def set_judging_enabled(self, on: bool) -> None:
        for b in self.flag_buttons.values():
            b.setEnabled(on)
        for box in self.rating_boxes.values():
            box.setEnabled(on)
        self.correct_button.setEnabled(on)

    def set_regenerate_enabled(self, on: bool) -> None:
        self.regen_button.setEnabled(on)

    # -- reporting -------------------------------------------------------------------------------

    def _flag_toggled(self, flag: str, on: bool) -> None:
        if not self._updating:
            self.flag_toggled.emit(self.position, flag, on)

    def _rating_changed(self, scale: str) -> None:
        if not self._updating:
            self.rating_changed.emit(self.position, scale, self.rating_boxes[scale].currentData())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            self.selected.emit(self.position)
        return False

    def focusInEvent(self, event) -> None:  # noqa: N802
        super().focusInEvent(event)
        self.selected.emit(self.position)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.selected.emit(self.position)
        if event.button() == Qt.MouseButton.LeftButton and self.header.geometry().contains(event.position().toPoint()):
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is not None and (
            (event.position().toPoint() - self._press).manhattanLength() >= QApplication.startDragDistance()
        ):
            self._press = None
            self.start_drag()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = None
        super().mouseReleaseEvent(event)

    def mime_data(self) -> QMimeData:
        mime = QMimeData()
        mime.setData(CARD_MIME, QByteArray(str(self.position).encode()))
        mime.setText(f"Candidate {self.position + 1}")
        return mime

    def start_drag(self) -> None:
        drag = QDrag(self)
        drag.setMimeData(self.mime_data())
        drag.setPixmap(self.header.grab())
        drag.setHotSpot(QPoint(10, 10))
        drag.exec(Qt.DropAction.MoveAction)

    # -- drops -------------------------------------------------------------------------------------

    @staticmethod
    def _source_position(mime: QMimeData) -> int | None:
        if not mime.hasFormat(CARD_MIME):
            return None
        try:
            return int(bytes(mime.data(CARD_MIME)).decode())
        except ValueError:
            return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        src = self._source_position(event.mimeData())
        if src is not None and src != self.position:
            event.acceptProposedAction()
            self._show_drop_hint(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        src = self._source_position(event.mimeData())
        if src is None or src == self.position:
            event.ignore()
            return
        zone = drop_zone(int(event.position().y()), self.height())
        self.status.setText({"above": "drop: better than this", "tie": "drop: tie", "below": "drop: worse than this"}[zone])
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self._show_drop_hint(False)

    def dropEvent(self, event) -> None:  # noqa: N802
        self._show_drop_hint(False)
        src = self._source_position(event.mimeData())
        if src is None or src == self.position:
            event.ignore()
            return
        event.acceptProposedAction()
        self.dropped.emit(src, self.position, drop_zone(int(event.position().y()), self.height()))

    def _show_drop_hint(self, on: bool) -> None:
        if on:
            self._status_before_drag = self.status.text()
        else:
            self.status.setText(getattr(self, "_status_before_drag", self.status.text()))
        self.setProperty("dropHint", on)
        _repolish(self)
