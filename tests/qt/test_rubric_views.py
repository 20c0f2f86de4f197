"""The rubric panel and the grading grid together over the real workflow and RubricBench
(the window's wiring, without the window): write a rubric by keyboard, save it (the store
holds the version), grade three candidates by keyboard, take the proposed ranking, submit;
the store holds the judgment's grades and its ranking; undo brings them back to the grid."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget
from rubric_keys import CTRL, K, keys, write

from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.rubric_bench import RubricBench
from hitl_desktop.core.rubric_export import export_rubric_format
from hitl_desktop.core.rubric_templates import RubricTemplates
from hitl_desktop.core.rubrics import Criterion, score
from hitl_desktop.core.workflow import TutorWorkflow, import_prompts
from hitl_desktop.qt.rubric_grid import FIRST
from hitl_desktop.qt.rubric_views import RubricViews


@pytest.fixture
def wf(store, tmp_path):
    rec = {"id": "q1", "prompt": "I have type 2 diabetes, my eGFR is 28 and I take metformin. Is that safe?",
           "domain": "medicine",
           "candidates": ["Keep taking it.", "Stop it and see your doctor about alternatives.",
                          "Stop metformin and insulin today."]}
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    import_prompts(store, path)
    w = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=tmp_path / "g"))
    w.start_session(tutor_name="ann", domain="medicine")
    return w


@pytest.fixture
def views(qtbot, wf, tmp_path):
    bench = RubricBench(wf, templates=tmp_path / "no-templates")
    v = RubricViews(bench, wf, templates=RubricTemplates(user_dir=tmp_path / "u"))
    host = QWidget()
    row = QHBoxLayout(host)
    row.addWidget(v.panel, 1)
    row.addWidget(v.grid, 1)
    qtbot.addWidget(host)
    host.resize(1500, 600)
    host.show()
    qtbot.waitExposed(host)
    wf.open_item(wf.queue[0])
    bench.load()  # an Evented workflow (qtshape's) has the bench follow it by itself
    yield v
    v.close()


def test_write_a_rubric_grade_three_candidates_take_the_ranking_and_submit(views, wf, store, qtbot, tmp_path):
    panel, grid, bench = views.panel, views.grid, views.bench
    assert panel.prompt_id == wf.item.prompt.id and panel.author == "ann"
    assert grid.model.rowCount() == 0 and grid.model.columnCount() == FIRST + 3
    panel.view.setFocus()
    write(qtbot, "Says to stop metformin because eGFR is below 30", ups=4)     # +9
    write(qtbot, "Advises seeing a clinician about an alternative", downs=2)   # +3
    write(qtbot, "Advises stopping insulin without a clinician", downs=12)     # -8
    assert grid.notice.isVisibleTo(grid) and "unsaved changes" in grid.notice.text()
    keys(qtbot, (K.Key_S, CTRL))
    assert not grid.notice.isVisibleTo(grid)
    versions = store.rubrics.versions(wf.item.prompt.id)
    assert [v.version for v in versions] == [1] and versions[0].author == "ann"
    assert [(c.text, c.points) for c in versions[0].criteria] == [
        ("Says to stop metformin because eGFR is below 30", 9),
        ("Advises seeing a clinician about an alternative", 3),
        ("Advises stopping insulin without a clinician", -8)]
    assert grid.model.rowCount() == 3  # the grid follows the saved rubric

    grid.view.setFocus()
    assert grid.view.currentIndex().column() == FIRST
    keys(qtbot, K.Key_X, K.Key_X, K.Key_X)                       # candidate 1: nothing
    keys(qtbot, K.Key_Right, K.Key_Up, K.Key_Up, K.Key_Y, K.Key_Y, K.Key_X)  # 2: both good ones
    keys(qtbot, K.Key_Right, K.Key_Up, K.Key_Up, K.Key_Y, K.Key_X, K.Key_Y)  # 3: stop + penalty
    order = grid.model.order
    crits = bench.criteria
    expected = [score(crits, {c.id: bool(bench.cell(cid, c.id).met) for c in crits}) for cid in order]
    assert expected == pytest.approx([0.0, 1.0, 1 / 12])
    assert grid.ranking_label.text() == "Proposed ranking: 2 (100 %) > 3 (8 %) > 1 (0 %)"

    state = JudgingState(display_order=[c.id for c in wf.item.candidates])
    grid.ranking_accepted.connect(state.set_levels_from_ranks)
    grid.accept_button.click()
    assert state.ranks() == {order[1]: 1, order[2]: 2, order[0]: 3}
    texts = {c.id: c.text for c in wf.item.candidates}
    judgment = bench.submit(state, seconds_spent=40.0)
    grades = store.rubrics.grades_for_judgment(judgment.id)
    assert len(grades) == 9 and {g.rubric_id for g in grades} == {versions[0].id}
    assert {(g.candidate_id, g.criterion_id): g.met for g in grades}[(order[2], crits[2].id)] is True
    assert store.rubrics.departs(judgment.id) is False
    assert judgment.ranks == state.ranks()

    # the exports hold it: the rubric in HealthBench's layout, one graded row per candidate
    export_rubric_format(store, fmt="rubrics", out=tmp_path / "rubrics.jsonl")
    [row] = [json.loads(x) for x in (tmp_path / "rubrics.jsonl").read_text().splitlines()]
    assert row["prompt_id"] == "q1" and row["rubric_version"] == 1
    assert [(r["criterion"], r["points"]) for r in row["rubrics"]] == [
        (c.text, c.points) for c in versions[0].criteria]
    export_rubric_format(store, fmt="rubric-grades", out=tmp_path / "grades.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "grades.jsonl").read_text().splitlines()]
    by_completion = {r["completion"]: r for r in rows}
    assert len(rows) == 3 and {r["grader_kind"] for r in rows} == {"tutor"}
    for cid, s_ in zip(order, expected):
        r = by_completion[texts[cid]]
        assert r["score"] == pytest.approx(s_)
        assert [g["criteria_met"] for g in r["grades"]] == [bench.cell(cid, c.id).met for c in crits]

    # undo puts the grades back on the grid for the same prompt
    bench.undo()
    assert grid.model.data(grid.model.index(2, FIRST + 2), Qt.ItemDataRole.UserRole + 1) is True
    assert store.rubrics.grades_for_judgment(judgment.id) == []


def test_a_template_the_core_offers_is_shown_unsaved_and_saved_on_ctrl_s(qtbot, wf, store, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "medicine.json").write_text(json.dumps({"criteria": [
        {"criterion": "Checks kidney function", "points": 6, "tags": ["axis:accuracy"]}]}))
    bench = RubricBench(wf, templates=tmp_path / "t")
    v = RubricViews(bench, wf, templates=RubricTemplates(user_dir=tmp_path / "u"))
    qtbot.addWidget(v.panel)
    qtbot.addWidget(v.grid)
    wf.open_item(wf.queue[0])
    bench.load()
    assert [c.text for c in v.panel.criteria()] == ["Checks kidney function"]
    assert v.panel.from_template and "template, not saved yet" in v.panel.version_label.text()
    assert v.panel.save_button.isEnabled()
    v.panel.save()
    assert [c.text for c in store.rubrics.versions(wf.item.prompt.id)[0].criteria] == ["Checks kidney function"]
    assert "version 1" in v.panel.version_label.text()
    v.close()


def test_the_panel_offers_the_benchs_templates_and_a_rubric_started_from_one_records_it(
        qtbot, wf, store, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "general.json").write_text(json.dumps({"criteria": [
        {"criterion": "Answers the question asked", "points": 5, "tags": ["axis:completeness"]}]}))
    bench = RubricBench(wf, templates=folder)
    v = RubricViews(bench, wf)  # no loader of its own: the bench's, the one core loader
    qtbot.addWidget(v.panel)
    qtbot.addWidget(v.grid)
    assert v.panel.templates is bench.templates
    wf.open_item(wf.queue[0])
    bench.load()
    template = bench.templates.for_domain("medicine")  # no medicine file there: general's
    assert template.domain == "general" and bench.rubric.template_version == template.version
    v.panel.save()
    first = store.rubrics.versions(wf.item.prompt.id)[0]
    assert first.template_version == template.version
    # a rubric written over it, then "Start from the domain template" again: the save says so
    bench.save_rubric([Criterion("Something else", 3)], template_version="")
    assert store.rubrics.latest_by(wf.item.prompt.id, "ann").template_version == ""
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    v.panel.start_from_template()
    assert [c.text for c in v.panel.criteria()] == ["Answers the question asked"]
    v.panel.save()
    latest = store.rubrics.latest_by(wf.item.prompt.id, "ann")
    assert latest.version == 3 and latest.template_version == template.version
    v.close()
