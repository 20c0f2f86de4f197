"""What an import takes: the size, depth and number limits every layout checks.

A value past a limit refuses its line (README "What an import refuses"), with the limit in
the message; nothing here writes. The limits keep one record's memory bounded (a 60 MB prompt
took 380 MB to read), keep every number storable (SQLite's INTEGER is 64-bit) and keep text
that some reader would cut short (a NUL character) out of the database.
"""

from __future__ import annotations

import json
from typing import Any

#: One JSONL line (one record, whatever its layout), in bytes: refused before it is parsed.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: A prompt, an earlier turn's content, a candidate's text, a correction: characters.
MAX_TEXT = 1_000_000
#: A rationale: characters.
MAX_RATIONALE = 100_000
#: An id, domain, tutor, model, role, time or any other short field: characters.
MAX_NAME = 1_000
#: Candidates (answers) in one record.
MAX_CANDIDATES = 100
#: Earlier turns in one record.
MAX_MESSAGES = 1_000
#: Arrays and objects nested in one record (a record of ours is 4 deep).
MAX_DEPTH = 64
#: SQLite's INTEGER: a seed, an index, a token count must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: ``json.dumps(value, ensure_ascii=False)`` without an encoder per call
_to_json = json.JSONEncoder(ensure_ascii=False).encode


class LimitError(Exception):
    """A value an import does not take; ``field`` names it in the record ("" for the line)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message never holds a whole field."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def size(n: int) -> str:
    """``1,000,000 characters`` / ``16 MB``."""
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 else f"{n:,}"


def check_length(value: str, field: str, limit: int) -> str:
    """``value`` unless it is longer than ``limit`` characters."""
    if len(value) > limit:
        raise LimitError(field, f"is {len(value):,} characters long, above the limit of {limit:,}")
    return value


def check_int(value: Any, field: str, *, low: int = INT64_MIN, high: int = INT64_MAX, what: str = "an integer") -> int:
    """An integer from ``low`` to ``high`` (a 64-bit integer by default); bools are not integers."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(field, f"must be {what}, not {type(value).__name__}")
    if not low <= value <= high:
        if (low, high) == (INT64_MIN, INT64_MAX):
            raise LimitError(field, f"{shown(value)} does not fit in a 64-bit integer")
        raise LimitError(field, f"{shown(value)} is out of range ({low} to {high})")
    return value


def check_number(value: Any, field: str) -> int | float:
    """A finite number (an integer must fit in 64 bits), kept as given (int or float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitError(field, f"must be a number, not {type(value).__name__}")
    if isinstance(value, int):
        return check_int(value, field)
    if value != value or value in (float("inf"), float("-inf")):
        raise LimitError(field, f"must be a finite number, not {value}")
    return value


def check_strings(value: Any, path: str = "") -> None:
    """Refuse text SQLite or a reader would not keep as it is: a lone UTF-16 surrogate (from a
    broken ``\\u`` escape) or a NUL character, in any string or field name of ``value``."""
    if path == "":
        text = _to_json(value)
        if "\\u0000" not in text:
            try:  # the usual case, in one C call; walk the record only to name the bad field
                text.encode("utf-8")
                return
            except UnicodeEncodeError:
                pass
    stack: list[tuple[Any, str]] = [(value, path)]
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
        raise LimitError(where, f"holds a NUL character (U+0000) at position {text.index(chr(0))}; text may not hold NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise LimitError(where, f"holds a lone surrogate {text[e.start]!r} (broken \\u escape)") from None


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


def may_be_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON line could nest more than ``limit`` deep (a cheap count, no parsing)."""
    return raw.count(b"[") + raw.count(b"{") > limit
