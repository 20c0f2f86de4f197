"""core/collector.py: the cyclic collector held off while bulk operations run, nesting across
threads and kinds, and put back as it was when the last one ends."""

from __future__ import annotations

import gc
import threading

import pytest

from hitl_desktop.core import collector


@pytest.fixture(autouse=True)
def _restore():
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


def test_paused_turns_the_collector_off_and_back_on():
    gc.enable()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector.paused():
        pass
    with collector.sparse():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_sparse_raises_the_young_threshold_and_puts_it_back():
    gc.enable()
    gc.set_threshold(700, 10, 10)
    with collector.sparse(50_000):
        assert gc.isenabled() and gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_kinds_overlapping_in_any_order_restore_what_was_there():
    gc.enable()
    gc.set_threshold(700, 10, 10)
    export = collector.sparse(50_000)
    importing = collector.paused()
    export.__enter__()
    importing.__enter__()
    assert not gc.isenabled()
    export.__exit__(None, None, None)  # the export ends first: the import's pause holds
    assert not gc.isenabled()
    importing.__exit__(None, None, None)
    assert gc.isenabled() and gc.get_threshold() == (700, 10, 10)
    importing = collector.paused()
    importing.__enter__()
    with collector.sparse():
        assert not gc.isenabled()
    importing.__exit__(None, None, None)
    assert gc.isenabled() and gc.get_threshold() == (700, 10, 10)


def test_an_operation_that_fails_still_restores_the_collector():
    gc.enable()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("bad line")
    assert gc.isenabled()


def test_pauses_in_threads_end_with_the_last():
    gc.enable()
    inside, release = threading.Barrier(5), threading.Event()

    def op() -> None:
        with collector.paused():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=op) for _ in range(4)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()
