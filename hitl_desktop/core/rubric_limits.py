"""What a rubric file takes: the size, depth and number limits of the ``rubrics`` and
``rubric-grades`` layouts (core/rubric_formats.py).

The general limits and checks are the importer's (``core/importing/limits.py``: one JSONL
line, a text, a short field, earlier turns, nesting, SQLite's 64-bit INTEGER), so a file is
refused by a rubric layout where the record layouts refuse it; the rubric ones (criteria per
rubric, a criterion's text, tags) are this module's own. A value past a limit refuses its line
with :class:`LimitError` naming the field; nothing here writes.
"""

from __future__ import annotations

from hitl_desktop.core.importing.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_MESSAGES,
    MAX_NAME,
    MAX_RATIONALE,
    MAX_TEXT,
    LimitError,
    check_depth,
    check_int,
    check_length,
    check_number,
    check_strings,
    shown,
)

__all__ = [
    "INT64_MAX", "INT64_MIN", "MAX_CRITERIA", "MAX_CRITERION", "MAX_DEPTH", "MAX_LINE_BYTES",
    "MAX_MESSAGES", "MAX_NAME", "MAX_RATIONALE", "MAX_TAGS", "MAX_TEXT", "LimitError",
    "check_count", "check_depth", "check_int", "check_version", "check_length", "check_number", "check_strings",
    "one_line", "shown",
]  # fmt: skip

# -- the rubric layouts' own ---------------------------------------------------------------------

#: Criteria in one rubric, and so grades in one rubric-grades row (HealthBench: median 11).
MAX_CRITERIA = 500
#: One criterion's text: characters (a criterion is a sentence or two).
MAX_CRITERION = 10_000
#: Tags of one criterion, example tags of one prompt.
MAX_TAGS = 100


def one_line(text: str) -> str:
    """``text`` with every control character (a newline in a field name) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def check_count(value: list, field: str, limit: int, what: str) -> list:
    if len(value) > limit:
        raise LimitError(field, f"holds {len(value):,} {what}, above the limit of {limit:,}")
    return value


def check_version(value: object, field: str) -> int:
    """A rubric version: an integer from 1 to SQLite's largest (``must be a positive integer, not 0``)."""
    if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= INT64_MAX:
        raise LimitError(field, f"must be a positive integer, not {shown(value)}")
    return check_int(value, field, what="a positive integer")
