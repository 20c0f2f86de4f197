"""The event loop's gaps while a tutor grades a rubric by keyboard (issue 17).

    python benchmarks/bench_grading_ui.py            # 12 criteria x 4 candidates, 30 x 9
    python benchmarks/bench_grading_ui.py --load 20x6 --load 40x12 --json
    python benchmarks/bench_grading_ui.py --smoke    # 3 x 2, checks itself (tests/qt/test_bench_smoke.py)

The real views (``qt.rubric_views.RubricViews``: the rubric panel beside the grading grid)
follow the real ``core.rubric_bench.RubricBench`` over a workflow on a database in a temp
folder, shown offscreen at a window's size. For each load a rubric of C criteria is saved,
and every cell of the C x K grid is graded by key events sent through QTest, as a tutor does
it: in each candidate's column ``Y`` / ``X`` down the criteria (a fixed pseudo-random pattern),
then ``Right`` and ``Up`` back to the top of the next column; last ``P`` takes the proposed
ranking. The keys are sent from the event loop itself, one every ``--pace`` ms, while a
QTimer ticks every millisecond on the GUI thread: the gaps between its ticks are the time the
event loop could not run (the key's handling, the scores, the repaint). Printed per load: the
longest gap, the 95th percentile gap, the mean time one key press takes to handle
(``ms_per_key``, the ``QTest.keyClick`` call itself), the process's CPU time per key
(``cpu_ms_per_key``: with the repaints; a gap far above it is another process's turn) and
the number of keys. Target: the longest
gap < 50 ms (a keypress answered within a frame or three), p95 < 16 ms.

At the end the script checks that every cell holds the grade its key gave and that the
proposed ranking was taken; it exits 1 when one does not, so the smoke run is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer, qInstallMessageHandler  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget  # noqa: E402

from hitl_desktop.core.guidelines import GuidelineLibrary  # noqa: E402
from hitl_desktop.core.rubric_bench import RubricBench  # noqa: E402
from hitl_desktop.core.rubric_templates import RubricTemplates  # noqa: E402
from hitl_desktop.core.rubrics import AXES, Criterion  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402
from hitl_desktop.core.workflow import TutorWorkflow, import_prompts  # noqa: E402
from hitl_desktop.qt.rubric_grid import FIRST  # noqa: E402
from hitl_desktop.qt.rubric_views import RubricViews  # noqa: E402

K = Qt.Key
DEFAULT_LOADS = ("12x4", "30x9")


def _quiet(_kind, _context, message: str) -> None:
    """Qt's messages to stderr, but the offscreen plugin's one per window shown."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _criteria(n: int, rng: random.Random) -> list[Criterion]:
    out = []
    for i in range(n):
        points = rng.choice([-8, -5, -2, 1, 2, 3, 5, 6, 8, 10]) if i else 8  # the first one positive
        words = " ".join(rng.choice(["states", "the", "dose", "warns", "about", "renal", "function", "cites",
                                     "guidance", "asks", "pregnancy", "before", "advising"]) for _ in range(9))
        out.append(Criterion(text=f"{i + 1}. {words.capitalize()}", points=points,
                             tags=[f"axis:{AXES[i % len(AXES)]}"]))
    return out


def _workflow(folder: Path, n_candidates: int, rng: random.Random) -> tuple[Store, TutorWorkflow]:
    rec = {"id": "q1", "domain": "medicine",
           "prompt": "I have type 2 diabetes, my eGFR is 28 and I take metformin 1 g twice a day. Is that safe?",
           "candidates": [f"Answer {j + 1}: " + " ".join(rng.choice(["Stop", "metformin", "see", "your", "doctor",
                                                                       "eGFR", "below", "30", "lactic", "acidosis"])
                                                           for _ in range(80)) for j in range(n_candidates)]}
    path = folder / "set.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    store = Store.open(folder / "bench.db")
    import_prompts(store, path)
    wf = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=folder / "g"))
    wf.start_session(tutor_name="bench", domain="medicine")
    wf.open_item(wf.queue[0])
    return store, wf


def measure(n_criteria: int, n_candidates: int, *, pace_ms: int = 8, seed: int = 17) -> dict:
    """Grade a C x K grid by keys; the event loop's gaps meanwhile (see the module docstring)."""
    rng = random.Random(seed)
    app = QApplication.instance() or QApplication([])
    qInstallMessageHandler(_quiet)
    with tempfile.TemporaryDirectory(prefix="bench-grading-ui-") as tmp:
        folder = Path(tmp)
        store, wf = _workflow(folder, n_candidates, rng)
        bench = RubricBench(wf, templates=folder / "no-templates")
        views = RubricViews(bench, wf, templates=RubricTemplates.in_folder(folder / "no-templates"))
        host = QWidget()
        row = QHBoxLayout(host)
        row.addWidget(views.panel, 1)
        row.addWidget(views.grid, 2)
        host.resize(1600, 900)
        host.show()
        QTest.qWaitForWindowExposed(host)
        bench.load()
        bench.save_rubric(_criteria(n_criteria, rng))
        app.processEvents()
        grid = views.grid.view
        grid.setFocus()
        grid.setCurrentIndex(views.grid.model.index(0, FIRST))
        order = list(views.grid.model.order)

        want: dict[tuple[int, int], bool] = {}
        presses: list[K] = []
        for col in range(n_candidates):
            if col:
                presses += [K.Key_Right] + [K.Key_Up] * (n_criteria - 1)
            for r in range(n_criteria):
                met = rng.random() < 0.5
                want[(col, r)] = met
                presses.append(K.Key_Y if met else K.Key_X)
        presses.append(K.Key_P)
        accepted: list[dict] = []
        views.grid.ranking_accepted.connect(accepted.append)

        ticks: list[int] = []
        clock = QElapsedTimer()
        ticker = QTimer()
        ticker.setTimerType(Qt.TimerType.PreciseTimer)
        ticker.setInterval(1)
        ticker.timeout.connect(lambda: ticks.append(clock.nsecsElapsed()))
        handling: list[float] = []
        sent_at: list[int] = []  # when each key was sent (the clock's ns): which key a gap follows
        loop = QEventLoop()
        pacer = QTimer()
        pacer.setTimerType(Qt.TimerType.PreciseTimer)
        pacer.setInterval(pace_ms)
        keys = iter(presses)

        def press() -> None:
            key = next(keys, None)
            if key is None:
                pacer.stop()
                QTimer.singleShot(50, loop.quit)  # the last repaint's gap is counted too
                return
            sent_at.append(clock.nsecsElapsed())
            t0 = time.perf_counter()
            QTest.keyClick(QApplication.focusWidget() or grid, key)
            handling.append((time.perf_counter() - t0) * 1000)

        pacer.timeout.connect(press)
        clock.start()
        ticker.start()
        pacer.start()
        wall, cpu = time.perf_counter(), time.process_time()
        loop.exec()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ticker.stop()

        gaps = [(b - a) / 1e6 for a, b in zip(ticks, ticks[1:], strict=False)]
        worst = max(range(len(gaps)), key=gaps.__getitem__, default=None)
        worst_key = ""
        if worst is not None:
            before = [i for i, t in enumerate(sent_at) if t <= ticks[worst + 1]]
            worst_key = presses[before[-1]].name.removeprefix("Key_") + f" #{before[-1] + 1}" if before else "none"
        wrong = [(col, r) for (col, r), met in want.items()
                 if bench.cell(order[col], bench.criteria[r].id).met is not met]
        result = {
            "criteria": n_criteria, "candidates": n_candidates, "cells": len(want), "keys": len(presses),
            "max_gap_ms": round(max(gaps, default=0.0), 2), "p95_gap_ms": round(_percentile(gaps, 0.95), 2),
            "median_gap_ms": round(statistics.median(gaps) if gaps else 0.0, 2),
            "ms_per_key": round(statistics.fmean(handling) if handling else 0.0, 2),
            "max_ms_per_key": round(max(handling, default=0.0), 2),
            "worst_gap_after": worst_key, "seconds": round(wall, 2),
            # the process's CPU time per key (ticks included): above ms_per_key is the painting
            "cpu_ms_per_key": round(cpu * 1000 / len(presses), 2), "wrong_cells": len(wrong), "ranking_taken": bool(accepted),
        }
        views.close()
        host.close()
        host.deleteLater()
        app.processEvents()
        store.close()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", action="append", metavar="CxK",
                    help=f"criteria x candidates (repeatable; default {' and '.join(DEFAULT_LOADS)})")
    ap.add_argument("--pace", type=int, default=8, metavar="MS", help="ms between two keys (default 8)")
    ap.add_argument("--smoke", action="store_true", help="one tiny load (3x2), for the test that keeps this running")
    ap.add_argument("--json", action="store_true", help="one JSON line per load")
    args = ap.parse_args(argv)
    loads = ["3x2"] if args.smoke else (args.load or list(DEFAULT_LOADS))
    ok = True
    for spec in loads:
        try:
            c, k = (int(x) for x in spec.lower().split("x"))
        except ValueError:
            ap.error(f"--load {spec}: want CRITERIAxCANDIDATES, e.g. 12x4")
        r = measure(c, k, pace_ms=args.pace)
        ok = ok and r["wrong_cells"] == 0 and r["ranking_taken"]
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{c:>3} criteria x {k:>2} candidates: {r['keys']:>4} keys, max gap {r['max_gap_ms']:7.2f} ms, "
                  f"p95 {r['p95_gap_ms']:6.2f} ms, median {r['median_gap_ms']:5.2f} ms, "
                  f"{r['ms_per_key']:5.2f} ms per key (max {r['max_ms_per_key']:.2f}, CPU {r['cpu_ms_per_key']:.2f}); "
                  "longest gap after "
                  f"{r['worst_gap_after']}; "
                  f"wrong cells {r['wrong_cells']}, ranking taken {r['ranking_taken']}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
