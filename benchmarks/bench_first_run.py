"""The first start as a new tutor sees it: first window, first candidate, on a fresh model cache.

    python benchmarks/bench_first_run.py [--out FILE.json] [--warm] [--cache DIR] [--nice N]

Starts the real app (``hitl_desktop.app.main``, offscreen) on a new database with one prompt,
the embedded model and an empty model cache (``HITL_DESKTOP_CACHE_DIR`` = a temporary
folder), exactly as a first start after install: the model process converts the GGUF into
the cache, loads it and writes K candidates. It records, in seconds from the moment the
process was started:

* ``window``: the main window is on screen;
* ``model_ready``: the model is loaded (after the conversion);
* ``first_token``: the first streamed text of a candidate;
* ``first_candidates``: all K candidates written (the tutor can judge);
* every progress report the window got (``progress``: seconds, percent, words), which is what
  the status bar showed.

``--warm`` then starts it again on the same cache (a later start: no conversion). Prints one
JSON object (and writes it to ``--out``). It loads the real model: run it once, niced
(``--nice``, default 10), not in a loop. Install time is not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(db: str, events_path: str, started: float) -> int:
    """The app with hooks that write what happened, when (runs in the measured process)."""
    from PySide6.QtCore import QTimer

    from hitl_desktop import app
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Prompt

    with Store.open(db) as store:
        store.add_prompt(Prompt(text="What are the first signs of dehydration in an older adult?", domain="medicine"))
    events: dict = {"progress": []}

    def mark(name: str) -> None:
        events.setdefault(name, round(time.time() - started, 2))

    def save() -> None:
        Path(events_path).write_text(json.dumps(events, indent=1), encoding="utf-8")

    original = app.create_window

    def create_window(**kwargs):
        window = original(**kwargs)
        window.settings.tutor_name, window.settings.tutor_domains = "bench", ["medicine"]
        window.settings.last_domain = "medicine"
        app.when_exposed(window, lambda: mark("window"))
        window.model.load_progressed.connect(
            lambda f, m: events["progress"].append([round(time.time() - started, 2), round(100 * f), m])
        )
        window.model.model_loaded.connect(lambda _b: mark("model_ready"))
        window.model.tokens_streamed.connect(lambda rid, _b: rid and mark("first_token"))

        def done(_prompt_id) -> None:
            mark("first_candidates")
            events["k"] = len(window.bench.cards)
            events["status_while_loading"] = [p[2] for p in events["progress"]]
            save()
            QTimer.singleShot(100, window.close)

        def failed(message: str) -> None:
            events["error"] = message
            save()
            QTimer.singleShot(100, window.close)

        window.candidates_ready.connect(done)
        window.model.load_failed.connect(failed)
        window.model.crashed.connect(failed)
        return window

    app.create_window = create_window
    code = app.main([db])
    save()
    return code


def _run_once(work: Path, cache: Path, nice: int, label: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.json"
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HITL_DESKTOP_CACHE_DIR=str(cache),
        HITL_DESKTOP_DB=str(work / "default.db"),
        HITL_DESKTOP_NO_AUTO_BACKUP="1",
        XDG_CONFIG_HOME=str(work / "config"),
        XDG_DATA_HOME=str(work / "data"),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    started = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(work / "bench.db"), str(events), repr(started)],
        env=env, capture_output=True, text=True, timeout=1800,
        preexec_fn=(lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None,
    )
    result = json.loads(events.read_text(encoding="utf-8")) if events.exists() else {}
    result.update(run=label, exit_code=out.returncode, total=round(time.time() - started, 2))
    if out.returncode != 0 or "first_candidates" not in result:
        result["stderr_tail"] = out.stderr[-2000:]
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--child":
        return _child(args[1], args[2], float(args[3]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--warm", action="store_true", help="then a second start on the same cache")
    parser.add_argument("--cache", type=Path, help="the model cache to start from (default: a new, empty one)")
    parser.add_argument("--nice", type=int, default=10)
    opts = parser.parse_args(args)
    work = Path(tempfile.mkdtemp(prefix="hitl-first-run-"))
    cache = opts.cache or work / "model-cache"
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "cache": str(cache),
        "runs": [_run_once(work / "first", cache, opts.nice, "first start (empty cache)")],
    }
    if opts.warm:
        report["runs"].append(_run_once(work / "later", cache, opts.nice, "later start (cache filled)"))
    text = json.dumps(report, indent=1)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n", encoding="utf-8")
    return 0 if all(r.get("exit_code") == 0 and "first_candidates" in r for r in report["runs"]) else 1


if __name__ == "__main__":  # the model process (spawn) imports this file again: nothing runs then
    raise SystemExit(main())
