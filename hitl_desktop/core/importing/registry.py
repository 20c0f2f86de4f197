"""The layouts an import reads, in the order a file's first record is matched against them.

Adding a layout is one parser module (its ``Layout``: base.py) and one line in ``LAYOUTS``,
placed before the layouts whose fields its rows share (``records`` matches any row with a
``prompt``, so it comes last).
"""

from __future__ import annotations

import json
from typing import Any

from hitl_desktop.core.importing.base import Layout
from hitl_desktop.core.importing.full import LAYOUT as JUDGMENTS
from hitl_desktop.core.importing.layout_pairs import (
    HH_RLHF,
    NECTAR,
    TRL_PREFERENCE,
    TRL_PREFERENCE_CHAT,
    ULTRAFEEDBACK,
)
from hitl_desktop.core.importing.layout_records import LAYOUT as RECORDS
from hitl_desktop.core.layouts import LAYOUTS as BUILT_IN
from hitl_desktop.core.layouts import RowError

LAYOUTS: tuple[Layout, ...] = (
    NECTAR,
    TRL_PREFERENCE_CHAT,
    ULTRAFEEDBACK,
    TRL_PREFERENCE,
    HH_RLHF,
    JUDGMENTS,
    RECORDS,
)

_BY_NAME = {layout.name: layout for layout in LAYOUTS}


def names() -> list[str]:
    """The layouts' names: the built-in ones in README's order (core/layouts.py), then any other."""
    return [n for n in BUILT_IN if n in _BY_NAME] + [n for n in _BY_NAME if n not in BUILT_IN]


def get(name: str) -> Layout | None:
    return _BY_NAME.get(name)


def detect(obj: Any) -> Layout:
    """The layout of a record, from its fields; raises RowError naming the fields found."""
    if not isinstance(obj, dict):
        raise RowError("", f"a record must be a JSON object, not {type(obj).__name__}")
    for layout in LAYOUTS:
        if layout.matches(obj):
            return layout
    keys = sorted(map(str, obj))
    shown = [_cut(json.dumps(k)[1:-1]) for k in keys[:12]]
    found = ", ".join(shown) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "") or "none"
    raise RowError("", f"its fields fit no import layout (fields found: {found}; layouts: {', '.join(names())})")


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
