"""Agreement on criteria (core/rubric_agreement.py), against figures computed here another way."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.rubric_agreement import disagreed_criteria, macro_f1, rubric_stats
from hitl_desktop.core.rubrics import MODEL, TUTOR, Criterion, Grade
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Prompt

AXES = ["accuracy", "completeness", None]


def build(grades_by):
    """grades_by: {(cand index, crit index): {grader: met}}; graders 't*' tutors, 'm*' models."""
    store = Store.memory()
    p = store.add_prompt(Prompt(text="q", domain="medicine", external_id="q"))
    cands = [Candidate(prompt_id=p.id, text=f"c{i}", index=i) for i in range(3)]
    store.add_candidates(cands, origin="imported")
    crits = [Criterion(text=f"k{i}", points=3 - i, tags=[f"axis:{a}"] if a else []) for i, a in enumerate(AXES)]
    rubric = store.rubrics.save_rubric(p.id, crits, author="lee")
    rows = []
    for (ci, ki), by in grades_by.items():
        for grader, met in by.items():
            rows.append(Grade(candidate_id=cands[ci].id, criterion_id=rubric.criteria[ki].id, rubric_id=rubric.id,
                              met=met, grader=grader, grader_kind=TUTOR if grader.startswith("t") else MODEL))
    store.rubrics.save_grades(rows)
    return store


def closed_form_alpha(units):
    """Nominal alpha for two values from the coincidence matrix (Krippendorff 2011, sec. 3)."""
    units = [(n0, n1) for n0, n1 in units if n0 + n1 >= 2]
    n = sum(a + b for a, b in units)
    big0 = sum(a for a, _ in units)
    big1 = sum(b for _, b in units)
    if not units or big0 == 0 or big1 == 0:
        return None
    o01 = sum(a * b / (a + b - 1) for a, b in units)
    return 1 - (n - 1) * o01 / (big0 * big1)


def brute_f1(gold, pred):
    out = []
    for cls in (True, False):
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == cls and p == cls)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != cls and p == cls)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == cls and p != cls)
        if tp + fp + fn:
            prec = tp / (tp + fp) if tp + fp else 0.0
            rec = tp / (tp + fn) if tp + fn else 0.0
            out.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return sum(out) / len(out) if out else None


graders = st.dictionaries(st.sampled_from(["t1", "t2", "t3", "t4", "m1", "m2"]), st.booleans(), min_size=1)
datasets = st.dictionaries(st.tuples(st.integers(0, 2), st.integers(0, 2)), graders, min_size=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datasets)
def test_agreement_and_macro_f1_match_figures_computed_independently(data):
    stats = rubric_stats(build(data))
    units = {u: {g: m for g, m in by.items() if g.startswith("t")} for u, by in data.items()}
    multi = {u: t for u, t in units.items() if len(t) >= 2}
    pairs = [(a, b) for t in multi.values() for a, b in itertools.combinations(t.values(), 2)]
    ta = stats["rubrics"]["tutor_agreement"] if "rubrics" in stats else stats["tutor_agreement"]
    assert ta["units"] == len(multi)
    if pairs:
        assert ta["pairwise_raw"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
    else:
        assert ta["pairwise_raw"] is None
    expected_alpha = closed_form_alpha([(list(t.values()).count(False), list(t.values()).count(True))
                                        for t in multi.values()])
    if expected_alpha is None:
        assert ta["krippendorff_alpha"] is None
    else:
        assert ta["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-9)
    for axis_i, axis in enumerate(AXES):
        sub = {u: t for u, t in multi.items() if u[1] == axis_i}
        name = axis or "none"
        if sub:
            assert ta["by_axis"][name]["units"] == len(sub)
        else:
            assert name not in ta["by_axis"]
    for model in ("m1", "m2"):
        gold, pred, by_axis = [], [], {}
        for u, by in data.items():
            tut = units[u]
            yes = sum(tut.values())
            if model not in by or not tut or yes * 2 == len(tut):
                continue
            gold.append(yes * 2 > len(tut))
            pred.append(by[model])
            name = AXES[u[1]] or "none"
            by_axis.setdefault(name, ([], []))
            by_axis[name][0].append(gold[-1])
            by_axis[name][1].append(by[model])
        if not any(model in by for by in data.values()):
            assert model not in stats["graders"]
            continue
        got = stats["graders"][model]
        assert got["n"] == len(gold)
        expected = brute_f1(gold, pred)
        assert got["macro_f1"] == (pytest.approx(expected) if expected is not None else None)
        for name, (g, p) in by_axis.items():
            assert got["by_axis"][name]["macro_f1"] == pytest.approx(brute_f1(g, p))
    assert stats["criteria"] == 3
    assert stats["graded_completions"] == len({u[0] for u, t in units.items() if t})


def test_macro_f1_hand_worked():
    # gold: met, met, not, not; predicted: met, not, not, not -> F1(met)=2/3, F1(not)=0.8
    assert macro_f1(tp=1, fp=0, fn=1, tn=2) == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(0, 0, 0, 0) is None
    assert macro_f1(tp=3, fp=0, fn=0, tn=0) == 1.0  # one class only: its F1


def test_criteria_tutors_disagree_on_most_come_first():
    data = {
        (0, 0): {"t1": True, "t2": True},
        (1, 0): {"t1": True, "t2": True, "t3": True},
        (0, 1): {"t1": True, "t2": False},
        (1, 1): {"t1": False, "t2": True, "t3": True},
        (0, 2): {"t1": True, "t2": False},
    }
    ranked = disagreed_criteria(build(data))
    assert [r["criterion"] for r in ranked] == ["k2", "k1", "k0"]
    assert ranked[0]["pairwise_raw"] == 0.0 and ranked[1]["pairwise_raw"] == pytest.approx(1 / 4)
    assert ranked[1]["units"] == 2 and ranked[1]["axis"] == "completeness" and ranked[0]["axis"] == "none"


def test_no_rubrics_no_figures(store):
    s = rubric_stats(store)
    assert s["criteria"] == 0 and s["graders"] == {} and s["tutor_agreement"]["units"] == 0
