"""Counts in words for messages: ``1 item``, ``3 items``, never ``3 item(s)``.

Pure Python (the window's labels use it through ``qt/wording.py``, the command line and core's
messages directly).
"""

from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """``n`` with ``noun``, singular for exactly one, else ``plural`` (default: noun + s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def counted(n: int, phrase: str) -> str:
    """``n`` with a phrase whose plural ending is written ``(s)`` (a stable key, such as the
    export's drop reasons in ``core.ranking``): ``counted(1, "pair(s) dropped")`` is
    "1 pair dropped", ``counted(2, ...)`` "2 pairs dropped"."""
    return f"{n} {phrase.replace('(s)', '' if n == 1 else 's')}"
