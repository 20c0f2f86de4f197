"""Durable file writes, shared by export and backup: write to a temporary sibling, fsync it,
rename it into place, fsync the folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_file(folder: Path, *, prefix: str, suffix: str) -> Path:
    """A new empty private file in ``folder`` (hidden by its ``prefix``), for writing then renaming."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    return Path(name)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's data to disk. Raises OSError: a failed fsync means lost data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a file renamed into it) to disk. Best effort: some file
    systems refuse to fsync a folder, and the data itself was synced already."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in_folder(tmp: Path, out: Path) -> None:
    """Put the folder ``tmp`` (beside ``out``) in the place of ``out`` by renames: ``out``, if
    any, is moved aside first and put back when the swap fails, then removed; the parent
    folder is synced. (Dataset folder exports: core/export/files.py's ``replace_folder`` and
    core/rubric_export.py.)"""
    import shutil

    old: Path | None = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            if old is not None:
                os.rename(old, out)
                old = None
            raise
        fsync_dir(out.parent)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
