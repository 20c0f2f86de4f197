"""The grading bench (benchmarks/bench_grading_ui.py) keeps running: its smoke load grades a
3 x 2 grid through the real views by key events and reports the event loop's gaps; the
script checks every cell itself and exits 1 when a key did not grade what it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_grading_ui.py"


def test_the_grading_ui_bench_smoke_run_grades_every_cell_and_reports_the_gaps():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("{")]
    r = json.loads(line)
    assert (r["criteria"], r["candidates"], r["cells"]) == (3, 2, 6)
    # 6 grading keys, Right and 2 Ups to the next column, P for the ranking
    assert r["keys"] == 10 and r["wrong_cells"] == 0 and r["ranking_taken"] is True
    assert 0 < r["median_gap_ms"] <= r["p95_gap_ms"] <= r["max_gap_ms"]
    assert 0 < r["ms_per_key"] <= r["max_ms_per_key"]
    assert r["worst_gap_after"] and r["cpu_ms_per_key"] > 0


DASHBOARD = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dashboard.py"


def test_the_dashboard_bench_smoke_run_opens_the_dashboard_and_reports_the_gaps():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(DASHBOARD), "--smoke", "--json"], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("{")]
    r = json.loads(line)
    # the figures of the database it built: 3,000 judgments by two tutors
    assert (r["size"], r["judgments"], r["tutors"]) == (3000, 3000, 2)
    assert 0 < r["figures_s"] <= r["charts_drawn_s"]
    assert r["ticks"] > 0 and 0 < r["gap_p50_ms"] <= r["gap_p99_ms"] <= r["gap_max_ms"]
    assert r["within_target"] == (r["gap_max_ms"] <= r["target_max_ms"] == 100.0)
