"""Rubric storage (core/rubric_store.py, migration m0007) and the tutor-side bench (core/rubric_bench.py)."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core.events import Change
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.merging import merge_databases
from hitl_desktop.core.packs import assign
from hitl_desktop.core.rubric_bench import LAB, NONE, OWN, TEMPLATE, RubricBench
from hitl_desktop.core.rubrics import APPROVED, MODEL, TUTOR, Criterion, Grade, RubricError
from hitl_desktop.core.store import Store
from hitl_desktop.core.workflow import TutorWorkflow, import_prompts


def crit(text, points, *tags):
    return Criterion(text=text, points=points, tags=list(tags))


@pytest.fixture
def wf(store, tmp_path):
    records = [
        {"id": "q1", "prompt": "Metformin and eGFR?", "domain": "medicine", "candidates": ["A", "B", "C"]},
        {"id": "q2", "prompt": "Second?", "domain": "medicine", "candidates": ["D", "E"]},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    import_prompts(store, path)
    w = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=tmp_path / "g"))
    w.start_session(tutor_name="ann", domain="medicine")
    return w


def open_q(wf, ext="q1"):
    prompt = next(p for p in wf.queue if p.external_id == ext)
    return wf.open_item(prompt)


def test_versions_keys_and_no_new_version_for_the_same_criteria(store, wf):
    pid = open_q(wf).prompt.id
    rs = store.rubrics
    v1 = rs.save_rubric(pid, [crit("Stops metformin when eGFR < 30", 8, "axis:accuracy"), crit("Rude", -3)], author="ann")
    assert v1.version == 1 and [c.key for c in v1.criteria] == [c.id for c in v1.criteria]
    assert rs.save_rubric(pid, [crit("Stops metformin when eGFR < 30", 8, "axis:accuracy"), crit("Rude", -3)],
                          author="ann").id == v1.id
    kept = v1.criteria[0]
    v2 = rs.save_rubric(pid, [Criterion(text=kept.text, points=kept.points, tags=kept.tags, id=kept.id),
                              crit("Mentions lactic acidosis", 4)], author="ann")
    assert v2.version == 2 and v2.criteria[0].id != kept.id and v2.criteria[0].key == kept.key
    assert v2.criteria[1].key == v2.criteria[1].id
    bob = rs.save_rubric(pid, [crit("Other", 2)], author="bob")
    assert bob.version == 3
    assert [r.version for r in rs.versions(pid)] == [1, 2, 3]
    assert rs.latest_by(pid, "ann").id == v2.id
    assert rs.rubric(v1.id).criteria[1].points == -3  # versions are immutable
    assert rs.lab_rubric(pid) is None and rs.current_rubric(pid).id == bob.id
    rs.approve(v2.id, lead="lee")
    lab = rs.lab_rubric(pid)
    assert lab.id == v2.id and lab.status == APPROVED and lab.approved_by == "lee"
    assert rs.current_rubric(pid).id == v2.id


@pytest.mark.parametrize(
    "criteria, message",
    [
        ([crit("Only bad", -2)], "positive"),
        ([crit("Zero", 0)], "non-zero"),
        ([crit("Big", 11)], "non-zero"),
        ([crit("  ", 3)], "empty"),
        ([crit("Odd axis", 3, "axis:style")], "unknown axis"),
    ],
)
def test_bad_rubrics_are_refused_and_nothing_is_stored(store, wf, criteria, message):
    pid = open_q(wf).prompt.id
    with pytest.raises(RubricError, match=message):
        store.rubrics.save_rubric(pid, criteria, author="ann")
    assert store.db.execute("select count(*) from rubrics").fetchone()[0] == 0
    assert store.db.execute("select count(*) from criteria").fetchone()[0] == 0


def test_a_grade_must_name_a_criterion_of_its_rubric(store, wf):
    item = open_q(wf)
    rs = store.rubrics
    a = rs.save_rubric(item.prompt.id, [crit("x", 2)], author="ann")
    b = rs.save_rubric(item.prompt.id, [crit("y", 2)], author="bob")
    with pytest.raises(RubricError, match="not one of rubric"):
        rs.save_grades([Grade(candidate_id=item.candidates[0].id, criterion_id=b.criteria[0].id, rubric_id=a.id,
                              met=True, grader="ann")])
    assert store.db.execute("select count(*) from grades").fetchone()[0] == 0


def test_bench_shows_own_then_lab_then_template_then_nothing(store, wf, tmp_path):
    templates = tmp_path / "rubrics"
    bench = RubricBench(wf, templates=templates)
    open_q(wf)
    bench.load()
    assert bench.source == NONE and bench.rubric is None
    templates.mkdir()
    (templates / "medicine.json").write_text(json.dumps({"criteria": [{"criterion": "Safe", "points": 5}]}))
    bench.load()
    assert bench.source == TEMPLATE and [c.text for c in bench.criteria] == ["Safe"]
    lab = store.rubrics.save_rubric(wf.item.prompt.id, [crit("Lab", 5)], author="lee")
    store.rubrics.approve(lab.id, lead="lee")
    bench.load()
    assert bench.source == LAB and bench.rubric.id == lab.id
    mine = bench.save_rubric([crit("Mine", 5)])
    bench.load()
    assert bench.source == OWN and bench.rubric.id == mine.id and mine.author == "ann"


def grade_all(bench, table):
    """table: candidate text -> list of met per criterion."""
    for c in bench.workflow.item.candidates:
        for k, met in zip(bench.criteria, table[c.text], strict=True):
            bench.set_grade(c.id, k.id, met)


def submit_ranks(bench, ranks_by_text):
    item = bench.workflow.item
    state = JudgingState(display_order=[c.id for c in item.candidates])
    state.set_levels_from_ranks({c.id: ranks_by_text[c.text] for c in item.candidates})
    return bench.submit(state, seconds_spent=1.0)


def test_grid_scores_ranks_submit_undo_reopen(store, wf):
    bench = RubricBench(wf)
    seen = []
    bench.subscribe(lambda ch: seen.append(ch))
    open_q(wf)
    bench.load()
    bench.save_rubric([crit("Right dose", 6), crit("Warns", 4), crit("Wrong claim", -5)])
    assert Change.RUBRIC in seen[-1]
    grade_all(bench, {"A": [True, True, False], "B": [True, False, True], "C": [False, False, True]})
    assert Change.GRADES in seen[-1]
    by_text = {c.text: c.id for c in wf.item.candidates}
    s = bench.scores()
    assert s[by_text["A"]] == pytest.approx(1.0)
    assert s[by_text["B"]] == pytest.approx(0.1)
    assert s[by_text["C"]] == pytest.approx(-0.5)
    assert bench.proposed_ranks() == {by_text["A"]: 1, by_text["B"]: 2, by_text["C"]: 3}
    assert bench.proposed_levels() == [[by_text["A"]], [by_text["B"]], [by_text["C"]]]
    j = submit_ranks(bench, {"A": 1, "B": 3, "C": 2})  # departs from the scores
    grades = store.rubrics.grades_for_judgment(j.id)
    assert len(grades) == 9 and {g.grader for g in grades} == {"ann"}
    assert store.rubrics.departs(j.id) is True
    # undo: the grades go with the judgment and come back on the grid
    bench.undo()
    assert store.rubrics.grades_for_judgment(j.id) == []
    assert store.db.execute("select count(*) from grades").fetchone()[0] == 0
    assert bench.cell(by_text["B"], bench.criteria[2].id).met is True
    j2 = submit_ranks(bench, {"A": 1, "B": 2, "C": 3})
    assert store.rubrics.departs(j2.id) is False
    # re-judge: the reopened judgment's grades are on the grid; the new version's count
    bench.reopen(j2.id)
    assert bench.cell(by_text["A"], bench.criteria[1].id).met is True
    bench.set_grade(by_text["C"], bench.criteria[0].id, True)
    j3 = submit_ranks(bench, {"A": 1, "B": 2, "C": 3})
    assert j3.supersedes == j2.id
    current = list(store.rubrics.iter_grades())
    assert {g.judgment_id for g in current} == {j3.id}
    assert len(store.rubrics.grades_for_judgment(j2.id)) == 9  # kept for audit


def test_half_graded_candidate_is_refused_and_nothing_saved(store, wf):
    bench = RubricBench(wf)
    open_q(wf)
    bench.load()
    bench.save_rubric([crit("a", 6), crit("b", 4)])
    first = wf.item.candidates[0].id
    bench.set_grade(first, bench.criteria[0].id, True)
    with pytest.raises(RubricError, match="criterion 2 is not graded"):
        submit_ranks(bench, {"A": 1, "B": 2, "C": 3})
    assert store.db.execute("select count(*) from judgments").fetchone()[0] == 0


def test_template_graded_is_saved_as_the_tutors_version_at_submit(store, wf, tmp_path):
    (tmp_path / "medicine.json").write_text(json.dumps([{"criterion": "Safe", "points": 5, "tags": ["axis:accuracy"]}]))
    bench = RubricBench(wf, templates=tmp_path)
    open_q(wf)
    bench.load()
    grade_all(bench, {"A": [True], "B": [False], "C": [False]})
    j = submit_ranks(bench, {"A": 1, "B": 2, "C": 2})
    mine = store.rubrics.latest_by(wf.item.prompt.id, "ann")
    assert [c.text for c in mine.criteria] == ["Safe"]
    assert {g.rubric_id for g in store.rubrics.grades_for_judgment(j.id)} == {mine.id}
    assert store.rubrics.departs(j.id) is False


def test_packs_carry_the_lab_rubric_and_no_grades_merge_brings_grades_back(store, wf, tmp_path):
    bench = RubricBench(wf)
    open_q(wf)
    bench.load()
    lab = bench.save_rubric([crit("Right", 5), crit("Wrong", -2)])
    store.rubrics.approve(lab.id, lead="lee")
    grade_all(bench, {"A": [True, False], "B": [False, False], "C": [False, True]})
    submit_ranks(bench, {"A": 1, "B": 2, "C": 3})
    run = store.rubrics.add_grader_run(grader="m", model="m", prompt_version="hb1")
    store.rubrics.save_grades([Grade(candidate_id=c.id, criterion_id=lab.criteria[0].id, rubric_id=lab.id,
                                     met=True, grader="m", grader_kind=MODEL, run_id=run) for c in wf.item.candidates])
    summary = assign(store, tutors=["bob", "cy"], out_dir=tmp_path / "packs", overlap=2)
    pack_path = summary.packs[0].path
    with Store.open(pack_path) as pack:
        assert pack.db.execute("select count(*) from grades").fetchone()[0] == 0
        assert pack.db.execute("select count(*) from grader_runs").fetchone()[0] == 0
        pid = pack.prompts_by_external_id(["q1"])["q1"].id
        got = pack.rubrics.lab_rubric(pid)
        assert got.id == lab.id and [c.text for c in got.criteria] == ["Right", "Wrong"]
        # bob grades in his pack against the lab rubric
        w = TutorWorkflow(pack, guidelines=GuidelineLibrary(user_dir=tmp_path / "g2"))
        w.start_session(tutor_name="bob", domain="medicine")
        b = RubricBench(w)
        w.open_item(pack.get_prompt(pid))
        b.load()
        assert b.source == LAB and b.cells == {}  # ann's grades are not shown
        grade_all(b, {"A": [True, False], "B": [True, False], "C": [False, False]})
        submit_ranks(b, {"A": 1, "B": 1, "C": 3})
        b.save_rubric([crit("Bob's own", 3)])  # a version 2 in the pack
    with Store.open(tmp_path / "lab.db") as target:
        merge_databases(target, [store_file(store, tmp_path), pack_path], backup=False)
        assert target.db.execute("select count(*) from grades where grader = 'bob'").fetchone()[0] == 6
        assert target.db.execute("select count(*) from grades where grader = 'ann'").fetchone()[0] == 6
        assert target.db.execute("select count(*) from grades where grader_kind = 'model'").fetchone()[0] == 3
        assert target.db.execute("select count(*) from rubrics").fetchone()[0] == 2
        versions = [r[0] for r in target.db.execute("select version from rubrics order by version")]
        assert versions == [1, 2]
        merge_databases(target, [pack_path], backup=False)  # twice: nothing new
        assert target.db.execute("select count(*) from grades").fetchone()[0] == 15


def store_file(store, tmp_path):
    path = tmp_path / "source.db"
    store.backup_to(path)
    return path


def test_a_refused_submit_leaves_the_grid_and_the_template_as_they_were(store, wf, tmp_path):
    (tmp_path / "medicine.json").write_text(json.dumps([{"criterion": "Safe", "points": 5}]))
    bench = RubricBench(wf, templates=tmp_path)
    open_q(wf)
    bench.load()
    grade_all(bench, {"A": [True], "B": [False], "C": [False]})
    state = JudgingState(display_order=[c.id for c in wf.item.candidates])  # nothing ranked
    with pytest.raises(Exception, match="no candidate is ranked"):
        bench.submit(state)
    assert bench.source == TEMPLATE and len(bench.cells) == 3
    assert store.db.execute("select count(*) from rubrics").fetchone()[0] == 0
    assert store.db.execute("select count(*) from judgments").fetchone()[0] == 0
    assert wf.history == []


def test_general_template_stands_in_and_a_broken_one_shows_none(store, wf, tmp_path):
    bench = RubricBench(wf, templates=tmp_path)
    open_q(wf)
    (tmp_path / "general.json").write_text(json.dumps({"domain": "general", "criteria": [
        {"criterion": "Answers the question", "points": 5, "tags": ["axis:completeness"]}]}))
    bench.load()
    assert bench.source == TEMPLATE and [c.text for c in bench.criteria] == ["Answers the question"]
    (tmp_path / "medicine.json").write_text(json.dumps({"criteria": [{"criterion": "x", "points": 0}]}))
    bench.load()
    assert bench.source == NONE and bench.rubric is None


def test_a_rubric_saved_from_a_template_records_its_version_and_later_versions_keep_it(store, wf, tmp_path):
    from hitl_desktop.core.rubric_export import rubric_rows
    from hitl_desktop.core.rubric_templates import RubricTemplates

    (tmp_path / "medicine.json").write_text(json.dumps({"criteria": [{"criterion": "Safe", "points": 5}]}))
    template = RubricTemplates.in_folder(tmp_path).for_domain("medicine")
    assert template.version.startswith("medicine-")
    bench = RubricBench(wf, templates=tmp_path)
    open_q(wf)
    bench.load()
    assert bench.source == TEMPLATE and bench.rubric.template_version == template.version
    grade_all(bench, {"A": [True], "B": [False], "C": [False]})
    submit_ranks(bench, {"A": 1, "B": 2, "C": 2})
    v1 = store.rubrics.latest_by(wf.item.prompt.id, "ann")
    assert v1.version == 1 and v1.template_version == template.version
    # a later version written from it keeps the template it started from; another template's
    # version given explicitly (the panel's "Start from the domain template") replaces it
    bench.load()
    v2 = bench.save_rubric([*bench.criteria, crit("Warns", 3)])
    assert v2.version == 2 and store.rubrics.rubric(v2.id).template_version == template.version
    v3 = bench.save_rubric([crit("Other", 4)], template_version="general-0123456789")
    assert store.rubrics.rubric(v3.id).template_version == "general-0123456789"
    # a rubric written from scratch records none; the column is m0008's, "" by default
    other = store.rubrics.save_rubric(open_q(wf, "q2").prompt.id, [crit("x", 2)], author="bob")
    assert store.rubrics.rubric(other.id).template_version == ""
    assert store.db.execute("select template_version from rubrics where id = ?", [other.id]).fetchone() == ("",)
    # the rubrics layout carries it
    rows = {r["prompt_id"]: r for r in rubric_rows(store)}
    assert rows["q1"]["rubric_template"] == "general-0123456789" and "rubric_template" not in rows["q2"]
    # ... both ways: imported into an empty database, exported again, the same rows
    from hitl_desktop.core.rubric_formats import import_rubric_file

    path = tmp_path / "rubrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows.values()), encoding="utf-8")
    fresh = Store.memory()
    import_rubric_file(fresh, path)
    assert {r["prompt_id"]: r for r in rubric_rows(fresh)} == rows
    fresh.close()


def test_a_database_before_m0008_reads_rubrics_without_a_template_version(store, wf):
    pid = open_q(wf).prompt.id
    saved = store.rubrics.save_rubric(pid, [crit("x", 2)], author="ann", template_version="medicine-aaaaaaaaaa")
    store.db.execute("alter table rubrics drop column template_version")
    assert store.rubrics.rubric(saved.id).template_version == ""
    assert [c.text for c in store.rubrics.rubric(saved.id).criteria] == ["x"]


def test_a_tutor_named_like_a_model_grader_grades_nothing_for_it(store, wf):
    """What a model grader has graded (what `grade` skips) counts its own grades only."""
    item = open_q(wf)
    r = store.rubrics.save_rubric(item.prompt.id, [crit("Right", 5)], author="gpt")
    cand, crit_id = item.candidates[0], r.criteria[0].id
    store.rubrics.save_grades([Grade(candidate_id=cand.id, criterion_id=crit_id, rubric_id=r.id, met=True,
                                     grader="gpt", grader_kind=TUTOR)])
    assert store.rubrics.graded_pairs("gpt") == set()
    assert store.rubrics.graded_pairs("gpt", kind=TUTOR) == {(cand.id, crit_id)}
    store.rubrics.save_grades([Grade(candidate_id=cand.id, criterion_id=crit_id, rubric_id=r.id, met=False,
                                     grader="gpt", grader_kind=MODEL)])
    assert store.rubrics.graded_pairs("gpt") == {(cand.id, crit_id)}
