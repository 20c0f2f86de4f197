"""What an import refuses (README "What an import refuses"): each limit by line and field, in
one line, with the limit in the message, and the database unchanged (issue 20)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.importing.limits import (
    MAX_CANDIDATES,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_NAME,
    MAX_RATIONALE,
    MAX_TEXT,
)
from hitl_desktop.core.store import Store

SEED = {"id": "s1", "prompt": "seeded", "candidates": ["a", "b"], "ranking": [1, 2], "tutor": "dr-a"}
TWO = {"prompt": "q", "candidates": ["a", "b"]}


def judged(**fields) -> dict:
    return {**TWO, "ranking": [1, 2], **fields}


def full_row(**candidate) -> dict:
    """A ``judgments`` row of two candidates, the first with ``candidate``'s fields."""
    cands = [{"id": "c1", "text": "a", **candidate}, {"id": "c2", "text": "b"}]
    return {"judgment_id": "j1", "prompt_id": "p1", "prompt": "q", "candidates": cands, "ranking": [1, 2],
            "tutor_id": "t1", "tutor": "dr-a", "created_at": "2026-01-01T00:00:00Z",
            "prompt_created_at": "2026-01-01T00:00:00Z"}  # fmt: skip


def fine_line(line: str) -> dict:
    """A good first line in the layout of ``line`` (a file's layout is its first line's)."""
    if '"judgment_id"' in line:
        return {**full_row(), "judgment_id": "j0", "prompt_id": "p0", "prompt": "fine",
                "candidates": [{"id": "c01", "text": "a"}, {"id": "c02", "text": "b"}]}  # fmt: skip
    if '"chosen"' in line:
        return {"prompt": "fine", "chosen": "a", "rejected": "b"}
    return {"prompt": "a fine line"}


CASES = [
    # (the line as text, the field named, words in the message)
    ('{"prompt": "x", "candidates": ' + "[" * 100_000 + "]" * 100_000 + "}", "", "nested too deeply"),
    ('{"prompt": "x", "rationale": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}", "", "nested too deeply"),
    ('{"prompt": "x", "m": ' + "[" * 70 + "]" * 70 + "}",
     "m", f"more than {MAX_DEPTH} levels"),
    (json.dumps(judged(ranking=[1, 10**30])), "ranking[1]", "above the number of candidates (2)"),
    (json.dumps(judged(ranking=[1, 3])), "ranking[1]", "above the number of candidates (2)"),
    (json.dumps({**TWO, "candidates": [{"text": "a", "seed": 10**25}, "b"]}), "candidates[0].seed", "64-bit integer"),
    (json.dumps({"prompt": "x", "chosen": "a", "rejected": "b", "margin": 10**30}), "margin", "too large"),
    (json.dumps({"prompt": "x", "chosen": "a", "rejected": "b", "margin": float("inf")}), "margin", "finite"),
    ('{"prompt": "x", "candidates": ["a", "b"], "ranking": [1, ' + "1" * 5000 + "]}", "", "4300 digits"),
    (json.dumps({"prompt": "x\u0000y"}), "prompt", "NUL"),
    (json.dumps({**TWO, "candidates": ["a\u0000", "b"]}), "candidates[0]", "NUL"),
    (json.dumps({"prompt": "x", "chosen": "a\u0000", "rejected": "b"}), "chosen", "NUL"),
    (json.dumps({"prompt": "x", "\u0000": 1}), "'\\x00'", "NUL"),  # a field's name
    (json.dumps({"prompt": "x" * (MAX_TEXT + 1)}), "prompt", f"above the limit of {MAX_TEXT:,}"),
    (json.dumps({**TWO, "candidates": ["a", "b" * (MAX_TEXT + 1)]}), "candidates[1]", f"{MAX_TEXT:,}"),
    (json.dumps(judged(correction="c" * (MAX_TEXT + 1))), "correction", f"{MAX_TEXT:,}"),
    (json.dumps({"prompt": "x", "rationale": "r" * (MAX_RATIONALE + 1)}), "rationale", f"{MAX_RATIONALE:,}"),
    (json.dumps({"prompt": "x", "tutor": "t" * (MAX_NAME + 1)}), "tutor", f"{MAX_NAME:,}"),
    (json.dumps({"prompt": "x", "domain": "d" * (MAX_NAME + 1)}), "domain", f"{MAX_NAME:,}"),
    (json.dumps({"prompt": "x", "candidates": [str(i) for i in range(MAX_CANDIDATES + 1)]}), "candidates", f"limit of {MAX_CANDIDATES}"),
    (json.dumps({"prompt": "x", "messages": [{"role": "user", "content": "c" * (MAX_TEXT + 1)}]}), "messages[0].content", f"{MAX_TEXT:,}"),
    (json.dumps(full_row(seed=2**63)), "candidates[0].seed", "64-bit integer"),
    (json.dumps(full_row(tokens=10**30)), "candidates[0].tokens", "64-bit integer"),
    (json.dumps(full_row(index=-(2**64))), "candidates[0].index", "64-bit integer"),
    (json.dumps(full_row(seconds=float("nan"))), "candidates[0].seconds", "finite"),
    (json.dumps(full_row(seconds=10**30)), "candidates[0].seconds", "64-bit integer"),
    (json.dumps(full_row(model_revision=["x"])), "candidates[0].model_revision", "must be a string"),
    (json.dumps({**full_row(), "seconds_spent": 10**40}), "seconds_spent", "64-bit integer"),
    (json.dumps({**full_row(), "source_values": {"margin": 10**400}}), "source_values.margin", "64-bit"),
    (json.dumps({**full_row(), "guideline_version": {"a": 1}}), "guideline_version", "must be a string"),
]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "hitl.db"
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps(SEED) + "\n")
    with Store.open(path) as s:
        import_file(s, seed)
    return path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("line, field, words", CASES, ids=[f"{i}-{c[1] or 'line'}" for i, c in enumerate(CASES)])
def test_each_limit_refuses_the_line_by_field_in_one_line(tmp_path, db, line, field, words):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(fine_line(line)) + "\n" + line + "\n")
    before = digest(db)
    with Store.open(db) as s, pytest.raises(ImportFileError) as e:
        import_file(s, bad)
    err = e.value.errors[0]
    assert (err.line, err.field) == (2, field), err
    assert words in err.message, err.message
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and len(msg) < 700, msg
    assert digest(db) == before


def test_a_line_over_the_record_limit_is_refused_before_it_is_read(tmp_path, db):
    bad = tmp_path / "big.jsonl"
    bad.write_text(json.dumps({"prompt": "x" * (MAX_LINE_BYTES + 10)}) + "\n")
    before = digest(db)
    with Store.open(db) as s, pytest.raises(ImportFileError) as e:
        import_file(s, bad)
    assert e.value.errors[0].line == 1 and "above the limit of 16 MB for one record" in str(e.value)
    assert digest(db) == before


def test_at_the_limits_a_record_is_taken(tmp_path):
    good = tmp_path / "edge.jsonl"
    rec = {"prompt": "p" * MAX_TEXT, "tutor": "t" * MAX_NAME, "rationale": "r" * MAX_RATIONALE,
           "candidates": [{"text": f"c{i}", "seed": 2**63 - 1 if i else -(2**63)} for i in range(MAX_CANDIDATES)],
           "ranking": [MAX_CANDIDATES] * MAX_CANDIDATES}  # fmt: skip
    good.write_text(json.dumps(rec) + "\n")
    with Store.memory() as s:
        summary = import_file(s, good)
        assert (summary.prompts, summary.candidates, summary.judgments) == (1, MAX_CANDIDATES, 1)
        seeds = {r[0] for r in s.db.execute("select seed from candidates")}
        assert {2**63 - 1, -(2**63)} <= seeds


@pytest.mark.parametrize("suffix, data, words", [
    (".csv", b"prompt,domain\nfine,law\nnul\x00here,law\n", "NUL"),
    (".csv", b"prompt,domain\n" + b"x" * 200_000 + b",law\n", "field limit"),
    (".jsonl", "\n".join([json.dumps({"prompt": "x"})] * 2).encode("utf-16"), "the file is UTF-16"),
    (".csv", "prompt\nx\n".encode("utf-16"), "the file is UTF-16"),
    (".jsonl", b'{"prompt": "caf\xe9"}\n', "not valid UTF-8 (byte 15)"),
])  # fmt: skip
def test_csv_and_encodings(tmp_path, db, suffix, data, words):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data)
    before = digest(db)
    with Store.open(db) as s, pytest.raises(ImportFileError) as e:
        import_file(s, bad)
    assert words in str(e.value) and len(str(e.value).splitlines()) == 1
    assert digest(db) == before


def test_the_issue_files_give_one_line_each_on_the_command_line(tmp_path, db):
    """The four files of issue 20 that gave a traceback, through the real entry point."""
    files = {
        "arrays.jsonl": CASES[0][0],
        "objects.jsonl": CASES[1][0],
        "rank.jsonl": CASES[3][0],
        "seed.jsonl": CASES[5][0],
    }
    before = digest(db)
    for name, line in files.items():
        (tmp_path / name).write_text(line + "\n")
        proc = subprocess.run(
            [sys.executable, "-m", "hitl_desktop", "import", str(tmp_path / name), "--db", str(db)],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode != 0
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith(f"Error: {tmp_path / name}:1: ") and "Traceback" not in proc.stderr
        assert digest(db) == before
