"""A guard against PySide6 6.12.0's refcount error on ``Signal.emit()`` (the abort on quit).

In PySide6 6.12.0, ``SignalInstance.emit()`` returns ``True`` without taking a new reference
to it, so every emit made from Python takes one reference from ``True``. On CPython 3.11
``True`` is an ordinary object with a few thousand references: the window emits two signals
for every batch of streamed text, so after one or two prompts' candidates the count reaches
zero, usually while the interpreter finalizes, and the process aborts with ``Fatal Python
error: bool_dealloc: deallocating True or False`` (exit code 134). CPython 3.12 and later
make ``True``, ``False`` and ``None`` immortal, and the missing reference is harmless there.

:func:`guard` probes for the bug (a few emits on a throwaway object, on the calling thread,
before any other thread runs Qt) and, when it is there, gives ``True`` and ``False`` as many
references as 3.12's immortal objects have, so that no run can drain them. Nothing else changes:
``True`` is never deallocated on any interpreter anyway.
"""

from __future__ import annotations

import ctypes
import sys

#: References added to True and False: far more than any run can take away.
PIN = 1 << 48
PROBE_EMITS = 16

_guarded = False


def emit_leaks(emits: int = PROBE_EMITS) -> int:
    """How many references ``emits`` calls of a Python signal's ``emit()`` take from ``True``
    (0 on a PySide6 without the bug)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()  # no parent: deleted with its Python wrapper
    before = sys.getrefcount(True)
    for _ in range(emits):
        probe.ping.emit()
    return max(0, before - sys.getrefcount(True))


def guard() -> bool:
    """Pin ``True`` and ``False`` when this PySide6's ``emit()`` drops references (idempotent).
    True when the guard is in place (or was placed before)."""
    global _guarded
    if _guarded:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal bools: the missing reference does nothing
    if emit_leaks() == 0:
        return False
    for value in (True, False):
        ctypes.c_ssize_t.from_address(id(value)).value += PIN
    _guarded = True
    return True
