"""OperationRunner.wait: the GUI thread waiting for an operation (a view closing) is not
processing that operation's result, so the thread must end with the operation itself."""

from __future__ import annotations

import threading
import time

import pytest

from hitl_desktop.qt.ops import OperationRunner


@pytest.mark.parametrize("fails", [False, True])
def test_wait_returns_when_the_operation_ends_without_the_event_loop(qtbot, fails):
    runner = OperationRunner(name="test")
    release = threading.Event()
    results: list[object] = []

    def op(progress, cancelled):
        release.wait(5)
        if fails:
            raise ValueError("refused")
        return 42

    runner.run(op, on_success=results.append, on_failure=results.append)
    assert runner.is_running()
    release.set()
    start = time.monotonic()
    assert runner.wait(20000)  # no event processed here: the result is still queued
    assert time.monotonic() - start < 5  # not the whole timeout (it was, before)
    assert results == []  # delivered on the GUI thread, once it runs its loop
    # busy until then: a second operation would otherwise get this one's result
    assert runner.is_running()
    with pytest.raises(RuntimeError, match="already running"):
        runner.run(lambda p, c: "too soon")
    qtbot.waitUntil(lambda: results == (["ValueError: refused"] if fails else [42]), timeout=5000)
    assert not runner.is_running()
    runner.run(lambda p, c: "again", on_success=results.append)  # the runner is free again
    qtbot.waitUntil(lambda: results[-1] == "again", timeout=5000)
    assert runner.wait(5000)


def test_wait_times_out_on_an_operation_still_running(qtbot):
    runner = OperationRunner(name="test")
    release = threading.Event()
    runner.run(lambda p, c: release.wait(10))
    try:
        assert not runner.wait(200)
        assert runner.is_running()
    finally:
        release.set()
    assert runner.wait(5000)
