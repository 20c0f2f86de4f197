"""core/files.py: a folder swapped in whole, and put back when the swap fails."""

from __future__ import annotations

import os

import pytest

from hitl_desktop.core import files


def folder(path, text):
    path.mkdir()
    (path / "a.txt").write_text(text)
    return path


def test_a_folder_is_swapped_in_and_the_old_one_removed(tmp_path):
    out = folder(tmp_path / "out", "old")
    files.swap_in_folder(folder(tmp_path / ".out.tmp", "new"), out)
    assert (out / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = folder(tmp_path / "out", "old")
    tmp = folder(tmp_path / ".out.tmp", "new")
    real = os.rename

    def rename(src, dst):
        if os.fspath(src) == os.fspath(tmp):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(OSError, match="disk full"):
        files.swap_in_folder(tmp, out)
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp", "out"]  # the caller removes its tmp
