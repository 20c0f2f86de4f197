"""The tutor's workflow, without Qt: the application layer the window and the CLI share.

In the spirit of napari's ``ViewerModel`` and Anki's ``pylib`` collection: a
:class:`TutorWorkflow` owns one tutor's work on one database: the session, the queue and the
item on the bench, which candidates the bench shows, what regenerate may replace, submit,
a multi-level undo, skip, re-judging a past judgment, continuing a conversation, sample
prompts, import and export. The window (``qt/main_window.py``) turns key presses into calls
here and results into widgets; it holds no rule of its own.

The model runs elsewhere (a worker, a child process): generation is two calls, a *plan*
(which prompt, how many candidates, which seeds, which candidate set) and, when the model
has written, ``accept_candidates(plan, candidates)``, which stores them by the rules.

Rules (README "The lab" and "A tutor's day"):

- **Shared candidates**: a prompt with a stable external id gets seeds derived from that id
  (``engine.seeds_for``, as ``hitl-desktop generate`` does; base seed 0 unless the tutor set
  one), so two workstations with the same model and settings write the same candidates.
- **Protected candidates**: candidates that came with a prompt (``imported``, a lab
  ``pack``'s, or any candidate of a gold prompt) are never deleted or replaced. Regenerating
  such an item writes a NEW candidate set, kept beside the first, and only on the explicit
  request ``new_set=True``; the bench then shows the newest set.
- **Undo** takes back submissions one after another, newest first (up to ``undo_limit``),
  each back onto the bench as it was judged.
- **Re-judging**: ``reopen(judgment_id)`` puts a past judgment on the bench; the next submit
  writes a new judgment that ``supersedes`` it. The old one is kept for audit; exports,
  stats and agreement see only the newest version.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.candidate_sets import (  # the rules on protected candidates live there
    WorkflowError,
    is_protected,
    store_generated,
)
from hitl_desktop.core.engine import seeds_for
from hitl_desktop.core.guidelines import Guideline, GuidelineLibrary, resources_dir
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Judgment, Message, Prompt, Session, Tutor, new_id

#: settings keys a lab's work pack carries (see core/packs.py)
PACK_TUTOR_KEY = "pack_tutor"
DEFAULT_UNDO_LIMIT = 100


@dataclass
class BenchItem:
    """What the bench shows for one prompt."""

    prompt: Prompt
    candidates: list[Candidate]  # the set to judge; fewer than two: generate first
    protected: bool  # the candidates came with the prompt (regenerate writes a new set)
    state: JudgingState | None = None  # a judgment being edited (undo, reopen)
    order: list[str] | None = None  # display order to restore (candidate ids)
    editing: Judgment | None = None  # the judgment the next submit supersedes

    @property
    def needs_generation(self) -> bool:
        return len(self.candidates) < 2


@dataclass
class GenerationPlan:
    """What to ask the model for; handed back to :meth:`TutorWorkflow.accept_candidates`."""

    prompt: Prompt
    k: int
    seeds: list[int]
    set_id: str | None = None  # None: the prompt's own set; else a new, separate set
    replaces: str | None = None  # the candidate one regenerated candidate replaces
    first_index: int = 0


def shuffled_positions(n: int) -> list[int]:
    """A random display order for n candidates (recorded with the judgment: position bias)."""
    order = list(range(n))
    random.SystemRandom().shuffle(order)
    return order


def random_seeds(k: int) -> list[int]:
    rng = random.SystemRandom()
    return [rng.randrange(2**31 - 1) for _ in range(k)]


def generation_seeds(prompt: Prompt, *, k: int, base_seed: int | None) -> list[int]:
    """Seeds for a prompt's candidates: from its stable external id (shared candidates), or
    from the tutor's fixed base seed, else fresh random ones (a typed prompt)."""
    if prompt.external_id is not None or base_seed is not None:
        return seeds_for(prompt, base_seed=base_seed or 0, k=k)
    return random_seeds(k)


def import_prompts(
    store: Store,
    path: str | os.PathLike[str],
    *,
    default_domain: str | None = None,
    default_tutor: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    layout: str | None = None,
):
    """Import a JSONL/CSV/Parquet file through the validated importer: all or nothing
    (``importing.ImportFileError`` names the lines). Candidates that come with a prompt are
    recorded as ``imported`` and so are protected. ``layout``: core/layouts.py (default:
    found from the fields)."""
    from hitl_desktop.core.importing import DEFAULT_TUTOR, import_file

    return import_file(
        store,
        path,
        default_domain=default_domain,
        default_tutor=default_tutor or DEFAULT_TUTOR,
        on_progress=on_progress,
        layout=layout,
    )


def export_judgments(
    store: Store,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    consensus: bool = False,
    adjudicated: bool = False,
    **options: Any,
):
    """Export the current judgments (re-judged ones in their newest version) in ``fmt``;
    with ``consensus`` the majority pairs of each prompt several tutors judged
    (core/consensus.py), with ``adjudicated`` the leads'
    adjudications applied where present (core/review.py). Options as ``export.ExportOptions``."""
    from hitl_desktop.core import export

    return export.export_dataset(store, fmt=fmt, out=out, consensus=consensus, adjudicated=adjudicated, **options)


class TutorWorkflow:
    """One tutor's work on one database. Not thread-safe: it belongs to the Store's thread."""

    def __init__(
        self,
        store: Store,
        *,
        guidelines: GuidelineLibrary | None = None,
        undo_limit: int = DEFAULT_UNDO_LIMIT,
    ) -> None:
        self.store = store
        self.guidelines = guidelines or GuidelineLibrary()
        self.undo_limit = undo_limit
        self.tutor: Tutor | None = None
        self.session: Session | None = None
        self.guideline: Guideline | None = None
        self.item: BenchItem | None = None
        self.queue: list[Prompt] = []
        self.skipped: set[str] = set()
        #: submissions of this session, oldest first: (judgment, prompt); undo pops the last
        self.history: list[tuple[Judgment, Prompt]] = []

    # -- the database ----------------------------------------------------------------------

    @property
    def prompt(self) -> Prompt | None:
        return self.item.prompt if self.item else None

    def pack_tutor(self) -> str | None:
        """The tutor a lab's work pack was made for (None: an ordinary database)."""
        return self.store.setting(PACK_TUTOR_KEY)

    def busiest_domain(self, tutor_name: str | None = None) -> str | None:
        """The domain with the most prompts waiting (for ``tutor_name`` when known)."""
        tutor = self.store.tutor_by_name(tutor_name) if tutor_name else None
        counts: dict[str, int] = {}
        for p in self.store.queued_prompts(tutor_id=tutor.id if tutor else None):
            counts[p.domain] = counts.get(p.domain, 0) + 1
        return max(sorted(counts), key=lambda d: counts[d]) if counts else None

    # -- sessions ----------------------------------------------------------------------------

    def current_guideline(self, domain: str) -> Guideline:
        """The domain's guidelines: those a lab's pack carries, else the tutor's library."""
        kept = self.store.guideline_text(domain) if self.pack_tutor() else None
        if kept is not None:
            version, text = kept
            return _StoredGuideline(domain, text, 0, None, False, stored_version=version)
        return self.guidelines.current(domain)

    def start_session(self, *, tutor_name: str, domain: str, tutor_domains: list[str] | None = None) -> Session:
        """End any session, start one for this tutor and domain; the queue is refreshed."""
        domain = domain.strip().lower()
        try:
            guideline = self.current_guideline(domain)
        except (ValueError, OSError) as e:
            raise WorkflowError(f"guidelines for {domain!r} could not be read: {e}") from e
        with self.store.transaction():  # one user action, one transaction
            if self.session is not None:
                self.store.end_session(self.session.id)
            tutor = self.store.ensure_tutor(tutor_name, tutor_domains)
            # the version every judgment records resolves in this database (and after a merge)
            self.store.save_guideline_version(domain=domain, version=guideline.version, text=guideline.text)
            session = self.store.start_session(tutor_id=tutor.id, domain=domain, guideline_version=guideline.version)
        self.session, self.tutor, self.guideline = session, tutor, guideline
        self.history.clear()
        self.skipped.clear()
        self.item = None
        self.refresh_queue()
        return self.session

    def end_session(self) -> dict[str, Any] | None:
        """End the session; returns its summary (None when there was none)."""
        if self.session is None:
            return None
        summary = self.session_summary()
        self.store.end_session(self.session.id)
        self.session = None
        self.item = None
        self.queue = []
        self.history.clear()
        return summary

    def session_summary(self) -> dict[str, Any] | None:
        return None if self.session is None else self.store.session_summary(self.session.id)

    def save_guideline(self, domain: str, text: str, *, revert: bool = False) -> Guideline:
        """Save an edit of the guidelines as a new version (kept in the database too)."""
        g = self.guidelines.revert(domain) if revert else self.guidelines.save(domain, text)
        self.store.save_guideline_version(domain=domain, version=g.version, text=g.text)
        if self.guideline is not None and self.guideline.domain == domain:
            self.guideline = g
        return g

    # -- the queue ---------------------------------------------------------------------------

    def _require_session(self) -> Session:
        if self.session is None or self.tutor is None:
            raise WorkflowError("start a session first")
        return self.session

    def refresh_queue(self) -> list[Prompt]:
        """The prompts this tutor has not judged in the session's domain; skipped ones last."""
        if self.session is None or self.tutor is None:
            self.queue = []
            return self.queue
        prompts = self.store.queued_prompts(domain=self.session.domain, tutor_id=self.tutor.id)
        self.queue = [p for p in prompts if p.id not in self.skipped] + [p for p in prompts if p.id in self.skipped]
        return self.queue

    def next_prompt(self) -> Prompt | None:
        """The next prompt to work on: the first not skipped, else the first other one."""
        current = self.prompt.id if self.prompt else None
        choice = next((p for p in self.queue if p.id != current and p.id not in self.skipped), None)
        if choice is None:
            choice = next((p for p in self.queue if p.id != current), None)
        return choice

    def open_item(self, prompt: Prompt, *, state: JudgingState | None = None, order: list[str] | None = None,
                  editing: Judgment | None = None) -> BenchItem:
        """Put a prompt on the bench: its current candidate set (generate when fewer than two)."""
        candidates = self.store.current_candidates(prompt.id)
        self.item = BenchItem(
            prompt=prompt,
            candidates=candidates,
            protected=is_protected(self.store, prompt),
            state=state,
            order=order,
            editing=editing,
        )
        return self.item

    def open_next(self) -> BenchItem | None:
        choice = self.next_prompt()
        if choice is None:
            self.item = None
            return None
        return self.open_item(choice)

    def skip(self) -> BenchItem | None:
        """Put the current prompt at the end of the queue and open the next one."""
        if self.item is None:
            return None
        pid = self.item.prompt.id
        self.skipped.add(pid)
        self.queue = [p for p in self.queue if p.id != pid] + [p for p in self.queue if p.id == pid]
        return self.open_next()

    def add_prompt(self, text: str) -> Prompt:
        """A prompt the tutor typed, first in the queue and on the bench."""
        session = self._require_session()
        text = text.strip()
        if not text:
            raise WorkflowError("a prompt cannot be empty")
        prompt = self.store.add_prompt(Prompt(text=text, domain=session.domain, source="typed"))
        self.queue.insert(0, prompt)
        self.open_item(prompt)
        return prompt

    def samples_path(self) -> Path | None:
        if self.session is None:
            return None
        p = resources_dir() / "samples" / f"{self.session.domain}.jsonl"
        return p if p.is_file() else None

    def load_samples(self) -> int:
        """Import the domain's sample prompts through the validated importer; how many are new."""
        session = self._require_session()
        path = self.samples_path()
        if path is None:
            raise WorkflowError("there are no sample prompts for this domain")
        summary = import_prompts(self.store, path, default_domain=session.domain)
        self.refresh_queue()
        return summary.prompts

    # -- generation --------------------------------------------------------------------------

    def _require_item(self) -> BenchItem:
        if self.item is None:
            raise WorkflowError("no prompt on the bench")
        return self.item

    def plan_generation(self, *, k: int, base_seed: int | None = None) -> GenerationPlan:
        """Candidates for the item on the bench, which has fewer than two: a lone generated
        leftover is cleared first (a lone protected one stays)."""
        item = self._require_item()
        if item.candidates and not item.protected:
            self.store.delete_unjudged_candidates(item.prompt.id)
        new_set = new_id() if item.protected else None
        seeds = generation_seeds(item.prompt, k=k, base_seed=base_seed) if new_set is None else random_seeds(k)
        return GenerationPlan(prompt=item.prompt, k=k, seeds=seeds, set_id=new_set)

    def plan_regenerate_all(self, *, k: int, new_set: bool = False) -> GenerationPlan:
        """Regenerate every candidate, with fresh seeds. Generated ones are replaced (unjudged ones deleted);
        candidates that came with the prompt are kept, and a NEW set is written only with
        ``new_set=True`` (else ``WorkflowError`` says how)."""
        item = self._require_item()
        if item.protected:
            if not new_set:
                raise WorkflowError(
                    "these candidates came with the prompt and are kept; "
                    "Ctrl+Shift+R writes a new, separate set beside them"
                )
            return GenerationPlan(prompt=item.prompt, k=k, seeds=random_seeds(k), set_id=new_id())
        self.store.delete_unjudged_candidates(item.prompt.id)
        return GenerationPlan(prompt=item.prompt, k=k, seeds=random_seeds(k))

    def plan_regenerate_one(self, candidate_id: str) -> GenerationPlan:
        """Regenerate one generated candidate (fresh seed); refused for a protected one."""
        item = self._require_item()
        old = next((c for c in item.candidates if c.id == candidate_id), None)
        if old is None:
            raise WorkflowError("that candidate is not on the bench")
        if item.protected:
            raise WorkflowError(
                "this candidate came with the prompt and is kept; "
                "Ctrl+Shift+R writes a new, separate set beside it"
            )
        return GenerationPlan(prompt=item.prompt, k=1, seeds=random_seeds(1), replaces=old.id, first_index=old.index)

    def accept_candidates(self, plan: GenerationPlan, candidates: Iterable[Candidate]) -> list[Candidate]:
        """Store what the model wrote for ``plan`` by the rules of ``candidate_sets.store_generated``
        (shared with ``hitl-desktop generate``): a candidate stopped before it wrote anything is
        dropped, a full set needs two, one regenerated candidate replaces the old one, and a
        protected prompt's candidates are never added to or replaced. Returns those stored."""
        kept = store_generated(self.store, plan.prompt, candidates, set_id=plan.set_id, replaces=plan.replaces)
        if not kept:
            return []
        if self.item is not None and self.item.prompt.id == plan.prompt.id:
            self.item.candidates = self.store.current_candidates(plan.prompt.id)
        return kept

    # -- judging -----------------------------------------------------------------------------

    def submit(self, state: JudgingState, *, seconds_spent: float | None = None) -> Judgment:
        """Save the bench's judgment (one transaction). When the item is a reopened judgment,
        the new one supersedes it (and keeps its tutor)."""
        session = self._require_session()
        item = self._require_item()
        assert self.tutor is not None
        editing = item.editing
        judgment = state.to_judgment(
            prompt_id=item.prompt.id,
            tutor_id=editing.tutor_id if editing else self.tutor.id,
            session_id=session.id,
            guideline_version=self.guideline.version if self.guideline else "",
            seconds_spent=seconds_spent,
        )
        if editing is not None:
            judgment.supersedes = editing.id
        self.store.save_judgment(judgment)
        self.history.append((judgment, item.prompt))
        del self.history[: -self.undo_limit]
        self.queue = [p for p in self.queue if p.id != item.prompt.id]
        self.skipped.discard(item.prompt.id)
        return judgment

    def can_undo(self) -> bool:
        return bool(self.history)

    def undo(self) -> BenchItem | None:
        """Take back the newest submission not yet undone and put it back on the bench as it
        was; None when there is nothing to undo. Refused for a judgment whose conversation
        was continued."""
        if not self.history:
            return None
        judgment, prompt = self.history[-1]
        self.store.delete_judgment(judgment.id)
        self.history.pop()
        if all(p.id != prompt.id for p in self.queue):
            self.queue.insert(0, prompt)
        editing = None
        if judgment.supersedes:
            editing = next(iter(self.store.judged_items(judgment_id=judgment.supersedes, include_superseded=True)), None)
        return self._open_judged(prompt, judgment, editing=editing.judgment if editing else None)

    def _open_judged(self, prompt: Prompt, judgment: Judgment, *, editing: Judgment | None) -> BenchItem:
        """A judged item back on the bench: the candidates it was judged on (whichever set),
        shown in the order they were shown, with its ranking, flags and correction."""
        state = JudgingState.from_judgment(judgment, judgment.display_order)
        item = self.open_item(prompt, state=state, order=judgment.display_order, editing=editing)
        shown = set(judgment.display_order) | set(judgment.ranks)
        item.candidates = [c for c in self.store.candidates_for(prompt.id) if c.id in shown]
        return item

    def reopen(self, judgment_id: str) -> BenchItem:
        """Put a past judgment on the bench with its ranking, flags and correction; the next
        submit writes a new version that supersedes it."""
        item = next(iter(self.store.judged_items(judgment_id=judgment_id, include_superseded=True)), None)
        if item is None:
            raise WorkflowError(f"no judgment {judgment_id}")
        if self.store.superseding_judgment(judgment_id) is not None:
            raise WorkflowError("this judgment was re-judged already; reopen its newest version")
        return self._open_judged(item.prompt, item.judgment, editing=item.judgment)

    def can_continue(self) -> bool:
        return bool(self.history) and self.carried_answer() is not None

    def carried_answer(self) -> tuple[str, bool] | None:
        """(text, corrected) of the last submission's best or corrected answer, or None."""
        if not self.history:
            return None
        judgment, _ = self.history[-1]
        if judgment.correction is not None:
            return judgment.correction.text, True
        if judgment.all_bad:
            return None
        cands = {c.id: c for c in self.store.candidates_for(judgment.prompt_id)}
        best = min(judgment.ranks.values())
        for cid in judgment.display_order or list(judgment.ranks):
            if judgment.ranks.get(cid) == best and cid in cands:
                return cands[cid].text, False
        return None

    def continue_conversation(self, text: str) -> Prompt:
        """The next turn of the last judged conversation: its best (or corrected) answer is the
        assistant's turn, ``text`` the user's next one; the new prompt goes on the bench."""
        session = self._require_session()
        if not self.history:
            raise WorkflowError("submit a judgment first; its best answer carries the conversation on")
        carried = self.carried_answer()
        if carried is None:
            raise WorkflowError("nothing to carry forward: all answers were bad and none was corrected")
        if not text.strip():
            raise WorkflowError("the next turn cannot be empty")
        judgment, prompt = self.history[-1]
        new = Prompt(
            text=text,
            domain=session.domain,
            messages=[*prompt.messages, Message("user", prompt.text), Message("assistant", carried[0])],
            parent_judgment_id=judgment.id,
            source="continued",
        )
        self.store.add_prompt(new)
        self.queue.insert(0, new)
        self.open_item(new)
        return new

    # -- files -------------------------------------------------------------------------------

    def import_file(self, path: str | os.PathLike[str], *, on_progress: Callable[[int, int], None] | None = None):
        """Import a prompt or judgment file (all or nothing); the queue is refreshed."""
        summary = import_prompts(
            self.store,
            path,
            default_domain=self.session.domain if self.session else None,
            on_progress=on_progress,
        )
        self.refresh_queue()
        return summary


@dataclass(frozen=True)
class _StoredGuideline(Guideline):
    """Guidelines kept in the database (a lab's pack): the version is the lab's."""

    stored_version: str = ""

    @property
    def version(self) -> str:
        return self.stored_version


__all__ = [
    "BenchItem",
    "GenerationPlan",
    "TutorWorkflow",
    "WorkflowError",
    "export_judgments",
    "generation_seeds",
    "import_prompts",
    "is_protected",
    "shuffled_positions",
]
