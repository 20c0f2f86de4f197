"""What SQLite alone spends inserting an import's rows, in the app's schema and in variants of it,
beside plain sqlite3's insert of the same records (issue 18: import within 3x of that).

    python benchmarks/bench_schema.py [--size 100000] [--db LAB_DB] [--reps 2] [--variants a,b,...]

The rows are those an ``import`` of ``bench_lab``'s generated file writes (``--size``
judgments: half as many prompts, two tutors, K=4 candidates); with ``--db`` those of an
existing lab database. Each variant copies the tutors, sessions, prompts, candidates,
judgments and rankings into an empty database made with the lab database's own tables and
indexes, changed as the variant says, under the app's settings (WAL, ``synchronous=FULL``,
foreign keys on, 64 MiB of cache), 20,000 rows to an ``executemany``, one transaction; only
the inserts and the commit are timed (as ``bench_lab``'s "sqlite3 insert, the app's schema"):

* ``app``: the schema as the migrations make it;
* ``ordered-ids``: judgments' ids replaced by ids that grow in insertion order (as integer or
  time-ordered keys would be; imported judgments' ids are UUID5s, random in every index);
* ``rankings-without-rowid``: ``rankings`` a ``WITHOUT ROWID`` table (one B-tree for the
  table and its primary key instead of two);
* ``ordered+without-rowid``: both;
* ``no-candidate-index``: without ``idx_rankings_candidate_id``;
* ``foreign-keys-off``: ``PRAGMA foreign_keys = OFF`` (the safety net every write keeps);
* ``rollback-journal``: ``journal_mode = DELETE`` instead of WAL (each page written once,
  no checkpoint; readers then wait for writers);
* ``page-8192``: pages of 8 KiB instead of 4;
* ``all``: ordered ids, WITHOUT ROWID, no candidate index, foreign keys off, rollback journal.

Variants alternate: each of the ``--reps`` repetitions runs every one once, so drift moves
them all. The plain baseline is ``bench_lab.BASELINE``'s insert (four short-keyed tables, one
index; it parses the JSONL file too), in a process of its own at each repetition. The report gives each
variant's seconds by table and its ratio to ``app``, and the import target (3x plain) beside
it: a variant whose SQLite time alone is near that line cannot meet it once the import's own
parsing and planning are added.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lab import BASELINE, write_lab_file  # noqa: E402

TABLES = ("tutors", "sessions", "prompts", "candidates", "judgments", "rankings")

#: variant -> the changes it makes (names used below)
VARIANTS: dict[str, frozenset[str]] = {
    "app": frozenset(),
    "ordered-ids": frozenset({"ordered"}),
    "rankings-without-rowid": frozenset({"without_rowid"}),
    "ordered+without-rowid": frozenset({"ordered", "without_rowid"}),
    "no-candidate-index": frozenset({"no_candidate_index"}),
    "foreign-keys-off": frozenset({"fk_off"}),
    "rollback-journal": frozenset({"delete_journal"}),
    "page-8192": frozenset({"page_8192"}),
    "all": frozenset({"ordered", "without_rowid", "no_candidate_index", "fk_off", "delete_journal"}),
}


def schema_sql(src: sqlite3.Connection, changes: frozenset[str]) -> list[str]:
    """The lab database's CREATE statements of TABLES (tables first), changed as asked."""
    rows = src.execute(
        "select type, name, sql from sqlite_master where sql is not null and type in ('table', 'index') "
        f"and tbl_name in ({','.join('?' * len(TABLES))}) order by type desc, rowid",
        TABLES,
    ).fetchall()
    out = []
    for type_, name, sql in rows:
        if "no_candidate_index" in changes and name == "idx_rankings_candidate_id":
            continue
        if "without_rowid" in changes and type_ == "table" and name == "rankings":
            sql = sql.rstrip() + " WITHOUT ROWID"
        out.append(sql)
    return out


def copy(src_path: Path, dest: Path, changes: frozenset[str]) -> dict[str, float]:
    """Seconds by table (and the commit) of copying the rows into ``dest``."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
    con = sqlite3.connect(dest, isolation_level=None)
    if "page_8192" in changes:
        con.execute("PRAGMA page_size = 8192")
    journal = "DELETE" if "delete_journal" in changes else "WAL"
    fks = "OFF" if "fk_off" in changes else "ON"
    for pragma in (f"journal_mode = {journal}", "synchronous = FULL", f"foreign_keys = {fks}", "cache_size = -65536"):
        con.execute(f"PRAGMA {pragma}")
    for sql in schema_sql(src, changes):
        con.execute(sql)
    ordered: dict[str, str] = {}
    spent: dict[str, float] = {}
    con.execute("begin")
    for table in TABLES:
        cur = src.execute(f"select * from [{table}] order by rowid")
        marks = ",".join("?" * len(cur.description))
        seconds = 0.0
        while rows := cur.fetchmany(20_000):
            if "ordered" in changes and table == "judgments":
                for r in rows:
                    ordered[r[0]] = f"{len(ordered):036d}"
            if "ordered" in changes and table in ("judgments", "rankings"):
                rows = [(ordered[r[0]], *r[1:]) for r in rows]
            t0 = time.perf_counter()
            con.executemany(f"insert into [{table}] values ({marks})", rows)
            seconds += time.perf_counter() - t0
        spent[table] = seconds
    t0 = time.perf_counter()
    con.execute("commit")
    spent["commit"] = time.perf_counter() - t0
    con.close()
    src.close()
    spent["MB"] = sum(os.path.getsize(str(dest) + s) for s in ("", "-wal") if os.path.exists(str(dest) + s)) / 2**20
    return spent


def plain_insert(records: Path, tmp: Path) -> float:
    """bench_lab's plain sqlite3 insert of the records file, in a process of its own."""
    for name in ("plain.db", "plain.jsonl"):
        (tmp / name).unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(records), str(tmp / "plain.db"), str(tmp / "plain.jsonl")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(json.loads(out.stdout)["insert"])


def make_lab(tmp: Path, size: int) -> tuple[Path, Path]:
    """(records file, lab database imported from it by the app's command line)."""
    records, db = tmp / "lab.jsonl", tmp / "lab.db"
    write_lab_file(records, size)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", "import sys; from hitl_desktop.cli import main; sys.exit(main(sys.argv[1:]))"]
    subprocess.run([*cmd, "import", str(records), "--db", str(db), "--json"], env=env, capture_output=True, check=True)
    return records, db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="judgments in the generated lab database")
    ap.add_argument("--db", default=None, help="copy the rows of this lab database (then no plain baseline)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    with tempfile.TemporaryDirectory(prefix="hitl-schema-") as d:
        tmp = Path(d)
        records, db = (None, Path(args.db)) if args.db else make_lab(tmp, args.size)
        got: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        plain: list[float] = []
        for _ in range(max(1, args.reps)):
            if records is not None:
                plain.append(plain_insert(records, tmp))
            for name in names:
                got[name].append(copy(db, tmp / "copy.db", VARIANTS[name]))
    size = args.size
    if args.db:
        with closing(sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)) as conn:
            size = conn.execute("select count(*) from judgments").fetchone()[0]
    print(f"SQLite {sqlite3.sqlite_version}, {size:,} judgments' rows; seconds of inserts + commit, each run of {args.reps}")
    cols = ("prompts", "candidates", "judgments", "rankings", "commit")
    print(f"  {'variant':<24}{'total':>15}" + "".join(f"{c:>12}" for c in cols) + f"{'x app':>8}{'MB':>6}")
    app = statistics.mean(sum(v for k, v in r.items() if k != "MB") for r in got.get("app") or got[names[0]])
    for name in names:
        totals = [sum(v for k, v in r.items() if k != "MB") for r in got[name]]
        by_table = "".join(f"{statistics.mean(r[c] for r in got[name]):>12.2f}" for c in cols)
        shown = " / ".join(f"{t:.2f}" for t in totals)
        print(f"  {name:<24}{shown:>15}{by_table}{statistics.mean(totals) / app:>7.2f}x{got[name][0]['MB']:>6.0f}")
    if plain:
        base = statistics.mean(plain)
        print(f"  plain sqlite3 insert (bench_lab's baseline, parsing included): {' / '.join(f'{p:.2f}' for p in plain)} s")
        print(f"  import's target, 3x that: {3 * base:.2f} s; the app's schema alone is x{app / base:.2f} of plain")


if __name__ == "__main__":
    main()
