"""Agreement between tutors (Krippendorff's alpha, Kendall tau-b), gold items, consensus."""

from __future__ import annotations

import json
import math
import uuid

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.agreement import (
    StatsAgreement,
    _value_counts,
    agreement,
    agreement_by_domain,
    agreement_stats,
    gold_agreement,
    ordinal_alpha,
    tau_b,
)
from hitl_desktop.core.consensus import (
    CONSENSUS_NAMESPACE,
    consensus_items,
    ranked_pairs,
)
from hitl_desktop.core.ranking import pairs_for_item
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment, Prompt

nan = np.nan


class Bench:
    """JudgedItems built by hand: prompts with candidates "c0".."cK", tutors by name."""

    def __init__(self) -> None:
        self.prompts: dict[str, tuple[Prompt, list[Candidate]]] = {}
        self.clock = 0

    def prompt(self, name: str, k: int, *, domain: str = "medicine", gold=None):
        if name not in self.prompts:
            p = Prompt(text=f"question {name}", domain=domain, id=f"p-{name}")
            cands = [
                Candidate(prompt_id=p.id, text=f"{name} answer {i}", index=i, id=f"{name}-c{i}")
                for i in range(k)
            ]
            if gold is not None:  # gold ranks belong to candidate ids
                p.gold_ranking = {c.id: r for c, r in zip(cands, gold)}
            self.prompts[name] = (p, cands)
        return self.prompts[name]

    def judge(
        self,
        tutor: str,
        name: str,
        ranks,
        *,
        domain: str = "medicine",
        correction=None,
        strength=2,
        **kw,
    ) -> JudgedItem:
        p, cands = self.prompt(name, len(ranks), domain=domain)
        self.clock += 1
        ranked = {c.id: r for c, r in zip(cands, ranks, strict=True) if r is not None}
        j = Judgment(
            prompt_id=p.id,
            tutor_id=f"t-{tutor}",
            ranks=ranked,
            strength=strength,
            correction=correction,
            created_at=f"2026-01-01T00:00:{self.clock:02d}+00:00",
            **kw,
        )
        return JudgedItem(j, p, [c for c in cands if c.id in ranked], tutor, p.domain)


# -- Kendall tau-b ----------------------------------------------------------------------------


def test_tau_b_by_hand():
    a = {"x": 1, "y": 2, "z": 3}
    assert tau_b(a, {"x": 1, "y": 3, "z": 2}) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert tau_b(a, {"x": 3, "y": 2, "z": 1}) == pytest.approx(-1)
    # ties: x,y tied on one side -> (nc - nd) / sqrt((n0 - n1)(n0 - n2)) = 2 / sqrt(2 * 3)
    assert tau_b({"x": 1, "y": 1, "z": 2}, a) == pytest.approx(2 / math.sqrt(6))
    # only the candidates both ranked
    assert tau_b(a, {"x": 2, "z": 1, "w": 3}) == pytest.approx(-1)
    assert tau_b(a, {"x": 1}) is None  # one shared candidate
    assert tau_b(a, {"x": 1, "y": 1, "z": 1}) is None  # one tutor tied everything


# -- Krippendorff's alpha ---------------------------------------------------------------------


def test_ordinal_alpha_textbook_example_through_items():
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability', 4 coders x 12 units:
    ordinal alpha = 0.815. Each unit is a one-candidate prompt, a coder's value the rank."""
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    bench = Bench()
    items = [
        bench.judge(f"coder{i}", f"u{u}", [int(v)])
        for i, row in enumerate(data)
        for u, v in enumerate(row)
        if not math.isnan(v)
    ]
    got = agreement(items)
    assert round(got["krippendorff_alpha"], 3) == 0.815
    assert got["units"] == 11 and got["prompts"] == 11  # unit 12 has one value only
    assert got["kendall_tau"] is None and got["pairs"] == 0  # one candidate: no tau


def test_alpha_and_tau_against_a_hand_built_matrix():
    bench = Bench()
    items = [
        bench.judge("ann", "q1", [1, 2, 3, 4]),
        bench.judge("bob", "q1", [2, 1, 3, 4]),
        bench.judge("cem", "q1", [1, 2, 4, None]),  # cem left the last one unranked
        bench.judge("ann", "q2", [1, 2, 3]),
        bench.judge("bob", "q2", [1, 1, 2]),  # a tie
        bench.judge("ann", "q3", [1, 2]),  # one tutor only: not compared
    ]
    matrix = [
        [1, 2, 3, 4, 1, 2, 3],
        [2, 1, 3, 4, 1, 1, 2],
        [1, 2, 4, nan, nan, nan, nan],
    ]
    got = agreement(items)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert got["krippendorff_alpha"] == pytest.approx(expected)
    assert got["units"] == 7 and got["prompts"] == 2
    # q1: ann/bob 4/6, ann/cem 1 (3 shared), bob/cem 1/3; q2: ann/bob 2/sqrt(6)
    taus = [4 / 6, 1.0, 1 / 3, 2 / math.sqrt(6)]
    assert got["kendall_tau"] == pytest.approx(sum(taus) / 4)
    assert got["pairs"] == 4


def test_latest_judgment_of_a_tutor_counts():
    bench = Bench()
    items = [
        bench.judge("ann", "q", [3, 2, 1]),
        bench.judge("bob", "q", [1, 2, 3]),
        bench.judge("ann", "q", [1, 2, 3]),  # ann changed her mind: now she agrees
    ]
    got = agreement(items)
    assert got["kendall_tau"] == pytest.approx(1.0) and got["krippendorff_alpha"] == pytest.approx(
        1.0
    )
    assert agreement(list(reversed(items)))["kendall_tau"] == pytest.approx(
        1.0
    )  # by time, not list order


def test_nothing_to_compare_is_none():
    bench = Bench()
    empty = {"krippendorff_alpha": None, "kendall_tau": None, "units": 0, "prompts": 0, "pairs": 0}
    assert agreement([]) == empty
    assert agreement([bench.judge("ann", "q", [1, 2]), bench.judge("ann", "q", [2, 1])]) == empty
    # everybody tied everything: tau undefined (skipped), alpha undefined (one value)
    tied = [bench.judge("ann", "t", [1, 1, 1]), bench.judge("bob", "t", [1, 1, 1])]
    got = agreement(tied)
    assert got["kendall_tau"] is None and got["krippendorff_alpha"] is None
    assert got["prompts"] == 1 and got["units"] == 3
    assert ordinal_alpha([]) is None


def test_one_tutor_tying_everything_is_skipped_for_tau_only():
    bench = Bench()
    items = [
        bench.judge("ann", "q", [1, 2, 3]),
        bench.judge("bob", "q", [1, 2, 3]),
        bench.judge("cem", "q", [2, 2, 2]),
    ]
    got = agreement(items)
    assert got["pairs"] == 1 and got["kendall_tau"] == pytest.approx(1.0)
    expected = krippendorff.alpha(
        reliability_data=[[1, 2, 3], [1, 2, 3], [2, 2, 2]], level_of_measurement="ordinal"
    )
    assert got["krippendorff_alpha"] == pytest.approx(expected)


def test_by_domain():
    bench = Bench()
    items = [
        bench.judge("ann", "m", [1, 2, 3], domain="medicine"),
        bench.judge("bob", "m", [1, 2, 3], domain="medicine"),
        bench.judge("ann", "f", [1, 2, 3], domain="finance"),
        bench.judge("bob", "f", [3, 2, 1], domain="finance"),
    ]
    got = agreement_by_domain(items)
    assert list(got) == ["finance", "medicine"]
    assert got["medicine"]["kendall_tau"] == pytest.approx(1.0)
    assert got["finance"]["kendall_tau"] == pytest.approx(-1.0)
    assert agreement(items)["kendall_tau"] == pytest.approx(0.0)


@given(st.lists(st.integers(1, 6).map(float), max_size=12))
def test_value_counts_are_the_sorted_counter(values):
    from collections import Counter

    assert _value_counts(list(values)) == tuple(sorted(Counter(values).items()))


#: One judgment: (prompt, tutor, the item's domain, ranks of the prompt's 3 candidates, None
#: for one left unranked). Tutor "consensus" is the consensus pseudo-tutor.
_judgment = st.tuples(
    st.sampled_from("pqrs"),
    st.sampled_from(["ann", "bob", "cem", "consensus"]),
    st.sampled_from(["medicine", "law"]),
    st.lists(st.one_of(st.none(), st.integers(1, 3)), min_size=3, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_judgment, max_size=14), st.integers(1, 3))
def test_stats_agreement_in_batches_is_the_plain_definition(judgments, per_batch):
    """StatsAgreement fed batches of whole prompts (as stats reads them) gives agreement() of
    all the items and, per domain, of that domain's items (agreement_by_domain), also where a
    prompt was judged under two domains or a batch holds consensus items."""
    bench = Bench()
    items = []
    for name, tutor, domain, ranks in judgments:
        item = bench.judge(tutor, name, ranks)
        items.append(JudgedItem(item.judgment, item.prompt, item.candidates, tutor, domain))
    prompts = list(dict.fromkeys(i.prompt.id for i in items))
    tally = StatsAgreement()
    for start in range(0, len(prompts), per_batch):
        chosen = set(prompts[start : start + per_batch])
        tally.add([i for i in items if i.prompt.id in chosen])
    got = tally.figures()
    want = agreement(items)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, nan_ok=True), key
    by_domain = agreement_by_domain(items)
    assert sorted(got["by_domain"]) == sorted(by_domain)
    for dom, figures in by_domain.items():
        for key, value in figures.items():
            assert got["by_domain"][dom][key] == pytest.approx(value, nan_ok=True), (dom, key)


# -- gold items -------------------------------------------------------------------------------


def test_gold_agreement_per_tutor():
    bench = Bench()
    g1, g1c = bench.prompt("g1", 3, gold=[1, 2, 3])
    g2, g2c = bench.prompt("g2", 3, gold=[1, 1, 2])
    items = [
        bench.judge("ann", "g1", [1, 2, 3]),
        bench.judge("ann", "g2", [1, 2, 3]),
        bench.judge("bob", "g1", [3, 2, 1]),
        bench.judge("bob", "x", [1, 2]),  # not a gold item
    ]
    got = gold_agreement(items)
    assert got["t-ann"]["items"] == 2
    assert got["t-ann"]["kendall_tau"] == pytest.approx((1 + 2 / math.sqrt(6)) / 2)
    assert got["t-bob"] == {"tutor": "bob", "kendall_tau": pytest.approx(-1), "items": 1}
    # gold ranks are compared over the candidates both rank
    bench.prompt("part", 3, gold=[2, 1])
    got = gold_agreement([bench.judge("cem", "part", [1, 2, 3])])
    assert got["t-cem"]["kendall_tau"] == pytest.approx(-1)


def test_agreement_stats_from_a_store(store):
    tutors = {n: store.ensure_tutor(n) for n in ("ann", "bob")}
    p = store.add_prompt(Prompt(text="q", domain="law"))
    cands = [Candidate(prompt_id=p.id, text=f"a{i}", index=i) for i in range(3)]
    store.add_candidates(cands)
    store.set_gold_ranking(p.id, {c.id: r for c, r in zip(cands, [1, 2, 3])})
    for name, ranks in (("ann", [1, 2, 3]), ("bob", [1, 3, 2])):
        store.save_judgment(
            Judgment(
                prompt_id=p.id,
                tutor_id=tutors[name].id,
                ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
            )
        )
    stats = agreement_stats(store)
    json.dumps(stats)
    assert stats["kendall_tau"] == pytest.approx(1 / 3)
    assert stats["by_domain"]["law"]["prompts"] == 1
    assert stats["gold"] == {
        "ann": {"kendall_tau": pytest.approx(1.0), "items": 1},
        "bob": {"kendall_tau": pytest.approx(1 / 3), "items": 1},
    }


# -- consensus ---------------------------------------------------------------------------------


def ballots(*groups):
    """(count, "ABC") -> ballots with rank = position in the string."""
    return [{c: i + 1 for i, c in enumerate(order)} for n, order in groups for _ in range(n)]


def test_ranked_pairs_breaks_a_cycle_at_its_weakest_pair():
    # A>B 5:2 (margin 3), B>C 5:2 (margin 3), C>A 4:3 (margin 1): the cycle A>B>C>A
    # loses its weakest link, C>A.
    votes = ballots((3, "ABC"), (2, "BCA"), (2, "CAB"))
    assert ranked_pairs(votes, ["A", "B", "C"]) == {"A": 1, "B": 2, "C": 3}
    assert ranked_pairs(votes, ["C", "B", "A"]) == {"A": 1, "B": 2, "C": 3}  # not by order


def test_a_perfect_cycle_is_broken_by_generated_order():
    votes = ballots((1, "ABC"), (1, "BCA"), (1, "CAB"))  # every margin is 1
    assert ranked_pairs(votes, ["A", "B", "C"]) == {"A": 1, "B": 2, "C": 3}
    assert ranked_pairs(votes, ["B", "C", "A"]) == {"B": 1, "C": 2, "A": 3}


def test_ranked_pairs_finds_the_condorcet_winner():
    votes = ballots((3, "ABC"), (2, "BCA"))
    # pairwise, A beats B 3:2 and C 3:2: A is the Condorcet winner
    assert ranked_pairs(votes, ["A", "B", "C"]) == {"A": 1, "B": 2, "C": 3}


def test_exact_ties_stay_ties():
    votes = [{"A": 1, "B": 2, "C": 3}, {"A": 2, "B": 1, "C": 3}]
    assert ranked_pairs(votes, ["A", "B", "C"]) == {"A": 1, "B": 1, "C": 2}
    # a tutor's own tie: no vote either way
    votes = [{"A": 1, "B": 1, "C": 2}, {"A": 1, "B": 2, "C": 3}]
    assert ranked_pairs(votes, ["A", "B", "C"]) == {"A": 1, "B": 2, "C": 3}


def test_consensus_items():
    bench = Bench()
    fix = Correction(text="a much better answer", candidate_id="q-c2")
    items = [
        bench.judge("ann", "q", [1, 2, 3], strength=1),
        bench.judge("bob", "q", [2, 1, 3], strength=3),
        bench.judge("cem", "q", [1, 3, 2], correction=fix, strength=2),
        bench.judge("ann", "solo", [2, 1]),
    ]
    out = consensus_items(items)
    assert [i.tutor_name for i in out] == ["consensus", "cem", "ann"]
    cons, corr, solo = out
    # majorities: c0>c1 2:1, c0>c2 3:0, c1>c2 2:1 -> c0, c1, c2
    assert cons.judgment.ranks == {"q-c0": 1, "q-c1": 2, "q-c2": 3}
    assert cons.judgment.tutor_id == "consensus" and cons.judgment.correction is None
    assert cons.judgment.strength == 2 and cons.judgment.all_bad is False
    member_ids = sorted(i.judgment.id for i in items[:3])
    assert cons.judgment.id == str(
        uuid.uuid5(CONSENSUS_NAMESPACE, "|".join(["majority", "p-q", *member_ids]))
    )
    assert consensus_items(items)[0].judgment.id == cons.judgment.id  # deterministic
    assert [c.id for c in cons.candidates] == ["q-c0", "q-c1", "q-c2"]
    pairs = pairs_for_item(cons)
    assert {(p.chosen_id, p.rejected_id, p.margin) for p in pairs} == {
        ("q-c0", "q-c2", 3.0),
        ("q-c0", "q-c1", 1.0),
        ("q-c1", "q-c2", 1.0),
    }
    assert {p.source for p in pairs} == {"consensus"}

    # cem's correction survives on its own, with only correction pairs
    assert corr.correction_only and corr.judgment.id == items[2].judgment.id
    pairs = pairs_for_item(corr)
    assert {p.source for p in pairs} == {"correction"} and len(pairs) == 3
    assert not cons.correction_only and not items[2].correction_only

    assert solo is items[3]  # a single tutor's item passes through


def test_consensus_uses_each_tutors_latest_judgment():
    bench = Bench()
    items = [
        bench.judge("ann", "q", [3, 2, 1]),
        bench.judge("bob", "q", [1, 2, 3]),
        bench.judge("ann", "q", [1, 2, 3]),
    ]
    (cons,) = consensus_items(items)
    assert cons.judgment.ranks == {"q-c0": 1, "q-c1": 2, "q-c2": 3}
    assert "2 tutors" in cons.judgment.rationale
