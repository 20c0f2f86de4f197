"""bench_schema.py's variants copy every row of an import and change only what they say (a
variant that lost rows or kept the app's schema would make its figure meaningless)."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from hitl_desktop.core.dbschema import read_schema
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from benchmark_scripts import load_benchmark  # noqa: E402


def _bench():
    return load_benchmark("bench_schema")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    bench = _bench()
    tmp = tmp_path_factory.mktemp("schema")
    records = tmp / "lab.jsonl"
    bench.write_lab_file(records, 40)
    store = Store.open(tmp / "lab.db")
    assert import_file(store, records).judgments == 40
    store.close()
    return tmp / "lab.db"


def _rows(path: Path, table: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"select * from [{table}] order by rowid" if table != "rankings" else "select * from rankings").fetchall()


@pytest.mark.parametrize("variant", list(_bench().VARIANTS))
def test_each_variant_copies_every_row(variant, lab, tmp_path):
    bench = _bench()
    dest = tmp_path / "copy.db"
    spent = bench.copy(lab, dest, bench.VARIANTS[variant])
    assert set(spent) == {*bench.TABLES, "commit", "MB"} and all(v >= 0 for v in spent.values())
    changes = bench.VARIANTS[variant]
    for table in ("tutors", "sessions", "prompts", "candidates"):
        assert _rows(dest, table) == _rows(lab, table)
    src_j, copy_j = _rows(lab, "judgments"), _rows(dest, "judgments")
    assert [r[1:] for r in copy_j] == [r[1:] for r in src_j]  # all but the id, in the same order
    ids = dict(zip((r[0] for r in src_j), (r[0] for r in copy_j), strict=True))
    if "ordered" in changes:
        assert [r[0] for r in copy_j] == sorted(r[0] for r in copy_j)
        assert [r[0] for r in src_j] != sorted(r[0] for r in src_j)  # the import's ids are not
    else:
        assert all(a == b for a, b in ids.items())
    assert sorted(_rows(dest, "rankings")) == sorted((ids[r[0]], *r[1:]) for r in _rows(lab, "rankings"))
    with closing(sqlite3.connect(dest)) as conn:
        assert conn.execute("pragma foreign_key_check").fetchall() == []
        rankings_sql = conn.execute("select sql from sqlite_master where name = 'rankings'").fetchone()[0]
        assert rankings_sql.endswith("WITHOUT ROWID") == ("without_rowid" in changes)
        journal = conn.execute("pragma journal_mode").fetchone()[0]
        assert journal == ("delete" if "delete_journal" in changes else "wal")
        assert conn.execute("pragma page_size").fetchone()[0] == (8192 if "page_8192" in changes else 4096)
        copied = read_schema(conn)
    with closing(sqlite3.connect(lab)) as conn:
        original = {n: o for n, o in read_schema(conn).items() if o.tbl_name in bench.TABLES}
    missing = set(original) - set(copied)
    assert missing == ({"idx_rankings_candidate_id"} if "no_candidate_index" in changes else set())
    if not changes - {"fk_off", "delete_journal", "page_8192"}:
        assert {n: copied[n] for n in original} == original  # the app's own tables and indexes
