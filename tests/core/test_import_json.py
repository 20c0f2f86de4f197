"""An import reads a JSONL line with orjson where orjson gives what json gives (sources.py):
the same objects for every line json takes, the same refusal (json's message) for every line
it does not. Checked against json alone on lines made to catch the differences: integers
beyond 64 bits (orjson reads them as floats), floats at the edges, lone surrogates (escaped
and raw), NaN and Infinity, control characters, deep nesting, bad UTF-8."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.importing import sources


def _by_json(raw: bytes, monkeypatch) -> object:  # noqa: ANN001
    with monkeypatch.context() as m:
        m.setattr(sources, "_orjson", None)
        return sources._json_row(raw, 7)


def _same(raw: bytes, monkeypatch) -> None:  # noqa: ANN001
    got, want = sources._json_row(raw, 7), _by_json(raw, monkeypatch)
    assert type(got) is type(want)
    if isinstance(want, sources.Row):
        assert repr(got.obj) == repr(want.obj)  # repr: 1 and 1.0, -0.0 and 0.0 differ
        assert (got.line, got.check_text) == (want.line, want.check_text)
    else:
        assert got == want


EDGES = [
    b'{"a": 123456789012345678901234567890}', b'{"a": -9223372036854775809}', b'{"a": 9223372036854775808}',
    b'{"a": 18446744073709551616}', b'{"a": 1e400}', b'{"a": -1e400}', b'{"a": NaN}', b'{"a": Infinity}',
    b'{"a": 1.7976931348623159e308}', b'{"a": 5e-324}', b'{"a": 1e-400}', b'{"a": -0}', b'{"a": -0.0}',
    b'{"a": "\\ud800"}', b'{"\\udc00": 1}', b'{"a": "\\ud83d\\ude00"}', b'{"a": "\\u0000"}', b'{"a": "x\x01"}',
    b'{"a": "\xed\xa0\x80"}', b'{"a": "\xff"}', b'{"a": 1} x', b'{"a": 01}', b'{"a": 1.}', b'{"a": 1, "a": 2}',
    b'\x0c{"a": 1}', b'[' * 70 + b']' * 70, b'{"a":' * 70 + b'1' + b'}' * 70, b'[' * 2000 + b']' * 2000,
    b'{"a": [1, 2.5, true, null, "\xc3\xa9\xe2\x80\xa8"]}', b'"text"', b'[1]', b'{"n": 1E2, "m": 2e-7}',
]  # fmt: skip


@pytest.mark.parametrize("raw", EDGES)
def test_edge_lines_read_as_json_reads_them(raw, monkeypatch):
    _same(raw, monkeypatch)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_values, st.booleans())
def test_any_json_line_reads_as_json_reads_it(value, ascii_only):
    mp = pytest.MonkeyPatch()
    try:
        raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        _same(raw, mp)
    finally:
        mp.undo()


def test_orjson_reads_the_usual_line(monkeypatch):
    """The comparison above is not vacuous: a usual record's line goes through orjson."""
    assert sources._orjson is not None
    calls = []
    real = sources._orjson

    class Spy:
        JSONDecodeError = real.JSONDecodeError

        @staticmethod
        def loads(raw):  # noqa: ANN001, ANN205
            calls.append(raw)
            return real.loads(raw)

    monkeypatch.setattr(sources, "_orjson", Spy)
    row = sources._json_row(b'{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "seed": 123456789012345678}', 1)
    assert row.obj["seed"] == 123456789012345678 and len(calls) == 1
    sources._json_row(b'{"prompt": "p", "seed": 1234567890123456789}', 2)  # 19 digits: json's
    assert len(calls) == 1
