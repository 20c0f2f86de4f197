"""What a rubric file takes: the size, depth and number limits of the ``rubrics`` and
``rubric-grades`` layouts (core/rubric_formats.py).

The general limits have the values of the importer's ``core/importing/limits.py`` (one JSONL
line, a text, a short field, earlier turns, nesting, SQLite's 64-bit INTEGER), so a file is
refused by a rubric layout where the record layouts refuse it; the rubric ones (criteria per
rubric, a criterion's text, tags) are this module's own. A value past a limit refuses its line
with :class:`LimitError` naming the field; nothing here writes.

(Kept apart from the importer's module while both are on their branches: after the merge
these values can come from ``core.importing.limits`` and this module keep only its own.)
"""

from __future__ import annotations

import json
import math
from typing import Any

# -- the importer's limits (core/importing/limits.py), by value ------------------------------------

#: One JSONL line (one record), in bytes: refused before it is parsed.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: A prompt, an earlier turn's content, a completion, an ideal completion: characters.
MAX_TEXT = 1_000_000
#: A rationale; here a grade's explanation: characters.
MAX_RATIONALE = 100_000
#: An id, tutor, grader, model, author, tag or any other short field: characters.
MAX_NAME = 1_000
#: Earlier turns in one record.
MAX_MESSAGES = 1_000
#: Arrays and objects nested in one record (a rubric row is 4 deep).
MAX_DEPTH = 64
#: SQLite's INTEGER: a rubric version must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# -- the rubric layouts' own ---------------------------------------------------------------------

#: Criteria in one rubric, and so grades in one rubric-grades row (HealthBench: median 11).
MAX_CRITERIA = 500
#: One criterion's text: characters (a criterion is a sentence or two).
MAX_CRITERION = 10_000
#: Tags of one criterion, example tags of one prompt.
MAX_TAGS = 100

_to_json = json.JSONEncoder(ensure_ascii=False).encode


class LimitError(Exception):
    """A value a rubric file may not hold; ``field`` names it in the record ("" for the line)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message never holds a whole field."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str) -> str:
    """``text`` with every control character (a newline in a field name) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def check_length(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise LimitError(field, f"is {len(value):,} characters long, above the limit of {limit:,}")
    return value


def check_count(value: list, field: str, limit: int, what: str) -> list:
    if len(value) > limit:
        raise LimitError(field, f"holds {len(value):,} {what}, above the limit of {limit:,}")
    return value


def check_int(value: Any, field: str, *, low: int = INT64_MIN, high: int = INT64_MAX,
              what: str = "an integer") -> int:
    """An integer from ``low`` to ``high`` (64-bit by default); a bool is not an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(field, f"must be {what}, not {type(value).__name__}")
    if not low <= value <= high:
        if (low, high) == (INT64_MIN, INT64_MAX):
            raise LimitError(field, f"{shown(value)} does not fit in a 64-bit integer")
        raise LimitError(field, f"must be {what}, not {shown(value)}")
    return value


def check_number(value: Any, field: str) -> int | float:
    """A finite number (an integer must fit in 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitError(field, f"must be a number, not {type(value).__name__}")
    if isinstance(value, int):
        return check_int(value, field)
    if not math.isfinite(value):
        raise LimitError(field, f"must be a finite number, not {value}")
    return value


def check_strings(value: Any) -> None:
    """Refuse text SQLite or a reader would not keep as it is: a NUL character or a lone UTF-16
    surrogate (a broken ``\\u`` escape), in any string or field name of the record."""
    text = _to_json(value)
    if "\\u0000" not in text:
        try:  # the usual case, in one C call; the record is walked only to name the field
            text.encode("utf-8")
            return
        except UnicodeEncodeError:
            pass
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_one_string(item, where)
        elif isinstance(item, dict):
            for k, v in reversed(list(item.items())):
                name = str(k)
                _check_one_string(name, f"{where}.{shown(name)}" if where else shown(name))
                stack.append((v, f"{where}.{name}" if where else name))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))


def _check_one_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise LimitError(where, f"holds a NUL character (U+0000) at position {text.index(chr(0))}; "
                                "text may not hold NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise LimitError(where, f"holds a lone surrogate {text[e.start]!r} (a broken \\u escape)") from None


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse arrays and objects nested more than ``limit`` deep, naming the top field."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, top = stack.pop()
        if isinstance(item, dict):
            children = [(v, str(k)) for k, v in item.items()]
        elif isinstance(item, list):
            children = [(v, "") for v in item]
        else:
            continue
        if depth > limit:
            raise LimitError(top, f"is nested too deeply (more than {limit} levels of arrays and objects)")
        for child, key in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1, top or key))
