"""Prompt sets and existing preference data -> records in the store, all or nothing.

The import is a pipeline: sources.py reads the file's rows (JSONL line by line, Parquet in
row batches, CSV), registry.py finds the layout from the first record (or ``--format``),
the layout's parser turns each row into an item, and the layout's plan checks each batch of
``BATCH_SIZE`` items against the database and writes it, all inside one transaction: any bad
line refuses the whole file with a message naming the file, the line and the field, every
bad line is counted (the first ``MAX_ERRORS_SHOWN`` kept), and the transaction is rolled
back, leaving the database as it was, whether the bad line is the first or the 90,000th.
What an import refuses (sizes, depth, numbers, NUL) is in limits.py.

JSONL, one object a line (blank lines are skipped)::

    {"id": "optional stable id", "prompt": "...", "domain": "medicine",
     "messages": [{"role": "user", "content": "..."}, ...],     # optional earlier turns
     "candidates": [{"text": "...", "model": "..."}, ...],       # optional (or plain strings)
     "ranking": [1, 2, 2, 3],                                    # optional, one rank per candidate
     "tutor": "...", "correction": "...", "corrected_index": 0,  # optional
     "all_bad": false, "strength": 2, "rationale": "...",        # optional
     "flags": [["incorrect"], [], ...],                          # optional, one list per candidate
     "gold_ranking": [1, 2, 3]}                                  # optional: a gold item

CSV: a header row with a ``prompt`` column, and optionally ``domain`` and ``id``.

A record with candidates and a ranking is a finished judgment; without a ranking it waits in
the queue. A record without an ``id`` gets one from its content (domain, earlier turns and
prompt), so the same prompt imported twice is one prompt. Records sharing an ``id`` (in the file or already in the database) are one prompt:
their candidates are matched by text, and each tutor's ranking adds that tutor's judgment.
Importing the same file twice adds nothing the second time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from hitl_desktop.core.collector import paused as paused_gc
from hitl_desktop.core.importing import registry
from hitl_desktop.core.importing.base import Layout, ParseContext
from hitl_desktop.core.importing.full import DEFAULT_TUTOR
from hitl_desktop.core.importing.limits import MAX_DEPTH, LimitError, check_strings
from hitl_desktop.core.importing.plan import IMPORT_NAMESPACE, imported_judgment_id
from hitl_desktop.core.importing.record import ROLES, content_id
from hitl_desktop.core.importing.refusals import (
    MAX_ERRORS_SHOWN,
    BadLines,
    ImportFileError,
    ImportSummary,
    LineError,
)
from hitl_desktop.core.importing.sources import ProgressCallback, Row, kind, read_rows
from hitl_desktop.core.layouts import RowError
from hitl_desktop.core.store import Store

__all__ = [
    "BATCH_SIZE", "DEFAULT_TUTOR", "IMPORT_NAMESPACE", "MAX_ERRORS_SHOWN", "ROLES", "BadLines",
    "ImportFileError", "ImportSummary", "LineError", "ProgressCallback", "content_id",
    "import_file", "imported_judgment_id",
]  # fmt: skip

#: Items planned and written at a time (memory is bounded by a batch, not by the file).
BATCH_SIZE = 5_000


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    *,
    default_domain: str | None = None,
    default_tutor: str = DEFAULT_TUTOR,
    on_progress: ProgressCallback | None = None,
    layout: str | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportSummary:
    """Import a JSONL, CSV or Parquet file into the store in one transaction, or refuse it whole.

    ``layout``: one of ``registry.names()`` (default: found from the first record's fields;
    CSV is always ``records``). Raises ImportFileError listing the bad lines."""
    p = Path(path)
    if p.is_dir():
        raise ImportFileError(p, [LineError(0, "", "is a folder, not a file")])
    rubric = _rubric_layout(p, layout)
    if rubric:  # the rubric layouts (core/rubric_formats.py) have their own plan
        from hitl_desktop.core.rubric_formats import RubricFileError, import_rubric_file

        try:
            return import_rubric_file(store, p, layout=rubric, default_domain=default_domain)
        except RubricFileError as e:
            raise ImportFileError(p, [LineError(*bad) for bad in e.errors[:MAX_ERRORS_SHOWN]], total=len(e.errors)) from None
    if layout is not None and registry.get(layout) is None:
        raise ImportFileError(p, [LineError(0, "", f"unknown layout {layout!r}; layouts: {', '.join(registry.names())}")])
    summary = ImportSummary(path=str(path))
    chosen = registry.get("records") if kind(p) == "csv" else (registry.get(layout) if layout else None)
    run = _Run(store, str(path), default_tutor, summary, ParseContext(default_domain), chosen, batch_size)
    try:
        rows = read_rows(p, on_progress)
        with paused_gc(), store.db.atomic():  # rolled back by the ImportFileError of any bad line
            for row in rows:
                run.take(row)
            run.flush()
            if not run.errors and not run.items_seen:
                run.errors.append(LineError(0, "", "holds no records"))
            summary.layout = run.layout.name if run.layout else ""
            summary.fields_not_kept = dict(sorted(run.ctx.unkept.items()))
            if run.errors:
                raise ImportFileError(p, run.errors)
    except OSError as e:
        raise ImportFileError(p, [LineError(0, "", f"cannot be read ({e.strerror or e})")]) from None
    finally:
        with contextlib.suppress(sqlite3.Error):  # (a connection that failed keeps its error)
            run.close()
    return summary


def _rubric_layout(path: Path, layout: str | None) -> str | None:
    """``rubrics`` / ``rubric-grades`` when asked for, or (no layout asked) when the file's
    first record is one; else None."""
    from hitl_desktop.core.rubric_formats import RUBRIC_LAYOUTS, detect_rubric_layout

    if layout is not None:
        return layout if layout in RUBRIC_LAYOUTS else None
    return detect_rubric_layout(path)


class _Run:
    """One import under way: the layout (once known), its plan, the batch, the bad lines."""

    def __init__(self, store, path, default_tutor, summary, ctx, layout, batch_size) -> None:  # noqa: ANN001
        self.store, self.path, self.default_tutor, self.summary = store, path, default_tutor, summary
        self.ctx, self.layout, self.batch_size = ctx, layout, max(1, batch_size)
        self.plan = None if layout is None else layout.plan(store, path, default_tutor, summary)
        self.errors = BadLines()
        self.batch: list = []
        self.items_seen = 0

    def take(self, row: Row | LineError) -> None:
        """One row: parsed into the batch (written when full), or its line added to the errors."""
        if isinstance(row, LineError):
            self.errors.append(row)
            return
        try:
            if row.check_text:
                check_strings(row.obj)
            if self.layout is None:
                self._start(registry.detect(row.obj))
            item = self.layout.parse(row.obj, row.line, self.ctx)
        except (RowError, LimitError) as e:
            self.errors.append(LineError(row.line, e.field, e.message))
            return
        except RecursionError:
            self.errors.append(LineError(row.line, "", f"is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"))
            return
        self.items_seen += 1
        if self.errors:
            return  # refused already: the rest is only checked, to list every bad line
        self.batch.append(item)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Check the batch against the database and, while the file is good, write it."""
        if self.batch and not self.errors:
            self.plan.add_batch(self.batch, self.errors)
            if not self.errors:
                self.plan.write()
        self.batch = []

    def close(self) -> None:
        """The import's transaction has ended: let the plan drop what it made."""
        if self.plan is not None:
            self.plan.close()

    def _start(self, layout: Layout) -> None:
        self.layout = layout
        self.plan = layout.plan(self.store, self.path, self.default_tutor, self.summary)
