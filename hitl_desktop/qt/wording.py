"""Counts in words for the window's labels: ``1 item``, ``3 items``, never ``3 item(s)``."""

from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """``n`` with ``noun``, singular for exactly one, else ``plural`` (default: noun + s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
