"""The launch: what is imported before the window shows, and what waits until it is on screen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QWidget

from hitl_desktop import app

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "torch", "transformers", "pyarrow", "markdown_it", "multiprocessing")


def test_the_app_module_and_an_open_store_import_nothing_heavy(tmp_path):
    """Everything the window needs before it shows (the app, its window, an opened and
    migrated store) comes without pandas, numpy, torch or markdown-it."""
    code = (
        "import sys\n"
        "import hitl_desktop.app\n"
        "from hitl_desktop.core.store import Store\n"
        f"Store.open({str(tmp_path / 'launch.db')!r}).close()\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or '-')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.split() == ["-"]


def test_sqlite_utils_still_takes_pandas_when_it_was_imported_first():
    """Hiding is only for the first import; a pandas imported later is the real one."""
    code = (
        "import sys\n"
        "from hitl_desktop.core import sqlitelib\n"
        "import pandas\n"
        "print(type(pandas).__name__, 'pandas' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.split() == ["module", "True"]


def test_when_exposed_runs_once_after_the_window_is_on_screen(qtbot):
    window = QWidget()
    qtbot.addWidget(window)
    calls: list[bool] = []
    window.show()
    app.when_exposed(window, lambda: calls.append(window.windowHandle().isExposed()))
    assert calls == []  # not during show(): the first frame comes first
    qtbot.waitUntil(lambda: calls != [], timeout=3000)
    qtbot.wait(50)
    assert calls == [True]


def test_when_exposed_falls_back_when_no_expose_comes(qtbot, monkeypatch):
    monkeypatch.setattr(app, "EXPOSE_FALLBACK_MS", 100)
    window = QWidget()  # never shown: never exposed
    qtbot.addWidget(window)
    window.winId()  # a native window handle that is not exposed
    calls: list[int] = []
    app.when_exposed(window, lambda: calls.append(1))
    assert calls == []
    qtbot.waitUntil(lambda: calls == [1], timeout=3000)
    qtbot.wait(150)
    assert calls == [1]
