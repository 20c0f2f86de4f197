"""collector_paused: the cycle collector is off while an operation runs (its full collections
hold the GIL and stall the GUI thread), on again after the last of nested pauses."""

from __future__ import annotations

import gc
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hitl_desktop.qt.dashboard as dashboard_module
from hitl_desktop.qt.dashboard import QualityDashboard
from hitl_desktop.qt.ops import collector_paused


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


@given(st.lists(st.booleans(), min_size=1, max_size=12), st.booleans())
def test_nested_pauses_keep_the_collector_off_until_the_last_ends(steps, enabled_before):
    """steps: True enters a pause, False leaves the innermost one (if any); all are left at the end."""
    gc.enable() if enabled_before else gc.disable()
    open_pauses = []
    for enter in steps:
        if enter:
            p = collector_paused()
            p.__enter__()
            open_pauses.append(p)
        elif open_pauses:
            open_pauses.pop().__exit__(None, None, None)
        assert gc.isenabled() == (enabled_before and not open_pauses)
    while open_pauses:
        open_pauses.pop().__exit__(None, None, None)
    assert gc.isenabled() == enabled_before
    gc.enable()


def test_pauses_in_two_threads_overlap_and_an_error_still_ends_one():
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    t.start()
    assert entered.wait(5)
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("op failed")
    assert not gc.isenabled()  # the other thread's pause still holds
    leave.set()
    t.join(5)
    assert gc.isenabled()


def test_the_dashboards_worker_computes_with_the_collector_paused(qtbot, tmp_path, monkeypatch):
    from hitl_desktop.core.store import Store

    path = tmp_path / "lab.db"
    Store.open(path).close()
    monkeypatch.setattr(dashboard_module, "WORKER_THRESHOLD", -1)  # the worker path, as for a lab
    seen = []
    real = dashboard_module.figures
    monkeypatch.setattr(dashboard_module, "figures", lambda *a, **k: seen.append(gc.isenabled()) or real(*a, **k))
    store = Store.open(path)
    d = QualityDashboard(store)
    qtbot.addWidget(d)
    assert d.summary is None  # started after the dialog is shown, not in the constructor
    with qtbot.waitSignal(d.refreshed, timeout=10000):
        d.show()
    assert seen == [False] and gc.isenabled()
    d.close()
    store.close()


def test_preload_imports_the_modules_in_a_thread_of_its_own_after_the_delay(qtbot, tmp_path, monkeypatch):
    import sys

    from PySide6.QtCore import QObject

    from hitl_desktop.qt.ops import preload

    (tmp_path / "preload_probe_mod.py").write_text("import threading\nTHREAD = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "preload_probe_mod", raising=False)
    context = QObject()
    preload(context, "no_such_module_here", "preload_probe_mod", delay_ms=50)  # a missing one is skipped
    assert "preload_probe_mod" not in sys.modules  # not before the delay
    # in sys.modules from the start of its import: wait for its import to have finished
    qtbot.waitUntil(lambda: hasattr(sys.modules.get("preload_probe_mod"), "THREAD"), timeout=5000)
    assert sys.modules["preload_probe_mod"].THREAD == "preload"
