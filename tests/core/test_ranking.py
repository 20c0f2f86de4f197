"""The pair rules of DESIGN.md section 4, checked as properties."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.ranking import (
    REPEATED_PAIR,
    SAME_TEXT_PAIR,
    UNCHANGED_CORRECTION,
    RankingError,
    dense_ranks,
    pairs_for_item,
    split_prompt_ids,
    validate_judgment,
    validate_ranks,
)
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment, Message, Prompt


def make_item(ranks, *, all_bad=False, correction=None, corrected=None, strength=2, texts=None):
    prompt = Prompt(text="What is the first-line treatment?", domain="medicine", messages=[Message("user", "hi"), Message("assistant", "hello")])
    cands = [
        Candidate(prompt_id=prompt.id, text=(texts[i] if texts else f"answer {i}"), model=f"m{i}", seed=i, index=i)
        for i in range(len(ranks))
    ]
    corr = None
    if correction is not None:
        corr = Correction(text=correction, candidate_id=cands[corrected].id if corrected is not None else None)
    j = Judgment(
        prompt_id=prompt.id,
        tutor_id="t",
        ranks={c.id: r for c, r in zip(cands, ranks)},
        all_bad=all_bad,
        correction=corr,
        strength=strength,
    )
    return JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name="dr-a", domain="medicine")


ranks_strategy = st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=9)


@given(k=st.integers(min_value=1, max_value=9))
def test_strict_ranking_gives_k_choose_2_pairs(k):
    item = make_item(list(range(1, k + 1)))
    pairs = pairs_for_item(item)
    assert len(pairs) == k * (k - 1) // 2
    by_text = {c.text: item.judgment.ranks[c.id] for c in item.candidates}
    for p in pairs:
        assert by_text[p.chosen] < by_text[p.rejected]
        assert p.source == "ranking"


@given(ranks=ranks_strategy)
def test_pairs_follow_ranks_and_ties_make_none(ranks):
    item = make_item(ranks)
    pairs = pairs_for_item(item)
    expected = {
        (f"answer {a}", f"answer {b}") if ranks[a] < ranks[b] else (f"answer {b}", f"answer {a}")
        for a, b in combinations(range(len(ranks)), 2)
        if ranks[a] != ranks[b]
    }
    assert {(p.chosen, p.rejected) for p in pairs} == expected
    assert len(pairs) == len(expected)


@given(ranks=ranks_strategy, strength=st.sampled_from([1, 2, 3]))
def test_margin_is_dense_rank_distance_times_strength_over_two(ranks, strength):
    item = make_item(ranks, strength=strength)
    dense = dense_ranks(dict(enumerate(ranks)))
    for p in pairs_for_item(item):
        a, b = int(p.chosen.split()[1]), int(p.rejected.split()[1])
        assert p.margin == (dense[b] - dense[a]) * strength / 2
        assert p.margin > 0


@given(ranks=ranks_strategy, corrected=st.integers(min_value=0, max_value=8))
def test_correction_is_chosen_over_every_candidate(ranks, corrected):
    corrected = corrected % len(ranks)
    item = make_item(ranks, correction="the tutor's answer", corrected=corrected)
    corr_pairs = [p for p in pairs_for_item(item) if p.source == "correction"]
    assert sorted(p.rejected for p in corr_pairs) == sorted(c.text for c in item.candidates)
    assert all(p.chosen == "the tutor's answer" for p in corr_pairs)
    assert all(p.chosen_model == "tutor:dr-a" for p in corr_pairs)


@given(ranks=ranks_strategy)
def test_all_bad_without_correction_makes_no_pair(ranks):
    assert pairs_for_item(make_item(ranks, all_bad=True)) == []


def test_all_bad_with_correction_makes_only_correction_pairs():
    pairs = pairs_for_item(make_item([1, 2, 3], all_bad=True, correction="fixed", corrected=0))
    assert [(p.chosen, p.rejected, p.margin) for p in pairs] == [
        ("fixed", "answer 0", 1.0),
        ("fixed", "answer 1", 2.0),
        ("fixed", "answer 2", 3.0),
    ]


def test_unchanged_correction_is_no_correction():
    dropped = Counter()
    pairs = pairs_for_item(make_item([1, 2], correction=" answer 0\n", corrected=0), dropped)
    assert [(p.chosen, p.rejected, p.source) for p in pairs] == [("answer 0", "answer 1", "ranking")]
    assert dropped == {UNCHANGED_CORRECTION: 1}


def test_a_correction_equal_to_another_candidate_never_repeats_a_pair():
    dropped = Counter()
    pairs = pairs_for_item(make_item([1, 2, 3], correction="answer 1", corrected=0), dropped)
    keys = [(p.chosen, p.rejected) for p in pairs]
    assert len(keys) == len(set(keys)) and all(c != r for c, r in keys)
    # ranking: 0>1, 0>2, 1>2; correction (= answer 1) > 0, (> 1 same text), (> 2 repeated)
    assert keys == [("answer 0", "answer 1"), ("answer 0", "answer 2"), ("answer 1", "answer 2"), ("answer 1", "answer 0")]
    assert dropped == {SAME_TEXT_PAIR: 1, REPEATED_PAIR: 1}


def test_pairs_keep_provenance_and_conversation():
    item = make_item([2, 1])
    (p,) = pairs_for_item(item)
    assert (p.chosen, p.rejected) == ("answer 1", "answer 0")
    assert (p.chosen_model, p.rejected_model, p.chosen_seed, p.rejected_seed) == ("m1", "m0", 1, 0)
    assert p.messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert (p.domain, p.tutor, p.judgment_id) == ("medicine", "dr-a", item.judgment.id)


def test_dense_ranks():
    assert dense_ranks({"a": 1, "b": 3, "c": 3, "d": 7}) == {"a": 1, "b": 2, "c": 2, "d": 3}


@pytest.mark.parametrize(
    "ranks, message",
    [([1], "has 1 ranks for 2"), ([1, 0], "not a positive integer"), ([1, "2"], "not a positive"), ([True, 2], "not a positive")],
)
def test_validate_ranks_refuses(ranks, message):
    with pytest.raises(RankingError, match=message):
        validate_ranks(ranks, 2)


def test_validate_judgment_refuses_foreign_candidates_and_bad_fields():
    item = make_item([1, 2])
    ids = [c.id for c in item.candidates]
    j = item.judgment
    validate_judgment(j, ids)
    with pytest.raises(RankingError, match="1 ranked candidate does not belong"):
        validate_judgment(j, ids[:1])
    j.strength = 7
    with pytest.raises(RankingError, match="strength"):
        validate_judgment(j, ids)
    j.strength = 2
    j.flags = {ids[0]: ["wrong-flag"]}
    with pytest.raises(RankingError, match="unknown flag"):
        validate_judgment(j, ids)
    j.flags = {}
    j.ratings = {ids[0]: {"helpfulness": 6}}
    with pytest.raises(RankingError, match="1 to 5"):
        validate_judgment(j, ids)


@settings(max_examples=50)
@given(ids=st.sets(st.text(min_size=1, max_size=8), min_size=2, max_size=60), fraction=st.floats(0.05, 0.9), seed=st.integers(0, 10))
def test_split_is_deterministic_and_never_empty_on_both_sides(ids, fraction, seed):
    test = split_prompt_ids(ids, test_fraction=fraction, seed=seed)
    assert test == split_prompt_ids(list(reversed(sorted(ids))), test_fraction=fraction, seed=seed)
    assert test <= ids
    assert 1 <= len(test) < len(ids) or len(ids) == 1


def test_split_refuses_bad_fraction():
    with pytest.raises(ValueError):
        split_prompt_ids(["a"], test_fraction=1.0, seed=0)
