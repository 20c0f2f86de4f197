"""Counts in words for the window's labels: ``1 item``, ``3 items``, never ``3 item(s)``
(the rule lives in ``core/wording.py``; the views import it from here)."""

from __future__ import annotations

from hitl_desktop.core.wording import count, counted

__all__ = ["count", "counted"]
