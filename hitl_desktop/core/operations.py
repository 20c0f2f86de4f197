"""The lab's operations over a database file, one function each, called the same way by the CLI
and the GUI: import, export, merge, assign, backup, restore, review, adjudicate and the rubric review
(approve a lab rubric).

Every operation takes the database's path (it opens and closes its own connection, so it may run
in any thread), an optional ``progress(fraction, message)`` callback, an optional ``cancelled()``
predicate, and returns the underlying function's summary. A cancelled operation raises
:class:`OperationCancelled` from its next progress report: the work is one transaction, so nothing of it
is kept. There is one way to open a database for reading (:func:`open_for_reading`: no write,
the integrity check, a damaged file names its backup) and one for writing
(:func:`open_for_writing`: integrity check, backup on open, migrations).

The ways to open a database and the store-level import and export live in ``core/access.py``
(shared with the tutor's workflow, which this module's pack writer imports).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hitl_desktop.core.access import (
    export_judgments,
    import_prompts,
    open_for_reading,
    open_for_writing,
)
from hitl_desktop.core.store import Store

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]


class OperationCancelled(Exception):
    """The operation was cancelled; nothing of it was kept."""


def _file(db_path: str | os.PathLike[str] | None) -> Path:
    from hitl_desktop.core.store import default_db_path

    return Path(db_path) if db_path is not None else default_db_path()


class _Reporter:
    """Turns an underlying function's progress into ``progress(fraction, message)`` and
    checks for cancellation at every report."""

    def __init__(self, progress: Progress | None, cancelled: Cancelled | None, unit: str = "") -> None:
        self.progress, self.cancelled, self.unit = progress, cancelled, unit

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise OperationCancelled("cancelled; nothing was changed")

    def counts(self, done: int, total: int) -> None:
        self.check()
        if self.progress is not None:
            self.progress(done / total if total else 1.0, f"{done:,} of {total:,}{self.unit}")

    def fraction(self, fraction: float, message: str) -> None:
        self.check()
        if self.progress is not None:
            self.progress(fraction, message)


# -- the operations (a database path) -----------------------------------------------------------


def import_file(
    db_path: str | os.PathLike[str] | None,
    path: str | os.PathLike[str],
    *,
    domain: str | None = None,
    tutor: str | None = None,
    layout: str | None = None,
    create: bool = False,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
):
    """Import a file into the database (``create``: a new one if there is none), all or
    nothing: the ``ImportSummary``."""
    report = _Reporter(progress, cancelled, " bytes")
    report.check()
    with open_for_writing(db_path, create=create) as store:
        return import_prompts(store, path, default_domain=domain, default_tutor=tutor, on_progress=report.counts, layout=layout)


def export(
    db_path: str | os.PathLike[str] | None,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    **options: Any,
):
    """Export the database's judgments (:func:`export_judgments`); the ``ExportSummary``. The
    database is only read (:func:`open_for_reading`)."""
    report = _Reporter(progress, cancelled)
    report.check()
    with open_for_reading(db_path) as store:
        return export_judgments(store, fmt=fmt, out=out, on_progress=report.counts, **options)


def merge(
    db_path: str | os.PathLike[str] | None,
    sources: Sequence[str | os.PathLike[str]],
    *,
    backup: bool = True,
    create: bool = False,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
):
    """Merge other databases or packs into this one (a backup first); the ``MergeSummary``."""
    from hitl_desktop.core.merging import merge_databases

    report = _Reporter(progress, cancelled)
    report.check()
    with open_for_writing(db_path, create=create) as store:
        return merge_databases(store, list(sources), on_progress=report.fraction, backup=backup)


def assign(
    db_path: str | os.PathLike[str] | None,
    *,
    tutors: Sequence[str],
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    **options: Any,
):
    """One work pack per tutor from the lab's database (only read); the ``AssignSummary``."""
    from hitl_desktop.core.packs import assign as assign_packs

    report = _Reporter(progress, cancelled)
    report.check()
    with open_for_reading(db_path) as store:
        summary = assign_packs(store, tutors=list(tutors), out_dir=out_dir, **options)
    report.fraction(1.0, "packs written")
    return summary


def backup(
    db_path: str | os.PathLike[str] | None,
    *,
    reason: str = "manual",
    out: str | os.PathLike[str] | None = None,
    keep: int | None = None,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Path:
    """A consistent copy of the database (even while in use); the backup's path."""
    from hitl_desktop.core import backup as backups

    report = _Reporter(progress, cancelled)
    report.check()
    extra = {} if keep is None else {"keep": keep}
    path = backups.backup_database(_file(db_path), reason=reason, out=out, **extra)
    report.fraction(1.0, "backed up")
    return path


def restore(
    db_path: str | os.PathLike[str] | None,
    backup_file: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> tuple[Path, Path | None]:
    """Replace the database with a backup (the newest good one when ``backup_file`` is None);
    (the backup used, the copy of the replaced database or None)."""
    from hitl_desktop.core import backup as backups

    report = _Reporter(progress, cancelled)
    report.check()
    if backup_file is None:
        used, saved = backups.restore_latest(_file(db_path))
    else:
        used, saved = Path(backup_file), backups.restore(_file(db_path), backup_file)
    report.fraction(1.0, "restored")
    return used, saved


def review(
    db_path: str | os.PathLike[str] | None,
    *,
    domain: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
):
    """The prompts tutors disagree on, most disagreement first (``review.Disagreement`` rows)."""
    from hitl_desktop.core import review as reviews

    report = _Reporter(progress, cancelled)
    report.check()
    with open_for_reading(db_path) as store:
        found = reviews.disagreements(store, domain=domain)[:limit]
    report.fraction(1.0, f"{len(found)} prompts")
    return found


def quality(db_path: str | os.PathLike[str] | None, *, domain: str | None = None) -> dict[str, Any]:
    """The quality figures (``core.quality.quality_summary``) of the database, only read."""
    from hitl_desktop.core.quality import quality_summary

    with open_for_reading(db_path) as store:
        return quality_summary(store, domain=domain)


def adjudicate(
    db_path: str | os.PathLike[str] | None,
    *,
    prompt: str,
    ranking: Sequence[object],
    rationale: str,
    adjudicator: str,
):
    """Record a lead's ranking of a prompt (its imported id or prompt id), in generated order."""
    from hitl_desktop.core import review as reviews

    with open_for_writing(db_path, create=False) as store:
        return reviews.adjudicate_in_order(store, prompt=prompt, ranking=list(ranking), rationale=rationale, adjudicator=adjudicator)



def rubric_review(db_path: str | os.PathLike[str] | None, *, prompt_id: str | None, limit: int = 20) -> dict[str, Any]:
    """What the review view shows of rubrics, only read: the prompt's rubric versions (each
    tutor's proposals, oldest first), its lab rubric's id, and the criteria tutors disagree on
    most (``core.rubric_agreement.disagreed_criteria``, the whole database)."""
    with open_for_reading(db_path) as store:
        return rubric_review_of(store, prompt_id=prompt_id, limit=limit)


def rubric_review_of(store: Store, *, prompt_id: str | None, limit: int = 20) -> dict[str, Any]:
    """:func:`rubric_review` on an open store (an in-memory database has no file to reopen)."""
    from hitl_desktop.core.rubric_agreement import disagreed_criteria

    if not store.rubrics.available():
        return {"prompt_id": prompt_id, "versions": [], "lab": None, "disagreed": []}
    versions = store.rubrics.versions(prompt_id) if prompt_id else []
    lab = store.rubrics.lab_rubric(prompt_id) if prompt_id else None
    return {"prompt_id": prompt_id, "versions": versions, "lab": lab.id if lab else None,
            "disagreed": disagreed_criteria(store, limit=limit)}


def rubrics_to_approve(
    db_path: str | os.PathLike[str] | None, *, domain: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The prompts whose rubric waits for a lead's approval, only read
    (``RubricStore.to_approve``: newest version first, at most ``limit``)."""
    with open_for_reading(db_path) as store:
        return rubrics_to_approve_in(store, domain=domain, limit=limit)


def rubrics_to_approve_in(store: Store, *, domain: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """:func:`rubrics_to_approve` on an open store."""
    if not store.rubrics.available():
        return []
    return list(store.rubrics.to_approve(domain=domain, limit=limit))


def approve_rubric(db_path: str | os.PathLike[str] | None, *, rubric_id: str, lead: str):
    """A lead approves one rubric version as its prompt's lab rubric (packs carry it, exports use
    it); ``lead`` is the lead's own name. The approved :class:`Rubric`."""
    with open_for_writing(db_path, create=False) as store:
        return approve_rubric_in(store, rubric_id=rubric_id, lead=lead)


def approve_rubric_in(store: Store, *, rubric_id: str, lead: str):
    """:func:`approve_rubric` on an open store. A lead's name is required."""
    from hitl_desktop.core.rubrics import RubricError

    lead = (lead or "").strip()
    if not lead:
        raise RubricError("a lead's name is required to approve a rubric (Settings: your name)")
    return store.rubrics.approve(rubric_id, lead=lead)

class AutoBackup:
    """The rolling backups' timing while the app runs (``backup.BackupScheduler`` decides when
    one is due): :meth:`job` hands out the copy to run off the GUI thread when one is due and
    none is under way; :meth:`done` / :meth:`failed` record its outcome; :meth:`final` copies
    the last state (a database being closed) in the calling thread."""

    def __init__(self, store: Store) -> None:
        from hitl_desktop.core.backup import BackupScheduler

        self.scheduler = BackupScheduler(store) if store.path is not None else None
        self.running = False
        self._marker: tuple[int, int] | None = None

    def job(self) -> Callable[..., Path] | None:
        s = self.scheduler
        if s is None or self.running or not s.due():
            return None
        self._marker = s.store.change_marker()
        self.running = True
        db_path, keep = s.store.path, s.keep
        assert db_path is not None
        return lambda progress=None, cancelled=None: backup(db_path, reason="auto", keep=keep, progress=progress, cancelled=cancelled)

    def done(self, path: Path) -> None:
        self.running = False
        if self.scheduler is not None and self._marker is not None:
            self.scheduler.record(self._marker, path)

    def failed(self, message: str) -> None:
        self.running = False
        if self.scheduler is not None:
            self.scheduler.last_error = message

    def final(self) -> Path | None:
        return self.scheduler.maybe_backup(force=True) if self.scheduler is not None else None


__all__ = [
    "AutoBackup",
    "OperationCancelled",
    "adjudicate",
    "assign",
    "backup",
    "export",
    "export_judgments",
    "import_file",
    "import_prompts",
    "merge",
    "open_for_reading",
    "open_for_writing",
    "quality",
    "restore",
    "review",
]
