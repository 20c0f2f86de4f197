"""The lab's rubric round trip through the CLI and the tutor-side API: import HealthBench-layout
prompts, generate candidates (a stub server), assign packs carrying the approved rubric, tutors
grade in their packs, merge, agreement, a model grades, export rubrics, grades and pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.rubric_bench import LAB, RubricBench
from hitl_desktop.core.rubrics import score
from hitl_desktop.core.store import Store
from hitl_desktop.core.workflow import TutorWorkflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from grader_stub import MODEL as GRADER  # noqa: E402
from grader_stub import GraderStub
from openai_stub import StubServer  # noqa: E402

CRITERIA = [
    {"criterion": "Says alpha", "points": 6, "tags": ["axis:accuracy"]},
    {"criterion": "Says beta", "points": 4, "tags": ["axis:completeness"]},
    {"criterion": "Says gamma", "points": -5, "tags": ["axis:accuracy"]},
]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("HITL_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def tutor_met(tutor, text, criterion):
    word = criterion.text.split()[-1]
    met = word in text
    return (not met) if (tutor == "bob" and criterion.text == "Says beta" and text.startswith("alpha")) else met


def test_rubric_round_trip(tmp_path):
    lab = tmp_path / "lab.db"
    hb = tmp_path / "hb.jsonl"
    hb.write_text("".join(json.dumps({
        "prompt_id": f"hb-{i}", "prompt": [{"role": "user", "content": f"Question {i}?"}], "rubrics": CRITERIA,
        "example_tags": ["domain:medicine", "theme:x"], "ideal_completions_data": None,
    }) + "\n" for i in range(2)), encoding="utf-8")
    run("import", hb, "--db", lab)
    with StubServer(words=4) as server:
        run("generate", "--db", lab, "--model", server.url, "-k", 3)
    run("assign", "--db", lab, "--tutors", "ann,bob", "--overlap", 2, "--out", tmp_path / "packs")
    for tutor in ("ann", "bob"):
        pack = Store.open(tmp_path / "packs" / f"{tutor}.db")
        assert pack.db.execute("select count(*) from grades").fetchone()[0] == 0
        wf = TutorWorkflow(pack, guidelines=GuidelineLibrary(user_dir=tmp_path / f"g-{tutor}"))
        wf.start_session(tutor_name=tutor, domain="medicine")
        bench = RubricBench(wf)
        while (item := wf.open_next()) is not None:
            bench.load()
            assert bench.source == LAB and bench.cells == {}
            for c in item.candidates:
                for k in bench.criteria:
                    bench.set_grade(c.id, k.id, tutor_met(tutor, c.text, k))
            state = JudgingState(display_order=[c.id for c in item.candidates])
            state.levels = bench.proposed_levels()
            bench.submit(state, seconds_spent=2.0)
        pack.close()
    run("merge", tmp_path / "packs" / "ann.db", tmp_path / "packs" / "bob.db", "--db", lab)
    stats = json.loads(run("stats", "--db", lab, "--json"))["rubrics"]
    assert stats["criteria"] == 6 and stats["graded_completions"] == 6
    ta = stats["tutor_agreement"]
    assert ta["units"] == 18 and set(ta["by_axis"]) == {"accuracy", "completeness"}
    with Store.open(lab, read_only=True) as s:
        texts = [r[0] for r in s.db.execute("select text from candidates")]
    disagreements = sum(1 for t in texts if t.startswith("alpha"))
    assert ta["pairwise_raw"] == pytest.approx((18 - disagreements) / 18)
    with GraderStub() as grader:
        line = json.loads(run("grade", "--db", lab, "--grader", grader.url, "--json").strip().splitlines()[-1])
    assert (line["grader"], line["graded"], line["ungraded"]) == (GRADER, 18, 0)
    stats = json.loads(run("stats", "--db", lab, "--json"))["rubrics"]
    assert stats["graders"][GRADER]["n"] == 18 - disagreements  # tied units left out
    assert stats["graders"][GRADER]["macro_f1"] == 1.0  # the stub's rule is the tutors' rule
    text = run("stats", "--db", lab)
    assert "6 criteria, 6 graded completions" in text and f"{GRADER}: macro-F1 1.000" in text
    # exports
    run("export", "--db", lab, "--format", "rubrics", "--out", tmp_path / "r.jsonl")
    rubrics = read(tmp_path / "r.jsonl")
    assert [r["prompt_id"] for r in rubrics] == ["hb-0", "hb-1"] and rubrics[0]["rubrics"] == CRITERIA
    run("export", "--db", lab, "--format", "rubric-grades", "--out", tmp_path / "g.jsonl", "--keep-tutor-names")
    grades = read(tmp_path / "g.jsonl")
    assert len(grades) == 12 and {g["grader"] for g in grades} == {"ann", "bob"}
    run("export", "--db", lab, "--format", "rubric-grades", "--out", tmp_path / "m.jsonl", "--grades-from", GRADER)
    assert {g["grader_kind"] for g in read(tmp_path / "m.jsonl")} == {"model"} and len(read(tmp_path / "m.jsonl")) == 6
    run("export", "--db", lab, "--format", "trl-preference", "--out", tmp_path / "p.jsonl", "--keep-tutor-names")
    from hitl_desktop.core.rubrics import Criterion

    crits = [Criterion(text=c["criterion"], points=c["points"], id=c["criterion"]) for c in CRITERIA]
    by_key = {(g["completion"], g["grader"]): g for g in grades}
    pairs = read(tmp_path / "p.jsonl")
    assert pairs
    for p in pairs:
        sc = {t: score(crits, {g["criterion"]: g["criteria_met"] for g in by_key[(t, p["tutor"])]["grades"]})
              for t in (p["chosen"], p["rejected"])}
        assert p["margin"] == pytest.approx(sc[p["chosen"]] - sc[p["rejected"]]) and p["margin"] > 0
