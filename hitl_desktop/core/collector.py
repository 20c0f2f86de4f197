"""Python's cyclic garbage collector held off while a bulk operation builds many objects.

An import, a merge, an export or the Quality dashboard's figures make millions of small
objects (rows, records, dicts) that reference counting frees a batch at a time; none of them
is cyclic, but each full collection walks every live object of the process (measured: a
fifth of an import's time, a quarter of an export's; 100-180 ms a sweep in the dashboard's
worker, a stall of the GUI thread as long, since a collection holds the GIL throughout).

* :func:`paused`: the collector off for the operation (import, merge, the dashboard).
* :func:`sparse` ``(young=50_000)``: a collection every ``young`` new containers instead of
  700 (an export: what other code makes still goes, memory stays flat).

Both nest, across threads and with each other: one lock and one record of what was there
before the first operation began, put back when the last one ends (never turning on a
collector that was off). Memory stays bounded by a batch: only cycles wait.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

__all__ = ["paused", "sparse"]

_lock = threading.Lock()
#: operations under way of each kind; what the collector was before the first of them
_state: dict = {"paused": 0, "sparse": 0, "young": 0, "enabled": True, "threshold": (700, 10, 10)}


def _apply() -> None:
    """The collector as the operations under way want it (called with the lock held)."""
    if _state["paused"]:
        gc.disable()
        return
    if _state["enabled"]:
        gc.enable()
    if _state["sparse"]:
        saved = _state["threshold"]
        gc.set_threshold(max(_state["young"], saved[0]), *saved[1:])
    else:
        gc.set_threshold(*_state["threshold"])


@contextmanager
def _held(kind: str, young: int = 0) -> Iterator[None]:
    with _lock:
        if _state["paused"] == 0 and _state["sparse"] == 0:
            _state["enabled"], _state["threshold"] = gc.isenabled(), gc.get_threshold()
        _state[kind] += 1
        if kind == "sparse":
            _state["young"] = max(_state["young"], young)
        _apply()
    try:
        yield
    finally:
        with _lock:
            _state[kind] -= 1
            if _state["sparse"] == 0:
                _state["young"] = 0
            _apply()


def paused() -> AbstractContextManager[None]:
    """The collector off while the ``with`` block runs (see the module doc)."""
    return _held("paused")


def sparse(young: int = 50_000) -> AbstractContextManager[None]:
    """A collection every ``young`` new containers while the ``with`` block runs."""
    return _held("sparse", young)
