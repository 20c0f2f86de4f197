"""No bad input accepted, no traceback: the importers fuzzed with hypothesis.

Whatever the bytes, ``import_file`` either imports them or refuses the whole file with an
``ImportFileError`` naming a line (>= 1, or 0 for a whole-file problem) in one line of text;
a refused file leaves the database exactly as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.store import Store

# HITL_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("HITL_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SEED = [
    {"id": "x1", "prompt": "seeded question", "domain": "law", "candidates": ["a", "b", "c"],
     "ranking": [1, 2, 3], "tutor": "dr-seed"},
    {"id": "x2", "prompt": "queued question", "domain": "law"},
]

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
small_ints = st.integers(-2, 6)
texts = st.text(max_size=16)

candidate = st.one_of(
    texts,
    st.fixed_dictionaries({"text": texts}, optional={"model": st.one_of(texts, json_values)}),
    json_values,
)
record = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["x1", "x2", "new-1", "new-1", ""]), json_values),
        "prompt": st.one_of(st.sampled_from(["seeded question", "queued question", " ", "q?"]), texts, json_values),
        "domain": st.one_of(st.sampled_from(["law", "LAW ", "medicine", ""]), json_values),
        "messages": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "system", "bot"]), "content": st.one_of(texts, json_values)}
                ),
                max_size=3,
            ),
            json_values,
        ),
        "candidates": st.one_of(st.lists(candidate, max_size=4), st.just(["a", "b", "c"]), json_values),
        "ranking": st.one_of(st.lists(st.one_of(small_ints, json_values), max_size=5), json_values),
        "tutor": st.one_of(st.sampled_from(["dr-seed", "dr-new", ""]), json_values),
        "correction": st.one_of(texts, json_values),
        "corrected_index": st.one_of(small_ints, json_values),
        "all_bad": json_values,
        "strength": st.one_of(small_ints, json_values),
        "rationale": json_values,
        "flags": st.one_of(st.lists(st.lists(st.sampled_from(["incorrect", "unsafe", "nonsense-flag"]), max_size=2), max_size=4), json_values),
        "gold_ranking": st.one_of(st.lists(small_ints, max_size=4), json_values),
    },
)


FIELDS = ["id", "prompt", "domain", "messages", "candidates", "ranking", "tutor", "correction",
          "corrected_index", "all_bad", "strength", "rationale", "flags", "gold_ranking"]


@st.composite
def plausible_record(draw) -> dict:
    """A valid record (queued or judged), with at most one field replaced by anything."""
    k = draw(st.integers(0, 4))
    rec: dict = {"prompt": draw(st.text(min_size=1, max_size=20).filter(str.strip))}
    if draw(st.booleans()):
        rec["id"] = draw(st.sampled_from(["x1", "x2", "n1", "n2", "n3"]))
    if draw(st.booleans()):
        rec["domain"] = draw(st.sampled_from(["law", "Medicine", "finance"]))
    if k:
        rec["candidates"] = [f"answer {i} {draw(st.text(max_size=4))}" for i in range(k)]
        if draw(st.booleans()):
            rec["ranking"] = draw(st.lists(st.integers(1, k), min_size=k, max_size=k))
            rec["tutor"] = draw(st.sampled_from(["dr-seed", "dr-new", "dr-other"]))
            if draw(st.booleans()):
                rec["correction"] = "a better answer"
                rec["corrected_index"] = draw(st.integers(0, k - 1))
    if draw(st.integers(0, 2)) == 0:
        rec[draw(st.sampled_from(FIELDS))] = draw(json_values)
    return rec


def snapshot(store: Store) -> list[str]:
    return list(store.db.conn.iterdump())


def fresh_store(tmp: Path) -> Store:
    store = Store.memory()
    seed = tmp / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(r) for r in SEED) + "\n")
    import_file(store, seed)
    return store


def check(tmp: Path, name: str, data: bytes) -> None:
    """Import ``data`` as file ``name``: a summary, or a clean refusal that changed nothing."""
    path = tmp / name
    path.write_bytes(data)
    store = fresh_store(tmp)
    before = snapshot(store)
    try:
        try:
            summary = import_file(store, path)
        except ImportFileError as e:
            event("refused")
            n_lines = len(data.splitlines())
            assert e.errors, "a refusal names at least one problem"
            for err in e.errors:
                assert 0 <= err.line <= n_lines + 1, (err, n_lines)
                assert err.line >= 1 or not n_lines or err.message in (
                    "holds no records",
                ) or "UTF-8" in err.message, err
            msg = str(e)
            assert "\n" not in msg and "\r" not in msg, repr(msg)
            assert "nothing was imported" in msg
            assert snapshot(store) == before, "a refused file changed the database"
        else:
            event("imported")
            assert summary.records >= 1
            after = store.db.execute("select count(*) from prompts").fetchone()[0]
            assert after == len(SEED) + summary.prompts
            assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_jsonl(tmp, data):
    check(tmp, "bytes.jsonl", data)


@FUZZ
@given(data=st.binary(max_size=600))
@example(data=b'"')  # an unterminated quote in the header row (found by this test)
@example(data=b'prompt,"x\nhello,law\n')
@example(data=b'prompt\n"')
def test_arbitrary_bytes_as_csv(tmp, data):
    check(tmp, "bytes.csv", data)


@FUZZ
@given(lines=st.lists(json_values, min_size=1, max_size=6))
def test_arbitrary_json_values_per_line(tmp, lines):
    check(tmp, "values.jsonl", "\n".join(json.dumps(v) for v in lines).encode())


@FUZZ
@given(
    lines=st.lists(
        st.one_of(plausible_record(), plausible_record(), record, json_values, st.just(""), st.just("{not json")),
        min_size=1,
        max_size=6,
    ),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_records_with_arbitrary_field_values(tmp, lines, crlf, bom):
    text = ("\r\n" if crlf else "\n").join(v if isinstance(v, str) else json.dumps(v) for v in lines)
    check(tmp, "records.jsonl", (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))


csv_text = st.lists(
    st.sampled_from(list('ab ,"\n\r\t;é\x00') + ["prompt", "domain", "id", "law", '""']), max_size=40
).map("".join) | st.text(max_size=60)


@FUZZ
@given(header=st.sampled_from(["prompt", "prompt,domain", "id,prompt,domain", "domain", "", "prompt,prompt"]), body=csv_text)
def test_arbitrary_csv_text(tmp, header, body):
    check(tmp, "text.csv", (header + "\n" + body).encode("utf-8", "surrogatepass"))


def test_a_refused_file_in_a_file_database_leaves_it_byte_identical(tmp_path):
    import hashlib

    db = tmp_path / "hitl.db"
    seed = tmp_path / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(r) for r in SEED) + "\n")
    with Store.open(db) as s:
        import_file(s, seed)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": "x", "ranking": [1]}) + "\n")
    with Store.open(db) as s:
        with pytest.raises(ImportFileError) as e:
            import_file(s, bad)
        assert e.value.errors[0].line == 2
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
