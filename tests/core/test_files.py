"""core/files.py: a folder swapped in whole, and put back when the swap fails; Parquet row groups."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


@given(sizes=st.lists(st.integers(0, 40), max_size=30), group=st.integers(1, 3_000))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_row_groups_gather_whole_batches_up_to_the_byte_size(tmp_path, monkeypatch, sizes, group):
    """Whatever the batch sizes: every row once, in order; a row group is whole batches, and
    every group but the last holds at least ROW_GROUP_BYTES of Arrow data, without its last batch
    less than that (a group is closed as soon as it is large enough)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(files, "ROW_GROUP_BYTES", group)
    schema = pa.schema([("n", pa.int64()), ("text", pa.string())])
    batches, start = [], 0
    for size in sizes:
        batches.append(pa.table({"n": range(start, start + size), "text": [f"row {i}" * (i % 5) for i in range(size)]},
                                schema=schema))  # fmt: skip
        start += size
    path = tmp_path / "rows.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        assert files.write_row_groups(writer, (b.to_batches()[0] if b.num_rows and i % 2 else b
                                               for i, b in enumerate(batches))) == start  # fmt: skip
    f = pq.ParquetFile(path)
    assert f.read().column("n").to_pylist() == list(range(start))
    ends = {0}  # the rows at which a batch ends: where a group may end
    for b in batches:
        ends.add(max(ends) + b.num_rows)
    groups = [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
    assert 0 not in groups
    done = 0
    for i, rows in enumerate(groups):
        assert done + rows in ends
        in_group = [b for b in batches if b.num_rows and done <= b.column("n")[0].as_py() < done + rows]
        if i < len(groups) - 1:
            assert sum(b.nbytes for b in in_group) >= group > sum(b.nbytes for b in in_group[:-1])
        done += rows
