"""Hostile rubric files (issue 20, the rubric layouts): deep nesting, huge or non-finite points,
NUL characters and broken escapes, a wrong type at every field, huge text. Each is refused in
one line naming the file, the line and the field, and the database is left byte for byte as it
was; then hypothesis throws anything at every field of both layouts.

HITL_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps this file under ~20 s."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.rubric_formats import GRADES, RUBRICS, RubricFileError, import_rubric_file
from hitl_desktop.core.rubric_limits import (
    MAX_CRITERIA,
    MAX_CRITERION,
    MAX_LINE_BYTES,
    MAX_RATIONALE,
    MAX_TEXT,
)
from hitl_desktop.core.store import Store

FUZZ = settings(
    max_examples=int(os.environ.get("HITL_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CRITERIA = [
    {"criterion": "Advises stopping metformin when eGFR < 30", "points": 8, "tags": ["axis:accuracy"]},
    {"criterion": "Recommends increasing the dose", "points": -9, "tags": []},
]
RUBRIC_ROW = {"prompt_id": "hb-1", "prompt": [{"role": "user", "content": "Metformin at eGFR 25?"}],
              "rubrics": CRITERIA, "example_tags": ["domain:medicine"], "ideal_completions_data": None}
OTHER_ROW = {**RUBRIC_ROW, "prompt_id": "hb-2", "prompt": [{"role": "user", "content": "Second?"}]}
GRADE_ROW = {"prompt_id": "hb-1", "completion": "Stop it.", "grader": "ann", "grader_kind": "tutor",
             "grades": [{"criterion": c["criterion"], "criteria_met": i == 0, "explanation": ""}
                        for i, c in enumerate(CRITERIA)]}
OTHER_GRADE = {**GRADE_ROW, "completion": "Keep it."}


def deep(n: int) -> object:
    v: object = "x"
    for _ in range(n):
        v = [v]
    return v


def very_deep(n: int) -> str:
    """A placeholder that ``raw`` writes as ``n`` nested arrays (too deep for json.dumps itself)."""
    return f"@@deep{n}@@"


def with_(row: dict, path: str, value: object) -> dict:
    """A copy of ``row`` with the field at ``path`` ("rubrics[0].points") set to ``value``."""
    row = json.loads(json.dumps(row))
    parts = path.replace("]", "").replace("[", ".").split(".")
    target = row
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value
    return row


def raw(value: object) -> str:
    """JSON text for a line: NaN, Infinity and huge integers as Python's json writes them."""
    text = value if isinstance(value, str) else json.dumps(value)
    while "\"@@deep" in text:
        start = text.index("\"@@deep")
        end = text.index("@@\"", start + 7)
        n = int(text[start + 7:end])
        text = text[:start] + "[" * n + '"x"' + "]" * n + text[end + 3:]
    return text


def db_bytes(path: Path) -> str:
    h = hashlib.sha256()
    for p in (path, path.with_name(path.name + "-wal")):  # the database and its log (-shm: readers' marks)
        if p.exists():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "lab.db"
    store = Store.open(path)
    seed = tmp_path / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(r) for r in (RUBRIC_ROW, OTHER_ROW)) + "\n", encoding="utf-8")
    import_rubric_file(store, seed, layout=RUBRICS)
    yield store, path
    store.close()


NUL, SURROGATE = "a\x00b", "a\ud800b"

RUBRIC_CASES = [
    # deep nesting: in a field, and past the JSON parser's own depth
    ("ideal_completions_data", {"x": deep(80)}, "ideal_completions_data", "nested too deeply"),
    ("example_tags", very_deep(5000), "", "nested too deeply"),
    # points: huge, non-finite, of the wrong type
    ("rubrics[0].points", 1e308, "rubrics[0].points", "from -10 to 10"),
    ("rubrics[0].points", float("nan"), "rubrics[0].points", "from -10 to 10"),
    ("rubrics[0].points", float("-inf"), "rubrics[0].points", "from -10 to 10"),
    ("rubrics[0].points", "inf", "rubrics[0].points", "must be a number, not str"),
    ("rubrics[0].points", 10**30, "rubrics[0].points", "a 31-digit number"),
    ("rubrics[0].points", 10**300, "rubrics[0].points", "a 301-digit number"),
    ("rubrics[0].points", True, "rubrics[0].points", "not bool"),
    ("rubrics[0].points", 0, "rubrics[0].points", "non-zero"),
    ("rubrics[0].points", None, "rubrics[0].points", "not NoneType"),
    # NUL characters and broken escapes, in values and in field names
    ("rubrics[0].criterion", NUL, "rubrics[0].criterion", "NUL"),
    ("prompt[0].content", NUL, "prompt[0].content", "NUL"),
    ("rubrics[0].tags", ["axis:accuracy", NUL], "rubrics[0].tags[1]", "NUL"),
    ("prompt_id", NUL, "prompt_id", "NUL"),
    ("rubrics[0].criterion", SURROGATE, "rubrics[0].criterion", "lone surrogate"),
    ("ideal_completions_data", {NUL: 1}, "ideal_completions_data.'a\\x00b'", "NUL"),
    # a wrong type at every field
    ("prompt_id", 5, "prompt_id", "not a string"),
    ("prompt", 5, "prompt", "non-empty list of messages"),
    ("prompt", [{"role": 1, "content": "q"}], "prompt[0]", "must be a message"),
    ("prompt", [{"role": "user", "content": ["q"]}], "prompt[0]", "must be a message"),
    ("rubrics", "x", "rubrics", "non-empty list"),
    ("rubrics", [], "rubrics", "non-empty list"),
    ("rubrics[0]", 5, "rubrics[0]", "must be an object"),
    ("rubrics[0].criterion", 5, "rubrics[0].criterion", "not a string"),
    ("rubrics[0].tags", "x", "rubrics[0].tags", "list of strings"),
    ("rubrics[0].tags", [1], "rubrics[0].tags", "list of strings"),
    ("rubrics[0].author", 5, "rubrics[0].author", "must be a string"),
    ("example_tags", "x", "example_tags", "list of strings"),
    ("ideal_completions_data", 5, "ideal_completions_data", "object or null"),
    ("ideal_completions_data", {"x": float("nan")}, "ideal_completions_data", "not finite"),
    ("rubric_version", "1", "rubric_version", "positive integer, not str"),
    ("rubric_version", 0, "rubric_version", "positive integer"),
    ("rubric_version", 2**63, "rubric_version", "positive integer"),
    ("rubric_version", 10**30, "rubric_version", "a 31-digit number"),
    ("rubric_author", 5, "rubric_author", "not a string"),
    ("rubric_status", ["approved"], "rubric_status", "proposed or approved"),
    ("approved_by", {}, "approved_by", "not a string"),
    ("rubric_template", 5, "rubric_template", "not a string"),
    # huge text and too many of a thing
    ("rubrics[0].criterion", "c" * (MAX_CRITERION + 1), "rubrics[0].criterion", "above the limit of 10,000"),
    ("prompt[0].content", "q" * (MAX_TEXT + 1), "prompt[0].content", "above the limit of 1,000,000"),
    ("prompt_id", "p" * 1001, "prompt_id", "above the limit of 1,000"),
    ("rubrics", [{"criterion": f"c{i}", "points": 1} for i in range(MAX_CRITERIA + 1)], "rubrics",
     "above the limit of 500"),
    ("rubrics[0].tags", [f"t{i}" for i in range(101)], "rubrics[0].tags", "above the limit of 100"),
]

GRADE_CASES = [
    ("grades[0].explanation", {"x": deep(80)}, "grades", "nested too deeply"),
    ("grades", very_deep(3000), "", "nested too deeply"),
    ("score", float("nan"), "score", "finite"),
    ("score", float("inf"), "score", "finite"),
    ("score", "inf", "score", "must be a number, not str"),
    ("score", 10**30, "score", "does not fit in a 64-bit integer"),
    ("grader", NUL, "grader", "NUL"),
    ("completion", SURROGATE, "completion", "lone surrogate"),
    ("grades[1].criterion", CRITERIA[1]["criterion"] + "\x00", "grades[1].criterion", "NUL"),
    ("prompt_id", 5, "prompt_id", "not a string"),
    ("prompt_id", "nope", "prompt_id", "no such prompt"),
    ("completion", 5, "completion", "not a string"),
    ("model", 5, "model", "not a string"),
    ("grader", 5, "grader", "not a string"),
    ("grader", "", "grader", "is empty"),
    ("grader_kind", "robot", "grader_kind", "tutor or model"),
    ("grader_kind", ["tutor"], "grader_kind", "tutor or model"),
    ("rubric_version", "1", "rubric_version", "an integer, not str"),
    ("rubric_version", 10**30, "rubric_version", "a 31-digit number"),
    ("rubric_version", 7, "rubric_version", "no rubric version 7"),
    ("grades", "x", "grades", "non-empty list"),
    ("grades[0]", 5, "grades[0]", "must be an object"),
    ("grades[0].criterion", 5, "grades[0].criterion", "not a string"),
    ("grades[0].criterion", "Something else", "grades[0].criterion", "not a criterion of rubric version 1"),
    ("grades[0].criteria_met", "yes", "grades[0].criteria_met", "true or false"),
    ("grades[0].criteria_met", 1, "grades[0].criteria_met", "true or false"),
    ("grades[0].explanation", 5, "grades[0].explanation", "must be a string"),
    ("grader_pseudonymised", "no", "grader_pseudonymised", "true or false"),
    ("completion", "a" * (MAX_TEXT + 1), "completion", "above the limit of 1,000,000"),
    ("grades[0].explanation", "e" * (MAX_RATIONALE + 1), "grades[0].explanation", "above the limit of 100,000"),
    ("grades", [GRADE_ROW["grades"][0]] * (MAX_CRITERIA + 1), "grades", "above the limit of 500"),
]


def refused(store, path, layout, *, line, field, words):
    with pytest.raises(RubricFileError) as e:
        import_rubric_file(store, path, layout=layout)
    msg = str(e.value)
    assert "\n" not in msg and "\r" not in msg and len(msg) < 600, msg
    assert msg.startswith(f"{path}:{line}: ") and msg.endswith("nothing was imported"), msg
    assert (f": {field}: " in msg) if field else True, msg
    assert words in msg, msg
    # through the import command's entry point: the same one line
    with pytest.raises(ImportFileError) as e2:
        import_file(store, path, layout=layout)
    assert "\n" not in str(e2.value) and words in str(e2.value), str(e2.value)
    return msg


@pytest.mark.parametrize("where, value, field, words", RUBRIC_CASES, ids=lambda v: str(v)[:30])
def test_a_hostile_rubric_line_is_refused_by_file_line_and_field(db, tmp_path, where, value, field, words):
    store, db_path = db
    before = db_bytes(db_path)
    good = {**RUBRIC_ROW, "prompt_id": "hb-3"}
    path = tmp_path / "hostile-rubrics.jsonl"
    path.write_text(json.dumps(good) + "\n" + raw(with_(good, where, value)) + "\n", encoding="utf-8",
                    errors="surrogatepass")
    refused(store, path, RUBRICS, line=2, field=field, words=words)
    assert db_bytes(db_path) == before


@pytest.mark.parametrize("where, value, field, words", GRADE_CASES, ids=lambda v: str(v)[:30])
def test_a_hostile_grades_line_is_refused_by_file_line_and_field(db, tmp_path, where, value, field, words):
    store, db_path = db
    before = db_bytes(db_path)
    path = tmp_path / "hostile-grades.jsonl"
    path.write_text(json.dumps(OTHER_GRADE) + "\n" + raw(with_(GRADE_ROW, where, value)) + "\n",
                    encoding="utf-8", errors="surrogatepass")
    refused(store, path, GRADES, line=2, field=field, words=words)
    assert db_bytes(db_path) == before


def test_a_line_over_16_mb_is_refused_before_it_is_parsed(db, tmp_path):
    store, db_path = db
    before = db_bytes(db_path)
    path = tmp_path / "long.jsonl"
    path.write_bytes(json.dumps(RUBRIC_ROW).encode() + b"\n" + b"[" * (MAX_LINE_BYTES + 1) + b"\n")
    refused(store, path, RUBRICS, line=2, field="", words="above the limit of 16 MB")
    assert db_bytes(db_path) == before


def test_the_good_rows_of_these_files_do_import(db, tmp_path):
    """The base rows the cases spoil are themselves good: the refusals are the spoiled field's."""
    store, _ = db
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps({**RUBRIC_ROW, "prompt_id": "hb-3"}) + "\n", encoding="utf-8")
    assert import_rubric_file(store, path, layout=RUBRICS).rubrics == 1
    path.write_text(json.dumps(OTHER_GRADE) + "\n" + json.dumps(GRADE_ROW) + "\n", encoding="utf-8")
    assert import_rubric_file(store, path, layout=GRADES).grades == 4


# -- hypothesis: anything at any field ---------------------------------------------------------

hostile_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([10**30, -(10**30), 10**400])
    | st.floats() | st.sampled_from([1e308, -1e308, "inf", "NaN", "-Infinity", 0, -0.0, 10.0000001])
    | st.text(max_size=12) | st.text(alphabet=st.sampled_from("a \x00\ud800\n\u2028"), max_size=4)
)
hostile = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
) | st.integers(60, 200).map(lambda n: deep(n))

RUBRIC_PATHS = ["prompt_id", "prompt", "prompt[0]", "prompt[0].role", "prompt[0].content", "rubrics", "rubrics[0]",
                "rubrics[0].criterion", "rubrics[0].points", "rubrics[1].points", "rubrics[0].tags",
                "rubrics[0].author", "example_tags", "ideal_completions_data", "rubric_version", "rubric_author",
                "rubric_status", "approved_by", "rubric_template", "extra"]
GRADE_PATHS = ["prompt_id", "completion", "model", "grader", "grader_kind", "rubric_version", "grades", "grades[0]",
               "grades[0].criterion", "grades[0].criteria_met", "grades[1].explanation", "score",
               "grader_pseudonymised", "extra"]


def snapshot(store) -> list[str]:
    return list(store.db.conn.iterdump())


def check(store, path: Path, layout: str, n_lines: int) -> None:
    before = snapshot(store)
    try:
        summary = import_rubric_file(store, path, layout=layout)
    except RubricFileError as e:
        event("refused")
        msg = str(e)
        assert "\n" not in msg and "\r" not in msg, repr(msg)
        assert msg.startswith(f"{path}:") and msg.endswith("nothing was imported"), msg
        assert all(1 <= line <= n_lines for line, _, _ in e.errors), e.errors
        assert snapshot(store) == before, "a refused file changed the database"
    else:
        event("imported")
        assert summary.records >= 1
        for (points,) in store.db.execute("select points from criteria"):
            assert math.isfinite(points) and points != 0 and abs(points) <= 10
        for (text,) in store.db.execute("select text from criteria union all select note from grades"):
            assert "\x00" not in text
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-rubrics")
    seed = folder / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(r) for r in (RUBRIC_ROW, OTHER_ROW)) + "\n", encoding="utf-8")
    return folder, seed


def fresh(seed: Path) -> Store:
    store = Store.memory()
    import_rubric_file(store, seed, layout=RUBRICS)
    return store


@FUZZ
@given(spoils=st.lists(st.tuples(st.sampled_from(RUBRIC_PATHS), hostile), min_size=1, max_size=3),
       first_good=st.booleans())
def test_anything_at_any_field_of_a_rubrics_row(seeded, spoils, first_good):
    folder, seed = seeded
    row = {**RUBRIC_ROW, "prompt_id": "hb-9"}
    for where, value in spoils:
        with contextlib.suppress(TypeError, KeyError, IndexError):  # a parent spoiled already: nothing to set
            row = with_(row, where, value)
    lines = ([json.dumps({**RUBRIC_ROW, "prompt_id": "hb-8"})] if first_good else []) + [raw(row)]
    path = folder / "rubrics.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    store = fresh(seed)
    try:
        check(store, path, RUBRICS, len(lines))
    finally:
        store.close()


@FUZZ
@given(spoils=st.lists(st.tuples(st.sampled_from(GRADE_PATHS), hostile), min_size=1, max_size=3),
       first_good=st.booleans())
def test_anything_at_any_field_of_a_grades_row(seeded, spoils, first_good):
    folder, seed = seeded
    row = dict(GRADE_ROW)
    for where, value in spoils:
        with contextlib.suppress(TypeError, KeyError, IndexError):
            row = with_(row, where, value)
    lines = ([json.dumps(OTHER_GRADE)] if first_good else []) + [raw(row)]
    path = folder / "grades.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    store = fresh(seed)
    try:
        check(store, path, GRADES, len(lines))
    finally:
        store.close()
