"""The bench: the prompt, K candidate cards, the judging bar and the keyboard scheme.

The bench shows what the window gives it and keeps the judgment being built
(``JudgingState``); it never touches the store or the model. What the tutor asks for
(submit, skip, regenerate, correct...) goes out as signals.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core import rendering
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.types import DEFAULT_STRENGTH, STRENGTHS, Candidate, Prompt
from hitl_desktop.qt.candidate_card import CandidateCard
from hitl_desktop.qt.keys import KEY_HINT, KEY_TABLE
from hitl_desktop.qt.markdown_view import SafeTextView


def conversation_html(prompt: Prompt) -> str:
    """Earlier turns (muted) and the prompt itself, all rendered safely."""
    parts = []
    for m in prompt.messages:
        role = {"user": "USER", "assistant": "ASSISTANT", "system": "SYSTEM"}.get(m.role, m.role.upper())
        parts.append(
            f'<div class="turn"><span class="role">{html.escape(role)}</span>'
            f"{rendering.render_markdown(m.content)}</div>"
        )
    if prompt.messages:
        parts.append('<div class="turn"><span class="role">USER · now</span></div>')
    parts.append(rendering.render_markdown(prompt.text))
    return "".join(parts)


class BenchView(QWidget):
    submit_requested = Signal()
    submit_and_continue_requested = Signal()
    skip_requested = Signal()
    undo_requested = Signal()
    continue_requested = Signal()
    correction_requested = Signal(str)  # candidate id
    regeneration_requested = Signal(int)  # slot (generated index)
    regenerate_all_requested = Signal()
    samples_requested = Signal()
    judgment_changed = Signal()
    cards_shown = Signal(object)  # display order (candidate ids): cards shown, reshuffled or replaced

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt: Prompt | None = None
        self.slots: list[Candidate | None] = []  # by generated index
        self.positions: list[int] = []  # position on screen -> slot
        self.cards: list[CandidateCard] = []
        self.state: JudgingState | None = None
        self.selected_position = 0
        self.tie_pending = False
        self.busy_slots: set[int] = set()
        self.can_undo = False
        self.can_continue = False

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(8)

        # prompt
        self.prompt_frame = QFrame(self)
        self.prompt_frame.setObjectName("Panel")
        pl = QVBoxLayout(self.prompt_frame)
        pl.setContentsMargins(12, 8, 12, 6)
        pl.setSpacing(2)
        self.prompt_title = QLabel("PROMPT", self.prompt_frame)
        self.prompt_title.setObjectName("PromptTitle")
        self.prompt_view = SafeTextView(self.prompt_frame, accessible_name="Prompt")
        self.prompt_view.setObjectName("PromptView")
        self.prompt_view.document().setDocumentMargin(2)
        pl.addWidget(self.prompt_title)
        pl.addWidget(self.prompt_view)
        outer.addWidget(self.prompt_frame)

        # cards or the empty state
        self.stack = QStackedWidget(self)
        self.empty = QWidget()
        el = QVBoxLayout(self.empty)
        el.addStretch(1)
        self.empty_label = QLabel("", self.empty)
        self.empty_label.setObjectName("Muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.samples_button = QPushButton("Load sample prompts", self.empty)
        self.samples_button.setAccessibleName("Load the sample prompts of this domain")
        self.samples_button.clicked.connect(self.samples_requested)
        el.addWidget(self.empty_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.samples_button)
        row.addStretch(1)
        el.addLayout(row)
        el.addStretch(2)
        self.stack.addWidget(self.empty)

        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cards_host = QWidget()
        self.cards_host.setObjectName("CardsHost")
        self.grid = QGridLayout(self.cards_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(10)
        self.scroll.setWidget(self.cards_host)
        self.columns = 2  # columns the cards are laid out in now (fewer when the bench is narrow)
        self.scroll.viewport().installEventFilter(self)
        self.stack.addWidget(self.scroll)
        outer.addWidget(self.stack, 1)

        # judging bar
        bar = QFrame(self)
        bar.setObjectName("JudgeBar")
        bl = QVBoxLayout(bar)
        bl.setContentsMargins(12, 8, 12, 8)
        bl.setSpacing(6)
        row1 = QHBoxLayout()
        self.order_label = QLabel("", bar)
        self.order_label.setAccessibleName("Ranking so far")
        self.order_label.setTextFormat(Qt.TextFormat.RichText)
        self.all_bad_button = QPushButton("All bad", bar)
        self.all_bad_button.setCheckable(True)
        self.all_bad_button.setToolTip("No candidate is acceptable (B)")
        self.all_bad_button.setAccessibleName("All bad")
        self.all_bad_button.toggled.connect(self._all_bad_toggled)
        strength_label = QLabel("Preference", bar)
        strength_label.setObjectName("Muted")
        self.strength_box = QComboBox(bar)
        for value, text in STRENGTHS.items():
            self.strength_box.addItem(f"{value} · {text}", value)
        self.strength_box.setCurrentIndex(list(STRENGTHS).index(DEFAULT_STRENGTH))
        self.strength_box.setAccessibleName("Strength of preference")
        self.strength_box.setToolTip("How much better the better answers are (Ctrl+1/2/3)")
        self.strength_box.currentIndexChanged.connect(self._strength_changed)
        strength_label.setBuddy(self.strength_box)
        row1.addWidget(self.order_label, 1)
        row1.addWidget(self.all_bad_button)
        row1.addSpacing(8)
        row1.addWidget(strength_label)
        row1.addWidget(self.strength_box)
        bl.addLayout(row1)

        row2 = QHBoxLayout()
        self.rationale = QLineEdit(bar)
        self.rationale.setPlaceholderText("Rationale (optional): why the best answer is best…")
        self.rationale.setAccessibleName("Rationale")
        self.rationale.setClearButtonEnabled(True)
        self.rationale.textEdited.connect(self._rationale_edited)
        self.skip_button = QPushButton("Skip", bar)
        self.skip_button.setToolTip("Leave this prompt for later (Ctrl+→)")
        self.skip_button.clicked.connect(self.skip_requested)
        self.undo_button = QPushButton("Undo", bar)
        self.undo_button.setToolTip("Take back the last submission (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo_requested)
        self.continue_button = QPushButton("Continue conversation…", bar)
        self.continue_button.setToolTip(
            "Next turn: the best (or corrected) answer becomes the assistant's reply "
            "and you type the user's next message (Ctrl+Shift+Enter submits and continues)"
        )
        self.continue_button.clicked.connect(self.continue_requested)
        self.submit_button = QPushButton("Submit  ⌃↵", bar)
        self.submit_button.setObjectName("Primary")
        self.submit_button.setAccessibleName("Submit judgment")
        self.submit_button.setToolTip("Save this judgment (Ctrl+Enter)")
        self.submit_button.clicked.connect(self.submit_requested)
        for b in (self.skip_button, self.undo_button, self.continue_button, self.submit_button):
            b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        row2.addWidget(self.rationale, 1)
        row2.addWidget(self.skip_button)
        row2.addWidget(self.undo_button)
        row2.addWidget(self.continue_button)
        row2.addWidget(self.submit_button)
        bl.addLayout(row2)
        self.hint = QLabel(KEY_HINT, bar)
        self.hint.setObjectName("Hint")
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.hint.setAccessibleName("Keyboard shortcuts")
        bl.addWidget(self.hint)
        outer.addWidget(bar)
        self.show_empty("No session yet.")

    # -- what is shown ---------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        if self.prompt is None:
            return "empty"
        if self.state is None:
            return "generating" if self.cards else "idle"
        return "judging"

    def show_empty(self, message: str, *, samples: bool = False) -> None:
        self.prompt = None
        self.state = None
        self._clear_cards()
        self.prompt_title.setText("PROMPT")
        self.prompt_view.set_plain("")
        self.prompt_frame.setVisible(False)
        self.empty_label.setText(message)
        self.samples_button.setVisible(samples)
        self.stack.setCurrentWidget(self.empty)
        self._refresh()

    def show_no_candidates(self, message: str) -> None:
        """The prompt stays; no cards (generation stopped early or failed)."""
        self.state = None
        self._clear_cards()
        self.empty_label.setText(message)
        self.samples_button.setVisible(False)
        self.stack.setCurrentWidget(self.empty)
        self._refresh()

    def _show_fields(self, rationale: str, all_bad: bool, strength: int) -> None:
        self.rationale.setText(rationale)
        with QSignalBlocker(self.all_bad_button), QSignalBlocker(self.strength_box):
            self.all_bad_button.setChecked(all_bad)
            self.strength_box.setCurrentIndex(max(0, self.strength_box.findData(strength)))

    def show_prompt(self, prompt: Prompt, *, meta: str = "") -> None:
        """A new item: nothing of the last one's rationale, all-bad or strength stays on show."""
        self.prompt = prompt
        self._show_fields("", False, DEFAULT_STRENGTH)
        self.prompt_frame.setVisible(True)
        turn = len(prompt.messages) // 2 + 1
        title = "PROMPT" + (f" · TURN {turn}" if prompt.messages else "")
        self.prompt_title.setText(title + (f"   {meta}" if meta else ""))
        self.prompt_view.set_safe_html(conversation_html(prompt))
        self._fit_prompt()

    def _fit_prompt(self) -> None:
        """The prompt box is as tall as its text, up to a limit (then it scrolls)."""
        doc = self.prompt_view.document()
        doc.setTextWidth(max(200, self.prompt_view.viewport().width()))
        height = int(doc.size().height()) + 6
        self.prompt_view.setFixedHeight(max(36, min(height, 170)))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.prompt is not None:
            self._fit_prompt()

    def _clear_cards(self) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
            card.hide()
            card.deleteLater()
        self.cards = []
        self.slots = []
        self.positions = []
        self.busy_slots = set()
        self.tie_pending = False

    def _columns(self, n: int) -> int:
        return 3 if n in (3, 5, 6, 9) or n > 6 else 2

    def _fitting_columns(self) -> int:
        """The preferred columns, fewer when the cards would not fit side by side (a narrow
        window): the cards never get cut off at the right (there is no horizontal scroll)."""
        cols = self._columns(len(self.cards))
        viewport = self.scroll.viewport()
        if not self.cards or not viewport.isVisible():
            return cols
        need = max(card.minimumSizeHint().width() for card in self.cards)
        spacing = max(0, self.grid.horizontalSpacing())
        while cols > 1 and cols * need + (cols - 1) * spacing > viewport.width():
            cols -= 1
        return cols

    def _layout_cards(self, cols: int) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
        for pos, card in enumerate(self.cards):
            self.grid.addWidget(card, pos // cols, pos % cols)
        for c in range(max(cols, self.grid.columnCount())):
            self.grid.setColumnStretch(c, 1 if c < cols else 0)
        self.columns = cols

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize and watched is self.scroll.viewport() and self.cards:
            cols = self._fitting_columns()
            if cols != self.columns:
                self._layout_cards(cols)
        return super().eventFilter(watched, event)

    def _build_cards(self, n: int, positions: list[int]) -> None:
        self._clear_cards()
        self.positions = list(positions)
        self.slots = [None] * n
        for pos in range(n):
            card = CandidateCard(pos, self.cards_host)
            card.selected.connect(self.select)
            card.correction_requested.connect(self._correct_position)
            card.regeneration_requested.connect(self.regenerate_position)
            card.flag_toggled.connect(self._flag_toggled)
            card.rating_changed.connect(self._rating_changed)
            card.dropped.connect(self.drop)
            self.cards.append(card)
        self.stack.setCurrentWidget(self.scroll)
        self._layout_cards(self._fitting_columns())
        self.selected_position = 0

    def begin_generation(self, *, k: int, positions: list[int], waiting: str) -> None:
        """K empty cards that will fill in as the model writes (positions: pos -> slot)."""
        self.state = None
        self._build_cards(k, positions)
        self.busy_slots = set(range(k))
        for card in self.cards:
            card.set_placeholder(waiting)
            card.set_status("waiting")
        self._refresh()

    def set_waiting_text(self, text: str) -> None:
        for pos, card in enumerate(self.cards):
            if self.positions[pos] in self.busy_slots and not card.text():
                card.set_placeholder(text)

    def stream(self, batch: dict[int, str], *, slots: list[int] | None = None) -> None:
        """Texts so far, by generated index (``slots`` maps a request's index to a slot)."""
        for index, text in batch.items():
            slot = slots[index] if slots is not None and index < len(slots) else index
            pos = self.position_of_slot(slot)
            if pos is not None:
                card = self.cards[pos]
                card.set_streaming_text(text)
                card.set_status("writing…")

    def position_of_slot(self, slot: int) -> int | None:
        try:
            return self.positions.index(slot)
        except ValueError:
            return None

    def show_candidates(
        self,
        candidates: list[Candidate],
        *,
        positions: list[int],
        state: JudgingState | None = None,
    ) -> None:
        """Candidates ready to judge; ``positions[p]`` is the index into ``candidates``."""
        if len(self.cards) != len(candidates) or self.positions != list(positions):
            self._build_cards(len(candidates), positions)
        self.busy_slots = set()
        for pos, card in enumerate(self.cards):
            c = candidates[self.positions[pos]]
            self.slots[self.positions[pos]] = c
            card.set_candidate(c, status=_candidate_status(c))
            card.status.setToolTip(_candidate_details(c))
        order = [candidates[s].id for s in self.positions]
        self.state = state if state is not None else JudgingState(display_order=order)
        self.state.display_order = order
        self._show_fields(self.state.rationale, self.state.all_bad, self.state.strength)
        self.select(0)
        self._refresh()
        self.cards_shown.emit(list(order))

    def begin_regeneration(self, slot: int, waiting: str = "Writing a new answer…") -> None:
        pos = self.position_of_slot(slot)
        if pos is None:
            return
        old = self.slots[slot]
        if old is not None and self.state is not None:
            self.state.forget(old.id)
        self.busy_slots.add(slot)
        self.cards[pos].set_placeholder(waiting)
        self.cards[pos].set_status("waiting")
        self._refresh()

    def finish_regeneration(self, slot: int, candidate: Candidate | None) -> None:
        """The slot's new candidate (None: keep the old one)."""
        self.busy_slots.discard(slot)
        pos = self.position_of_slot(slot)
        if pos is None:
            return
        old = self.slots[slot]
        if candidate is not None:
            self.slots[slot] = candidate
            if self.state is not None and old is not None:
                self.state.replace_id(old.id, candidate.id)
        shown = self.slots[slot]
        if shown is not None:
            self.cards[pos].set_candidate(shown, status=_candidate_status(shown))
            self.cards[pos].status.setToolTip(_candidate_details(shown))
        self._refresh()
        if candidate is not None and self.state is not None:
            self.cards_shown.emit(self.display_order_ids())

    def candidate_at(self, position: int) -> Candidate | None:
        if 0 <= position < len(self.positions):
            return self.slots[self.positions[position]]
        return None

    def candidate_by_id(self, cid: str) -> Candidate | None:
        return next((c for c in self.slots if c is not None and c.id == cid), None)

    def display_order_ids(self) -> list[str]:
        return list(self.state.display_order) if self.state else []

    # -- the keyboard scheme -------------------------------------------------------------------

    def _judging(self) -> bool:
        return self.state is not None

    def _cid(self, position: int) -> str | None:
        c = self.candidate_at(position)
        return c.id if c is not None else None

    def press_position(self, number: int) -> bool:
        """Digit ``number`` (1-9): rank the card at that position next (or tie, after =)."""
        pos = number - 1
        cid = self._cid(pos)
        if not self._judging() or cid is None:
            return False
        assert self.state is not None
        if self.tie_pending:
            self.state.tie_with_last(cid)
            self.tie_pending = False
        else:
            self.state.rank_next(cid)
        self.select(pos)
        self._changed()
        return True

    def press_tie(self) -> None:
        if self._judging():
            self.tie_pending = not self.tie_pending
            self._refresh()

    def cancel_tie(self) -> bool:
        if self.tie_pending:
            self.tie_pending = False
            self._refresh()
            return True
        return False

    def select(self, position: int) -> None:
        if not self.cards:
            return
        position = max(0, min(position, len(self.cards) - 1))
        self.selected_position = position
        for pos, card in enumerate(self.cards):
            card.set_selected(pos == position)
        self.scroll.ensureWidgetVisible(self.cards[position], 0, 0)

    def select_step(self, delta: int) -> None:
        if self.cards:
            self.select((self.selected_position + delta) % len(self.cards))

    def select_row_step(self, delta: int) -> None:
        if self.cards:
            target = self.selected_position + delta * self.columns
            if 0 <= target < len(self.cards):
                self.select(target)

    def move_selected(self, up: bool) -> None:
        cid = self._cid(self.selected_position)
        if self._judging() and cid is not None:
            assert self.state is not None
            if up:
                self.state.move_up(cid)
            else:
                self.state.move_down(cid)
            self._changed()

    def clear_selected(self) -> None:
        cid = self._cid(self.selected_position)
        if self._judging() and cid is not None:
            assert self.state is not None
            self.state.clear(cid)
            self._changed()

    def clear_all(self) -> None:
        if self._judging():
            assert self.state is not None
            self.state.clear_all()
            self.tie_pending = False
            self._changed()

    def toggle_flag_selected(self, flag: str) -> None:
        cid = self._cid(self.selected_position)
        if self._judging() and cid is not None:
            assert self.state is not None
            self.state.toggle_flag(cid, flag)
            self._changed()

    def toggle_all_bad(self) -> None:
        if self._judging():
            self.all_bad_button.toggle()

    def set_strength(self, value: int) -> None:
        idx = self.strength_box.findData(value)
        if idx >= 0:
            self.strength_box.setCurrentIndex(idx)

    def correct_selected(self) -> None:
        self._correct_position(self.selected_position)

    def regenerate_position(self, position: int) -> None:
        if 0 <= position < len(self.positions) and self.positions[position] not in self.busy_slots:
            self.regeneration_requested.emit(self.positions[position])

    def regenerate_selected(self) -> None:
        self.regenerate_position(self.selected_position)

    def drop(self, source: int, target: int, how: str) -> None:
        """A card dragged onto another: above, tie or below it."""
        a, b = self._cid(source), self._cid(target)
        if self._judging() and a is not None and b is not None:
            assert self.state is not None
            self.state.place(a, b, how)
            self.select(source)
            self._changed()

    # -- from the cards and the bar -----------------------------------------------------------------

    def _correct_position(self, position: int) -> None:
        cid = self._cid(position)
        if self._judging() and cid is not None:
            self.correction_requested.emit(cid)

    def _flag_toggled(self, position: int, flag: str, on: bool) -> None:
        cid = self._cid(position)
        if self._judging() and cid is not None:
            assert self.state is not None
            self.state.set_flag(cid, flag, on)
            self._changed()

    def _rating_changed(self, position: int, scale: str, value) -> None:
        cid = self._cid(position)
        if self._judging() and cid is not None:
            assert self.state is not None
            self.state.set_rating(cid, scale, value)
            self._changed()

    def _all_bad_toggled(self, on: bool) -> None:
        if self.state is not None:
            self.state.all_bad = on
            self._changed()

    def _strength_changed(self, _index: int) -> None:
        if self.state is not None:
            self.state.strength = int(self.strength_box.currentData())
            self._changed()

    def _rationale_edited(self, text: str) -> None:
        if self.state is not None:
            self.state.rationale = text

    def set_ranking(self, ranks: dict[str, int]) -> None:
        """Put a ranking on the bench ({candidate id: rank}, 1 = best, equal ranks tie): the
        grading grid's "Use this ranking"; the tutor may still change it."""
        if self.state is not None:
            self.state.set_levels_from_ranks(ranks)
            self._changed()

    def set_correction(self, correction) -> None:
        if self.state is not None:
            self.state.correction = correction
            self._changed()

    def _changed(self) -> None:
        self._refresh()
        self.judgment_changed.emit()

    # -- drawing the state ---------------------------------------------------------------------------

    def blocking_reasons(self) -> list[str]:
        if self.state is None:
            return ["the candidates are not ready"]
        if self.busy_slots:
            return ["a candidate is still being written"]
        return self.state.missing()

    def _order_text(self) -> str:
        if self.state is None:
            if self.phase != "generating":  # no prompt, or no answers (generation failed or stopped)
                return ""
            return '<span style="color:gray">Candidates are being written… (Esc stops)</span>'
        pos_of = {self._cid(p): p + 1 for p in range(len(self.cards))}
        levels = [" = ".join(str(pos_of.get(cid, "?")) for cid in level) for level in self.state.levels]
        text = " › ".join(levels) if levels else "—"
        rest = len(self.state.unranked())
        parts = [f"<b>Ranking</b>&nbsp; {html.escape(text)}"]
        if rest:
            parts.append(f'<span style="color:gray">&nbsp;&nbsp;{rest} unranked</span>')
        if self.tie_pending:
            parts.append("&nbsp;&nbsp;<b>= tie:</b> press the card's number")
        if self.state.all_bad:
            parts.append("&nbsp;&nbsp;<b>all bad</b>")
        if self.state.correction is not None:
            parts.append("&nbsp;&nbsp;✎ corrected")
        return "".join(parts)

    def _refresh(self) -> None:
        state = self.state
        best_level = state.levels[0] if state is not None and state.levels else []
        for pos, card in enumerate(self.cards):
            slot = self.positions[pos]
            busy = slot in self.busy_slots
            c = self.slots[slot] if slot < len(self.slots) else None
            judging = state is not None and not busy and c is not None
            card.set_judging_enabled(judging)
            card.set_regenerate_enabled(state is not None and not busy)
            if state is not None and c is not None and not busy:
                rank = state.rank_of(c.id)
                card.set_rank(rank, tied=state.is_tied(c.id), best=c.id in best_level)
                card.set_flags(state.flags.get(c.id, set()))
                card.set_ratings(state.ratings.get(c.id, {}))
                card.set_corrected(state.correction is not None and state.correction.candidate_id == c.id, text=getattr(state.correction, "text", None))
            else:
                card.set_rank(None)
                card.set_flags(set())
                card.set_ratings({})
                card.set_corrected(False)
        self.order_label.setText(self._order_text())
        judging = state is not None
        self.all_bad_button.setEnabled(judging)
        self.strength_box.setEnabled(judging)
        self.rationale.setEnabled(judging)
        self.skip_button.setEnabled(self.prompt is not None)
        self.submit_button.setEnabled(judging and not self.blocking_reasons())
        self.submit_button.setToolTip(
            "Save this judgment (Ctrl+Enter)"
            if not self.blocking_reasons()
            else "Not yet: " + "; ".join(self.blocking_reasons())
        )
        self.undo_button.setEnabled(self.can_undo)
        self.continue_button.setEnabled(self.can_continue)

    def set_history(self, *, can_undo: bool, can_continue: bool) -> None:
        self.can_undo = can_undo
        self.can_continue = can_continue
        self._refresh()

    def apply_theme(self) -> None:
        self.prompt_view.apply_theme()
        for card in self.cards:
            card.view.apply_theme()


def _candidate_status(c: Candidate) -> str:
    bits = []
    if c.tokens:
        bits.append(f"{c.tokens} tok")
    if c.seconds:
        bits.append(f"{c.seconds:.0f} s" if c.seconds >= 10 else f"{c.seconds:.1f} s")
    if (c.params or {}).get("finish_reason") == "stopped":
        bits.append("stopped")
    return " · ".join(bits)


def _candidate_details(c: Candidate) -> str:
    reason = {"eos": "ended by the model", "length": "cut at the token limit", "stopped": "stopped by you"}
    finish = reason.get((c.params or {}).get("finish_reason", ""), "")
    lines = [
        f"Model: {c.model or '?'}" + (f" ({c.dtype})" if c.dtype else ""),
        f"Seed: {c.seed}" if c.seed is not None else "",
        f"{c.tokens} tokens in {c.seconds:.1f} s" if c.tokens and c.seconds else "",
        f"Finish: {finish}" if finish else "",
    ]
    return "\n".join(line for line in lines if line)


__all__ = ["KEY_HINT", "KEY_TABLE", "BenchView", "conversation_html"]
