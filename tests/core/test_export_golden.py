"""Golden comparison (issue 18): the export's fast pair rows (``ranking.pair_specs``, sides
shared across a judgment's pairs, orjson) give exactly the rows and bytes of a straightforward
reference: every pair a ``PreferencePair`` (``ranking.pairs_for_item``), every row a dict built
field by field from it, every line ``json`` with ``ensure_ascii=False``; Parquet the table
pyarrow makes from the reference rows. On a varied lab (tests/core/golden_lab.py: ties,
all-bad, strengths, flags, ratings, corrections, repeated texts, conversations, non-ASCII,
imported margins and scores, one to three tutors, adjudications), plain, --consensus and
--adjudicated."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.export import build_rows, export_dataset
from hitl_desktop.core.export.columns import FORMATS, arrow_schema
from hitl_desktop.core.export.files import jsonl_batch_encoder, jsonl_encoder, numeric_columns
from hitl_desktop.core.export.rows import render_prompt, render_transcript
from hitl_desktop.core.export.selection import Selection
from hitl_desktop.core.judged_reader import Filters
from hitl_desktop.core.ranking import dense_ranks, pairs_for_item
from hitl_desktop.core.types import ADJUDICATION_TUTOR_ID

sys.path.insert(0, str(Path(__file__).parent))
from golden_lab import build_golden  # noqa: E402

PAIRED = ("trl-preference", "trl-preference-chat", "hh-rlhf", "ultrafeedback")
VARIANTS = {"plain": {}, "consensus": {"consensus": True}, "adjudicated": {"adjudicated": True}}


# -- the reference: one PreferencePair per pair, each row written out field by field ---------


def ref_meta(p, item, tutor):
    source = p.source
    if source == "ranking" and item.judgment.tutor_id == ADJUDICATION_TUTOR_ID:
        source = "adjudication"
    return {
        "judgment_id": p.judgment_id,
        "domain": item.domain,
        "tutor": tutor,
        "chosen_model": f"tutor:{tutor}" if p.source == "correction" else p.chosen_model,
        "rejected_model": p.rejected_model,
        "chosen_seed": p.chosen_seed,
        "rejected_seed": p.rejected_seed,
        "source": source,
        "created_at": p.created_at,
        "chosen_flags": list(p.chosen_flags),
        "rejected_flags": list(p.rejected_flags),
        "chosen_ratings": dict(p.chosen_ratings) or None,
        "rejected_ratings": dict(p.rejected_ratings) or None,
        "rationale": p.rationale,
    }


def ref_conversation(item):
    return [*({"role": m.role, "content": m.content} for m in item.prompt.messages),
            {"role": "user", "content": item.prompt.text}]  # fmt: skip


def ref_rows(fmt, item, tutor, dropped):
    pairs = pairs_for_item(item, dropped)
    prompt = render_prompt(item.prompt.messages, item.prompt.text)
    j = item.judgment
    out = []
    for p in pairs:
        if fmt == "trl-preference":
            row = {"prompt": prompt, "chosen": p.chosen, "rejected": p.rejected, "margin": float(p.margin),
                   "prompt_id": p.prompt_id}  # fmt: skip
        elif fmt == "trl-preference-chat":
            row = {"prompt": ref_conversation(item), "chosen": [{"role": "assistant", "content": p.chosen}],
                   "rejected": [{"role": "assistant", "content": p.rejected}], "margin": float(p.margin),
                   "prompt_id": p.prompt_id}  # fmt: skip
        elif fmt == "hh-rlhf":
            head = render_transcript(item.prompt.messages, item.prompt.text) + "\n\nAssistant: "
            row = {"chosen": head + p.chosen, "rejected": head + p.rejected, "prompt_id": p.prompt_id}
        else:
            known = {c.id for c in item.candidates}
            dense = dense_ranks({cid: r for cid, r in j.ranks.items() if cid in known})
            levels = len(set(dense.values()))
            corr_id = j.correction.id if j.correction is not None else None

            def score(a, dense=dense, levels=levels, corr_id=corr_id):
                return float(levels + 1) if a == corr_id or a not in dense else float(levels - dense[a] + 1)

            kept = j.source_values.get("scores") or {}
            if p.chosen_id in kept and p.rejected_id in kept:
                scores = (float(kept[p.chosen_id]), float(kept[p.rejected_id]))
            elif p.chosen_ratings and p.rejected_ratings:
                scores = tuple(sum(v for _, v in r) / len(r) for r in (p.chosen_ratings, p.rejected_ratings))
            else:
                scores = (score(p.chosen_id), score(p.rejected_id))
            conv = ref_conversation(item)
            row = {"prompt": prompt, "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
                   "chosen": [*conv, {"role": "assistant", "content": p.chosen}],
                   "rejected": [*conv, {"role": "assistant", "content": p.rejected}],
                   "messages": [*conv, {"role": "assistant", "content": p.chosen}],
                   "score_chosen": scores[0], "score_rejected": scores[1], "hitl_prompt_id": p.prompt_id}  # fmt: skip
        row.update(ref_meta(p, item, tutor))
        out.append(row)
    return out


def ref_line(row) -> bytes:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


# -- the comparisons -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    store = build_golden(tmp_path_factory.mktemp("golden") / "lab.db", n_prompts=160)
    yield store
    store.close()


def items_of(store, **opts):
    sel = Selection(store, Filters(), consensus=opts.get("consensus", False), adjudicated=opts.get("adjudicated", False))
    return [it for batch in sel.batches() for it in batch]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", PAIRED)
def test_rows_match_the_reference(lab, fmt, variant):
    items = items_of(lab, **VARIANTS[variant])
    got_dropped, want_dropped = Counter(), Counter()
    got = build_rows(fmt, items, tutor_name=str.upper, dropped=got_dropped)
    want = [r for it in items for r in ref_rows(fmt, it, it.tutor_name.upper(), want_dropped)]
    assert len(want) > 100
    assert got == want
    assert [list(r) for r in got] == [list(r) for r in want]  # key order: the bytes depend on it
    assert got_dropped == want_dropped and sum(want_dropped.values()) > 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("fmt", PAIRED)
def test_files_match_the_reference(lab, tmp_path, fmt, variant):
    opts = VARIANTS[variant]
    names: dict[str, str] = {}
    want = [r for it in items_of(lab, **opts)
            for r in ref_rows(fmt, it, names.setdefault(it.tutor_name, lab.pseudonym(it.tutor_name))
                              if it.tutor_name != "consensus" else it.tutor_name, None)]  # fmt: skip
    export_dataset(lab, fmt=fmt, out=tmp_path / "out.jsonl", **opts)
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(ref_line(r) + b"\n" for r in want)
    export_dataset(lab, fmt=fmt, out=tmp_path / "out.parquet", **opts)
    assert pq.read_table(tmp_path / "out.parquet").equals(pa.Table.from_pylist(want, schema=arrow_schema(fmt)))


def nested_float(t) -> bool:
    if pa.types.is_floating(t):
        return True
    if pa.types.is_struct(t):
        return any(nested_float(f.type) for f in t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return nested_float(t.value_type)
    if pa.types.is_map(t):
        return nested_float(t.key_type) or nested_float(t.item_type)
    return False


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "judgments"])
def test_rows_nest_no_float(fmt):
    """The orjson path looks at a format's top-level numeric columns only (numeric_columns):
    its Arrow schema has no other float, at the top or nested."""
    schema = arrow_schema(fmt)
    assert not [f.name for f in schema if not pa.types.is_floating(f.type) and nested_float(f.type)]
    numeric = [f.name for f in schema if pa.types.is_floating(f.type) or pa.types.is_integer(f.type)]
    assert sorted(numeric_columns(fmt)) == sorted(numeric)


def test_judgments_rows_are_looked_at_whole():
    assert numeric_columns("judgments") is None


values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), scalars | st.floats() | st.lists(scalars | st.lists(st.text()))
                       | st.dictionaries(st.text(max_size=5), scalars), max_size=6))  # fmt: skip
def test_jsonl_encoder_writes_json_bytes(row):
    """orjson where it writes json's bytes, json itself for the rest (surrogates, big ints,
    floats below 1e-4 or not finite), on rows shaped like the formats' (floats top-level)."""
    assert jsonl_encoder()(row) == ref_line(row)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_exact_encoder_is_json(row):
    assert jsonl_encoder(exact=True)(row) == ref_line(row)


row_keys = st.sampled_from(["prompt", "chosen", "role", "content", "a\\\"b", "é"])
nested = st.lists(st.dictionaries(row_keys, st.text(alphabet='{}[],:"\\prompt\\u00e9', max_size=8), max_size=3), max_size=3)


texts = st.text(alphabet='{}[],:"\\prompt\u00e9\n', max_size=12)
some_row = st.dictionaries(row_keys, scalars | st.floats() | nested | texts, max_size=5)
prompt_first = st.builds(lambda head, rest: {"prompt": head, **rest}, texts | nested, some_row)


@settings(max_examples=500, deadline=None)
@given(st.lists(prompt_first, max_size=6) | st.lists(prompt_first | some_row, max_size=6))
def test_batch_encoder_writes_the_lines(batch):
    """A batch at once: the lines json writes, row by row, whatever the texts hold (braces,
    quotes, a nested dict with the rows' first key)."""
    want = b"".join(ref_line(r) + b"\n" for r in batch)
    assert jsonl_batch_encoder()(batch) == want
    floats = sorted({k for r in batch for k, v in r.items() if isinstance(v, float)})  # a schema's numeric columns
    assert jsonl_batch_encoder(floats=[*floats, "absent"])(batch) == want


def test_jsonl_encoder_edge_floats():
    for v in (1e-5, 5e-324, -2.5e-7, 1.5e-8, 1e16, 1e22, math.inf, -math.inf, math.nan, 0.0, -0.0, 0.0001, 1 / 3):
        row = {"margin": v, "seed": None}
        assert jsonl_encoder()(row) == ref_line(row)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bare_pairs_count_the_same(lab, variant):
    """stats counts with ``pair_specs(bare=True)``: the same pairs and the same left-out
    counts as ``pairs_for_item``, item by item."""
    from hitl_desktop.core.ranking import pair_specs

    for it in items_of(lab, **VARIANTS[variant]):
        a, b = Counter(), Counter()
        specs = pair_specs(it, a, bare=True)
        pairs = pairs_for_item(it, b)
        assert [(c[0], r[0], m, s) for c, r, m, s in specs] == [(p.chosen, p.rejected, p.margin, p.source) for p in pairs]
        assert a == b


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "judgments"])
def test_arrow_tables_are_from_pylist(lab, fmt):
    """files.table builds a column at a time: the table Table.from_pylist makes of the rows
    (missing keys null, extra keys left out), empty batches included."""
    from hitl_desktop.core.export.files import table

    rows = build_rows(fmt, items_of(lab, consensus=True))
    rows[0] = {**rows[0], "not a column": 1}
    rows[-1] = {k: v for i, (k, v) in enumerate(rows[-1].items()) if i % 2}
    schema = arrow_schema(fmt)
    for batch in (rows, rows[:1], []):
        assert table(fmt, batch).equals(pa.Table.from_pylist(batch, schema=schema))
