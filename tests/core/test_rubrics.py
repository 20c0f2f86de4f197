"""The rubric rules (core/rubrics.py): HealthBench's score, hand-worked, and the proposed ranking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_desktop.core.rubrics import (
    Criterion,
    RubricError,
    check_criteria,
    check_points,
    clipped_mean,
    ranking_departs,
    ranks_from_scores,
    score,
)

C = [Criterion(text="a", points=8, id="a"), Criterion(text="b", points=2, id="b"),
     Criterion(text="c", points=-5, id="c")]


def test_score_hand_worked():
    assert score(C, {"a": True, "b": True}) == 1.0  # every positive, no negative
    assert score(C, {"a": True, "c": True}) == pytest.approx((8 - 5) / 10)
    assert score(C, {"c": True}) == pytest.approx(-0.5)  # only a penalised criterion: negative
    assert score(C, {}) == 0.0
    assert score(C, {"a": True, "b": True, "c": True}) == pytest.approx(0.5)
    assert score(C, {"x": True, "b": True}) == pytest.approx(0.2)  # an unknown id counts for nothing


def test_clipped_mean_as_healthbench():
    assert clipped_mean([-0.5, -0.2]) == 0.0
    assert clipped_mean([0.5, 0.7]) == pytest.approx(0.6)
    assert clipped_mean([1.0, 1.0]) == 1.0
    assert clipped_mean([]) is None


def test_ranks_from_scores_ties_and_departures():
    assert ranks_from_scores([0.9, 0.5, 0.5, 0.1]) == [1, 2, 2, 4]
    assert ranks_from_scores([-0.5, 0.0]) == [2, 1]
    assert not ranking_departs([1, 2, 2, 4], [0.9, 0.5, 0.5, 0.1])
    assert ranking_departs([1, 2, 3, 4], [0.9, 0.5, 0.5, 0.1])  # an order where scores tie
    assert ranking_departs([1, 1, 3], [0.9, 0.5, 0.1])  # a tie where scores differ
    assert ranking_departs([2, 1], [0.9, 0.5])


@pytest.mark.parametrize("bad", [0, 0.0, 10.5, -11, float("nan"), float("inf"), "3", None, True])
def test_bad_points(bad):
    with pytest.raises(RubricError):
        check_points(bad)


def test_check_criteria_rules():
    check_criteria([Criterion(text="ok", points=1, tags=["axis:accuracy", "level:example"])])
    for crits, msg in [
        ([], "at least one criterion"),
        ([Criterion(text="x", points=-1)], "positive"),
        ([Criterion(text="x", points=1), Criterion(text=" x ", points=2)], "twice"),
        ([Criterion(text="x", points=1, tags=["axis:accuracy", "axis:completeness"])], "more than one axis"),
    ]:
        with pytest.raises(RubricError, match=msg):
            check_criteria(crits)


@given(st.lists(st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0]), min_size=1, max_size=6))
def test_proposed_ranks_never_depart_and_order_by_score(scores):
    ranks = ranks_from_scores(scores)
    assert not ranking_departs(ranks, scores)
    for i, j in itertools.combinations(range(len(scores)), 2):
        assert (ranks[i] < ranks[j]) == (scores[i] > scores[j])
        assert (ranks[i] == ranks[j]) == (scores[i] == scores[j])
    assert min(ranks) == 1


@given(st.lists(st.tuples(st.integers(-10, 10).filter(bool), st.booleans()), min_size=1, max_size=8))
def test_score_is_points_met_over_positive_points(items):
    crits = [Criterion(text=str(i), points=p, id=str(i)) for i, (p, _) in enumerate(items)]
    if not any(p > 0 for p, _ in items):
        with pytest.raises(RubricError):
            score(crits, {})
        return
    met = {str(i): m for i, (_, m) in enumerate(items)}
    expected = sum(p for p, m in items if m) / sum(p for p, _ in items if p > 0)
    assert score(crits, met) == pytest.approx(expected)
    assert score(crits, met) <= 1.0
