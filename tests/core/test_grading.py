"""A model as grader (core/grading.py, ``hitl-desktop grade``) against a stub OpenAI-compatible server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.backends.served import ServedBackend
from hitl_desktop.core.grading import GRADER_PROMPT_VERSION, grade_store, grader_prompt, parse_reply
from hitl_desktop.core.rubric_agreement import rubric_stats
from hitl_desktop.core.rubrics import TUTOR, Criterion, Grade
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Message, Prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from grader_stub import MODEL, GraderStub, verdict  # noqa: E402
from openai_stub import free_port  # noqa: E402

ANSWERS = ["Stop metformin now; risk of lactic acidosis.", "Keep taking it.", "Stop it and see your doctor."]
CRITERIA = [("Advises to stop", 8, "axis:accuracy"), ("Mentions acidosis", 4, "axis:completeness"),
            ("Tells the user to keep", -6, "axis:accuracy")]


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("HITL_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def make_db(path):
    store = Store.open(path)
    p = store.add_prompt(Prompt(text="My eGFR is 25; keep metformin?", domain="medicine", external_id="q1",
                                messages=[Message("system", "You are a careful physician.")]))
    cands = [Candidate(prompt_id=p.id, text=t, model="m", index=i) for i, t in enumerate(ANSWERS)]
    store.add_candidates(cands, origin="imported")
    rubric = store.rubrics.save_rubric(p.id, [Criterion(text=t, points=pt, tags=[tag]) for t, pt, tag in CRITERIA],
                                       author="lee")
    store.rubrics.approve(rubric.id, lead="lee")
    return store, p, cands, rubric


def expected_met(prompt, cand_text, crit):
    return verdict(grader_prompt(prompt.conversation(), cand_text, crit))


def test_parse_reply():
    assert parse_reply('```json\n{"explanation": "x", "criteria_met": true}\n```') == (True, "x")
    assert parse_reply('{"criteria_met": false}') == (False, "")
    assert parse_reply('Sure! {"explanation": "y", "criteria_met": false} hope it helps') == (False, "y")
    assert parse_reply('{"criteria_met": "true"}') is None  # a string is not a boolean: never guessed
    assert parse_reply("criteria met") is None
    assert parse_reply("[true]") is None


def test_grader_prompt_holds_the_conversation_and_one_rubric_item():
    text = grader_prompt([Message("user", "hi")], "hello", Criterion(text="Greets", points=-2.0))
    assert "user: hi\n\nassistant: hello" in text and "[-2] Greets" in text and '"criteria_met"' in text


def test_good_json_grades_everything_once_with_provenance(tmp_path):
    store, prompt, cands, rubric = make_db(tmp_path / "lab.db")
    with GraderStub() as server:
        backend = ServedBackend(server.url)
        summary = grade_store(store, backend, workers=4)
        assert (summary.grader, summary.graded, summary.ungraded) == (MODEL, 9, 0)
        assert server.requests == 9
        again = grade_store(store, backend, workers=4)
        assert (again.graded, again.ungraded, server.requests) == (0, 0, 9)  # nothing left to grade
    grades = list(store.rubrics.iter_grades(grader_kind="model"))
    assert len(grades) == 9 and {g.grader for g in grades} == {MODEL}
    by_id = {c.id: c for c in rubric.criteria}
    text_of = {c.id: c.text for c in cands}
    for g in grades:
        assert g.met == expected_met(prompt, text_of[g.candidate_id], by_id[g.criterion_id])
        assert g.note.startswith("rule says")
    run = store.rubrics.grader_run(grades[0].run_id)
    assert run["model"] == MODEL and run["prompt_version"] == GRADER_PROMPT_VERSION
    assert run["parameters"]["temperature"] == 0.0 and run["parameters"]["workers"] == 4
    assert list(store.rubrics.iter_grades()) == []  # tutors' grades are apart
    store.close()


def test_garbage_is_asked_again_once_then_left_ungraded_and_nothing_is_stored(tmp_path):
    store, *_ = make_db(tmp_path / "lab.db")
    with GraderStub(mode="garbage") as server:
        summary = grade_store(store, ServedBackend(server.url), workers=3)
        assert (summary.graded, summary.ungraded) == (0, 9) and server.requests == 18
    assert store.db.execute("select count(*) from grades").fetchone()[0] == 0
    assert store.db.execute("select count(*) from grader_runs").fetchone()[0] == 0
    store.close()


def test_a_bad_first_reply_is_retried_and_graded(tmp_path):
    store, *_ = make_db(tmp_path / "lab.db")
    with GraderStub(mode="flaky") as server:
        summary = grade_store(store, ServedBackend(server.url), workers=3, limit=2)
        assert (summary.graded, summary.ungraded, summary.candidates) == (6, 0, 2) and server.requests == 12
    store.close()


def test_timeouts_count_as_ungraded(tmp_path):
    store, *_ = make_db(tmp_path / "lab.db")
    with GraderStub(mode="hang", hang=5) as server:
        backend = ServedBackend(server.url, timeout=0.3, max_retries=0)
        summary = grade_store(store, backend, workers=9, limit=1)
        assert (summary.graded, summary.ungraded) == (0, 3)
    assert store.db.execute("select count(*) from grades").fetchone()[0] == 0
    store.close()


def test_grade_command_json_line_and_macro_f1_against_tutors(tmp_path):
    path = tmp_path / "lab.db"
    store, prompt, cands, rubric = make_db(path)
    tutors = []  # two tutors agree with the rule on every item except one: a tie there is left out
    for t in ("ann", "bob"):
        for c in cands:
            for k in rubric.criteria:
                met = expected_met(prompt, c.text, k)
                if t == "bob" and c is cands[0] and k is rubric.criteria[0]:
                    met = not met
                tutors.append(Grade(candidate_id=c.id, criterion_id=k.id, rubric_id=rubric.id, met=met, grader=t,
                                    grader_kind=TUTOR))
    store.rubrics.save_grades(tutors)
    store.close()
    with GraderStub() as server:
        result = CliRunner().invoke(cli, ["grade", "--db", str(path), "--grader", server.url, "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert set(last) == {"grader", "graded", "ungraded", "seconds"}
    assert (last["grader"], last["graded"], last["ungraded"]) == (MODEL, 9, 0)
    with Store.open(path) as again:
        stats = rubric_stats(again)
    got = stats["graders"][MODEL]
    assert got["n"] == 8 and got["macro_f1"] == 1.0  # the tied unit is left out; the rest agree
    assert stats["tutor_agreement"]["units"] == 9
    assert stats["tutor_agreement"]["pairwise_raw"] == pytest.approx(8 / 9)


def test_an_unreachable_grader_is_one_line_and_the_database_is_unchanged(tmp_path):
    path = tmp_path / "lab.db"
    store, *_ = make_db(path)
    before = store.table_counts()
    store.close()
    result = CliRunner().invoke(cli, ["grade", "--db", str(path), "--grader", f"http://127.0.0.1:{free_port()}/v1"])
    assert result.exit_code == 1
    assert "cannot reach the server" in result.output and "nothing was graded" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    with Store.open(path) as again:
        assert again.table_counts() == before


def test_a_candidate_the_model_left_partly_ungraded_is_not_exported_until_complete(tmp_path):
    from hitl_desktop.core.rubric_export import grade_rows

    store, prompt, cands, rubric = make_db(tmp_path / "lab.db")
    with GraderStub() as server:
        grade_store(store, ServedBackend(server.url), workers=2)
    first = cands[0].id
    store.db.execute("delete from grades where candidate_id = ? and criterion_id = ?", [first, rubric.criteria[1].id])
    rows = list(grade_rows(store, grades_from=MODEL))
    assert sorted(r["completion"] for r in rows) == sorted(ANSWERS[1:])
    with GraderStub() as server:  # the next run grades only what is missing
        again = grade_store(store, ServedBackend(server.url), workers=2)
        assert (again.graded, server.requests) == (1, 1)
    assert len(list(grade_rows(store, grades_from=MODEL))) == 3
    store.close()


@pytest.mark.slow
def test_a_local_model_grades_end_to_end_through_its_generation_process(tmp_path, tiny_model_dir):
    """A tiny random model writes no JSON: every item is asked twice, then left ungraded."""
    path = tmp_path / "lab.db"
    store, *_ = make_db(path)
    store.close()
    result = CliRunner().invoke(cli, ["grade", "--db", str(path), "--grader", str(tiny_model_dir), "--limit", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["graded"] + line["ungraded"] == 3 and line["seconds"] > 0
    with Store.open(path) as again:
        n = again.db.execute("select count(*) from grades").fetchone()[0]
        runs = again.db.execute("select count(*) from grader_runs").fetchone()[0]
    assert n == line["graded"] and runs == (1 if n else 0)
