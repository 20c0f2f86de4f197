"""One way to open a database for reading and one for writing, and the store-level import and
export that the lab's operations (core/operations.py) and the tutor's workflow share."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hitl_desktop.core.store import Store


def open_for_reading(path: str | os.PathLike[str] | None) -> Store:
    """An existing database (None: the default one), read-only: nothing is written; the
    integrity check first (a damaged file names its backup)."""
    return Store.open(path, create=False, read_only=True)


def open_for_writing(path: str | os.PathLike[str] | None, *, create: bool = True) -> Store:
    """A database for work (None: the default one): the integrity check, the backup on open,
    pending migrations."""
    return Store.open(path, create=create)


def import_prompts(
    store: Store,
    path: str | os.PathLike[str],
    *,
    default_domain: str | None = None,
    default_tutor: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    layout: str | None = None,
):
    """Import a JSONL/CSV/Parquet file through the validated importer: all or nothing
    (``importing.ImportFileError`` names the lines). Candidates that come with a prompt are
    recorded as ``imported`` and so are protected. ``layout``: core/layouts.py (default:
    found from the fields)."""
    from hitl_desktop.core.importing import DEFAULT_TUTOR, import_file

    return import_file(
        store,
        path,
        default_domain=default_domain,
        default_tutor=default_tutor or DEFAULT_TUTOR,
        on_progress=on_progress,
        layout=layout,
    )


def export_judgments(
    store: Store,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    consensus: bool = False,
    adjudicated: bool = False,
    **options: Any,
):
    """Export the current judgments (re-judged ones in their newest version) in ``fmt``;
    with ``consensus`` the majority pairs of each prompt several tutors judged
    (core/consensus.py), with ``adjudicated`` the leads'
    adjudications applied where present (core/review.py). Options as ``export.ExportOptions``."""
    from hitl_desktop.core import export

    return export.export_dataset(store, fmt=fmt, out=out, consensus=consensus, adjudicated=adjudicated, **options)
