"""The tutor's workflow, without Qt: the application layer the window and the CLI share.

In the spirit of napari's ``ViewerModel`` and Anki's ``pylib`` collection: a
:class:`TutorWorkflow` owns one tutor's work on one database: the session, the queue and the
item on the bench, which candidates the bench shows, what regenerate may replace, submit,
a multi-level undo, skip, re-judging a past judgment, continuing a conversation, sample
prompts, import and export, opening another database. The window's views (``qt/``) turn key
presses into calls here and subscribe to what each call announces (``core/events.py``: every
mutation announces what it changed, one user action as one ``Changes``); they hold no rule.

The model runs elsewhere (a worker, a child process): generation is two calls, a *plan*
(which prompt, how many candidates, which seeds, which candidate set) and, when the model
has written, ``accept_candidates(plan, candidates)``, which stores them by the rules.

Rules (README "The lab" and "A tutor's day"):

- **Identity is per database** (:func:`opening_of`): a pack opens as its tutor, for that pack
  only; any other database as the tutor it records (``last_tutor``), else the person at this
  machine (``own_name``, which a pack never changes), else nobody (ask).

- **Shared candidates**: a prompt with a stable external id gets seeds derived from that id
  (``engine.seeds_for``, as ``hitl-desktop generate`` does; base seed 0 unless the tutor set
  one), so two workstations with the same model and settings write the same candidates.
- **Protected candidates**: candidates that came with a prompt (``imported``, a lab
  ``pack``'s, or any candidate of a gold prompt) are never deleted or replaced. Regenerating
  such an item writes a NEW candidate set, kept beside the first, and only on the explicit
  request ``new_set=True``; the bench then shows the newest set.
- **Undo** takes back submissions one after another, newest first (up to ``undo_limit``),
  each back onto the bench as it was judged; the stack is rebuilt from the database when a
  session starts (same tutor, database and domain), so it survives a restart.
- **Re-judging**: ``reopen(judgment_id)`` puts a past judgment of this tutor's on the bench
  (another tutor's is refused: a lead adjudicates, never re-judges as them); the next submit
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

from hitl_desktop.core.access import export_judgments, import_prompts, open_for_writing
from hitl_desktop.core.candidate_sets import (  # the rules on protected candidates live there
    WorkflowError,
    is_protected,
    store_generated,
)
from hitl_desktop.core.engine import seeds_for
from hitl_desktop.core.events import Change, Evented
from hitl_desktop.core.generations import GenerationBook, GenerationPlan
from hitl_desktop.core.guidelines import Guideline, GuidelineLibrary, resources_dir
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import (
    Candidate,
    Correction,
    Judgment,
    Message,
    Prompt,
    Session,
    Tutor,
    new_id,
)

#: settings keys a lab's work pack carries (see core/packs.py)
PACK_TUTOR_KEY = "pack_tutor"
#: the tutor and domain who last worked on a database, kept IN that database (identity is per
#: database: a pack's tutor never leaks into another database, nor into the app's settings)
LAST_TUTOR_KEY = "last_tutor"
LAST_DOMAIN_KEY = "last_domain"
DEFAULT_UNDO_LIMIT = 100
FALLBACK_DOMAIN = "general"


@dataclass(frozen=True)
class Opening:
    """Who works on a database when it opens, and why (:func:`opening_of`).

    ``reason``: ``"pack"`` (a lab's work pack names its tutor: for that pack only), ``"last"``
    (the tutor who last worked on this database, as it records), ``"own"`` (the person at this
    machine, a database nobody has worked on yet), ``"ask"`` (nobody known: ask; ``tutor`` None)."""

    tutor: str | None
    domain: str
    reason: str


def opening_of(store: Store, *, own_name: str | None = None, own_domain: str | None = None) -> Opening:
    """The rule for which tutor and session a database opens in (README "A tutor's day").

    A pack opens as its tutor, in the domain with the most work waiting. Any other database
    opens as the tutor it records as its last one (in its last domain), else as the person at
    this machine (``own_name``, which a pack never changes), else asks. The tutor of the
    database open before never carries over: a switch of tutor is always explicit."""
    pack = store.setting(PACK_TUTOR_KEY)
    if pack:
        return Opening(pack, _busiest(store, pack) or own_domain or FALLBACK_DOMAIN, "pack")
    last = store.setting(LAST_TUTOR_KEY)
    if last:
        domain = store.setting(LAST_DOMAIN_KEY) or _busiest(store, last) or own_domain or FALLBACK_DOMAIN
        return Opening(last, domain, "last")
    if own_name:
        return Opening(own_name, own_domain or _busiest(store, None) or FALLBACK_DOMAIN, "own")
    return Opening(None, own_domain or FALLBACK_DOMAIN, "ask")


def _busiest(store: Store, tutor_name: str | None) -> str | None:
    """The domain with the most prompts waiting (for ``tutor_name`` when known)."""
    tutor = store.tutor_by_name(tutor_name) if tutor_name else None
    counts: dict[str, int] = {}
    for p in store.queued_prompts(tutor_id=tutor.id if tutor else None):
        counts[p.domain] = counts.get(p.domain, 0) + 1
    return max(sorted(counts), key=lambda d: counts[d]) if counts else None


def correction_of(candidate_id: str, text: str) -> Correction:
    """A tutor's rewrite of one candidate; an empty one is refused (nothing to export as chosen)."""
    if not text.strip():
        raise WorkflowError("a correction cannot be empty")
    return Correction(text=text, candidate_id=candidate_id)


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


class TutorWorkflow(Evented):
    """One tutor's work on one database at a time. Not thread-safe: it belongs to the Store's
    thread. Every mutation announces what it changed (core/events.py) to the subscribed views."""

    def __init__(
        self,
        store: Store,
        *,
        guidelines: GuidelineLibrary | None = None,
        undo_limit: int = DEFAULT_UNDO_LIMIT,
        own_name: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.guidelines = guidelines or GuidelineLibrary()
        self.undo_limit = undo_limit
        #: the person at this machine (the app's settings); a pack's tutor never becomes it
        self.own_name = own_name or None
        self.tutor: Tutor | None = None
        self.session: Session | None = None
        self.guideline: Guideline | None = None
        self.item: BenchItem | None = None
        self.queue: list[Prompt] = []
        self.skipped: set[str] = set()
        #: this tutor's submissions in this database and domain, oldest first: (judgment,
        #: prompt); undo pops the last. Rebuilt from the database when a session starts, so
        #: undo reaches the last judgment of the previous session after a restart.
        self.history: list[tuple[Judgment, Prompt]] = []
        self._earlier: list[str] = []  # older judgments undo reaches (ids, oldest first)
        self.generations = GenerationBook()
        self._owns_store = False  # True once open_database() opened one (closed with the next)

    # -- the database ----------------------------------------------------------------------

    @property
    def prompt(self) -> Prompt | None:
        return self.item.prompt if self.item else None

    def pack_tutor(self) -> str | None:
        """The tutor a lab's work pack was made for (None: an ordinary database)."""
        return self.store.setting(PACK_TUTOR_KEY)

    def busiest_domain(self, tutor_name: str | None = None) -> str | None:
        """The domain with the most prompts waiting (for ``tutor_name`` when known)."""
        return _busiest(self.store, tutor_name)

    def opening(self, *, own_domain: str | None = None) -> Opening:
        """Who works on this database now (:func:`opening_of`)."""
        return opening_of(self.store, own_name=self.own_name, own_domain=own_domain)

    def begin(self, *, own_domain: str | None = None, tutor_domains: list[str] | None = None) -> Opening:
        """Start the session :func:`opening_of` picks for this database (none when it says ask)."""
        opening = self.opening(own_domain=own_domain)
        if opening.tutor is not None:
            self.start_session(tutor_name=opening.tutor, domain=opening.domain, tutor_domains=tutor_domains)
        return opening

    def open_database(self, path: str | os.PathLike[str], *, own_domain: str | None = None) -> Opening:
        """Work on another database or a lab's pack: it is opened for writing (``StoreError``
        on a bad file, and nothing changes), the session here ends, the old store is closed
        when this workflow opened it, and the session :func:`opening_of` picks starts."""
        store = open_for_writing(path)
        with self.batch():
            self.close_database()
            self.store, self._owns_store = store, True
            self.announce(Change.DATABASE)
            return self.begin(own_domain=own_domain)

    def close_database(self) -> None:
        """End the session and forget the bench; the store is closed when this workflow opened it."""
        import contextlib
        import sqlite3

        from hitl_desktop.core.store import StoreError

        with contextlib.suppress(StoreError, sqlite3.Error):
            self.end_session()
        self.generations.clear()
        self.session = self.tutor = self.guideline = self.item = None
        self.queue, self.skipped = [], set()
        self.history.clear()
        self._earlier = []
        self.announce(Change.DATABASE)  # while the store is still open (views may read it)
        if self._owns_store:
            self.store.close()
            self._owns_store = False

    # -- sessions ----------------------------------------------------------------------------

    def current_guideline(self, domain: str) -> Guideline:
        """The domain's guidelines: those a lab's pack carries, else the tutor's library."""
        kept = self.store.guideline_text(domain) if self.pack_tutor() else None
        if kept is not None:
            version, text = kept
            return _StoredGuideline(domain, text, 0, None, False, stored_version=version)
        return self.guidelines.current(domain)

    def start_session(self, *, tutor_name: str, domain: str, tutor_domains: list[str] | None = None) -> Session:
        """End any session, start one for this tutor and domain; the queue is refreshed. The
        database records its tutor and domain (its next opening starts there); outside a
        pack, the tutor is the person at this machine from now on (``own_name``)."""
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
            self.store.set_setting(LAST_TUTOR_KEY, tutor.name)
            self.store.set_setting(LAST_DOMAIN_KEY, domain)
        with self.batch():
            self.session, self.tutor, self.guideline = session, tutor, guideline
            if not self.pack_tutor():
                self.own_name = tutor.name
            self.history.clear()
            self._earlier = self._past_judgment_ids()
            self.skipped.clear()
            self.item = None
            self.refresh_queue()
            self.announce(Change.SESSION, Change.ITEM, Change.HISTORY)
        return self.session

    def _past_judgment_ids(self) -> list[str]:
        """The undo stack's older part, from the database: this tutor's newest judgments in
        this domain (up to ``undo_limit``), oldest first, as ids (each read when undone)."""
        assert self.tutor is not None and self.session is not None
        if self.undo_limit <= 0:
            return []
        rows = self.store.judgment_history(tutor=self.tutor.name, domain=self.session.domain, limit=self.undo_limit,
                                           include_superseded=True)  # fmt: skip
        return [r["id"] for r in reversed(rows)]

    def next_undo(self) -> tuple[Judgment, Prompt] | None:
        """The newest submission not yet undone: this session's, else one read from the database."""
        while not self.history and self._earlier:
            found = next(iter(self.store.judged_items(judgment_id=self._earlier.pop(), include_superseded=True)), None)
            if found is not None:
                self.history.append((found.judgment, found.prompt))
        return self.history[-1] if self.history else None

    def end_session(self) -> dict[str, Any] | None:
        """End the session; returns its summary (None when there was none). The bench, the
        queue and the undo stack are forgotten even when the database cannot be written."""
        if self.session is None:
            return None
        with self.batch():
            try:
                summary = self.session_summary()
                self.store.end_session(self.session.id)
            finally:
                self.session = None
                self.item = None
                self.queue = []
                self.history.clear()
                self._earlier = []
                self.announce(Change.SESSION, Change.QUEUE, Change.ITEM, Change.HISTORY)
        return summary

    def session_summary(self) -> dict[str, Any] | None:
        return None if self.session is None else self.store.session_summary(self.session.id)

    def save_guideline(self, domain: str, text: str, *, revert: bool = False) -> Guideline:
        """Save an edit of the guidelines as a new version (kept in the database too)."""
        g = self.guidelines.revert(domain) if revert else self.guidelines.save(domain, text)
        self.store.save_guideline_version(domain=domain, version=g.version, text=g.text)
        if self.guideline is not None and self.guideline.domain == domain:
            self.guideline = g
            self.announce(Change.SESSION)
        return g

    def finished_pack(self) -> Path | None:
        """The pack's file to hand back when this is a lab's pack with nothing left to judge."""
        if not self.pack_tutor() or self.session is None or self.queue or self.store.path is None:
            return None
        return Path(self.store.path)

    # -- the queue ---------------------------------------------------------------------------

    def _require_session(self) -> Session:
        if self.session is None or self.tutor is None:
            raise WorkflowError("start a session first")
        return self.session

    def refresh_queue(self) -> list[Prompt]:
        """The prompts this tutor has not judged in the session's domain; skipped ones last."""
        if self.session is None or self.tutor is None:
            self.queue = []
        else:
            prompts = self.store.queued_prompts(domain=self.session.domain, tutor_id=self.tutor.id)
            self.queue = [p for p in prompts if p.id not in self.skipped] + [p for p in prompts if p.id in self.skipped]
        self.announce(Change.QUEUE)
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
        self.announce(Change.ITEM, Change.CANDIDATES)
        return self.item

    def close_item(self) -> None:
        """Nothing on the bench."""
        self.item = None
        self.announce(Change.ITEM)

    def open_next(self) -> BenchItem | None:
        choice = self.next_prompt()
        if choice is None:
            self.close_item()
            return None
        return self.open_item(choice)

    def skip(self) -> BenchItem | None:
        """Put the current prompt at the end of the queue and open the next one."""
        if self.item is None:
            return None
        pid = self.item.prompt.id
        with self.batch():
            self.skipped.add(pid)
            self.queue = [p for p in self.queue if p.id != pid] + [p for p in self.queue if p.id == pid]
            self.announce(Change.QUEUE)
            return self.open_next()

    def add_prompt(self, text: str) -> Prompt:
        """A prompt the tutor typed, first in the queue and on the bench."""
        session = self._require_session()
        text = text.strip()
        if not text:
            raise WorkflowError("a prompt cannot be empty")
        prompt = self.store.add_prompt(Prompt(text=text, domain=session.domain, source="typed"))
        with self.batch():
            self.queue.insert(0, prompt)
            self.announce(Change.QUEUE)
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

    def generation_started(self, request_id: int, plan: GenerationPlan) -> None:
        """The model was asked for ``plan`` under ``request_id`` (see :class:`GenerationBook`)."""
        self.generations.started(request_id, plan)

    def generation_streaming(self, request_id: int) -> bool:
        """Whether the text this request streams belongs on the bench now."""
        return self.generations.streaming_for(request_id, self.prompt)

    def generation_finished(self, request_id: int) -> GenerationPlan | None:
        """The plan whose result is current (store it with :meth:`accept_candidates`), or None."""
        return self.generations.finished(request_id, self.prompt)

    def generation_failed(self, request_id: int) -> GenerationPlan | None:
        return self.generations.failed(request_id, self.prompt)

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
            self.announce(Change.CANDIDATES)
        return kept

    # -- judging -----------------------------------------------------------------------------

    def correction(self, candidate_id: str, text: str) -> Correction:
        """The bench's correction of one of its candidates; an empty one is refused."""
        item = self._require_item()
        if all(c.id != candidate_id for c in item.candidates):
            raise WorkflowError("that candidate is not on the bench")
        return correction_of(candidate_id, text)

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
        with self.batch():
            self.history.append((judgment, item.prompt))
            del self.history[: max(0, len(self.history) - self.undo_limit)]  # (not [:-limit]: -0 keeps all)
            del self._earlier[: max(0, len(self._earlier) - (self.undo_limit - len(self.history)))]
            self.queue = [p for p in self.queue if p.id != item.prompt.id]
            self.skipped.discard(item.prompt.id)
            self.announce(Change.HISTORY, Change.QUEUE)
        return judgment

    def can_undo(self) -> bool:
        return bool(self.history or self._earlier)

    def undo(self) -> BenchItem | None:
        """Take back the newest submission not yet undone and put it back on the bench as it
        was; None when there is nothing to undo. Refused for a judgment whose conversation
        was continued."""
        top = self.next_undo()
        if top is None:
            return None
        judgment, prompt = top
        self.store.delete_judgment(judgment.id)
        with self.batch():
            self.history.pop()
            if all(p.id != prompt.id for p in self.queue):
                self.queue.insert(0, prompt)
            editing = None
            if judgment.supersedes:
                editing = next(iter(self.store.judged_items(judgment_id=judgment.supersedes, include_superseded=True)), None)
            self.announce(Change.HISTORY, Change.QUEUE)
            return self._open_judged(prompt, judgment, editing=editing.judgment if editing else None)

    def _open_judged(self, prompt: Prompt, judgment: Judgment, *, editing: Judgment | None) -> BenchItem:
        """A judged item back on the bench: the candidates it was judged on (whichever set),
        shown in the order they were shown, with its ranking, flags and correction."""
        state = JudgingState.from_judgment(judgment, judgment.display_order)
        shown = set(judgment.display_order) | set(judgment.ranks)
        with self.batch():
            item = self.open_item(prompt, state=state, order=judgment.display_order, editing=editing)
            item.candidates = [c for c in self.store.candidates_for(prompt.id) if c.id in shown]
        return item

    def reopen(self, judgment_id: str) -> BenchItem:
        """Put a past judgment of this tutor's on the bench with its ranking, flags and
        correction; the next submit writes a new version that supersedes it. Another tutor's
        judgment is refused: a lead rules on it by adjudication, never re-judges as them."""
        self._require_session()
        assert self.tutor is not None
        item = next(iter(self.store.judged_items(judgment_id=judgment_id, include_superseded=True)), None)
        if item is None:
            raise WorkflowError(f"no judgment {judgment_id}")
        if item.judgment.tutor_id != self.tutor.id:
            raise WorkflowError(
                f"only your own judgments can be re-judged; this one is {item.tutor_name}'s "
                "(a lead rules on it in Review disagreements)"
            )
        if self.store.superseding_judgment(judgment_id) is not None:
            raise WorkflowError("this judgment was re-judged already; reopen its newest version")
        return self._open_judged(item.prompt, item.judgment, editing=item.judgment)

    def can_rejudge(self, tutor_name: str) -> bool:
        """Whether a judgment by ``tutor_name`` may be re-judged here (only one's own)."""
        return self.tutor is not None and self.session is not None and tutor_name == self.tutor.name

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
        with self.batch():
            self.queue.insert(0, new)
            self.announce(Change.QUEUE)
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
    "GenerationBook",
    "GenerationPlan",
    "Opening",
    "TutorWorkflow",
    "WorkflowError",
    "export_judgments",
    "correction_of",
    "generation_seeds",
    "import_prompts",
    "is_protected",
    "opening_of",
    "shuffled_positions",
]
