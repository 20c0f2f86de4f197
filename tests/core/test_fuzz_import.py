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

#: any character, lone surrogates (a broken \\u escape once dumped) and NUL included
any_char = st.characters(exclude_categories=())
huge_ints = st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**25, 10**30, 10**400]) | st.integers(
    min_value=-(10**4000), max_value=10**4000
)
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | huge_ints | st.floats() | st.text(max_size=12)
    | st.text(any_char, max_size=8) | st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 1001])
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(any_char, max_size=6), inner, max_size=4),
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


# -- every layout (issue 20): a valid row, then any field replaced by anything -----------------

#: A valid row of each layout (core/layouts.py), the judgments layout as our export writes it.
LAYOUT_ROWS: dict[str, dict] = {
    "records": {"id": "r1", "prompt": "q", "domain": "law", "candidates": [{"text": "a", "model": "m", "seed": 3}, "b"],
                "ranking": [1, 2], "tutor": "dr-a", "correction": "c", "corrected_index": 0, "all_bad": False,
                "strength": 2, "rationale": "why", "flags": [[], ["unsafe"]],
                "ratings": [{"helpfulness": 4}, None], "gold_ranking": [1, 2], "created_at": "2026-01-01T00:00:00Z",
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes?"}]},
    "judgments": {"id": "x9", "prompt_id": "p1", "prompt": "q", "domain": "law", "messages": [],
                  "prompt_source": "f.jsonl", "prompt_created_at": "2026-01-01T00:00:00Z", "parent_judgment_id": None,
                  "candidates": [{"id": "c1", "text": "a", "model": "m", "model_revision": "r", "dtype": "bf16",
                                  "params": {"temperature": 0.8}, "seed": 1, "tokens": 5, "seconds": 0.5, "index": 0,
                                  "created_at": "2026-01-01T00:00:00Z", "origin": "generated", "set_id": None},
                                 {"id": "c2", "text": "b", "index": 1, "origin": "imported"}],
                  "ranking": [1, 2], "display_order": ["c2", "c1"], "all_bad": False, "flags": [[], []],
                  "ratings": [{}, {}], "rationale": "", "strength": 2, "correction": "better", "corrected_index": 1,
                  "correction_id": "k1", "correction_created_at": "2026-01-01T00:00:00Z", "tutor": "dr-a",
                  "tutor_id": "t1", "tutor_pseudonymised": False,
                  "session": {"id": "s1", "domain": "law", "guideline_version": "", "started_at": "2026-01-01T00:00:00Z",
                              "ended_at": None},
                  "judgment_domain": "law", "guideline_version": "", "seconds_spent": 12.5,
                  "created_at": "2026-01-01T00:00:00Z", "judgment_id": "j1", "supersedes": None,
                  "source_values": {"margin": 1.0, "scores": {"c1": 4.5}}},
    "trl-preference": {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1.0, "tutor": "dr-a",
                       "chosen_model": "m", "rejected_seed": 4, "chosen_flags": ["unsafe"], "rationale": "r"},
    "trl-preference-chat": {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
                            "rejected": [{"role": "assistant", "content": "b"}], "margin": 0.5},
    "hh-rlhf": {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
    "ultrafeedback": {"prompt": "q", "prompt_id": "u1",
                      "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                      "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
                      "messages": [{"role": "user", "content": "q"}], "score_chosen": 8.0, "score_rejected": 3},
    "nectar": {"prompt": "\n\nHuman: q\n\nAssistant:", "num_responses": 3, "turns": 1,
               "answers": [{"answer": "a", "model": "m1", "rank": 1}, {"answer": "b", "model": "m2", "rank": 2},
                           {"answer": "c", "model": "m3", "rank": 2}]},
}  # fmt: skip


def test_the_layout_rows_are_valid(tmp):
    """The fuzzed rows start from rows each layout takes (else the fuzz below proves little)."""
    for layout, row in LAYOUT_ROWS.items():
        path = tmp / f"valid-{layout}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        with Store.memory() as s:
            summary = import_file(s, path)
            assert summary.layout == layout and summary.judgments == 1, (layout, summary)


def _paths(value, path=()):
    """Every (path, value) in a JSON value: the fields to replace, nested ones included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    out = dict(value) if isinstance(value, dict) else list(value)
    out[head] = _replaced(value[head], rest, new)
    return out


def _deep(depth: int, leaf="x"):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: what a field may become: any JSON value, huge/non-finite numbers, deep and wide structures
field_values = st.one_of(
    json_values,
    huge_ints,
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2**53 + 1]),
    st.integers(0, 200).map(_deep),
    st.integers(0, 300).map(lambda n: list(range(n))),
    st.integers(0, 300).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(0, 150).map(lambda n: [f"answer {i}" for i in range(n)]),
    st.text(any_char, max_size=30),
)


@st.composite
def mutated_row(draw, layout: str) -> dict:
    """A valid row of ``layout`` with one to three fields (nested ones too) replaced, dropped or added."""
    row = LAYOUT_ROWS[layout]
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p, _ in _paths(row) if p]
        if not paths:  # every field dropped
            return {**row, draw(st.text(any_char, max_size=8)): draw(field_values)}
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if how == "drop" and isinstance(path[-1], str):
            parent = _paths_get(row, path[:-1])
            row = _replaced(row, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
        elif how == "add":
            row = {**row, draw(st.text(any_char, max_size=8)): draw(field_values)}
        else:
            row = _replaced(row, path, draw(field_values))
    return row


def _paths_get(value, path):
    for p in path:
        value = value[p]
    return value


@FUZZ
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUT_ROWS)), n=st.integers(1, 4))
def test_every_layout_with_any_field_replaced(tmp, data, layout, n):
    rows = [data.draw(st.one_of(mutated_row(layout), st.just(LAYOUT_ROWS[layout]))) for _ in range(n)]
    text = "\n".join(json.dumps(r) for r in rows)
    check(tmp, f"{layout}.jsonl", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUT_ROWS)), depth=st.integers(1, 3000), kind=st.sampled_from("[{m"))
def test_deep_nesting_at_every_layout(tmp, layout, depth, kind):
    """Nesting as deep as json itself gives up (and deeper): one line, never RecursionError."""
    row = json.dumps(LAYOUT_ROWS[layout])
    if kind == "[":
        inner = "[" * depth + "]" * depth
    elif kind == "{":
        inner = '{"a":' * depth + "1" + "}" * depth
    else:
        inner = "[" * depth + '{"a":' * depth + "null" + "}" * depth + "]" * depth
    field = sorted(LAYOUT_ROWS[layout])[depth % len(LAYOUT_ROWS[layout])]
    check(tmp, "deep.jsonl", (row[:-1] + f', "{field}": {inner}, "zz": 1}}').encode())


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUT_ROWS)), cut=st.floats(0, 1), copies=st.integers(1, 3))
def test_truncated_files(tmp, layout, cut, copies):
    data = ("\n".join(json.dumps(LAYOUT_ROWS[layout]) for _ in range(copies)) + "\n").encode()
    check(tmp, "cut.jsonl", data[: int(len(data) * cut)])


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUT_ROWS)), data=st.data())
def test_random_bytes_spliced_into_a_valid_file(tmp, layout, data):
    good = (json.dumps(LAYOUT_ROWS[layout], ensure_ascii=False) + "\n").encode()
    at = data.draw(st.integers(0, len(good)))
    junk = data.draw(st.binary(max_size=12))
    drop = data.draw(st.integers(0, 4))
    check(tmp, "spliced.jsonl", good[:at] + junk + good[at + drop :])


def check_parquet(tmp: Path, rows: list) -> None:
    """Rows written as Parquet (when pyarrow can type them): imported, or refused cleanly."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from hypothesis import assume

    path = tmp / "rows.parquet"
    try:  # rows pyarrow cannot type or write are no test of the importer
        pq.write_table(pa.Table.from_pylist(rows), path)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        assume(False)
        return
    check_file(path, n_lines=len(rows))


def check_file(path: Path, n_lines: int) -> None:
    store = fresh_store(path.parent)
    before = snapshot(store)
    try:
        try:
            import_file(store, path)
        except ImportFileError as e:
            assert e.errors and all(0 <= err.line <= n_lines for err in e.errors), e.errors
            assert len(str(e).splitlines()) == 1 and "nothing was imported" in str(e)
            assert snapshot(store) == before
        else:
            assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


@FUZZ
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUT_ROWS)), n=st.integers(1, 3))
def test_every_layout_as_parquet(tmp, data, layout, n):
    rows = [data.draw(st.one_of(mutated_row(layout), st.just(LAYOUT_ROWS[layout]))) for _ in range(n)]
    check_parquet(tmp, rows)


@FUZZ
@given(data=st.binary(max_size=400), cut=st.floats(0, 1))
def test_bytes_and_truncated_parquet(tmp, data, cut):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp / "good.parquet"
    if not good.exists():
        pq.write_table(pa.Table.from_pylist([LAYOUT_ROWS["trl-preference"]] * 3), good)
    whole = good.read_bytes()
    for name, blob in (("random.parquet", data), ("cut.parquet", whole[: int(len(whole) * cut)])):
        path = tmp / name
        path.write_bytes(blob)
        check_file(path, n_lines=3)


def check_as(tmp: Path, layout: str, data: bytes) -> None:
    """``data`` imported with ``--format layout``: a summary, or a clean refusal."""
    path = tmp / "as.jsonl"
    path.write_bytes(data)
    store = fresh_store(tmp)
    before = snapshot(store)
    try:
        import_file(store, path, layout=layout)
    except ImportFileError as e:
        assert len(str(e).splitlines()) == 1 and "nothing was imported" in str(e)
        assert snapshot(store) == before
    finally:
        store.close()


@pytest.mark.parametrize("layout", sorted(LAYOUT_ROWS))
def test_each_layout_read_as_every_other(tmp, layout):
    """--format names a layout the rows are not in (found by the CLI fuzz: KeyError)."""
    for row in LAYOUT_ROWS.values():
        check_as(tmp, layout, (json.dumps(row) + "\n").encode())
        check_as(tmp, layout, (json.dumps({k: v for k, v in row.items() if k != "candidates"}) + "\n").encode())


@FUZZ
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUT_ROWS)), forced=st.sampled_from(sorted(LAYOUT_ROWS)))
def test_any_row_read_as_any_layout(tmp, data, layout, forced):
    row = data.draw(st.one_of(mutated_row(layout), st.just(LAYOUT_ROWS[layout])))
    check_as(tmp, forced, (json.dumps(row) + "\n").encode("utf-8", "surrogatepass"))
