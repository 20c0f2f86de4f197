"""The rubric of the item on the bench and its grade grid: the tutor-side API the GUI uses.

``RubricBench(workflow)`` follows ``workflow.item`` (call :meth:`load` after the item changes;
a workflow that is ``Evented`` is followed by itself on ``Change.ITEM``). It shows:

- ``rubric``: the tutor's own newest version of the prompt's rubric, else the lab rubric (the
  approved one), else a domain template (core/rubric_templates.py; a ``Rubric`` of version 0
  whose ``template_version`` names the file, not stored until saved), else none; a judgment being edited shows the rubric its grades used;
- the grade grid: candidate x criterion -> :class:`Cell` (met True/False/None, note);
- ``scores()`` (HealthBench's, live) and ``proposed_ranks()`` (from the scores, ties equal).

``save_rubric(criteria)`` stores a new version by this tutor (grades of criteria carried over
follow them, by criterion key). ``submit(state)`` saves the judgment through the workflow and,
in the same transaction, the grades (linked by ``judgment_id``) and ``departs_from_scores``.
``undo()`` and ``reopen(id)`` wrap the workflow's: undo deletes the grades with the judgment and
puts them back on the grid; reopen shows the grades of the judgment reopened. A tutor never
sees anyone else's grades or a model's. Every mutation announces ``Change.RUBRIC`` and/or
``Change.GRADES``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.events import Change, Evented
from hitl_desktop.core.rubric_templates import RubricTemplates
from hitl_desktop.core.rubrics import (
    TUTOR,
    Criterion,
    Grade,
    Rubric,
    RubricError,
    ranking_departs,
    ranks_from_scores,
    score,
)

log = logging.getLogger(__name__)

#: where the rubric comes from
OWN, LAB, TEMPLATE, NONE = "own", "lab", "template", "none"


@dataclass
class Cell:
    met: bool | None = None
    note: str = ""


class RubricBench(Evented):
    """See the module docstring. ``events``: where to announce (default: this object).
    ``templates``: where domain templates come from (core/rubric_templates.py; a folder: that
    folder only; default: the user's edited files, then the shipped ones)."""

    def __init__(self, workflow: Any, *, templates: RubricTemplates | Path | None = None,
                 events: Evented | None = None) -> None:
        super().__init__()
        self.workflow = workflow
        if templates is None:
            templates = RubricTemplates()
        elif not isinstance(templates, RubricTemplates):
            templates = RubricTemplates.in_folder(Path(templates))
        self.templates: RubricTemplates = templates
        self._events = events or self
        self._rubric: Rubric | None = None
        self.source = NONE
        self._cells: dict[tuple[str, str], Cell] = {}
        #: scores() until the grid, the rubric or the candidates change: (candidate ids, scores)
        self._scores: tuple[list[str], dict[str, float | None]] | None = None
        self._prompt_id: str | None = None
        if hasattr(workflow, "subscribe"):
            workflow.subscribe(self._on_workflow_change)

    # -- what the bench shows --------------------------------------------------------------

    @property
    def rubric(self) -> Rubric | None:
        return self._rubric

    @rubric.setter
    def rubric(self, value: Rubric | None) -> None:
        self._rubric, self._scores = value, None

    @property
    def cells(self) -> dict[tuple[str, str], Cell]:
        """(candidate id, criterion id) -> its cell; only cells with a grade or a note."""
        return self._cells

    @cells.setter
    def cells(self, value: dict[tuple[str, str], Cell]) -> None:
        self._cells, self._scores = value, None

    @property
    def _rubrics(self):  # noqa: ANN202
        return self.workflow.store.rubrics

    def _on_workflow_change(self, changes: Any) -> None:
        if Change.ITEM in changes:
            self.load()

    def _grader(self) -> str:
        item = self.workflow.item
        if item is not None and item.editing is not None:
            for t in self.workflow.store.tutors():
                if t.id == item.editing.tutor_id:
                    return t.name
        if self.workflow.tutor is None:
            raise RubricError("start a session first")
        return self.workflow.tutor.name

    @property
    def criteria(self) -> list[Criterion]:
        return list(self.rubric.criteria) if self.rubric else []

    @property
    def candidate_ids(self) -> list[str]:
        item = self.workflow.item
        return [] if item is None else [c.id for c in item.candidates]

    def load(self, grades: Iterable[Grade] | None = None) -> None:
        """Show the rubric and grid of ``workflow.item``; ``grades`` (else those of the
        judgment being edited) fill the grid."""
        item = self.workflow.item
        self.cells = {}
        self.rubric, self.source = None, NONE
        self._prompt_id = None if item is None else item.prompt.id
        if item is None:
            self._events.announce(Change.RUBRIC, Change.GRADES)
            return
        if grades is None and item.editing is not None:
            grades = self._rubrics.grades_for_judgment(item.editing.id)
        grades = list(grades or [])
        if grades:
            self.rubric, self.source = self._rubrics.rubric(grades[0].rubric_id), OWN
        else:
            self.rubric, self.source = self._shown_rubric(item.prompt)
        for g in grades:
            self.cells[(g.candidate_id, g.criterion_id)] = Cell(g.met, g.note)
        self._scores = None
        self._events.announce(Change.RUBRIC, Change.GRADES)

    def _shown_rubric(self, prompt: Any) -> tuple[Rubric | None, str]:
        tutor = self.workflow.tutor
        if tutor is not None:
            own = self._rubrics.latest_by(prompt.id, tutor.name)
            if own is not None:
                return own, OWN
        lab = self._rubrics.lab_rubric(prompt.id)
        if lab is not None:
            return lab, LAB
        try:
            template = self.templates.for_domain(prompt.domain)
        except RubricError as e:  # a broken template file: no template, never a failed item
            log.warning("rubric template not used: %s", e)
            template = None
        if template is not None:
            return Rubric(prompt_id=prompt.id, criteria=template.criteria(), version=0, id="",
                          template_version=template.version), TEMPLATE
        return None, NONE

    # -- the rubric ------------------------------------------------------------------------

    def save_rubric(self, criteria: Sequence[Criterion], *, template_version: str | None = None) -> Rubric:
        """Store ``criteria`` as this tutor's new version of the item's rubric (one
        transaction); grades of criteria carried over (same id) stay on the grid.
        ``template_version``: the template the criteria started from (the panel's "Start from
        the domain template"); None: the one the rubric shown started from, if any."""
        item = self.workflow.item
        if item is None:
            raise RubricError("no item on the bench")
        if template_version is None:
            template_version = self.rubric.template_version if self.rubric is not None else ""
        old = {c.id: c for c in self.criteria}
        rubric = self._rubrics.save_rubric(item.prompt.id, criteria, author=self._grader(),
                                           template_version=template_version)
        moved: dict[tuple[str, str], Cell] = {}
        for new, given in zip(rubric.criteria, criteria, strict=True):
            if given.id in old:
                for (cid, crit), cell in self.cells.items():
                    if crit == given.id:
                        moved[(cid, new.id)] = cell
        self.rubric, self.source, self.cells = rubric, OWN, moved
        self._events.announce(Change.RUBRIC, Change.GRADES)
        return rubric

    # -- the grid --------------------------------------------------------------------------

    def cell(self, candidate_id: str, criterion_id: str) -> Cell:
        return self.cells.get((candidate_id, criterion_id), Cell())

    def set_grade(self, candidate_id: str, criterion_id: str, met: bool | None, note: str | None = None) -> None:
        """Mark one cell met (True), not met (False) or not graded (None); ``note`` if given."""
        if criterion_id not in {c.id for c in self.criteria}:
            raise RubricError("no such criterion in the rubric shown")
        if candidate_id not in self.candidate_ids:
            raise RubricError("no such candidate on the bench")
        cell = self.cells.get((candidate_id, criterion_id), Cell())
        cell = Cell(met, cell.note if note is None else note)
        if cell.met is None and not cell.note:
            self.cells.pop((candidate_id, criterion_id), None)
        else:
            self.cells[(candidate_id, criterion_id)] = cell
        self._scores = None
        self._events.announce(Change.GRADES)

    def toggle(self, candidate_id: str, criterion_id: str) -> bool:
        """Space on a cell: not graded / not met -> met, met -> not met. Returns the new value."""
        met = self.cell(candidate_id, criterion_id).met is not True
        self.set_grade(candidate_id, criterion_id, met)
        return met

    def _met(self, candidate_id: str) -> dict[str, bool | None]:
        """criterion id -> met (None: not graded) of one candidate (the grid asks this a lot)."""
        cells = self._cells
        out: dict[str, bool | None] = {}
        for c in self._rubric.criteria if self._rubric is not None else ():
            cell = cells.get((candidate_id, c.id))
            out[c.id] = None if cell is None else cell.met
        return out

    def graded(self, candidate_id: str) -> bool:
        """Whether every criterion of the rubric is graded for this candidate."""
        met = self._met(candidate_id)
        return bool(met) and None not in met.values()

    def scores(self) -> dict[str, float | None]:
        """candidate id -> its score so far (an ungraded criterion counts as not met); None
        for a candidate with no grade yet, or with no rubric shown. Computed once per change
        of the grid or the rubric (a copy each call)."""
        ids = self.candidate_ids
        if self._scores is None or self._scores[0] != ids:
            crits = self.criteria
            out: dict[str, float | None] = {}
            for cid in ids:
                met = self._met(cid)
                any_grade = any(m is not None for m in met.values())
                out[cid] = score(crits, {k: bool(m) for k, m in met.items()}) if crits and any_grade else None
            self._scores = (ids, out)
        return dict(self._scores[1])

    def proposed_ranks(self) -> dict[str, int]:
        """Ranks proposed from the scores of the candidates with grades (1 = best, ties equal)."""
        scored = [(cid, s) for cid, s in self.scores().items() if s is not None]
        ranks = ranks_from_scores([s for _, s in scored])
        return {cid: r for (cid, _), r in zip(scored, ranks, strict=True)}

    def proposed_levels(self) -> list[list[str]]:
        """The proposed ranking as JudgingState levels (best first, ties together)."""
        ranks = self.proposed_ranks()
        return [[c for c in self.candidate_ids if ranks.get(c) == r] for r in sorted(set(ranks.values()))]

    def departs(self, ranks: dict[str, int]) -> bool | None:
        """Whether ``ranks`` order the graded candidates otherwise than their scores; None
        when fewer than two candidates are fully graded."""
        done = [c for c in self.candidate_ids if self.graded(c) and c in ranks]
        if len(done) < 2:
            return None
        s = self.scores()
        return ranking_departs([ranks[c] for c in done], [float(s[c] or 0.0) for c in done])

    # -- submit, undo, reopen --------------------------------------------------------------

    def _grades_to_save(self, judgment_id: str) -> list[Grade]:
        partly = [c for c in self.candidate_ids if not self.graded(c)
                  and any(self.cell(c, k.id).met is not None for k in self.criteria)]
        if partly:
            n = self.candidate_ids.index(partly[0]) + 1
            missing = next(i for i, k in enumerate(self.criteria, 1) if self.cell(partly[0], k.id).met is None)
            raise RubricError(f"candidate {n}: criterion {missing} is not graded (grade all its criteria, or none)")
        if self.rubric is None or not any(self.graded(c) for c in self.candidate_ids):
            return []
        grader = self._grader()
        return [
            Grade(candidate_id=c, criterion_id=k.id, rubric_id=self.rubric.id, met=bool(self.cell(c, k.id).met),
                  grader=grader, grader_kind=TUTOR, note=self.cell(c, k.id).note, judgment_id=judgment_id)
            for c in self.candidate_ids if self.graded(c) for k in self.criteria
        ]

    def submit(self, state: Any, *, seconds_spent: float | None = None) -> Any:
        """The workflow's submit, with the grid's grades and ``departs_from_scores``: one
        transaction. A template shown and graded is saved as this tutor's version first."""
        self._grades_to_save("check")  # refuse a half-graded candidate before anything is written
        shown = (self.rubric, self.source, dict(self.cells))
        try:
            judgment = self._submit(state, seconds_spent)
        except BaseException:
            self.rubric, self.source, self.cells = shown  # nothing was written: the grid as it was
            self._events.announce(Change.RUBRIC, Change.GRADES)
            raise
        self._events.announce(Change.GRADES)
        return judgment

    def _submit(self, state: Any, seconds_spent: float | None) -> Any:
        store = self.workflow.store
        with store.transaction():
            if self.source == TEMPLATE and self.cells and self.rubric is not None:
                self.save_rubric(self.rubric.criteria)
            judgment = self.workflow.submit(state, seconds_spent=seconds_spent)
            grades = self._grades_to_save(judgment.id)
            store.rubrics.save_grades(grades)
            store.rubrics.set_departs(judgment.id, self.departs(judgment.ranks) if grades else None)
        return judgment

    def undo(self) -> Any:
        """The workflow's undo; the judgment's grades are deleted with it and come back on the grid."""
        top = self.workflow.next_undo() if hasattr(self.workflow, "next_undo") else (
            self.workflow.history[-1] if self.workflow.history else None)
        if top is None:  # next_undo: also the judgments of before a restart (read lazily)
            return None
        judgment_id = top[0].id
        grades = self._rubrics.grades_for_judgment(judgment_id)
        with self.workflow.store.transaction():
            self._rubrics.delete_judgment_grades(judgment_id)
            item = self.workflow.undo()
        self.load(grades)
        return item

    def reopen(self, judgment_id: str) -> Any:
        item = self.workflow.reopen(judgment_id)
        self.load()
        return item
