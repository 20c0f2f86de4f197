"""Files: rows streamed to JSONL, Parquet or a datasets folder, in bounded batches, each file
or folder written under a temporary name in its own folder, synced, then renamed into place
(on any error nothing partial is left and an existing output is untouched)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from hitl_desktop.core.export.columns import COLUMNS, ExportError, arrow_schema
from hitl_desktop.core.files import (
    fsync_dir,
    fsync_file,
    swap_in_folder,
    temp_file,
    write_row_groups,
)

#: Suffixes of file types we do not write: refused instead of becoming a folder's name.
REFUSED_SUFFIXES = frozenset({".json", ".csv", ".tsv", ".txt", ".arrow", ".gz", ".zip", ".xz", ".bz2"})

#: Files that mark a folder as a previous dataset export (safe to replace).
DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")

#: Rows per batch written (a JSONL chunk, a piece of a Parquet row group, an Arrow record batch).
BATCH_ROWS = 2_000


class Rows:
    """A one-pass stream of rows, a writer's input: iterate it once; ``rows[:n]`` takes the
    first n rows still to come (a list)."""

    def __init__(
        self,
        rows: Iterable[dict[str, Any]],
        *,
        floats: Sequence[str] | None = None,
        exact: bool = False,
        values: bool = False,
        lines: bool = False,
    ) -> None:
        self._rows = iter(rows)
        #: what a JSONL writer may know of the rows (``jsonl_batch_encoder``): the only keys
        #: that may hold floats (None: any), or ``exact``: free-form values, json alone
        self.floats = floats
        self.exact = exact
        #: each row a tuple of its values in the columns' order (``rows.build_values``): for
        #: the Arrow writers only
        self.values = values
        #: each row its JSON line already, bytes ending in a newline (export/lines.py): for
        #: the JSONL writer only
        self.lines = lines

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._rows

    def __getitem__(self, part: slice) -> list[dict[str, Any]]:
        if not isinstance(part, slice) or part.step not in (None, 1):
            raise TypeError("rows are a stream: only rows[:n] (the next n rows)")
        return list(islice(self._rows, part.start, part.stop))

    def batches(self, size: int | None = None) -> Iterator[list[dict[str, Any]]]:
        while batch := list(islice(self._rows, size or BATCH_ROWS)):
            yield batch


def _batches(rows: Iterable[dict[str, Any]], size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    return rows.batches(size) if isinstance(rows, Rows) else Rows(rows).batches(size)


def output_kind(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if suffix in REFUSED_SUFFIXES:
        raise ExportError(f"{out}: cannot write {suffix} files; use a .jsonl or .parquet file or a folder path")
    return "folder"


def oserror(path: Path, e: OSError) -> ExportError:
    reason = e.strerror or str(e)
    return ExportError(f"{path}: cannot write ({reason})")


try:  # orjson: the same bytes as json's compact, non-ASCII encoding, several times faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; json alone still writes the same rows
    _orjson = None


_INF = float("inf")


def _as_json_writes(v: float) -> bool:
    """A float orjson writes as json does: finite, and 0 or at least 1e-4 in size (json
    writes 1e-05 and 1.5e-08 where orjson writes 0.00001 and 1.5e-8)."""
    return v == 0 or 1e-4 <= abs(v) < _INF


def _floats_as_json_writes(values: Iterable[Any]) -> bool:
    """``_as_json_writes`` of every float among ``values`` (other values pass), in one
    comprehension and two builtins: the floats' nonzero sizes all at least 1e-4 and their sum
    finite (a NaN or an infinity makes it NaN or infinite; so does an overflow, and json then
    writes that batch: the same bytes)."""
    sizes = [abs(v) for v in values if type(v) is float and v]  # 0.0 and -0.0 pass; NaN is kept
    return not sizes or (sum(sizes) < _INF and min(sizes) >= 1e-4)


def jsonl_encoder(*, exact: bool = False) -> Callable[[dict[str, Any]], bytes]:
    """One row to its UTF-8 JSON line (no newline): json's compact encoding with
    ``ensure_ascii=False``, a lone surrogate written as the escape it stands for. With orjson
    where it writes the same bytes: a row with a surrogate, an integer beyond 64 bits, or a
    top-level float orjson writes otherwise (not finite, or below 1e-4) goes through json.
    Only top-level floats are looked at: the rows of every format but ``judgments`` have no
    nested ones (their Arrow schemas, checked by tests/core/test_export_golden.py); ``exact``
    (json alone) is for rows with free-form nested values, the judgments format."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def slow(row: dict[str, Any]) -> bytes:
        return encode(row).encode("utf-8", "backslashreplace")

    if _orjson is None or exact:
        return slow
    dumps, error = _orjson.dumps, _orjson.JSONEncodeError

    def fast(row: dict[str, Any]) -> bytes:
        for v in row.values():
            if type(v) is float and not (v == 0 or 1e-4 <= abs(v) < _INF):  # _as_json_writes
                return slow(row)
        try:
            return dumps(row)
        except error:
            return slow(row)

    return fast


def json_value() -> Callable[[Any], bytes]:
    """One value to its JSON bytes as ``jsonl_encoder`` writes it inside a row (orjson where
    it writes json's bytes, else json): a line joined from such pieces and the keys is the
    line of the row (rows built from pre-encoded pieces, export/lines.py)."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def slow(v: Any) -> bytes:
        return encode(v).encode("utf-8", "backslashreplace")

    if _orjson is None:
        return slow
    dumps, error = _orjson.dumps, _orjson.JSONEncodeError

    def fast(v: Any) -> bytes:
        if type(v) is float and not (v == 0 or 1e-4 <= abs(v) < _INF):  # _as_json_writes
            return slow(v)
        try:
            return dumps(v)
        except error:
            return slow(v)

    return fast


def jsonl_batch_encoder(
    *, exact: bool = False, floats: Sequence[str] | None = None
) -> Callable[[list[dict[str, Any]]], bytes]:
    """A batch of rows to its JSON lines (each ending in a newline), the bytes of
    ``jsonl_encoder`` row by row. With orjson the whole batch is one call (a call per row costs
    several times more), the list's ``},{"<first key>":`` separators turned into newlines:
    inside a JSON string a quote is always escaped, so the sequence is a dict boundary; when
    every row starts with the same key and it occurs exactly once between each two rows, the
    occurrences are the rows' boundaries. Otherwise (and for a row json must write) row by row.
    ``floats``: the only top-level keys whose values may be floats (a format's numeric
    columns, ``numeric_columns``); None: every value is looked at."""
    one = jsonl_encoder(exact=exact)

    def by_row(batch: list[dict[str, Any]]) -> bytes:
        return b"".join([one(r) + b"\n" for r in batch])

    if _orjson is None or exact:
        return by_row
    dumps, error = _orjson.dumps, _orjson.JSONEncodeError
    keys = tuple(floats) if floats is not None else None

    def fast(batch: list[dict[str, Any]]) -> bytes:
        if not batch or not batch[0]:
            return by_row(batch)
        first = next(iter(batch[0]))
        # every row's first key (an empty row ends the map early: the length differs)
        firsts = list(map(next, map(iter, batch)))
        if len(firsts) != len(batch) or firsts.count(first) != len(batch):
            return by_row(batch)
        if keys is None:
            values: Iterable[Any] = chain.from_iterable(map(dict.values, batch))
        else:
            values = chain.from_iterable(map(dict.get, batch, repeat(k)) for k in keys)
        if not _floats_as_json_writes(values):
            return by_row(batch)
        try:
            out = dumps(batch)
            key = dumps(first)
        except error:
            return by_row(batch)
        sep = b"},{" + key + b":"
        body = out[1:-1]
        if body.count(sep) != len(batch) - 1:
            return by_row(batch)
        return body.replace(sep, b"}\n{" + key + b":") + b"\n"

    return fast


#: Column kinds (columns.COLUMNS) that nest no float: text, integers the rules check (ratings
#: 1-5, ranks), flags, booleans.
_NO_FLOAT_INSIDE = frozenset({"str", "bool", "messages", "answers", "flags", "ratings"})


def numeric_columns(fmt: str) -> tuple[str, ...] | None:
    """A format's top-level numeric columns (``columns.COLUMNS``, without importing pyarrow):
    the only values of its rows that may be floats (a text column is read as text; an integer
    column may hold a REAL that SQLite kept). None when the format has free-form columns
    (judgments): every value is then looked at."""
    out = []
    for name, kind, _ in COLUMNS.get(fmt, [("", "json", "")]):
        if kind in ("int", "float"):
            out.append(name)
        elif kind not in _NO_FLOAT_INSIDE:
            return None
    return tuple(out)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """The rows as JSON lines; a ``Rows`` stream says where floats may be (``Rows.floats``),
    or that its rows are lines already (``Rows.lines``: bytes ending in a newline)."""
    encode = jsonl_batch_encoder(exact=getattr(rows, "exact", False), floats=getattr(rows, "floats", None))
    lines = getattr(rows, "lines", False)
    # Each batch is encoded to UTF-8 on its own and written as a chunk: joining everything into
    # one str first costs more (non-ASCII text makes Python strings up to 4 bytes a character).
    with open(path, "wb") as f:
        for batch in _batches(rows):
            # lines already (export/lines.py; also a slice ``rows[:n]`` of them, a plain list)
            f.write(b"".join(batch) if lines or type(batch[0]) is bytes else encode(batch))
        f.flush()
        os.fsync(f.fileno())


def table(fmt: str, rows: Sequence[Any], *, values: bool = False):
    """The rows as an Arrow table of the format's schema: ``Table.from_pylist``'s table (a
    missing key is null, keys outside the schema are left out), built a column at a time
    (about twice as fast). ``values``: each row is a tuple of its values in the schema's
    order (``rows.build_values``), not a dict."""
    import pyarrow as pa

    schema = arrow_schema(fmt)
    names = schema.names
    if not rows:
        columns: list[Sequence[Any]] = [[] for _ in names]
    elif values:
        columns = list(zip(*rows))
    else:
        try:  # every row has every column: the columns taken in C
            columns = list(zip(*map(itemgetter(*names), rows)))
        except KeyError:
            columns = [[r.get(name) for r in rows] for name in names]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema)


def write_parquet(path: Path, fmt: str, rows: Iterable[Any]) -> None:
    """Batches of BATCH_ROWS rows, gathered into row groups of about ``ROW_GROUP_BYTES``; an
    empty stream still makes a valid (empty) file. A ``Rows`` stream may hold tuples of values
    (``Rows.values``)."""
    import pyarrow.parquet as pq

    schema = arrow_schema(fmt)
    values = getattr(rows, "values", False)
    with pq.ParquetWriter(path, schema) as writer:
        # (a slice ``rows[:n]`` of tuples is a plain list)
        write_row_groups(writer, (table(fmt, batch, values=values or type(batch[0]) is tuple) for batch in _batches(rows)))
    fsync_file(path)


def _arrow_file(path: Path, fmt: str, rows: Iterable[dict[str, Any]]) -> int:
    """Stream the rows to an Arrow IPC stream file (what ``datasets`` memory-maps); its rows."""
    import pyarrow as pa

    n = 0
    values = getattr(rows, "values", False)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, arrow_schema(fmt)) as writer:
        for batch in _batches(rows):
            writer.write_table(table(fmt, batch, values=values))
            n += len(batch)
    return n


def write_folder(
    path: Path,
    fmt: str,
    splits: dict[str, Iterable[dict[str, Any]]],
    card: Callable[[], str] | str,
    split: bool,
) -> None:
    """A ``datasets`` folder (``save_to_disk``): each split streamed to an Arrow file next to
    the folder, memory-mapped as a Dataset, saved, then removed; ``card()`` (the README) is
    asked for once the rows are written."""
    from datasets import Dataset, DatasetDict, DatasetInfo, Features
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    features = Features.from_arrow_schema(arrow_schema(fmt))
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".rows", dir=path.parent))
    try:
        datasets: dict[str, Dataset] = {}
        for name, rows in splits.items() if split else [("train", splits["train"])]:
            arrow = scratch / f"{name}.arrow"
            _arrow_file(arrow, fmt, rows)
            datasets[name] = Dataset.from_file(str(arrow), info=DatasetInfo(features=features), in_memory=False)
        # An empty dataset is saved with one (empty) shard: with none, load_from_disk fails.
        if split:
            dd = DatasetDict(datasets)
            shards = {name: 1 for name, ds in datasets.items() if not len(ds)}
            if shards:
                # num_shards for a DatasetDict must name every split; None lets datasets choose
                dd.save_to_disk(str(path), num_shards={name: shards.get(name) for name in dd})
            else:
                dd.save_to_disk(str(path))
        else:
            ds = datasets["train"]
            ds.save_to_disk(str(path), num_shards=None if len(ds) else 1)
        del datasets
    finally:
        if not was_disabled:
            enable_progress_bars()
        shutil.rmtree(scratch, ignore_errors=True)
    (path / "README.md").write_text(card() if callable(card) else card, encoding="utf-8")
    fsync_tree(path)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(dirpath, name))
        fsync_dir(dirpath)


def replace_files(targets: list[tuple[Path, Callable[[Path], None]]], kind: str) -> None:
    """Write each file (``write(temporary path)``) to a temporary sibling, then rename them
    all into place."""
    for target, _ in targets:
        if target.is_dir():
            raise ExportError(f"{target}: is a folder; give a file path ending in .{kind}")
    temps: list[Path] = []
    try:
        for target, write in targets:
            try:
                tmp = temp_file(target.parent, prefix=f".{target.name}.", suffix=".tmp")
            except OSError as e:
                raise oserror(target, e) from e
            temps.append(tmp)
            write(tmp)
        for (target, _), tmp in zip(targets, temps, strict=True):
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise oserror(target, e) from e
        fsync_dir(targets[0][0].parent)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def replace_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Build the folder under a temporary name, then swap it in for ``out``."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ExportError(f"{out}: is a file; give a folder path, or a .jsonl or .parquet file")
        entries = {p.name for p in out.iterdir()}
        if entries and not entries & set(DATASET_MARKERS):
            raise ExportError(
                f"{out}: is a folder that is not a dataset export; refusing to replace it"
            )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise oserror(out, e) from e
    try:
        write(tmp)
        swap_in_folder(tmp, out)  # core/files.py: the old folder put back if the swap fails
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
