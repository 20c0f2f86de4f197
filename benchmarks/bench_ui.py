"""UI latency: event-loop stalls while K candidates stream, and time from launch to a window.

    python benchmarks/bench_ui.py            # the tiny test model (built in a temp folder)
    python benchmarks/bench_ui.py --real     # also the embedded Gemma 3 270M (slow first time)

Stalls: a QTimer ticks every 5 ms on the GUI thread while the main window streams K=4
candidates; the gaps between ticks beyond 5 ms are time the event loop could not run.
Reports max and p99 (target: p99 < 50 ms). Launch: a subprocess builds the app and prints
when the window is first exposed; reports the wall time from spawning it (target < 1.5 s)
and whether torch was imported before the window showed (it must not be).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

LAUNCH_CHILD = r"""
import os, sys, time, tempfile
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings
tmp = tempfile.mkdtemp()
QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
from hitl_desktop import app as app_module
from hitl_desktop.core.store import Store
from hitl_desktop.qt import theme
qapp = app_module._application(["bench"])
QCoreApplication.setOrganizationName("hitl-desktop-bench")
theme.apply(qapp)
store = Store.open(os.path.join(tmp, "bench.db"))
window = app_module.create_window(store=store)

class Exposed(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Expose and window.windowHandle() is not None and window.windowHandle().isExposed():
            print("shown", "torch" in sys.modules, flush=True)
            qapp.quit()
        return False

f = Exposed()
window.show()
window.windowHandle().installEventFilter(f)
qapp.exec()
store.close()
"""


def measure_launch(runs: int = 3) -> dict:
    times, torch_loaded = [], []
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH_CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        line = proc.stdout.readline() if proc.stdout else ""
        elapsed = time.perf_counter() - t0
        proc.wait(timeout=60)
        if not line.startswith("shown"):
            raise SystemExit(f"launch child did not show a window: {line!r}")
        times.append(elapsed)
        torch_loaded.append(line.split()[1] == "True")
    return {"median_s": statistics.median(times), "max_s": max(times), "torch_before_shown": any(torch_loaded)}


def measure_stalls(factory, *, k: int = 4, max_new_tokens: int = 128, label: str = "") -> dict:
    from PySide6.QtCore import QCoreApplication, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from hitl_desktop.core.guidelines import GuidelineLibrary
    from hitl_desktop.core.store import Store
    from hitl_desktop.qt import theme
    from hitl_desktop.qt.main_window import MainWindow, process_events_until
    from hitl_desktop.qt.settings import AppSettings

    app = QApplication.instance() or QApplication(["bench"])
    QCoreApplication.setOrganizationName("hitl-desktop-bench")
    theme.apply(app)
    tmp = Path(tempfile.mkdtemp())
    store = Store.open(tmp / "bench.db")
    settings = AppSettings(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    settings.k = k
    settings.max_new_tokens = max_new_tokens
    window = MainWindow(
        store=store, settings=settings, guidelines=GuidelineLibrary(user_dir=tmp / "g"), backend_factory=factory
    )
    window.resize(1440, 900)
    window.show()
    window.start_model()
    if not process_events_until(lambda: window.model.state in ("ready", "error"), 900):
        raise SystemExit("model did not load")
    if window.model.state == "error":
        raise SystemExit(f"model failed: {window.messages.text()}")
    window.start_session(tutor_name="Bench", domain="medicine")

    batches = [0]
    window.model.tokens_streamed.connect(lambda *_: batches.__setitem__(0, batches[0] + 1))
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    results = []
    for prompt in (
        "A 58-year-old man with type 2 diabetes has an eGFR of 28. Should his metformin be continued?",
        "What are the red-flag symptoms in a patient with new lower back pain?",
    ):
        gaps.clear()
        batches[0] = 0
        last[0] = time.perf_counter()
        timer.start()
        t0 = time.perf_counter()
        window.add_prompt(prompt)
        process_events_until(lambda: not window.model.is_generating() and window.bench.phase != "generating", 900)
        wall = time.perf_counter() - t0
        timer.stop()
        gaps_sorted = sorted(gaps)
        p99 = gaps_sorted[int(0.99 * (len(gaps_sorted) - 1))] if gaps_sorted else 0.0
        results.append(
            {
                "model": label or window.model.backend_name,
                "k": k,
                "wall_s": round(wall, 2),
                "tokens_per_s": round(window.last_tokens_per_second or 0.0, 1),
                "ui_updates": batches[0],
                "ticks": len(gaps),
                "gap_p50_ms": round(statistics.median(gaps), 1) if gaps else 0.0,
                "gap_p99_ms": round(p99, 1),
                "gap_max_ms": round(max(gaps), 1) if gaps else 0.0,
            }
        )
    window.close()
    store.close()
    return {"runs": results}


def tiny_factory():
    from hitl_desktop.core.backends.tiny import build_tiny_model
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")

    def factory(path, on_progress):
        return TransformersBackend.load(folder, on_progress=on_progress)

    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="also stream from the embedded model")
    parser.add_argument("--launch-runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    figures: dict = {"launch": measure_launch(args.launch_runs)}
    figures["tiny"] = measure_stalls(tiny_factory(), max_new_tokens=256, label="tiny")
    if args.real:
        from hitl_desktop.qt.workers import default_backend_factory

        figures["real"] = measure_stalls(default_backend_factory, max_new_tokens=128)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    la = figures["launch"]
    print(f"launch to shown window: median {la['median_s']:.2f} s, max {la['max_s']:.2f} s "
          f"(target < 1.5 s); torch imported before shown: {la['torch_before_shown']}")
    for key in ("tiny", "real"):
        for r in figures.get(key, {}).get("runs", []):
            print(
                f"stream K={r['k']} [{r['model']}]: {r['wall_s']} s, {r['tokens_per_s']} tok/s, "
                f"{r['ui_updates']} UI updates; event-loop gaps p50 {r['gap_p50_ms']} ms, "
                f"p99 {r['gap_p99_ms']} ms, max {r['gap_max_ms']} ms (target p99 < 50 ms)"
            )


if __name__ == "__main__":
    main()
