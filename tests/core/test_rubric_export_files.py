"""The rubric layouts as Parquet and as a datasets folder (core/rubric_export.py): the rows read
back equal the JSONL rows, written in bounded batches; ``tutor`` keeps one tutor's grades."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from hitl_desktop.core import rubric_export
from hitl_desktop.core.rubric_export import export_rubric_format, rows_from_arrow
from hitl_desktop.core.rubric_formats import import_rubric_file
from hitl_desktop.core.rubrics import RubricError
from hitl_desktop.core.store import Store

CRITERIA = [
    {"criterion": "Advises stopping metformin when eGFR < 30", "points": 8, "tags": ["axis:accuracy"]},
    {"criterion": "Mentions lactic acidosis risk", "points": 2.5, "tags": ["axis:completeness"], "author": "bob"},
    {"criterion": "Recommends increasing the dose", "points": -9, "tags": []},
]
RUBRICS = [
    {"prompt_id": "hb-1", "prompt": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Metformin at eGFR 25? «ü»"}],
     "rubrics": CRITERIA, "example_tags": ["theme:hedging"],
     "ideal_completions_data": {"ideal_completion": "Stop it.", "ideal_completions_ref_completions": ["a", "b"]},
     "rubric_author": "ann", "rubric_status": "proposed", "rubric_template": "medicine-0123456789"},
    {"prompt_id": "hb-2", "prompt": [{"role": "user", "content": "Second question?"}],
     "rubrics": [{"criterion": "Answers", "points": 5, "tags": []}], "ideal_completions_data": None},
]


def grades(pid, completion, grader, mets, kind="tutor", criteria=CRITERIA, **extra):
    return {"prompt_id": pid, "completion": completion, "grader": grader, "grader_kind": kind, "model": "m1",
            "grades": [{"criterion": c["criterion"], "criteria_met": m, "explanation": f"why {i}"}
                       for i, (c, m) in enumerate(zip(criteria, mets, strict=True))], **extra}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def store(tmp_path):
    s = Store.memory()
    import_rubric_file(s, write(tmp_path / "r.jsonl", RUBRICS))
    one = [{"criterion": "Answers", "points": 5, "tags": []}]
    import_rubric_file(s, write(tmp_path / "g.jsonl", [
        grades("hb-1", "Keep taking it.", "ann", [False, False, True]),
        grades("hb-1", "Stop it; see your doctor.", "ann", [True, True, False]),
        grades("hb-1", "Keep taking it.", "bob", [False, True, True]),
        grades("hb-1", "Stop it; see your doctor.", "bob", [True, False, False]),
        grades("hb-2", "Yes.", "ann", [True], criteria=one),
        grades("hb-2", "No.", "ann", [False], criteria=one),
        grades("hb-1", "Keep taking it.", "grader-x", [False, False, False], kind="model"),
    ]))
    yield s
    s.close()


def export_three_ways(store, tmp_path, fmt, **kw):
    jsonl = export_rubric_format(store, fmt=fmt, out=tmp_path / f"{fmt}.jsonl", **kw)
    parquet = export_rubric_format(store, fmt=fmt, out=tmp_path / f"{fmt}.parquet", **kw)
    folder = export_rubric_format(store, fmt=fmt, out=tmp_path / f"{fmt}-ds", **kw)
    assert jsonl.rows == parquet.rows == folder.rows and jsonl.prompts == parquet.prompts == folder.prompts
    return read_jsonl(tmp_path / f"{fmt}.jsonl")


@pytest.mark.parametrize("fmt, n", [("rubrics", 2), ("rubric-grades", 6)])
def test_parquet_and_the_datasets_folder_give_back_the_jsonl_rows(store, tmp_path, fmt, n):
    from datasets import load_from_disk

    rows = export_three_ways(store, tmp_path, fmt)
    assert len(rows) == n
    table = pq.read_table(tmp_path / f"{fmt}.parquet")
    assert table.schema.equals(rubric_export.rubric_arrow_schema(fmt))
    assert list(rows_from_arrow(fmt, table.to_pylist())) == rows
    ds = load_from_disk(str(tmp_path / f"{fmt}-ds"))
    assert len(ds) == n and list(rows_from_arrow(fmt, ds.to_list())) == rows
    card = (tmp_path / f"{fmt}-ds" / "README.md").read_text(encoding="utf-8")
    assert f"format: \"{fmt}\"" in card and f"rows: {n}" in card
    if fmt == "rubrics":  # what the JSONL row holds, Parquet holds too
        first = rows[0]
        assert first["ideal_completions_data"]["ideal_completions_ref_completions"] == ["a", "b"]
        assert first["rubric_template"] == "medicine-0123456789" and "rubric_template" not in rows[1]
        assert [c.get("author") for c in first["rubrics"]] == [None, "bob", None]
        assert [c["points"] for c in first["rubrics"]] == [8, 2.5, -9]
        assert table.column("rubrics").to_pylist()[0][1]["points"] == 2.5


@pytest.mark.parametrize(("group_bytes", "groups"), [(1, 3), (1 << 20, 1)])
def test_rows_are_written_in_bounded_batches(store, tmp_path, monkeypatch, group_bytes, groups):
    """Batches of BATCH rows, gathered into row groups of about ROW_GROUP_BYTES: here each
    batch a group of its own, or all three in one."""
    from hitl_desktop.core import files

    monkeypatch.setattr(rubric_export, "BATCH", 2)
    monkeypatch.setattr(files, "ROW_GROUP_BYTES", group_bytes)
    rows = export_three_ways(store, tmp_path, "rubric-grades")
    meta = pq.ParquetFile(tmp_path / "rubric-grades.parquet").metadata
    assert meta.num_rows == len(rows) == 6 and meta.num_row_groups == groups
    assert list(rows_from_arrow("rubric-grades", pq.read_table(tmp_path / "rubric-grades.parquet").to_pylist())) \
        == rows


def test_tutor_keeps_that_tutors_grades(store, tmp_path):
    every = export_three_ways(store, tmp_path, "rubric-grades", keep_tutor_names=True)
    bob = export_three_ways(store, tmp_path, "rubric-grades", keep_tutor_names=True, tutor="bob")
    assert {r["grader"] for r in every} == {"ann", "bob"}
    assert bob == [r for r in every if r["grader"] == "bob"] and len(bob) == 2
    hidden = export_three_ways(store, tmp_path, "rubric-grades", tutor="bob")
    assert len(hidden) == 2 and len({r["grader"] for r in hidden}) == 1 and hidden[0]["grader"] != "bob"
    with pytest.raises(RubricError, match="--tutor carol: no grades by that tutor"):
        export_rubric_format(store, fmt="rubric-grades", out=tmp_path / "x.jsonl", tutor="carol")
    with pytest.raises(RubricError, match="--tutor grader-x: no grades by that tutor"):
        export_rubric_format(store, fmt="rubric-grades", out=tmp_path / "x.jsonl", tutor="grader-x")
    with pytest.raises(RubricError, match="name different graders"):
        export_rubric_format(store, fmt="rubric-grades", out=tmp_path / "x.jsonl", tutor="bob", grades_from="ann")
    with pytest.raises(RubricError, match="use it with rubric-grades"):
        export_rubric_format(store, fmt="rubrics", out=tmp_path / "x.jsonl", tutor="bob")
    assert not (tmp_path / "x.jsonl").exists()


def test_outputs_it_cannot_write_are_refused_and_nothing_is_left(store, tmp_path):
    with pytest.raises(RubricError, match="cannot write .csv files"):
        export_rubric_format(store, fmt="rubrics", out=tmp_path / "r.csv")
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    with pytest.raises(RubricError, match="not a dataset export; refusing"):
        export_rubric_format(store, fmt="rubrics", out=mine)
    assert [p.name for p in mine.iterdir()] == ["todo.txt"]
    # an export folder is replaced whole; no temporary file or folder is left beside it
    export_rubric_format(store, fmt="rubrics", out=tmp_path / "ds")
    export_rubric_format(store, fmt="rubric-grades", out=tmp_path / "ds")
    export_rubric_format(store, fmt="rubrics", out=tmp_path / "r.parquet")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert "format: \"rubric-grades\"" in (tmp_path / "ds" / "README.md").read_text(encoding="utf-8")
