"""Checkpoints compared: comparisons, win rates and Bradley-Terry strengths, against values
worked out independently here (by hand, a closed form, and a direct maximum likelihood)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import minimize

from hitl_desktop.cli import cli
from hitl_desktop.core.models_compared import bradley_terry, model_figures, models_stats
from hitl_desktop.core.store import Store


def record(i, models, ranking, domain="medicine", tutor="dr-a"):
    return {"id": f"r{i}", "prompt": f"question {i}", "domain": domain, "tutor": tutor,
            "candidates": [{"text": f"answer {i}.{j}", "model": m} for j, m in enumerate(models)],
            "ranking": ranking}


HAND = [
    # A1 > B = A2 > C: A1-B A wins, A1-C A wins, B-A2 tie, B-C B wins, A2-C A wins (A1-A2: same model)
    record(1, ["A", "B", "A", "C"], [1, 2, 2, 3]),
    # B > A
    record(2, ["A", "B"], [2, 1], domain="law"),
    # candidates without a model take no part: only X-Y counts (a tie)
    record(3, ["X", "", "Y"], [1, 1, 1], domain="law"),
]


@pytest.fixture
def lab(tmp_path):
    db = tmp_path / "lab.db"
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HAND))
    r = CliRunner().invoke(cli, ["import", str(path), "--db", str(db)])
    assert r.exit_code == 0, r.output
    return db


def test_hand_worked_counts_overall_and_per_domain(lab):
    with Store.open(lab) as store:
        stats = models_stats(store, rounds=50)
    counts = {m: (f["comparisons"], f["wins"], f["losses"], f["ties"], f["win_rate"])
              for m, f in stats["models"].items()}
    assert counts == {
        "A": (5, 3, 1, 1, 0.75),
        "B": (4, 2, 1, 1, 0.6667),
        "C": (3, 0, 3, 0, 0.0),
        "X": (1, 0, 0, 1, None),
        "Y": (1, 0, 0, 1, None),
    }
    med = {m: (f["wins"], f["losses"], f["ties"]) for m, f in stats["models_by_domain"]["medicine"].items()}
    law = {m: (f["wins"], f["losses"], f["ties"]) for m, f in stats["models_by_domain"]["law"].items()}
    assert med == {"A": (3, 0, 1), "B": (1, 1, 1), "C": (0, 3, 0)}
    assert law == {"A": (0, 1, 0), "B": (1, 0, 0), "X": (0, 0, 1), "Y": (0, 0, 1)}
    # ordered strongest first; ties only: equal strengths at the centre
    assert list(stats["models"])[:2] == ["A", "B"]
    assert stats["models_by_domain"]["law"]["X"]["bradley_terry"] == pytest.approx(
        stats["models_by_domain"]["law"]["Y"]["bradley_terry"])


def test_two_models_match_the_closed_form():
    # A vs B: 6 wins, 3 losses, 2 ties -> p(A) = (6 + 1) / 11; Elo gap = 400 log10(p / (1 - p))
    comps = [("A", "B", 1.0)] * 6 + [("A", "B", 0.0)] * 3 + [("A", "B", 0.5)] * 2
    p = 7 / 11
    gap = 400 * math.log10(p / (1 - p))
    bt = bradley_terry(comps, rounds=0)
    assert bt["A"][0] == pytest.approx(1000 + gap / 2, abs=0.05)
    assert bt["B"][0] == pytest.approx(1000 - gap / 2, abs=0.05)


def direct_mle(comps):
    """Maximise the likelihood over the comparisons one by one, with C fixed at 0, by a
    derivative-free search; then centre on 1000."""
    models = sorted({m for a, b, _ in comps for m in (a, b)})

    def nll(free):
        r = dict(zip(models, [*free, 0.0]))
        total = 0.0
        for a, b, s in comps:
            pa = 1 / (1 + 10 ** ((r[b] - r[a]) / 400))
            total -= s * math.log(pa) + (1 - s) * math.log(1 - pa)
        return total

    res = minimize(nll, np.zeros(len(models) - 1), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 20000})
    r = np.array([*res.x, 0.0])
    return dict(zip(models, r - r.mean() + 1000))


TOY = (
    [("A", "B", 1.0)] * 6 + [("A", "B", 0.0)] * 3 + [("A", "B", 0.5)] * 2
    + [("B", "C", 1.0)] * 5 + [("B", "C", 0.0)] * 4
    + [("A", "C", 1.0)] * 7 + [("A", "C", 0.0)] * 2 + [("A", "C", 0.5)]
)


def test_bradley_terry_is_the_maximum_likelihood_with_a_bootstrap_interval():
    expected = direct_mle(TOY)
    bt = bradley_terry(TOY, rounds=300, seed=1)
    for m in "ABC":
        strength, (low, high) = bt[m]
        assert strength == pytest.approx(expected[m], abs=0.5)
        assert low < strength < high
    assert bt == bradley_terry(TOY, rounds=300, seed=1), "seeded: the same figures every time"
    # four times the data: the interval is about half as wide (1/sqrt(4))
    wide = bt["A"][1][1] - bt["A"][1][0]
    bt4 = bradley_terry(TOY * 4, rounds=300, seed=1)
    narrow = bt4["A"][1][1] - bt4["A"][1][0]
    assert 0.35 < narrow / wide < 0.65
    assert bt4["A"][0] == pytest.approx(bt["A"][0], abs=0.5)


def test_the_interval_matches_an_independent_bootstrap_of_the_closed_form():
    comps = [("A", "B", 1.0)] * 30 + [("A", "B", 0.0)] * 15 + [("A", "B", 0.5)] * 5
    rng = np.random.default_rng(123)
    draws = rng.multinomial(len(comps), [30 / 50, 15 / 50, 5 / 50], size=4000)
    p = (draws[:, 0] + draws[:, 2] / 2) / len(comps)
    strengths = 1000 + 200 * np.log10(p / (1 - p))
    low, high = np.percentile(strengths, [2.5, 97.5])
    _, (blo, bhi) = bradley_terry(comps, rounds=1000, seed=0)["A"]
    assert blo == pytest.approx(low, abs=0.1 * (high - low))
    assert bhi == pytest.approx(high, abs=0.1 * (high - low))


def test_stats_json_has_the_models_keys(lab):
    r = CliRunner().invoke(cli, ["stats", "--db", str(lab), "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.output)
    assert set(stats["models"]["A"]) == {"comparisons", "wins", "losses", "ties", "win_rate",
                                         "bradley_terry", "ci95"}
    assert set(stats["models_by_domain"]) == {"law", "medicine"}
    text = CliRunner().invoke(cli, ["stats", "--db", str(lab)]).output
    assert "win rate" in text and "\n  A " in text


def test_no_comparison_no_models():
    assert model_figures([]) == {}


def test_the_readme_lists_every_models_key(lab):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Comparing checkpoints"):readme.index("## A tutor's day")]
    with Store.open(lab) as store:
        keys = set(models_stats(store, rounds=10)["models"]["A"])
    documented = {k for line in section.splitlines() if line.startswith("| `")
                  for k in line.split("|")[1].replace("`", "").replace(" ", "").split(",")}
    assert documented == keys
    assert '"models_by_domain"' in section


def test_the_quality_report_has_the_models_table(lab):
    from hitl_desktop.core.quality import quality_report

    with Store.open(lab) as store:
        report = quality_report(store)
    table = report[report.index("## Models compared"):].splitlines()
    assert table[2].startswith("| Model | Comparisons | Won | Lost | Tied | Win rate")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:6] for line in table[4:9]}
    assert rows["A"] == ["5", "3", "1", "1", "75%"] and rows["C"] == ["3", "0", "3", "0", "0%"]
    assert rows["X"][4] == "–"


def test_an_all_bad_judgment_that_ranked_nothing_is_no_tie():
    """All bad with every candidate at one rank abstains (as in agreement): no comparison;
    all bad with the bad answers ranked still compares them."""
    from hitl_desktop.core.models_compared import comparisons_of
    from hitl_desktop.core.types import Candidate, JudgedItem, Judgment, Prompt

    prompt = Prompt(text="q")
    cands = [Candidate(prompt_id=prompt.id, text=t, model=m, index=i) for i, (t, m) in enumerate([("a", "A"), ("b", "B")])]

    def item(ranks, all_bad):
        j = Judgment(prompt_id=prompt.id, tutor_id="t", ranks=dict(zip([c.id for c in cands], ranks, strict=True)), all_bad=all_bad)
        return JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name="t", domain="general")

    assert comparisons_of([item([1, 1], all_bad=True)]) == []
    assert comparisons_of([item([1, 1], all_bad=False)]) == [("A", "B", 0.5)]
    assert comparisons_of([item([2, 1], all_bad=True)]) == [("A", "B", 0.0)]
