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
    assert "Imported 3 records from" in result.output
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
    ranking_rows = [r for r in rows if r["source"] == "consensus"]
    # dr-a: 4 > 1 > 10 ; dr-b: 4 > (10 = 1): consensus keeps 4 g first and both agree 4 g > the others.
    assert {r["tutor"] for r in ranking_rows} == {"consensus"}
    assert ("4 g/day", "10 g/day") in {(r["chosen"], r["rejected"]) for r in ranking_rows}
    # dr-a's correction still gives its own three pairs.
    assert sum(r["source"] == "correction" for r in rows) == 3
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db_path), "--json"]).output)
    assert stats["agreement"]["units"] == 3 and stats["agreement"]["prompts"] == 1
    assert stats["agreement"]["kendall_tau"] is not None


# ------------------------------------------------------------------------------ shell contract


@pytest.mark.parametrize(
    "args, words",
    [
        (["export", "--db", "{db}"], "missing option '--format'"),
        (["import", "{tmp}/nowhere.jsonl", "--db", "{db}"], "does not exist"),
        (["generate", "--db", "{db}", "-k", "12"], "12 is not in the range"),
        (["frobnicate"], "no such command"),
        (["stats", "--db", "{tmp}/missing.db"], "no such database"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_a_nonzero_exit(args, words, tmp_path, db_path, capsys):
    from hitl_desktop.cli import main

    args = [a.format(db=db_path, tmp=tmp_path) for a in args]
    code = main(args)
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and words in lines[0].lower()
    assert not (tmp_path / "missing.db").exists()


def test_main_returns_zero_on_success_and_for_help(capsys, jsonl, db_path):
    from hitl_desktop.cli import main

    assert main(["import", str(jsonl), "--db", str(db_path)]) == 0
    assert main(["--help"]) == 0 and "Commands:" in capsys.readouterr().out


def test_db_given_before_the_command_applies_to_it(runner, jsonl, db_path):
    assert runner.invoke(cli, ["--db", str(db_path), "import", str(jsonl)]).exit_code == 0
    result = runner.invoke(cli, ["--db", str(db_path), "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["prompts"] == 2


def test_every_command_has_a_help_that_reads_well(runner):
    from hitl_desktop.core.export import FORMATS

    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    listed = top.output.split("Commands:")[1]
    assert "..." not in listed  # short help that fits: no truncated sentence
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, name
        assert "--db PATH" in result.output
    export_help = " ".join(runner.invoke(cli, ["export", "--help"]).output.split())
    assert all(fmt in export_help for fmt in FORMATS)


def test_stats_human_output_is_a_tidy_table(runner, jsonl, db_path):
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    lines = runner.invoke(cli, ["stats", "--db", str(db_path)]).output.splitlines()
    assert lines[0] == f"Database: {db_path}"
    counts = {line.split()[0]: line for line in lines if line.startswith("  ") and len(line.split()) == 2}
    assert set(counts) >= {"prompts", "queued", "candidates", "judgments", "pairs", "tutors"}
    assert len({len(line) for line in counts.values()}) == 1  # numbers right-aligned in one column
    table = [line for line in lines if line.split()[:1] in (["domain"], ["finance"], ["medicine"])]
    assert [t.split()[0] for t in table] == ["domain", "finance", "medicine"]
    assert len({len(t) for t in table}) == 1
    assert any(line.strip().startswith("agreement") for line in lines)


def test_the_command_line_starts_without_torch_or_pandas():
    code = (
        "import sys, hitl_desktop.cli as c; c._store_module(); "
        "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'PySide6') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ no traceback (issue 20)


def _break_stats(monkeypatch):
    """A bug inside the stats command (it computes through core/lab_stats.py)."""
    from hitl_desktop.core import lab_stats as lab_stats_module

    def broken(store):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(lab_stats_module, "lab_stats", broken)


def test_an_unexpected_error_is_one_line_with_its_traceback_in_the_log(monkeypatch, capsys, jsonl, db_path):
    from hitl_desktop.cli import main
    from hitl_desktop.core.errors import log_path

    assert main(["import", str(jsonl), "--db", str(db_path)]) == 0
    capsys.readouterr()
    before = db_path.read_bytes()
    _break_stats(monkeypatch)
    monkeypatch.delenv("HITL_DEBUG", raising=False)
    code = main(["stats", "--db", str(db_path)])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: unexpected OverflowError: Python int too large") and "Traceback" not in err
    assert str(log_path()) in err
    logged = log_path().read_text()
    assert "Traceback" in logged and "in broken" in logged and "stats --db" in logged
    assert db_path.read_bytes() == before


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, capsys, jsonl, db_path, how):
    from hitl_desktop.cli import main

    main(["import", str(jsonl), "--db", str(db_path)])
    capsys.readouterr()
    _break_stats(monkeypatch)
    if how == "env":
        monkeypatch.setenv("HITL_DEBUG", "1")
        args = ["stats", "--db", str(db_path)]
    else:
        monkeypatch.delenv("HITL_DEBUG", raising=False)
        args = ["--debug", "stats", "--db", str(db_path)]
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert err.strip().splitlines()[-1].startswith("Error: unexpected OverflowError")


def test_an_unexpected_error_through_click_itself_is_one_line(monkeypatch, runner, jsonl, db_path):
    """The catch-all is the group's own invoke: click's standalone mode (and CliRunner) too."""
    runner.invoke(cli, ["import", str(jsonl), "--db", str(db_path)])
    _break_stats(monkeypatch)
    monkeypatch.delenv("HITL_DEBUG", raising=False)
    result = runner.invoke(cli, ["stats", "--db", str(db_path)])
    assert result.exit_code != 0 and not isinstance(result.exception, OverflowError)
    assert result.output.startswith("Error: unexpected OverflowError") and len(result.output.splitlines()) == 1


@pytest.mark.parametrize("bad_lines", [2, 7, 45])
def test_a_refused_file_lists_every_bad_line_under_a_summary(tmp_path, db_path, jsonl, capsys, bad_lines):
    from hitl_desktop.cli import main
    from hitl_desktop.core.importing import MAX_ERRORS_SHOWN

    main(["import", str(jsonl), "--db", str(db_path)])
    capsys.readouterr()
    before = db_path.read_bytes()
    bad = tmp_path / "bad.jsonl"
    rows = [{"prompt": "fine"}] + [{"prompt": f"q{i}", "candidates": ["a", "b"], "ranking": [1, 2, 3]} for i in range(bad_lines)]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code = main(["import", str(bad), "--db", str(db_path)])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    listed = min(bad_lines, MAX_ERRORS_SHOWN)
    assert lines[0].startswith(f"Error: {bad}: {bad_lines} bad lines") and "nothing was imported" in lines[0]
    assert ("the first 20 listed" in lines[0]) == (bad_lines > MAX_ERRORS_SHOWN)
    assert lines[1:] == [f"{bad}:{n}: ranking: has 3 ranks for 2 candidates (one rank per candidate)" for n in range(2, 2 + listed)]
    assert "Traceback" not in err
    assert db_path.read_bytes() == before


def test_one_line_of_an_exception():
    from hitl_desktop.core.errors import MAX_LINE, one_line

    assert one_line(ValueError("a\nb\n\n c")) == "ValueError: a b c"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(RuntimeError("x" * 10_000))) == MAX_LINE
    assert "\n" not in one_line(OSError(2, "No such file\nor folder"))
