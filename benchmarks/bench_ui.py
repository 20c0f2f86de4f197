"""UI latency: event-loop stalls while a model loads and while K candidates stream, and time
from launch to a window.

    python benchmarks/bench_ui.py            # the tiny test model (built in a temp folder)
    python benchmarks/bench_ui.py --real     # also the embedded Gemma 3 270M (slow first time)
    python benchmarks/bench_ui.py --launch-only --baseline /work/main   # launch, vs another checkout

Stalls: a QTimer ticks every 5 ms on the GUI thread while the main window loads the model and
then streams K=4 candidates; the gaps between ticks beyond 5 ms are time the event loop could
not run. Each model is measured two ways in the same run: in the generation process (the
app's way: the model in a child process) and in a thread of the window's own process (the
first version's way, the baseline). Targets: longest gap while loading < 100 ms; p99 while
streaming < 50 ms. Launch: a subprocess runs the command's own path (``cli.main([])`` ->
``app.run``: a new database and settings in a temp folder, a returning tutor) and prints when
the window is first exposed; reports the median wall time from spawning it (target < 1.5 s)
and whether torch, pandas or numpy were imported before the window showed (none should be).
``--baseline TREE`` launches another checkout alternately in the same run and prints the
ratio of the medians.
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
import sys
import time
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings
from PySide6.QtWidgets import QApplication

# The installed `hitl-desktop` script's names; a returning tutor (no first-run dialog).
QCoreApplication.setOrganizationName("hitl-desktop")
QCoreApplication.setApplicationName("hitl-desktop")
QSettings().setValue("tutor/name", "Bench")


class Exposed(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Expose and obj.isWindowType() and obj.isExposed():
            print("shown", time.process_time(), "torch" in sys.modules, "pandas" in sys.modules, "numpy" in sys.modules, flush=True)
            QApplication.instance().removeEventFilter(self)
            QApplication.instance().quit()
        return False


exposed = Exposed()
app_exec = QApplication.exec


def exec_and_watch(*_args):  # the app's own QApplication, watched from its event loop's start
    QApplication.instance().installEventFilter(exposed)
    return app_exec()


QApplication.exec = exec_and_watch
if __name__ == "__main__":  # not again in the generation process (multiprocessing spawn)
    from hitl_desktop.cli import main

    sys.exit(main([]))
"""


def _launch_once(tree: Path | None, *, bytecode_cache: bool = True) -> tuple[float, float, list[str]]:
    """Spawn ``hitl-desktop`` (the command's own code path: cli.main -> app.run, a fresh
    database and settings in a temp folder) and time it until its window is first exposed.

    With ``bytecode_cache`` (the default) Python may write compiled modules (``__pycache__``),
    as an installed app has them (pip compiles on install). Without it PYTHONDONTWRITEBYTECODE
    is left as it is: in a checkout that has no ``__pycache__`` yet, with it set, the app's
    modules are compiled at every launch."""
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" or not bytecode_cache}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp),
        XDG_DATA_HOME=str(tmp),
        HITL_DESKTOP_DB=str(tmp / "hitl-desktop.db"),
    )
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    script = tmp / "launch_child.py"
    script.write_text(LAUNCH_CHILD)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp
    )
    line = proc.stdout.readline() if proc.stdout else ""
    elapsed = time.perf_counter() - t0
    proc.wait(timeout=60)
    if not line.startswith("shown"):
        raise SystemExit(f"launch child did not show a window: {line!r}")
    _, cpu, *flags = line.split()
    loaded = [name for name, flag in zip(("torch", "pandas", "numpy"), flags) if flag == "True"]
    return elapsed, float(cpu), loaded


def measure_launch(runs: int = 3, *, baseline: Path | None = None, bytecode_cache: bool = True) -> dict:
    """Launch to a shown window, ``runs`` times; with ``baseline`` (another checkout, e.g. the
    main branch) that tree is launched too, alternating run by run under the same load."""
    trees = {"this": Path(__file__).resolve().parents[1]}
    if baseline is not None:
        trees["baseline"] = baseline.resolve()
    times: dict[str, list[float]] = {name: [] for name in trees}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    loaded: dict[str, set[str]] = {name: set() for name in trees}
    if bytecode_cache:  # one launch each writes the cache; not counted
        for tree in trees.values():
            _launch_once(tree)
    for _ in range(runs):
        for name, tree in trees.items():
            elapsed, cpu_s, modules = _launch_once(tree, bytecode_cache=bytecode_cache)
            times[name].append(elapsed)
            cpu[name].append(cpu_s)
            loaded[name].update(modules)
    figures = {
        "median_s": statistics.median(times["this"]),
        "max_s": max(times["this"]),
        "runs_s": [round(t, 2) for t in times["this"]],
        "cpu_median_s": statistics.median(cpu["this"]),
        "torch_before_shown": "torch" in loaded["this"],
        "imported_before_shown": sorted(loaded["this"]),
    }
    if baseline is not None:
        figures["baseline_median_s"] = statistics.median(times["baseline"])
        figures["baseline_runs_s"] = [round(t, 2) for t in times["baseline"]]
        figures["baseline_cpu_median_s"] = statistics.median(cpu["baseline"])
        figures["baseline_imported_before_shown"] = sorted(loaded["baseline"])
        figures["ratio"] = figures["baseline_median_s"] / figures["median_s"]
    return figures


def measure_stalls(factory, *, k: int = 4, max_new_tokens: int = 128, label: str = "") -> dict:
    from PySide6.QtCore import QCoreApplication, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from hitl_desktop.core.guidelines import GuidelineLibrary
    from hitl_desktop.core.store import Store
    from hitl_desktop.qt import theme
    from hitl_desktop.qt.main_window import MainWindow
    from hitl_desktop.qt.ops import process_events_until
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
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    process_events_until(lambda: False, 0.3)  # the window settles first
    last[0] = time.perf_counter()
    timer.start()
    t0 = time.perf_counter()
    window.start_model()
    if not process_events_until(lambda: window.model.state in ("ready", "error"), 900):
        raise SystemExit("model did not load")
    timer.stop()
    load = {
        "load_s": round(time.perf_counter() - t0, 2),
        "load_gap_max_ms": round(max(gaps), 1) if gaps else 0.0,
        "load_gap_p99_ms": round(_p99(gaps), 1),
    }
    if window.model.state == "error":
        raise SystemExit(f"model failed: {window.messages.text()}")
    window.start_session(tutor_name="Bench", domain="medicine")

    batches = [0]
    window.model.tokens_streamed.connect(lambda *_: batches.__setitem__(0, batches[0] + 1))
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
        p99 = _p99(gaps)
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
    return {"load": load, "runs": results}


def _p99(gaps: list[float]) -> float:
    ordered = sorted(gaps)
    return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0


def tiny_folder() -> Path:
    from hitl_desktop.core.backends.tiny import build_tiny_model

    return build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")


def in_thread_factory(folder: Path | None):
    """The first version's way: the model loads and runs in a thread of the window's process."""

    def factory(path, on_progress):
        from hitl_desktop.core.backends.transformers_backend import load_backend

        return load_backend(folder, on_progress=on_progress, device="cpu")

    return factory


def process_factory(folder: Path | None):
    """The app's way: the model in the generation process."""

    def factory(path, on_progress, *, device=None):
        from hitl_desktop.core.backends.process import open_local_backend

        return open_local_backend(str(folder) if folder else None, device="cpu", on_progress=on_progress)

    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="also stream from the embedded model")
    parser.add_argument("--launch-runs", type=int, default=5)
    parser.add_argument("--skip-tiny", action="store_true", help="stream from the embedded model only (with --real)")
    parser.add_argument(
        "--process-only", action="store_true", help="only the app's way (the generation process), not the in-thread baseline"
    )
    parser.add_argument("--launch-only", action="store_true", help="measure the launch only")
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (no __pycache__ is written)"
    )
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another checkout (e.g. main) to launch alternately, for a ratio"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    figures: dict = {"launch": measure_launch(
            args.launch_runs, baseline=args.baseline, bytecode_cache=not args.no_bytecode_cache
        )}
    models = [] if args.launch_only or args.skip_tiny else [("tiny", tiny_folder(), 256)]
    if args.real:
        models.append(("embedded", None, 128))
    for name, folder, tokens in models:
        ways = [("process", process_factory(folder)), ("in-thread", in_thread_factory(folder))]
        for way, factory in ways[:1] if args.process_only else ways:
            figures[f"{name}/{way}"] = measure_stalls(factory, max_new_tokens=tokens, label=f"{name}, {way}")
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    la = figures["launch"]
    print(
        f"launch to shown window: median {la['median_s']:.2f} s (target < 1.5 s), max {la['max_s']:.2f} s, "
        f"runs {la['runs_s']}; CPU time of the app's process {la['cpu_median_s']:.2f} s; imported before shown: {', '.join(la['imported_before_shown']) or 'no torch/pandas/numpy'}"
    )
    if "ratio" in la:
        print(
            f"baseline {args.baseline}: median {la['baseline_median_s']:.2f} s, runs {la['baseline_runs_s']}; "
            f"CPU {la['baseline_cpu_median_s']:.2f} s; imported "
            f"before shown: {', '.join(la['baseline_imported_before_shown']) or 'none'}; "
            f"ratio baseline/this {la['ratio']:.2f}x"
        )
    for key, value in figures.items():
        if key == "launch":
            continue
        lo = value["load"]
        print(
            f"load [{key}]: {lo['load_s']} s; event-loop gaps max {lo['load_gap_max_ms']} ms, "
            f"p99 {lo['load_gap_p99_ms']} ms (target max < 100 ms)"
        )
        for r in value["runs"]:
            print(
                f"stream K={r['k']} [{r['model']}]: {r['wall_s']} s, {r['tokens_per_s']} tok/s, "
                f"{r['ui_updates']} UI updates; event-loop gaps p50 {r['gap_p50_ms']} ms, "
                f"p99 {r['gap_p99_ms']} ms, max {r['gap_max_ms']} ms (target p99 < 50 ms)"
            )


if __name__ == "__main__":
    main()
