"""The figures computed a batch at a time are the figures computed from every item at once:
Krippendorff's alpha from counted unit profiles against ``krippendorff.alpha``, and
``stats --json`` (core/lab_stats.py) against ``Store.stats()`` with the agreement and the
models compared over all judged items. No Qt."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.agreement import (
    AgreementTally,
    agreement_stats,
    alpha_from_profiles,
    ordinal_alpha,
)
from hitl_desktop.core.lab_stats import lab_stats
from hitl_desktop.core.models_compared import models_stats
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt, Tutor

column = st.lists(st.one_of(st.just(math.nan), st.integers(1, 5).map(float)), min_size=3, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(column, min_size=1, max_size=30))
def test_alpha_from_unit_profiles_is_krippendorffs(columns):
    columns = [c for c in columns if sum(not math.isnan(v) for v in c) >= 2]
    profiles: dict[tuple, int] = {}
    for c in columns:
        values = sorted(v for v in c if not math.isnan(v))
        key = tuple((v, values.count(v)) for v in sorted(set(values)))
        profiles[key] = profiles.get(key, 0) + 1
    want, got = ordinal_alpha(columns), alpha_from_profiles(profiles)
    if want is None:
        assert got is None or not columns
    else:
        assert got == pytest.approx(want, abs=1e-9)


def test_an_empty_tally_has_no_figures():
    assert AgreementTally().figures() == {
        "krippendorff_alpha": None, "kendall_tau": None, "units": 0, "prompts": 0, "pairs": 0
    }  # fmt: skip


@pytest.fixture
def lab(tmp_path):
    rng = random.Random(7)
    store = Store.open(tmp_path / "lab.db")
    tutors = [Tutor(name=n) for n in ("ann", "bob", "cem")]
    prompts, cands, judgments = [], [], []
    for i in range(120):
        p = Prompt(text=f"q{i}", domain=("medicine", "law")[i % 2])
        cs = [Candidate(prompt_id=p.id, text=f"a{i}-{k}", index=k, model=("m1", "m2", "m3")[k % 3]) for k in range(4)]
        prompts.append(p)
        cands.extend(cs)
        for n, t in enumerate(rng.sample(tutors, rng.randint(1, 3))):
            ranking = [rng.randint(1, 4) for _ in cs]
            judgments.append(
                Judgment(
                    prompt_id=p.id, tutor_id=t.id, ranks={c.id: r for c, r in zip(cs, ranking, strict=True)},
                    all_bad=len(set(ranking)) == 1 and rng.random() < 0.5,
                    correction=Correction(text=rng.choice([f"fix {i}", cs[0].text]), candidate_id=cs[0].id)
                    if rng.random() < 0.2 else None,
                    created_at=f"2026-01-0{1 + n}T00:00:{i % 60:02d}",
                )
            )  # fmt: skip
    store.bulk_insert(tutors=tutors, prompts=prompts, candidates=cands, judgments=judgments)
    store.set_gold_ranking(prompts[0].id, {c.id: k + 1 for k, c in enumerate(cands[:4])})
    yield store
    store.close()


def test_lab_stats_are_the_stores_figures_with_agreement_and_models(lab):
    want = lab.stats()
    items = list(lab.judged_items())
    want["agreement"] = agreement_stats(lab, items=items)
    want.update(models_stats(lab, items=items, rounds=30))
    got = lab_stats(lab, rounds=30)
    assert set(got) == set(want)
    for key in ("prompts", "candidates", "judgments", "corrections", "pairs", "tutors", "queued", "domains", "dropped"):
        assert got[key] == want[key], key
    assert _close(got["agreement"], want["agreement"])
    assert got["models"] == want["models"] and got["models_by_domain"] == want["models_by_domain"]
    assert got["agreement"]["prompts"] > 10 and got["pairs"] > 0


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, abs=1e-12)
    return a == b


def test_the_streamed_split_is_split_conversations(tmp_path):
    """export's split keeps only ids (core/export/selection.py) and is exactly the split of
    ``ranking.split_conversations`` over the judged items: first turns shared, turns that
    continue a judgment, several judgments of a prompt."""
    from hitl_desktop.core.export.selection import Selection, test_prompt_ids
    from hitl_desktop.core.judged_reader import Filters
    from hitl_desktop.core.ranking import split_conversations
    from hitl_desktop.core.types import Message

    rng = random.Random(11)
    store = Store.open(tmp_path / "conv.db")
    tutors = [Tutor(name="ann"), Tutor(name="bob")]
    store.bulk_insert(tutors=tutors)
    made: list[tuple[Prompt, list[Candidate], Judgment]] = []
    for i in range(150):
        if made and rng.random() < 0.4:  # a turn continuing an earlier judgment
            p0, cs0, j0 = rng.choice(made)
            head = p0.messages or []
            p = Prompt(text=f"follow-up {i}", parent_judgment_id=j0.id if rng.random() < 0.7 else None,
                       messages=[*head, Message("user", p0.messages[0].content if p0.messages else p0.text),
                                 Message("assistant", cs0[0].text)][-3:] if rng.random() < 0.8 else [])  # fmt: skip
        else:
            p = Prompt(text=f"first turn {i % 90}")  # some first turns repeat
        cs = [Candidate(prompt_id=p.id, text=f"{p.text} answer {k}", index=k) for k in range(2)]
        js = [Judgment(prompt_id=p.id, tutor_id=t.id, ranks={cs[0].id: 1, cs[1].id: 2},
                       created_at=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}") for t in tutors[: rng.randint(1, 2)]]  # fmt: skip
        store.bulk_insert(prompts=[p], candidates=cs, judgments=js)
        made.append((p, cs, js[0]))
    items = list(store.judged_items())
    for fraction, seed in ((0.2, 0), (0.5, 1), (0.1, 7)):
        want = split_conversations(items, test_fraction=fraction, seed=seed)
        for consensus in (False, True):
            got = test_prompt_ids(Selection(store, Filters(), consensus=consensus), test_fraction=fraction, seed=seed)
            if not consensus:
                assert got == want and 0 < len(got) < len({i.prompt.id for i in items})
            else:  # the consensus items' split, as split_conversations finds it
                from hitl_desktop.core.consensus import consensus_items

                assert got == split_conversations(consensus_items(items), test_fraction=fraction, seed=seed)
    store.close()
