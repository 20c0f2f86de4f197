"""Rubrics: the criteria a specialist writes for one prompt, and the rules that score against them.

A rubric is a list of :class:`Criterion` (text, points in [-10, 10] and not zero, tags such as
``axis:accuracy``); editing it makes a new version. A :class:`Grade` says whether one candidate
meets one criterion of one rubric version, by one grader (a tutor or a model).

The score of a candidate is HealthBench's (openai/simple-evals ``healthbench_eval.py``,
``calculate_score``): the points of the criteria it meets over the sum of the positive points.
It can be negative (a candidate meeting only penalised behaviour) and above nothing else; an
aggregate (a model's mean score) is clipped to [0, 1] as HealthBench clips its overall score.
The ranking proposed from scores ranks higher scores first; equal scores tie.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hitl_desktop.core.types import new_id, now_iso

#: HealthBench's five axes; a criterion carries at most one ``axis:…`` tag.
AXES: tuple[str, ...] = (
    "accuracy",
    "completeness",
    "communication_quality",
    "context_awareness",
    "instruction_following",
)
AXIS_PREFIX = "axis:"
POINTS_LIMIT = 10.0
#: the smallest magnitude of a criterion's points: a score divides by the positive points, and
#: 5e-324 points would make a score of -inf (HealthBench's points are whole numbers)
POINTS_MIN = 0.01

#: rubric status: a tutor's proposal, or the lab rubric a lead approved (packs and exports use it)
PROPOSED = "proposed"
APPROVED = "approved"

#: who graded
TUTOR = "tutor"
MODEL = "model"
GRADER_KINDS = (TUTOR, MODEL)


class RubricError(ValueError):
    """A rubric or a grade that breaks the rules; the message says which criterion and why."""


@dataclass
class Criterion:
    text: str
    points: float
    tags: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    author: str = ""
    created_at: str = field(default_factory=now_iso)
    #: stable across versions: the id this criterion had in the first version it appeared in
    #: ("" until stored; the store sets it)
    key: str = ""

    @property
    def axis(self) -> str | None:
        for t in self.tags:
            if t.startswith(AXIS_PREFIX):
                return t[len(AXIS_PREFIX):]
        return None


@dataclass
class Rubric:
    """One version of one prompt's rubric (versions count from 1 per prompt)."""

    prompt_id: str
    criteria: list[Criterion]
    version: int = 1
    id: str = field(default_factory=new_id)
    author: str = ""
    created_at: str = field(default_factory=now_iso)
    status: str = PROPOSED
    approved_by: str | None = None
    approved_at: str | None = None
    #: the domain template this rubric started from (core/rubric_templates.py's version,
    #: ``<domain>-<hash>``), carried to its later versions; "" when written from scratch
    template_version: str = ""

    @property
    def positive_points(self) -> float:
        return positive_points(self.criteria)


@dataclass
class Grade:
    """Whether ``candidate_id`` meets ``criterion_id`` of rubric ``rubric_id``, by ``grader``."""

    candidate_id: str
    criterion_id: str
    rubric_id: str
    met: bool
    grader: str
    grader_kind: str = TUTOR
    note: str = ""
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)
    judgment_id: str | None = None  # a tutor's grade: the judgment it was submitted with
    run_id: str | None = None  # a model's grade: its grader run (model, parameters, prompt version)


def check_points(points: object, *, where: str = "points") -> float:
    """``points`` as a float, or :class:`RubricError`: a finite number from -10 to 10, at least
    0.01 away from 0 (``POINTS_MIN``)."""
    if isinstance(points, bool) or not isinstance(points, (int, float)):
        raise RubricError(f"{where}: must be a number, not {type(points).__name__}")
    # an integer is compared before it is converted: 10**400 has no float
    if isinstance(points, int) and abs(points) > POINTS_LIMIT:
        shown = f"a {len(str(abs(points)))}-digit number" if abs(points) >= 10**30 else repr(points)
        raise RubricError(f"{where}: must be a non-zero number from -10 to 10, not {shown}")
    value = float(points)
    if not math.isfinite(value) or value == 0 or abs(value) > POINTS_LIMIT:
        raise RubricError(f"{where}: must be a non-zero number from -10 to 10, not {points!r}")
    if abs(value) < POINTS_MIN:
        raise RubricError(f"{where}: must be at least {POINTS_MIN} away from 0, not {points!r}")
    return value


def check_criteria(criteria: Sequence[Criterion]) -> None:
    """The rules of a rubric: every criterion has text and valid points, no text twice, at least
    one positive criterion, at most one axis tag per criterion and only a known axis."""
    if not criteria:
        raise RubricError("a rubric needs at least one criterion")
    seen: set[str] = set()
    for i, c in enumerate(criteria, 1):
        where = f"criterion {i}"
        if not c.text or not c.text.strip():
            raise RubricError(f"{where}: the criterion is empty")
        check_points(c.points, where=f"{where} points")
        key = c.text.strip()
        if key in seen:
            raise RubricError(f"{where}: the same criterion twice: {key[:60]!r}")
        seen.add(key)
        axes = [t[len(AXIS_PREFIX):] for t in c.tags if t.startswith(AXIS_PREFIX)]
        if len(axes) > 1:
            raise RubricError(f"{where}: more than one axis tag: {', '.join(axes)}")
        if axes and axes[0] not in AXES:
            raise RubricError(f"{where}: unknown axis {axes[0]!r} (one of {', '.join(AXES)})")
    if positive_points(criteria) <= 0:  # POINTS_MIN keeps every score finite
        raise RubricError("a rubric needs at least one criterion with positive points")


def positive_points(criteria: Iterable[Criterion]) -> float:
    return sum(c.points for c in criteria if c.points > 0)


def score(criteria: Sequence[Criterion], met: Mapping[str, bool]) -> float:
    """HealthBench's score of one candidate: the points of the criteria it meets (by criterion
    id in ``met``) over the sum of positive points. Negative points met lower it; it is not
    clipped. A criterion missing from ``met`` counts as not met."""
    total = positive_points(criteria)
    if total <= 0:
        raise RubricError("a rubric needs at least one criterion with positive points")
    earned = sum(c.points for c in criteria if met.get(c.id, False))
    return earned / total


def clipped_mean(scores: Iterable[float]) -> float | None:
    """The mean of several scores clipped to [0, 1] (HealthBench's aggregate); None if empty."""
    values = list(scores)
    if not values:
        return None
    return min(1.0, max(0.0, sum(values) / len(values)))


def ranks_from_scores(scores: Sequence[float]) -> list[int]:
    """Ranks (1 = best) proposed from scores, in the same order: higher scores first, equal
    scores tie (standard competition ranking: 0.9, 0.5, 0.5, 0.1 -> 1, 2, 2, 4)."""
    return [1 + sum(1 for o in scores if o > s) for s in scores]


def ranking_departs(ranks: Sequence[int], scores: Sequence[float]) -> bool:
    """Whether a tutor's final ranking orders some two candidates differently from their scores
    (a tie where scores differ, or an order where they are equal, counts as departing)."""
    n = len(ranks)
    for i in range(n):
        for j in range(i + 1, n):
            by_rank = (ranks[i] < ranks[j]) - (ranks[i] > ranks[j])
            by_score = (scores[i] > scores[j]) - (scores[i] < scores[j])
            if by_rank != by_score:
                return True
    return False
