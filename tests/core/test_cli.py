"""The command line contract (DESIGN.md section 6): exit codes, one-line reasons, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.store import Store

RECORDS = [
    {"id": "m1", "prompt": "Max paracetamol dose?", "domain": "medicine", "candidates": ["4 g/day", "10 g/day", "1 g/day"], "ranking": [1, 3, 2], "tutor": "dr-a", "correction": "4 g/day; 2–3 g if liver risk", "corrected_index": 0},
    {"id": "m1", "prompt": "Max paracetamol dose?", "domain": "medicine", "candidates": ["4 g/day", "10 g/day", "1 g/day"], "ranking": [1, 2, 2], "tutor": "dr-b"},
    {"id": "f1", "prompt": "What is convexity?", "domain": "finance"},
]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


def test_import_then_stats_json(runner, jsonl, db_path):
    result = runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "3 record(s)" in result.output
    result = runner.invoke(cli, ["stats", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    for key in ("prompts", "candidates", "judgments", "pairs", "tutors", "domains"):
        assert key in stats
    assert (stats["prompts"], stats["candidates"], stats["judgments"], stats["tutors"]) == (2, 3, 2, 2)
    assert stats["pairs"] == (3 + 3) + 2  # dr-a: 3 ranking + 3 correction; dr-b: 2
    assert stats["domains"]["medicine"]["judgments"] == 2
    human = runner.invoke(cli, ["stats", "--db", str(db_path)])
    assert human.exit_code == 0 and "medicine" in human.output


def test_bad_import_exits_nonzero_with_one_line_and_changes_nothing(tmp_path, db_path, jsonl):
    CliRunner().invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "x", "candidates": ["a"], "ranking": [1, 2]}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "hitl_desktop", "import", str(bad), "--db", str(db_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.jsonl:2: ranking:" in lines[0] and "Traceback" not in proc.stderr
    with Store.open(db_path) as s:
        assert s.db["prompts"].count == 2


def test_foreign_database_is_refused_by_every_command(tmp_path, jsonl):
    other = tmp_path / "other.db"
    import sqlite3

    conn = sqlite3.connect(other)
    conn.execute("create table t (x)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    runner = CliRunner()
    for args in (["import", str(jsonl)], ["stats"], ["export", "--format", "sft", "--out", str(tmp_path / "o.jsonl")]):
        result = runner.invoke(cli, [*args, "--db", str(other)])
        assert result.exit_code != 0
        assert "another application" in result.output
    assert other.read_bytes() == before


def test_unknown_export_format_lists_the_formats(runner, jsonl, db_path, tmp_path):
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    result = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "csv-of-doom", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code != 0
    assert "trl-preference" in result.output and "nectar" in result.output and "kto" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_export_trl_preference_gives_the_pairs_of_the_rules(runner, jsonl, db_path, tmp_path):
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "trl-preference", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    got = sorted((r["chosen"], r["rejected"]) for r in rows)
    expected = sorted([
        ("4 g/day", "10 g/day"), ("4 g/day", "1 g/day"), ("1 g/day", "10 g/day"),  # dr-a ranking
        ("4 g/day; 2–3 g if liver risk", "4 g/day"), ("4 g/day; 2–3 g if liver risk", "10 g/day"),
        ("4 g/day; 2–3 g if liver risk", "1 g/day"),  # dr-a correction
        ("4 g/day", "10 g/day"), ("4 g/day", "1 g/day"),  # dr-b: 1 > (2 = 2)
    ])
    assert got == expected
    assert {r["prompt"] for r in rows} == {"Max paracetamol dose?"}
    assert all(r["tutor"].startswith("tutor-") for r in rows)


def test_export_filters_and_split(runner, jsonl, db_path, tmp_path):
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    out = tmp_path / "b.jsonl"
    result = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "trl-preference", "--out", str(out), "--tutor", "dr-b", "--keep-tutor-names"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and {r["tutor"] for r in rows} == {"dr-b"}


def test_export_of_a_missing_database_does_not_create_it(runner, tmp_path):
    missing = tmp_path / "missing.db"
    result = runner.invoke(cli, ["export", "--db", str(missing), "--format", "sft", "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0 and "no such database" in result.output
    assert not missing.exists()


def test_export_with_consensus_and_stats_agreement(runner, jsonl, db_path, tmp_path):
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    out = tmp_path / "consensus.jsonl"
    result = runner.invoke(cli, ["export", "--db", str(db_path), "--format", "trl-preference", "--out", str(out), "--consensus"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ranking_rows = [r for r in rows if r["source"] == "ranking"]
    # dr-a: 4 > 1 > 10 ; dr-b: 4 > (10 = 1): consensus keeps 4 g first and both agree 4 g > the others.
    assert {r["tutor"] for r in ranking_rows} == {"consensus"}
    assert ("4 g/day", "10 g/day") in {(r["chosen"], r["rejected"]) for r in ranking_rows}
    # dr-a's correction still gives its own three pairs.
    assert sum(r["source"] == "correction" for r in rows) == 3
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db_path), "--json"]).output)
    assert stats["agreement"]["units"] == 3 and stats["agreement"]["prompts"] == 1
    assert stats["agreement"]["kendall_tau"] is not None
