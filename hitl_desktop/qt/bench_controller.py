"""The bench's controller: the tutor's actions (submit, skip, undo, re-judge, continue, a typed
prompt, samples, corrections, sessions, guidelines) as workflow calls, and the item on the bench.

The rules are the workflow's (core/workflow.py); this view turns an action into one workflow
call and a refusal into a message. It subscribes to the workflow: a new item goes on the bench
(cards as they were ordered, else the generation controller asks the model), a new session
loads the next item, a change of the history updates Undo and Continue. It takes the workflow,
the bench, the generation controller and callbacks, never the window.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QWidget

from hitl_desktop.core.events import Change, Changes
from hitl_desktop.core.guidelines import Guideline
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.rubrics import RubricError
from hitl_desktop.core.store import StoreError
from hitl_desktop.core.types import Judgment, Prompt, Session
from hitl_desktop.core.workflow import BenchItem, TutorWorkflow, WorkflowError, shuffled_positions
from hitl_desktop.qt.bench import BenchView
from hitl_desktop.qt.candidate_card import FLAG_KEYS
from hitl_desktop.qt.generation import GenerationController, sentence
from hitl_desktop.qt.message_bar import MessageBar
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.status_bar import summary_text
from hitl_desktop.qt.wording import count

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)


def prompt_meta(prompt: Prompt) -> str:
    return " · ".join(bit for bit in (prompt.external_id, prompt.source) if bit)


class BenchController(QObject):
    """Module docstring. ``open_dialog(dialog)`` shows a window-modal dialog; ``parent`` is
    the dialogs' parent widget."""

    session_started = Signal(object)  # Session
    prompt_loaded = Signal(object)  # Prompt
    candidates_ready = Signal(str)  # prompt id: the cards can be judged
    judgment_saved = Signal(object)  # Judgment
    judgment_undone = Signal(str)  # judgment id

    def __init__(self, *, workflow: TutorWorkflow, bench: BenchView, generation: GenerationController,
                 messages: MessageBar, settings: AppSettings, parent: QWidget,
                 open_dialog: Callable[[Any], None], judge: Any = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.workflow, self.bench, self.generation, self.messages = workflow, bench, generation, messages
        #: submit / undo / reopen go through it: the rubric bench (core/rubric_bench.py), so the
        #: grades are saved, taken back and shown with the judgment; default the workflow
        self.judge = judge if judge is not None else workflow
        self.settings, self.parent_widget, self.open_dialog = settings, parent, open_dialog
        self.item_started = time.monotonic()
        self._shown_item: BenchItem | None = None
        self._shown_session: str | None = None
        b = bench
        b.submit_requested.connect(self.submit)
        b.submit_and_continue_requested.connect(self.submit_and_continue)
        b.skip_requested.connect(self.skip)
        b.undo_requested.connect(self.undo)
        b.continue_requested.connect(lambda: self.continue_conversation())
        b.correction_requested.connect(self.open_correction)
        b.regeneration_requested.connect(generation.regenerate_slot)
        b.regenerate_all_requested.connect(lambda: generation.regenerate_all())
        b.samples_requested.connect(self.load_samples)
        workflow.subscribe(self.changed)

    def show_error(self, text: str) -> None:
        self.messages.show_error(text)

    # -- what changed --------------------------------------------------------------------------

    def changed(self, changes: Changes) -> None:
        wf = self.workflow
        session_id = wf.session.id if wf.session else None
        if Change.SESSION in changes and session_id != self._shown_session:
            self._shown_session = session_id
            self.generation.model.stop_generation()
            if wf.session is not None:
                if wf.pack_tutor() is None:  # a pack's tutor is the pack's only
                    self.settings.tutor_name = wf.own_name or ""
                    self.settings.last_domain = wf.session.domain
                self.load_next()
                self.session_started.emit(wf.session)
        if Change.ITEM in changes and wf.item is None:
            self._shown_item = None
            self.show_nothing()
        elif Change.ITEM in changes and wf.item is not self._shown_item:
            self._shown_item = wf.item
            self.show_item(wf.item)
        if Change.HISTORY in changes or Change.ITEM in changes:
            self.update_history_buttons()

    def show_nothing(self) -> None:
        """The bench with nothing on it says why: no session, a finished pack, an empty queue."""
        wf = self.workflow
        if wf.session is None:
            self.bench.show_empty("Start a session (Ctrl+Shift+N).")
            return
        try:
            done = wf.finished_pack()
        except DB_ERRORS:
            done = None
        if done is not None:
            self.bench.show_empty(
                f"This pack is done: hand back {done.name} to your lead.\n\nIt is in {done.parent}."
            )
            return
        samples = wf.samples_path() is not None
        self.bench.show_empty(
            f"Nothing is waiting in {wf.session.domain}.\n"
            "Type a prompt in the box on the left (Ctrl+N)" + (", or load the sample prompts." if samples else "."),
            samples=samples,
        )

    def show_item(self, item: BenchItem) -> None:
        """Show the workflow's item: its cards as they were ordered, else generate."""
        if self.generation.model.is_generating():
            self.generation.model.stop_generation()
        prompt = item.prompt
        self.bench.show_prompt(prompt, meta=prompt_meta(prompt))
        self.prompt_loaded.emit(prompt)
        if item.needs_generation:
            self.generation.generate_for_item()
            return
        ids = [c.id for c in item.candidates]
        order = item.order
        if order and set(order) == set(ids) and len(order) == len(ids):
            positions = [ids.index(cid) for cid in order]
        else:
            positions = shuffled_positions(len(ids))
        self.bench.show_candidates(item.candidates, positions=positions, state=item.state)
        self.ready(prompt.id)

    def ready(self, prompt_id: str) -> None:
        """The cards can be judged: the item's time starts now."""
        self.item_started = time.monotonic()
        self.candidates_ready.emit(prompt_id)

    def update_history_buttons(self) -> None:
        try:
            can_continue = self.workflow.can_continue()
        except DB_ERRORS:
            can_continue = False
        self.bench.set_history(can_undo=self.workflow.can_undo(), can_continue=can_continue)

    # -- the queue ------------------------------------------------------------------------------

    def refresh_queue(self) -> None:
        try:
            self.workflow.refresh_queue()
        except DB_ERRORS as e:
            self.show_error(f"The queue could not be read: {e}")

    def load_next(self) -> None:
        try:
            self.workflow.open_next()
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be read: {e}")

    def load_prompt(self, prompt: Prompt, *, state: JudgingState | None = None, order: list[str] | None = None) -> None:
        """Put a prompt on the bench: its candidate set, or new ones from the model."""
        try:
            self.workflow.open_item(prompt, state=state, order=order)
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be read: {e}")

    def add_prompt(self, text: str) -> Prompt | None:
        if self.workflow.session is None:
            self.show_error("Start a session first (Ctrl+Shift+N).")
            return None
        try:
            return self.workflow.add_prompt(text)
        except WorkflowError as e:
            self.show_error(sentence(e))
        except DB_ERRORS as e:
            self.show_error(f"The prompt could not be saved: {e}")
        return None

    def load_samples(self) -> int:
        """Add the domain's sample prompts (those not added before); returns how many."""
        if self.workflow.session is None or self.workflow.samples_path() is None:
            self.show_error("There are no sample prompts for this domain.")
            return 0
        from hitl_desktop.core.importing import ImportFileError  # imported on first use

        try:
            added = self.workflow.load_samples()
        except (WorkflowError, ImportFileError, OSError, *DB_ERRORS) as e:
            self.show_error(f"The sample prompts could not be loaded: {e}")
            return 0
        if self.workflow.prompt is None:
            self.load_next()
        self.messages.show_info(f"{count(added, 'sample prompt')} added.")
        return added

    # -- judging ------------------------------------------------------------------------------

    def submit(self, *, then_load_next: bool = True) -> Judgment | None:
        wf = self.workflow
        if self.bench.phase != "judging" or wf.prompt is None or wf.session is None or wf.tutor is None:
            return None
        reasons = self.bench.blocking_reasons()
        if reasons:
            self.messages.show_message("Not submitted: " + "; ".join(reasons) + ".", severity="warning", timeout_ms=6000)
            return None
        assert self.bench.state is not None
        try:
            judgment = self.judge.submit(self.bench.state, seconds_spent=round(time.monotonic() - self.item_started, 3))
        except RubricError as e:
            self.messages.show_message(f"Not submitted: {e}.", severity="warning", timeout_ms=6000)
            return None
        except DB_ERRORS as e:
            self.show_error(f"The judgment was not saved: {e}")
            return None
        self.messages.hide()
        self.judgment_saved.emit(judgment)
        if then_load_next:
            self.load_next()
        return judgment

    def submit_and_continue(self) -> None:
        if self.submit(then_load_next=False) is not None:
            self.continue_conversation()

    def skip(self) -> None:
        if self.workflow.prompt is None:
            return
        if self.generation.model.is_generating():
            self.generation.model.stop_generation()
        self.workflow.skip()

    def undo(self) -> bool:
        """Take back the newest submission not yet undone (Ctrl+Z, again for the one before)
        and put the item back on the bench as it was."""
        try:
            top = self.workflow.next_undo()
            if top is None:
                self.messages.show_info("Nothing to undo.")
                return False
            judgment, _ = top
            self.judge.undo()
        except DB_ERRORS as e:
            self.show_error(f"Could not undo: {e}")
            return False
        if judgment.seconds_spent:
            self.item_started = time.monotonic() - judgment.seconds_spent
        self.messages.show_info("Last submission undone: it is back on the bench.")
        self.judgment_undone.emit(judgment.id)
        return True

    def reopen_judgment(self, judgment_id: str) -> None:
        """Put a past judgment of one's own on the bench; the next submit saves a new version
        that supersedes it (the old one is kept for audit)."""
        if self.workflow.session is None:
            self.show_error("Start a session first (Ctrl+Shift+N); the new version is saved in it.")
            return
        try:
            self.judge.reopen(judgment_id)
        except WorkflowError as e:
            self.show_error(sentence(e))
            return
        except DB_ERRORS as e:
            self.show_error(f"The judgment could not be read: {e}")
            return
        self.messages.show_info("Editing a past judgment: Submit saves a new version; the old one is kept for audit.")

    def continue_conversation(self, text: str | None = None) -> Prompt | None:
        """Next turn of the last judged conversation: the best (or corrected) answer becomes
        the assistant's turn, ``text`` the user's next one. Without ``text``, asks for it."""
        wf = self.workflow
        if not wf.history or wf.session is None:
            self.messages.show_info("Submit a judgment first; its best answer carries the conversation on.")
            return None
        try:
            carried = wf.carried_answer()
        except DB_ERRORS:
            carried = None
        if carried is None:
            self.show_error("Nothing to carry forward: all answers were bad and none was corrected.")
            return None
        if text is None:
            from hitl_desktop.qt.dialogs.text_entry import ContinueDialog

            _, prompt = wf.history[-1]
            answer, corrected = carried
            dialog = ContinueDialog(self.parent_widget, answer=answer, corrected=corrected)
            dialog.accepted.connect(lambda: self.continue_conversation(dialog.text()))
            dialog.rejected.connect(
                lambda: self.load_next() if self.bench.phase == "judging" and wf.prompt and wf.prompt.id == prompt.id else None
            )
            self.open_dialog(dialog)
            return None
        try:
            return wf.continue_conversation(text)
        except WorkflowError as e:
            self.show_error(sentence(e))
        except DB_ERRORS as e:
            self.show_error(f"The next turn could not be saved: {e}")
        return None

    # -- corrections ---------------------------------------------------------------------------

    def open_correction(self, candidate_id: str) -> None:
        from hitl_desktop.qt.dialogs.correction import CorrectionDialog

        cand = self.bench.candidate_by_id(candidate_id)
        state = self.bench.state
        if cand is None or state is None:
            return
        current = None
        if state.correction is not None and state.correction.candidate_id == candidate_id:
            current = state.correction.text
        position = state.display_order.index(candidate_id) if candidate_id in state.display_order else 0
        dialog = CorrectionDialog(self.parent_widget, original=cand.text, current=current, position=position)
        self.correction_dialog = dialog

        def accepted() -> None:
            if dialog.removed:
                self.bench.set_correction(None)
            else:
                self.apply_correction(candidate_id, dialog.text())

        dialog.accepted.connect(accepted)
        self.open_dialog(dialog)

    def apply_correction(self, candidate_id: str, text: str) -> None:
        if self.bench.state is None:
            return
        try:
            correction = self.workflow.correction(candidate_id, text)
        except WorkflowError as e:
            self.show_error(sentence(e))
            return
        self.bench.set_correction(correction)

    # -- sessions and guidelines -----------------------------------------------------------------

    def start_session(self, *, tutor_name: str, domain: str, tutor_domains: list[str] | None = None) -> Session | None:
        try:
            return self.workflow.start_session(tutor_name=tutor_name, domain=domain, tutor_domains=tutor_domains)
        except WorkflowError as e:
            self.show_error(sentence(e))
        except DB_ERRORS as e:
            self.show_error(f"The session could not be started: {e}")
        return None

    def begin_session(self) -> str:
        """Start the session the database opens in (core ``opening_of``); the reason ("ask": none)."""
        try:
            opening = self.workflow.begin(own_domain=self.own_domain())
        except (WorkflowError, *DB_ERRORS) as e:
            self.show_error(f"The session could not be started: {e}")
            return "ask"
        return opening.reason

    def own_domain(self) -> str | None:
        """The domain this machine worked in last (a database with none recorded starts there)."""
        return self.settings.last_domain or next(iter(self.settings.tutor_domains), None)

    def start_pack_session(self) -> bool:
        """On a lab's work pack: a session as the pack's tutor. False on an ordinary database."""
        try:
            is_pack = self.workflow.pack_tutor() is not None
        except DB_ERRORS as e:
            self.show_error(f"The pack could not be read: {e}")
            return False
        return is_pack and self.begin_session() == "pack" and self.session is not None

    def session_summary_text(self) -> str:
        try:
            return summary_text(self.workflow.session_summary())
        except DB_ERRORS:
            return ""

    def end_session(self) -> None:
        if self.workflow.session is None:
            return
        summary = self.session_summary_text()
        self.generation.model.stop_generation()
        try:
            self.workflow.end_session()
        except DB_ERRORS as e:
            self.show_error(f"The session could not be ended: {e}")
        self.bench.show_empty(f"Session ended. {summary}\n\nStart a new session (Ctrl+Shift+N).")

    def open_session_dialog(self) -> None:
        from hitl_desktop.qt.dialogs.tutor import SessionDialog

        wf = self.workflow
        try:
            tutors = [t.name for t in wf.store.tutors()]
            domains = wf.store.domains()
        except DB_ERRORS as e:
            self.show_error(str(e))
            return
        mine = wf.tutor.domains if wf.tutor else self.settings.tutor_domains
        dialog = SessionDialog(
            self.parent_widget,
            tutors=tutors,
            tutor=wf.tutor.name if wf.tutor else self.settings.tutor_name,
            domains=[*mine, *domains],
            domain=wf.session.domain if wf.session else self.settings.last_domain,
        )
        dialog.accepted.connect(lambda: self.start_session(tutor_name=dialog.tutor(), domain=dialog.domain()))
        self.open_dialog(dialog)

    def open_guideline_editor(self) -> None:
        from hitl_desktop.qt.dialogs.guideline_editor import GuidelineEditorDialog

        g = self.workflow.guideline
        if g is None:
            return
        domain = g.domain
        history = len(self.workflow.guidelines.history(domain))
        dialog = GuidelineEditorDialog(self.parent_widget, guideline=g, history=history)
        dialog.accepted.connect(lambda: self.save_guideline(domain, dialog.text(), revert=dialog.reverted))
        self.open_dialog(dialog)

    def save_guideline(self, domain: str, text: str, *, revert: bool = False) -> Guideline | None:
        try:
            g = self.workflow.save_guideline(domain, text, revert=revert)
        except (OSError, ValueError, *DB_ERRORS) as e:
            self.show_error(f"The guidelines could not be saved: {e}")
            return None
        if self.workflow.guideline is not None and self.workflow.guideline.domain == domain:
            self.messages.show_info(f"Guidelines saved as {g.version}; new judgments record it.")
        return g


def install_shortcuts(host: QWidget, *, bench: BenchView, actions: BenchController, generation: GenerationController,
                  new_prompt: Callable[[], Any], escape: Callable[[], Any]) -> None:  # fmt: skip
    """The bench's keys (README "Keyboard"), as window-wide shortcuts on ``host``."""
    b, a, g = bench, actions, generation

    def key(keys: str, slot) -> None:
        sc = QShortcut(QKeySequence(keys), host)
        sc.setContext(Qt.ShortcutContext.WindowShortcut)
        sc.activated.connect(slot)

    for n in range(1, 10):
        key(str(n), lambda n=n: b.press_position(n))
    for keys, slot in (("=", b.press_tie), ("Left", lambda: b.select_step(-1)), ("Right", lambda: b.select_step(1)),
                       ("Up", lambda: b.select_row_step(-1)), ("Down", lambda: b.select_row_step(1)),
                       ("+", lambda: b.move_selected(True)), ("Shift++", lambda: b.move_selected(True)),
                       ("-", lambda: b.move_selected(False)), ("0", b.clear_selected), ("Backspace", b.clear_selected),
                       ("Ctrl+Backspace", b.clear_all), ("E", b.correct_selected), ("B", b.toggle_all_bad),
                       ("R", b.regenerate_selected), ("Shift+R", lambda: g.regenerate_all()),
                       ("Ctrl+G", lambda: g.regenerate_all()), ("Ctrl+Shift+R", lambda: g.regenerate_all(new_set=True)),
                       ("Ctrl+Return", a.submit), ("Ctrl+Enter", a.submit), ("Ctrl+Shift+Return", a.submit_and_continue),
                       ("Ctrl+Shift+Enter", a.submit_and_continue), ("Ctrl+Right", a.skip), ("Ctrl+Z", a.undo),
                       ("Ctrl+N", new_prompt), ("Escape", escape)):  # fmt: skip
        key(keys, slot)
    for flag, k in FLAG_KEYS.items():
        key(k, lambda f=flag: b.toggle_flag_selected(f))
    for n in (1, 2, 3):
        key(f"Ctrl+{n}", lambda n=n: b.set_strength(n))


__all__ = ["BenchController", "install_shortcuts"]
