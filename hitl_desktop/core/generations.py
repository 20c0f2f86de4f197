"""Generation requests: what the model is asked for (:class:`GenerationPlan`) and which of its
results is current (:class:`GenerationBook`), the rule the window's generation controller
follows: a result is kept only when its prompt is still on the bench and, for a full set, no
newer full set for that prompt is on its way."""

from __future__ import annotations

from dataclasses import dataclass

from hitl_desktop.core.types import Prompt


@dataclass
class GenerationPlan:
    """What to ask the model for; handed back to :meth:`TutorWorkflow.accept_candidates`."""

    prompt: Prompt
    k: int
    seeds: list[int]
    set_id: str | None = None  # None: the prompt's own set; else a new, separate set
    replaces: str | None = None  # the candidate one regenerated candidate replaces
    first_index: int = 0



class GenerationBook:
    """Which generation results are current: the model's requests under way, by id, with the
    plan each was asked for. A result is kept only when its prompt is still on the bench and,
    for a full set, no newer full set for that prompt is on its way (a stale result is dropped)."""

    def __init__(self) -> None:
        self.plans: dict[int, GenerationPlan] = {}

    def started(self, request_id: int, plan: GenerationPlan) -> None:
        self.plans[request_id] = plan

    def clear(self) -> None:
        self.plans.clear()

    def streaming_for(self, request_id: int, prompt: Prompt | None) -> bool:
        """Whether streamed text of this request belongs on the bench showing ``prompt``."""
        plan = self.plans.get(request_id)
        return plan is not None and prompt is not None and plan.prompt.id == prompt.id

    def finished(self, request_id: int, prompt: Prompt | None) -> GenerationPlan | None:
        """The plan of a finished request when its result is current, else None (dropped)."""
        plan = self.plans.pop(request_id, None)
        if plan is None or prompt is None or plan.prompt.id != prompt.id:
            return None  # the tutor moved on; nothing is kept
        if plan.replaces is None and any(
            p.prompt.id == prompt.id and p.replaces is None for p in self.plans.values()
        ):
            return None  # a newer generation for this prompt is on its way
        return plan

    def failed(self, request_id: int, prompt: Prompt | None) -> GenerationPlan | None:
        """The plan of a failed request when the bench still shows its prompt, else None."""
        plan = self.plans.pop(request_id, None)
        return plan if plan is not None and prompt is not None and plan.prompt.id == prompt.id else None
