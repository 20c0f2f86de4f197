"""The rubric layouts both ways (core/rubric_formats.py, core/rubric_export.py), and pairs of graded judgments."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.export import ExportError, export_dataset
from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.rubric_export import grade_rows, rubric_rows
from hitl_desktop.core.rubrics import AXES
from hitl_desktop.core.store import Store

HB_ROW = {  # a HealthBench row as published (fields abridged)
    "prompt": [{"role": "user", "content": "I take metformin; my eGFR is 25. Keep taking it?"}],
    "completion": "",
    "prompt_id": "hb-0001",
    "rubrics": [
        {"criterion": "Advises stopping metformin when eGFR < 30", "points": 8, "tags": ["level:example", "axis:accuracy"]},
        {"criterion": "Mentions lactic acidosis risk", "points": 4, "tags": ["axis:completeness"]},
        {"criterion": "Recommends increasing the dose", "points": -9, "tags": ["axis:accuracy"]},
    ],
    "example_tags": ["theme:hedging", "physician_agreed_category:x"],
    "ideal_completions_data": None,
}


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def grades_row(completion, grader, mets, kind="tutor", criteria=None, **extra):
    crit = criteria or [r["criterion"] for r in HB_ROW["rubrics"]]
    return {"prompt_id": "hb-0001", "completion": completion, "grader": grader, "grader_kind": kind,
            "grades": [{"criterion": c, "criteria_met": m} for c, m in zip(crit, mets, strict=True)], **extra}


def test_a_healthbench_file_imports_as_it_is_and_exports_in_its_layout(tmp_path):
    store = Store.memory()
    s = import_file(store, write(tmp_path / "hb.jsonl", [HB_ROW]), default_domain="medicine")
    assert (s.layout, s.prompts, s.rubrics, s.criteria) == ("rubrics", 1, 1, 3)
    assert s.fields_not_kept == {"completion": 1}  # HealthBench's empty completion: said, not silent
    pid = store.prompts_by_external_id(["hb-0001"])["hb-0001"].id
    lab = store.rubrics.lab_rubric(pid)
    assert lab is not None and lab.author == "imported" and [c.points for c in lab.criteria] == [8, 4, -9]
    (row,) = rubric_rows(store)
    assert row["prompt_id"] == "hb-0001" and row["prompt"] == HB_ROW["prompt"]
    assert row["rubrics"] == HB_ROW["rubrics"]
    assert row["example_tags"] == ["domain:medicine", *HB_ROW["example_tags"]]
    assert row["ideal_completions_data"] is None and row["rubric_version"] == 1
    # the same file again adds nothing
    again = import_file(store, write(tmp_path / "hb.jsonl", [HB_ROW]))
    assert (again.prompts, again.prompts_reused, again.rubrics) == (0, 1, 0)


def test_tutor_grades_without_a_ranking_make_a_judgment_ranked_by_score_with_score_margins(tmp_path):
    store = Store.memory()
    import_file(store, write(tmp_path / "hb.jsonl", [HB_ROW]))
    rows = [
        grades_row("Stop it; lactic acidosis risk.", "ann", [True, True, False], score=0.1),  # score not trusted
        grades_row("Stop it.", "ann", [True, False, False]),
        grades_row("Double the dose.", "ann", [False, False, True], model="m1"),
        grades_row("Stop it.", "gpt", [True, True, False], kind="model"),
    ]
    s = import_file(store, write(tmp_path / "g.jsonl", rows))
    assert (s.layout, s.candidates, s.judgments, s.grades) == ("rubric-grades", 3, 1, 12)
    (item,) = store.judged_items()
    by_text = {c.text: c.id for c in item.candidates}
    assert item.tutor_name == "ann"
    assert item.judgment.ranks == {by_text["Stop it; lactic acidosis risk."]: 1, by_text["Stop it."]: 2,
                                   by_text["Double the dose."]: 3}
    out = tmp_path / "pairs.jsonl"
    export_dataset(store, fmt="trl-preference", out=out, keep_tutor_names=True)
    margins = {(r["chosen"], r["rejected"]): r["margin"] for r in read(out)}
    assert margins[("Stop it; lactic acidosis risk.", "Stop it.")] == pytest.approx(12 / 12 - 8 / 12)
    assert margins[("Stop it.", "Double the dose.")] == pytest.approx(8 / 12 - (-9 / 12))
    exported = {(r["completion"], r["grader"]): r for r in grade_rows(store, keep_tutor_names=True)}
    assert exported[("Stop it; lactic acidosis risk.", "ann")]["score"] == pytest.approx(1.0)
    assert ("Stop it.", "gpt") not in exported  # tutors' grades unless --grades-from
    (model_row,) = grade_rows(store, grades_from="gpt")
    assert model_row["grader_kind"] == "model" and model_row["score"] == pytest.approx(1.0)
    with pytest.raises(ExportError, match="no grades by that grader"):
        export_dataset(store, fmt="rubric-grades", out=tmp_path / "x.jsonl", grades_from="nobody")
    # the same grades again: skipped, nothing doubled
    s2 = import_file(store, write(tmp_path / "g.jsonl", rows))
    assert (s2.grades, s2.grades_skipped, s2.judgments) == (0, 4, 0)


BAD_RUBRICS = [
    ({**HB_ROW, "rubrics": [{"criterion": "a", "points": 0, "tags": []}]}, "rubrics[0].points"),
    ({**HB_ROW, "rubrics": [{"criterion": "a", "points": "5", "tags": []}]}, "rubrics[0].points"),
    ({**HB_ROW, "rubrics": [{"criterion": "a", "points": 11, "tags": []}]}, "rubrics[0].points"),
    ({**HB_ROW, "rubrics": [{"criterion": "a", "points": -10.5, "tags": []}]}, "rubrics[0].points"),
    ({**HB_ROW, "rubrics": [{"criterion": "a", "points": 5e-324, "tags": []}]}, "rubrics[0].points"),
    ({**HB_ROW, "rubrics": [{"criterion": " ", "points": 3, "tags": []}]}, "rubrics[0].criterion"),
    ({**HB_ROW, "rubrics": [{"criterion": "bad", "points": -3, "tags": []}]}, "rubrics: a rubric needs at least one criterion with positive"),
    ({**HB_ROW, "rubrics": []}, "rubrics"),
    ({**HB_ROW, "prompt": []}, "prompt"),
    ({k: v for k, v in HB_ROW.items() if k != "prompt_id"}, "prompt_id"),
]


@pytest.mark.parametrize("bad, field", BAD_RUBRICS)
def test_bad_rubric_rows_refuse_the_file_by_line_and_field(tmp_path, bad, field):
    store = Store.memory()
    good = {**HB_ROW, "prompt_id": "hb-0002"}
    path = write(tmp_path / "bad.jsonl", [good, bad])
    with pytest.raises(ImportFileError) as e:
        import_file(store, path, layout="rubrics")
    assert f"bad.jsonl:2: {field}" in str(e.value) and "nothing was imported" in str(e.value)
    assert store.db.execute("select count(*) from prompts").fetchone()[0] == 0
    assert store.db.execute("select count(*) from rubrics").fetchone()[0] == 0


def test_bad_grade_rows_refuse_the_file_by_line_and_field(tmp_path):
    store = Store.memory()
    import_file(store, write(tmp_path / "hb.jsonl", [HB_ROW]))
    crit = [r["criterion"] for r in HB_ROW["rubrics"]]
    cases = [
        (grades_row("x", "ann", [True, True, True], criteria=[crit[0], crit[1], "Not in the rubric"]),
         "grades[2].criterion: 'Not in the rubric' is not a criterion of rubric version 1"),
        (grades_row("x", "ann", [True, True], criteria=crit[:2]), "grades: leaves out criterion 3"),
        ({**grades_row("x", "ann", [True, True, True]), "prompt_id": "nope"}, "prompt_id: 'nope': no such prompt"),
        (grades_row("x", "ann", [True, True, True], kind="robot"), "grader_kind"),
        (grades_row("x", "ann", [True, True, True], rubric_version=7), "rubric_version: the prompt has no rubric version 7"),
        ({**grades_row("x", "ann", [True, True, True]), "grades": [{"criterion": crit[0], "criteria_met": "yes"}]},
         "grades[0].criteria_met"),
    ]
    for bad, message in cases:
        path = write(tmp_path / "g.jsonl", [grades_row("fine", "bob", [True, False, False]), bad])
        with pytest.raises(ImportFileError) as e:
            import_file(store, path)
        assert f"g.jsonl:2: {message}" in str(e.value), str(e.value)
        assert store.db.execute("select count(*) from grades").fetchone()[0] == 0
        assert store.db.execute("select count(*) from candidates").fetchone()[0] == 0


def test_a_prompt_without_rubric_refuses_its_grades(tmp_path, store):
    write(tmp_path / "p.jsonl", [{"id": "hb-0001", "prompt": "q", "domain": "medicine"}])
    import_file(store, tmp_path / "p.jsonl")
    with pytest.raises(ImportFileError, match="prompt_id: the prompt has no rubric"):
        import_file(store, write(tmp_path / "g.jsonl", [grades_row("x", "ann", [True, True, True])]))


def test_rubric_formats_write_jsonl_parquet_or_a_folder_and_refuse_other_files(tmp_path, store):
    # (were .jsonl only; rubextra: Parquet and datasets folders too, tests/core/test_rubric_export_files.py)
    with pytest.raises(ExportError, match="cannot write .csv files"):
        export_dataset(store, fmt="rubrics", out=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    assert export_dataset(store, fmt="rubrics", out=tmp_path / "r.parquet").files == [tmp_path / "r.parquet"]
    assert (tmp_path / "r.parquet").is_file()


# -- round trips ------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda t: t.strip() == t and t)
points = st.one_of(st.integers(-10, 10).filter(bool), st.floats(-10, 10, allow_nan=False).filter(lambda x: abs(x) >= 0.01))
tags = st.lists(st.sampled_from([f"axis:{a}" for a in AXES]), max_size=1).map(lambda t: t + ["level:example"])


@st.composite
def datasets(draw):
    n_prompts = draw(st.integers(1, 3))
    rubric_file, grade_file = [], []
    for i in range(n_prompts):
        crits = draw(st.lists(texts, min_size=1, max_size=4, unique=True))
        pts = [draw(points) for _ in crits]
        if not any(p > 0 for p in pts):
            pts[0] = abs(pts[0]) or 1
        rubric_file.append({
            "prompt_id": f"p{i}", "prompt": [{"role": "user", "content": draw(texts)}],
            "rubrics": [{"criterion": c, "points": p, "tags": draw(tags)} for c, p in zip(crits, pts, strict=True)],
            "example_tags": [f"domain:{draw(st.sampled_from(['medicine', 'law']))}"],
            "ideal_completions_data": draw(st.none() | st.builds(lambda t: {"ideal_completion": t}, texts)),
            "rubric_version": draw(st.integers(1, 3)), "rubric_author": draw(st.sampled_from(["lee", "imported"])),
            "rubric_status": "approved", "approved_by": "lee",
        })
        completions = draw(st.lists(texts, min_size=1, max_size=3, unique=True))
        for comp in completions:
            for grader, kind in draw(st.lists(st.sampled_from([("ann", "tutor"), ("bob", "tutor"), ("gpt", "model")]),
                                              min_size=1, max_size=3, unique=True)):
                grade_file.append({
                    "prompt_id": f"p{i}", "completion": comp, "model": "m", "grader": grader, "grader_kind": kind,
                    "grades": [{"criterion": c, "criteria_met": draw(st.booleans()), "explanation": draw(st.sampled_from(["", "why"]))}
                               for c in crits],
                })
    return rubric_file, grade_file


def export_all(store, tmp_path, tag):
    out = {}
    for fmt, grader in (("rubrics", None), ("rubric-grades", None), ("rubric-grades", "gpt")):
        path = tmp_path / f"{tag}-{fmt}-{grader}.jsonl"
        if grader and "gpt" not in store.rubrics.graders("model"):
            out[(fmt, grader)] = []
            continue
        export_dataset(store, fmt=fmt, out=path, grades_from=grader)
        out[(fmt, grader)] = read(path)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_export_import_into_an_empty_database_export_gives_the_same_rows(tmp_path_factory, data):
    tmp_path = tmp_path_factory.mktemp("rt")
    rubric_file, grade_file = data
    first = Store.memory()
    import_file(first, write(tmp_path / "r.jsonl", rubric_file))
    import_file(first, write(tmp_path / "g.jsonl", grade_file))
    a = export_all(first, tmp_path, "a")
    assert len(a[("rubrics", None)]) == len(rubric_file)
    second = Store.memory()
    import_file(second, tmp_path / "a-rubrics-None.jsonl")
    if a[("rubric-grades", None)]:
        import_file(second, tmp_path / "a-rubric-grades-None.jsonl")
    if a[("rubric-grades", "gpt")]:
        import_file(second, tmp_path / "a-rubric-grades-gpt.jsonl")
    b = export_all(second, tmp_path, "b")
    assert a == b


def test_positive_points_too_small_to_score_against_are_refused_by_line(tmp_path):
    """A score divides by the positive points: 2e-309 of them would make -inf of a penalty."""
    row = dict(HB_ROW, rubrics=[{"criterion": "Penalised", "points": -1, "tags": []},
                                {"criterion": "Tiny", "points": 2.225073858507203e-309, "tags": []}])
    store = Store.memory()
    with pytest.raises(ImportFileError, match=r"hb.jsonl:1: rubrics\[1\]\.points: must be at least 0.01 away from 0"):
        import_file(store, write(tmp_path / "hb.jsonl", [row]))
    assert store.rubrics.prompt_ids_with_rubrics() == []
