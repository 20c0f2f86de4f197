"""The generation controller: asks the model for a plan's candidates, streams them onto the bench,
and stores what comes back through the workflow.

Which result is current is the workflow's rule (``core.workflow.GenerationBook``: the prompt
still on the bench, no newer full set on its way); this view only turns the model's signals
into bench updates. It takes the workflow, the model's controller, the bench and callbacks,
never the window.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from hitl_desktop.core.backends.base import GenerationResult
from hitl_desktop.core.engine import candidates_from_result
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.store import StoreError
from hitl_desktop.core.workflow import (
    GenerationPlan,
    TutorWorkflow,
    WorkflowError,
    shuffled_positions,
)
from hitl_desktop.qt.bench import BenchView
from hitl_desktop.qt.settings import AppSettings
from hitl_desktop.qt.status_bar import StatusView
from hitl_desktop.qt.workers import GenerationRequest, ModelController

DB_ERRORS = (StoreError, RankingError, sqlite3.Error)


def sentence(e: Exception) -> str:
    """A workflow's one-line reason as a sentence for the message bar."""
    text = str(e).strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


class GenerationController:
    """Module docstring. ``on_ready(prompt_id)``: the cards can be judged; ``on_failed(message)``:
    a generation failed; ``show_error`` / ``show_info`` / ``show_warning``: the message bar."""

    def __init__(self, *, workflow: TutorWorkflow, model: ModelController, bench: BenchView, settings: AppSettings,
                 status: StatusView, show_error: Callable[[str], None], show_info: Callable[[str], None],
                 show_warning: Callable[[str], None], on_ready: Callable[[str], None],
                 on_failed: Callable[[str], None]) -> None:  # fmt: skip
        self.workflow, self.model, self.bench, self.settings, self.status = workflow, model, bench, settings, status
        self.show_error, self.show_info, self.show_warning = show_error, show_info, show_warning
        self.on_ready, self.on_failed = on_ready, on_failed
        self.requests: dict[int, GenerationRequest] = {}
        model.state_changed.connect(self._state_changed)
        model.load_progressed.connect(lambda *_: self._state_changed(""))  # after the status bar took it
        model.load_failed.connect(
            lambda message: show_error(f"The model could not be loaded: {message}. Choose another model in Settings (Ctrl+,).")
        )
        model.tokens_streamed.connect(self._tokens_streamed)
        model.generated.connect(self._generated)
        model.generation_failed.connect(self._generation_failed)

    # -- the model ---------------------------------------------------------------------------

    def start_model(self, model_path: str | None) -> None:
        spec = self.settings.backend_spec()
        models = [model_path, *self.settings.compare_models]
        self.status.show_models(models)
        self.model.load(
            models if len(models) > 1 else models[0],
            device=spec["device"],
            served_model=spec["served_model"],
            completions=spec["completions"],
            max_concurrency=spec["max_concurrency"],
        )

    def _state_changed(self, _state: str) -> None:
        if self.bench.phase == "generating":
            self.bench.set_waiting_text(self.waiting_text())

    def waiting_text(self) -> str:
        if self.model.state == "loading":
            return self.status.load_state.waiting()
        if self.model.state == "error":
            return "The model is not available."
        return "Writing…"

    def stop(self) -> None:
        self.model.stop_generation()
        self.status.show_stopping()

    def clear(self) -> None:
        """Forget the requests under way (another database: the workflow forgets its own)."""
        self.model.stop_generation()
        self.requests.clear()

    # -- asking ------------------------------------------------------------------------------

    def _ask(self, plan: GenerationPlan, *, slots: list[int] | None = None) -> None:
        request = self.model.generate(
            conversation=plan.prompt.conversation(),
            k=plan.k,
            params=self.settings.sampling_params(),
            seeds=plan.seeds,
            slots=slots,
            purpose="one" if plan.replaces else "all",
            meta={"prompt_id": plan.prompt.id},
        )
        self.requests[request.request_id] = request
        self.workflow.generation_started(request.request_id, plan)

    def _start(self, plan: GenerationPlan) -> None:
        """Ask the model for a plan's K candidates; the cards show them streaming."""
        self.bench.begin_generation(k=plan.k, positions=shuffled_positions(plan.k), waiting=self.waiting_text())
        self._ask(plan)
        self.status.show_model_state()

    def generate_for_item(self) -> None:
        """Candidates for the item on the bench (seeds from its stable id when it has one)."""
        if self.workflow.item is None:
            return
        try:
            plan = self.workflow.plan_generation(k=self.settings.k, base_seed=self.settings.seed)
        except DB_ERRORS as e:
            self.show_error(f"Could not clear the old candidates: {e}")
            return
        self._start(plan)

    def regenerate_all(self, *, new_set: bool = False) -> None:
        """Regenerate every candidate (Shift+R). Candidates that came with the prompt are
        kept; ``new_set`` (Ctrl+Shift+R) writes a new, separate set beside them."""
        if self.workflow.item is None:
            return
        self.model.stop_generation()
        try:
            plan = self.workflow.plan_regenerate_all(k=self.settings.k, new_set=new_set)
        except WorkflowError as e:
            self.show_warning(sentence(e))
            return
        except DB_ERRORS as e:
            self.show_error(f"Could not clear the old candidates: {e}")
            return
        self._start(plan)

    def regenerate_slot(self, slot: int) -> None:
        """Regenerate one card (R); refused for candidates that came with the prompt."""
        if self.workflow.item is None or self.bench.state is None:
            return
        old = self.bench.slots[slot] if slot < len(self.bench.slots) else None
        if old is None:
            return
        try:
            plan = self.workflow.plan_regenerate_one(old.id)
        except WorkflowError as e:
            self.show_warning(sentence(e))
            return
        self.bench.begin_regeneration(slot, waiting=self.waiting_text())
        self._ask(plan, slots=[slot])

    # -- what comes back ---------------------------------------------------------------------

    def _tokens_streamed(self, request_id: int, batch) -> None:
        request = self.requests.get(request_id)
        if request is None or not self.workflow.generation_streaming(request_id):
            return
        self.bench.stream(batch, slots=request.slots)

    def _generated(self, request: GenerationRequest, result: GenerationResult) -> None:
        self.requests.pop(request.request_id, None)
        self.status.show_speed(result.tokens, result.seconds)
        self.status.show_model_state()
        for note in getattr(result, "notes", None) or ():  # e.g. cut streams written again alone
            self.show_info(note)
        plan = self.workflow.generation_finished(request.request_id)
        if plan is None:
            return  # the tutor moved on, or a newer generation for this prompt is on its way
        if plan.replaces is not None:
            self._store_regenerated(request, result, plan)
            return
        prompt = plan.prompt
        try:
            cands = self.workflow.accept_candidates(plan, candidates_from_result(prompt, result))
        except DB_ERRORS as e:
            self.show_error(f"The candidates could not be saved: {e}")
            return
        item = self.workflow.item
        if item is None or item.needs_generation:  # fewer than two were written: nothing stored
            self.bench.show_no_candidates(
                "Generation stopped before two answers were written. Press Ctrl+G to generate again."
                if result.stopped
                else "The model wrote fewer than two answers. Press Ctrl+G to try again."
            )
            return
        kept = {c.index for c in cands}
        if len(kept) == len(self.bench.positions):
            slot_of_index = {c.index: i for i, c in enumerate(cands)}
            positions = [slot_of_index[s] for s in self.bench.positions if s in slot_of_index]
        else:
            positions = shuffled_positions(len(cands))
        self.bench.show_candidates(cands, positions=positions)
        if result.stopped:
            self.show_info("Generation stopped: the answers are shown as far as they were written.")
        self.on_ready(prompt.id)

    def _store_regenerated(self, request: GenerationRequest, result: GenerationResult, plan: GenerationPlan) -> None:
        new = None
        try:
            made = self.workflow.accept_candidates(
                plan, candidates_from_result(plan.prompt, result, first_index=plan.first_index)
            )
            new = made[0] if made else None
        except DB_ERRORS as e:
            self.show_error(f"The new candidate could not be saved: {e}")
        self.bench.finish_regeneration(request.slots[0], new)
        self.on_ready(plan.prompt.id)

    def _generation_failed(self, request: GenerationRequest, message: str) -> None:
        self.requests.pop(request.request_id, None)
        self.status.show_model_state()
        self.on_failed(message)
        if self.workflow.generation_failed(request.request_id) is None:
            return
        self.show_error(f"Generation failed: {message}")
        if request.purpose == "one":
            self.bench.finish_regeneration(request.slots[0], None)
        else:
            self.bench.show_no_candidates("No answers. Press Ctrl+G to try again.")
