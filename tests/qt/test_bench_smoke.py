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
