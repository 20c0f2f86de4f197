"""Reading an import file: its rows one at a time, in bounded memory, as ``(line, object)``.

JSONL is read line by line (a line over ``MAX_LINE_BYTES`` is skipped unread, and refused),
Parquet in row batches (row N is reported as line N), CSV (a prompt list) whole. A line that
is not a JSON object of at most ``MAX_DEPTH`` levels in valid UTF-8 comes as a ``LineError``
instead; whether the object fits a layout is the parsers' question.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.importing.limits import (
    MAX_DEPTH,
    MAX_LINE_BYTES,
    LimitError,
    check_depth,
    may_be_deep,
    size,
)
from hitl_desktop.core.importing.refusals import LineError

try:  # orjson parses a line several times faster; json stays the reference (see _json_row)
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency, but the import works without it
    _orjson = None

ProgressCallback = Callable[[int, int], None]  # (bytes read, total bytes)

#: a JSON escape that can make a lone UTF-16 surrogate (\ud800-\udfff) or a NUL: only a line
#: holding one needs its strings checked (a UTF-8 line cannot hold either otherwise)
_SUSPECT_TEXT = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")
#: Parquet rows read at a time
PARQUET_BATCH = 2_000
_TOO_DEEP = f"is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"
#: 19 digits in a row (every digit made a 0, then searched for; a regex takes ten times
#: longer): maybe an integer outside 64 bits, which orjson reads as a float
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


@dataclass
class Row:
    line: int
    obj: Any
    check_text: bool = True  # whether its strings may hold a surrogate or a NUL


def kind(path: str | os.PathLike[str]) -> str:
    """``csv``, ``parquet`` or ``jsonl`` (any other name), from the file's suffix."""
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".parquet": "parquet"}.get(suffix, "jsonl")


def read_rows(path: Path, on_progress: ProgressCallback | None = None) -> Iterator[Row | LineError]:
    """The file's rows, or a LineError for each line that cannot be one; raises OSError."""
    form = kind(path)
    if form == "csv":
        return _csv_rows(path.read_bytes())
    if form == "parquet":
        return _parquet_rows(path)
    return _jsonl_rows(path, on_progress)


def _jsonl_rows(path: Path, progress: ProgressCallback | None) -> Iterator[Row | LineError]:
    total = path.stat().st_size
    with open(path, "rb") as f:
        lineno = 0
        while True:
            chunk = f.readline(MAX_LINE_BYTES + 2)
            if not chunk:
                break
            long_line = len(chunk) > MAX_LINE_BYTES + 1 and not chunk.endswith(b"\n")
            if long_line:  # skip the rest of the line unread, measuring it
                length = len(chunk)
                while not chunk.endswith(b"\n"):
                    chunk = f.readline(1 << 20)
                    if not chunk:
                        break
                    length += len(chunk)
                lineno += 1
                yield LineError(lineno, "", f"is {length / 2**20:.1f} MB long, above the limit of {size(MAX_LINE_BYTES)} for one record")
                continue
            for raw in chunk.splitlines():  # a lone \r ends a line too, as in bytes.splitlines
                lineno += 1
                if progress and lineno % 2000 == 0:
                    progress(min(f.tell(), total), total)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if lineno == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
                    yield LineError(1, "", "is not valid UTF-8: the file is UTF-16 (save it as UTF-8)")
                    return  # its other lines would only say the same
                if not raw.strip():
                    continue
                yield _json_row(raw, lineno)
    if progress:
        progress(total, total)


def _json_row(raw: bytes, lineno: int) -> Row | LineError:
    if len(raw) > MAX_LINE_BYTES:
        return LineError(lineno, "", f"is {len(raw) / 2**20:.1f} MB long, above the limit of {size(MAX_LINE_BYTES)} for one record")
    if _orjson is not None and not may_be_deep(raw) and _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        # orjson gives the very objects json.loads does for a line it takes (valid UTF-8,
        # strict JSON, integers within 64 bits, shallow); any line it refuses (a lone
        # surrogate escape, NaN, 1e400, bad JSON...) is read by json below, for json's result
        # or json's error message
        try:
            obj = _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
        else:
            return Row(lineno, obj, _SUSPECT_TEXT.search(raw) is not None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return LineError(lineno, "", _not_utf8(raw, e, lineno))
    try:
        obj = json.loads(text)
        if may_be_deep(raw):
            check_depth(obj)
    except json.JSONDecodeError as e:
        return LineError(lineno, "", f"bad JSON: {e.msg} (column {e.colno})")
    except RecursionError:
        return LineError(lineno, "", _TOO_DEEP)
    except ValueError as e:  # an integer of more than 4,300 digits
        return LineError(lineno, "", f"bad JSON: {str(e).split(':')[0].lower()}")
    except LimitError as e:
        return LineError(lineno, e.field, e.message)
    return Row(lineno, obj, _SUSPECT_TEXT.search(raw) is not None)


def _parquet_rows(path: Path) -> Iterator[Row | LineError]:
    """A Parquet file (how public datasets ship), in batches of rows: row N is line N."""
    import pyarrow.parquet as pq

    n = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH)
        for batch in batches:
            for obj in batch.to_pylist():
                n += 1
                try:
                    check_depth(obj)
                except LimitError as e:
                    yield LineError(n, e.field, e.message)
                    continue
                yield Row(n, obj)
    except Exception as e:  # pyarrow's errors: one line, naming the file
        first = (str(e).splitlines() or [""])[0]
        yield LineError(0, "", f"cannot be read as Parquet ({type(e).__name__}: {first})")


def _csv_rows(data: bytes) -> Iterator[Row | LineError]:
    """CSV with a ``prompt`` column, and optionally ``domain`` and ``id``: ``records`` rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        yield LineError(line, "", _not_utf8(data, e, line))
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as e:
        yield LineError(1, "", f"bad CSV header: {e}")
        return
    if fieldnames is None or "prompt" not in [f.strip() for f in fieldnames]:
        yield LineError(1, "prompt", "the header has no 'prompt' column")
        return
    try:
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items()}
            obj = {"prompt": row.get("prompt")}
            if row.get("domain"):
                obj["domain"] = row["domain"]
            if row.get("id"):
                obj["id"] = row["id"]
            yield Row(reader.line_num, obj)
    except csv.Error as e:
        # An unterminated quote is only noticed at the end: it began on the line after the last row.
        line = reader.line_num + 1 if "end of data" in str(e) else reader.line_num
        yield LineError(line, "", f"bad CSV: {e}")


def _not_utf8(data: bytes, e: UnicodeDecodeError, line: int) -> str:
    if line == 1 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "is not valid UTF-8: the file is UTF-16 (save it as UTF-8)"
    return f"is not valid UTF-8 (byte {e.start})"
