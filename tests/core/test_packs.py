"""Assignment rules (core/packs.py), as properties: exact overlap, balance, determinism,
remaining work only."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.packs import plan_assignment
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Judgment, Prompt


def lab_with(n_prompts: int, n_gold: int) -> Store:
    store = Store.memory()
    prompts = [Prompt(text=f"q{i}", external_id=f"q{i}") for i in range(n_prompts)]
    prompts += [Prompt(text=f"g{i}", external_id=f"g{i}") for i in range(n_gold)]
    cands = [Candidate(prompt_id=p.id, text=f"{p.text}-{x}", index=x) for p in prompts for x in range(2)]
    for p in prompts[n_prompts:]:  # gold ranks belong to candidate ids (gold_rankings)
        p.gold_ranking = {c.id: r for c, r in zip([c for c in cands if c.prompt_id == p.id], [1, 2])}
    store.bulk_insert(prompts=prompts, candidates=cands)
    return store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_tutors=st.integers(1, 6),
    n_prompts=st.integers(0, 40),
    n_gold=st.integers(0, 3),
    data=st.data(),
)
def test_each_prompt_to_exactly_overlap_tutors_balanced_within_one(n_tutors, n_prompts, n_gold, data):
    overlap = data.draw(st.integers(1, n_tutors))
    tutors = [f"t{i}" for i in range(n_tutors)]
    store = lab_with(n_prompts, n_gold)
    share, gold, _, short = plan_assignment(store, tutors=tutors, overlap=overlap)
    counts = Counter(p.external_id for ps in share.values() for p in ps)
    assert short == 0
    assert len(counts) == n_prompts and set(counts.values()) <= {overlap}
    assert all(len({p.id for p in ps}) == len(ps) for ps in share.values())  # no prompt twice to one tutor
    loads = [len(ps) for ps in share.values()]
    assert max(loads) - min(loads) <= 1
    assert sorted(p.external_id for p in gold) == sorted(f"g{i}" for i in range(n_gold))
    again = plan_assignment(store, tutors=tutors, overlap=overlap)[0]
    assert {t: [p.id for p in ps] for t, ps in again.items()} == {t: [p.id for p in ps] for t, ps in share.items()}


@settings(max_examples=40, deadline=None)
@given(n_prompts=st.integers(1, 20), judged=st.sets(st.integers(0, 19)), limit=st.none() | st.integers(1, 10))
def test_only_the_remaining_work_is_assigned(n_prompts, judged, limit):
    store = lab_with(n_prompts, 0)
    ann = store.ensure_tutor("ann")
    prompts = {p.external_id: p for p in store.all_prompts()}
    for i in sorted(judged):
        p = prompts.get(f"q{i}")
        if p is not None:
            cid = store.candidates_for(p.id)[0].id
            store.save_judgment(Judgment(prompt_id=p.id, tutor_id=ann.id, ranks={cid: 1}))
    share, _, judged_map, _ = plan_assignment(store, tutors=["ann", "bob", "cy"], overlap=2, limit=limit)
    assert not any(judged_map.get((p.id, "ann")) for p in share["ann"])
    total = sum(len(ps) for ps in share.values())
    done_by_ann = sum(1 for i in judged if i < n_prompts)
    need = [1 if i in judged else 2 for i in range(n_prompts)]
    if limit is None:
        assert total == sum(need) == 2 * n_prompts - done_by_ann
    else:
        assert len({p.id for ps in share.values() for p in ps}) == min(limit, n_prompts)
