"""The judgment being built on the bench: the ranking scheme, ties, all bad, back and forth."""

from __future__ import annotations

import pytest

from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.ranking import validate_judgment
from hitl_desktop.core.types import Correction


def test_rank_next_tie_and_moves():
    s = JudgingState(display_order=["a", "b", "c", "d"])
    s.rank_next("b")
    s.rank_next("a")
    s.tie_with_last("c")
    assert s.ranks() == {"b": 1, "a": 2, "c": 2}
    assert s.unranked() == ["d"] and s.missing() == []  # one left: implied last
    assert s.final_ranks()["d"] == 3
    s.move_up("c")  # breaks out of the tie, above a
    assert s.ranks() == {"b": 1, "c": 2, "a": 3}
    s.move_up("c")  # joins b
    assert s.ranks() == {"b": 1, "c": 1, "a": 2}
    s.move_down("b")
    assert s.ranks() == {"c": 1, "b": 2, "a": 3}
    s.move_down("a")  # already last and alone: stays
    assert s.rank_of("a") == 3
    s.place("d", "c", "above")
    assert s.ranks() == {"d": 1, "c": 2, "b": 3, "a": 4}
    s.place("a", "d", "tie")
    s.place("b", "c", "below")
    assert s.ranks() == {"d": 1, "a": 1, "c": 2, "b": 3}
    s.clear("a")
    assert s.missing() == [] and s.final_ranks()["a"] == 4
    s.clear_all()
    assert s.missing() and s.best() is None
    with pytest.raises(ValueError):
        s.place("a", "b", "sideways")


def test_all_bad_and_judgment():
    s = JudgingState(display_order=["a", "b", "c"])
    s.all_bad = True
    assert s.missing() == []
    assert s.final_ranks() == {"a": 1, "b": 1, "c": 1}
    s.rank_next("b")
    s.toggle_flag("b", "unsafe")
    s.set_rating("b", "helpfulness", 2)
    s.correction = Correction(text="better", candidate_id="b")
    j = s.to_judgment(prompt_id="p", tutor_id="t", session_id="s", guideline_version="v1-x", seconds_spent=3.0)
    assert j.ranks == {"b": 1, "a": 2, "c": 2} and j.all_bad and j.display_order == ["a", "b", "c"]
    assert j.flags == {"b": ["unsafe"]} and j.ratings == {"b": {"helpfulness": 2}}
    validate_judgment(j, ["a", "b", "c"])
    back = JudgingState.from_judgment(j, ["a", "b", "c"])
    assert back.ranks() == j.ranks and back.correction == j.correction and back.flags == {"b": {"unsafe"}}
    back.replace_id("b", "b2")
    assert back.display_order == ["a", "b2", "c"] and back.correction is None and "b" not in back.ranks()


def test_best_prefers_the_first_shown_in_a_tie():
    s = JudgingState(display_order=["a", "b", "c"])
    s.rank_next("c")
    s.tie_with_last("a")
    assert s.best() == "a"
