"""Per-tutor figures (throughput, agreement, gold, position bias) and the quality report."""

from __future__ import annotations

import math

import pytest

from hitl_desktop.core.quality import (
    figures_from_items,
    position_figures,
    quality_report,
    quality_summary,
    tutor_figures,
    write_report,
)
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt

# prompt -> (domain, gold ranking); three candidates each: c0, c1, c2
PROMPTS = {
    "q0": ("medicine", None),
    "q1": ("medicine", None),
    "q2": ("finance", None),
    "q3": ("medicine", [1, 2, 3]),
}
# (tutor, prompt, ranks of c0..c2, display order as candidate numbers, seconds)
JUDGMENTS = [
    ("ann", "q0", [1, 2, 3], [0, 1, 2], 10.0),
    ("ann", "q1", [1, 2, 3], [0, 2, 1], 20.0),
    ("ann", "q2", [3, 2, 1], [2, 0, 1], 30.0),
    ("ann", "q3", [1, 2, 3], [0, 1, 2], 40.0),
    ("bob", "q0", [1, 3, 2], [1, 0, 2], 60.0),
    ("bob", "q1", [2, 1, 3], [1, 0, 2], 60.0),
    ("bob", "q2", [3, 2, 1], [0, 1, 2], 90.0),
    ("cem", "q0", [1, 1, 2], [1, 0, 2], None),
]


@pytest.fixture
def bench(store):
    tutors = {n: store.ensure_tutor(n, ["medicine"]) for n in ("ann", "bob", "cem")}
    store.ensure_tutor("dora", ["law"])  # no judgments yet
    cands = {}
    for name, (domain, gold) in PROMPTS.items():
        p = store.add_prompt(Prompt(text=f"question {name}", domain=domain))
        cands[name] = [
            Candidate(prompt_id=p.id, text=f"{name} answer {i}", index=i) for i in range(3)
        ]
        store.add_candidates(cands[name])
        if gold is not None:
            store.set_gold_ranking(p.id, {c.id: r for c, r in zip(cands[name], gold)})
    for n, (tutor, name, ranks, shown, secs) in enumerate(JUDGMENTS):
        cs = cands[name]
        store.save_judgment(
            Judgment(
                prompt_id=cs[0].prompt_id,
                tutor_id=tutors[tutor].id,
                ranks={c.id: r for c, r in zip(cs, ranks, strict=True)},
                display_order=[cs[i].id for i in shown],
                seconds_spent=secs,
                correction=Correction(text="better", candidate_id=cs[2].id) if n == 0 else None,
                created_at=f"2026-02-01T10:00:{n:02d}+00:00",
            )
        )
    return store


def by_name(figures):
    return {f["tutor"]: f for f in figures}


def test_throughput_and_counts(bench):
    f = by_name(tutor_figures(bench))
    assert list(f) == ["ann", "bob", "cem", "dora"]
    assert [f[t]["judgments"] for t in f] == [4, 3, 1, 0]
    assert f["ann"]["median_seconds"] == 25.0 and f["ann"]["items_per_hour"] == pytest.approx(144.0)
    assert f["bob"]["median_seconds"] == 60.0
    assert f["cem"]["median_seconds"] is None and f["cem"]["items_per_hour"] is None
    assert f["ann"]["corrections"] == 1 and f["bob"]["corrections"] == 0
    assert f["ann"]["domains"] == ["finance", "medicine"] and f["dora"]["domains"] == ["law"]


def test_agreement_with_the_others_by_hand(bench):
    f = by_name(tutor_figures(bench))
    # q0: ann/bob 1/3, ann/cem 2/sqrt(6) (cem's tie), bob/cem 0 (1 concordant, 1 discordant,
    # 1 tied); q1: ann/bob 1/3; q2: ann/bob 1
    r6 = 2 / math.sqrt(6)
    assert f["ann"]["agreement_with_others"] == pytest.approx((1 / 3 + r6 + 1 / 3 + 1) / 4)
    assert f["bob"]["agreement_with_others"] == pytest.approx((1 / 3 + 0 + 1 / 3 + 1) / 4)
    assert f["cem"]["agreement_with_others"] == pytest.approx((r6 + 0) / 2)
    assert f["ann"]["comparisons"] == 4 and f["cem"]["comparisons"] == 2
    assert f["dora"]["agreement_with_others"] is None and f["dora"]["comparisons"] == 0


def test_agreement_with_gold(bench):
    f = by_name(tutor_figures(bench))
    assert f["ann"]["agreement_with_gold"] == pytest.approx(1.0) and f["ann"]["gold_items"] == 1
    assert f["bob"]["agreement_with_gold"] is None and f["bob"]["gold_items"] == 0


def test_position_bias(bench):
    f = by_name(tutor_figures(bench))
    ann, bob, cem = f["ann"], f["bob"], f["cem"]
    # ann always ranked the first shown candidate best: 4 of 4 against 1/3 expected
    assert ann["first_shown_best"] == 1.0 and ann["first_shown_expected"] == pytest.approx(1 / 3)
    assert ann["position_bias"] == pytest.approx(3.0) and ann["position_items"] == 4
    assert ann["position_bias_p"] == pytest.approx((1 / 3) ** 4)
    # bob: 1 of 3, as expected by chance
    assert bob["first_shown_best"] == pytest.approx(1 / 3) and bob[
        "position_bias"
    ] == pytest.approx(1.0)
    # cem tied two candidates at the top, one of them shown first: expected 2/3
    assert cem["first_shown_best"] == 1.0 and cem["first_shown_expected"] == pytest.approx(2 / 3)
    assert f["dora"]["first_shown_best"] is None and f["dora"]["position_items"] == 0


def test_position_figures_skip_judgments_without_a_display_order(bench):
    items = list(bench.judged_items(tutor="ann"))
    items[0].judgment.display_order = []
    got = position_figures(items)
    assert got["position_items"] == 3 and got["first_shown_best"] == 1.0


def test_a_domain_at_a_time(bench):
    f = by_name(tutor_figures(bench, domain="finance"))
    assert list(f) == ["ann", "bob"]  # only tutors who judged there
    assert f["ann"]["judgments"] == 1 and f["ann"]["agreement_with_others"] == pytest.approx(1.0)
    summary = quality_summary(bench, domain="finance")
    assert summary["agreement"]["prompts"] == 1 and list(summary["by_domain"]) == ["finance"]


def test_consensus_items_are_not_a_tutor(bench):
    from hitl_desktop.core.consensus import consensus_items

    items = list(bench.judged_items())
    extra = [i for i in consensus_items(items) if i.tutor_name == "consensus"]
    assert extra
    figures = by_name(figures_from_items(items + extra))
    assert "consensus" not in figures and figures["ann"]["judgments"] == 4


def test_markdown_report(bench):
    text = quality_report(bench)
    assert text.startswith("# Quality report")
    assert "| **all** | 3 | 9 |" in text  # q0, q1, q2 compared: 3 candidates each
    for name in ("ann", "bob", "cem", "dora"):
        assert f"| {name} |" in text
    assert "| ann | finance, medicine | 4 | 25.0 | 144.0 |" in text
    assert "100% of 4 | 33% |" in text
    assert "How to read it" in text


def test_write_report_markdown_and_html(bench, tmp_path):
    md = write_report(bench, tmp_path / "quality.md")
    assert md.read_text(encoding="utf-8").startswith("# Quality report")
    page = write_report(bench, tmp_path / "quality.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<td>ann</td>" in page
    assert "Krippendorff" in page
    summary = quality_summary(bench, domain="medicine")
    got = write_report(None, tmp_path / "medicine.md", summary=summary).read_text(encoding="utf-8")
    assert "medicine, generated" in got
