"""Lab scale (issue 18): every command of a lab's day on a generated database, each beside
plain ``sqlite3`` doing the same rows in the same run.

    python benchmarks/bench_store.py [--size 100000] [--src DIR] [--keep DIR]

``--size`` judgments (half as many prompts, two tutors each, K=4 candidates, every judgment
ranks 1-4 without ties: 6 pairs each). Each command runs in its own process (``python -m
hitl_desktop.cli ...``, the package from ``--src`` when given: an older checkout measured the
same way) and is measured by its wall time and peak RSS (``os.wait4``):

* ``import`` of the generated JSONL file (the records layout), making the lab database;
* ``stats --json``;
* ``export --format trl-preference`` to JSONL and to Parquet, plain and ``--consensus``;
* ``merge`` of the lab database into an empty one.

Baseline (a process of its own, plain ``sqlite3`` and ``json``): insert the same rows
(prompts, candidates, judgments, rankings; one transaction), then read them back and write
the pairs as JSON lines. ``import`` and ``merge`` are compared with the insert, the rest with
the read-and-write. Targets: each within 3x; export's peak RSS <= 400 MB.

A second insert baseline, "sqlite3 insert, the app's schema" (a process of its own): plain
``sqlite3`` copying the rows the import wrote (tutors, sessions, prompts, candidates,
judgments, rankings) into an empty database made with the lab database's own tables and
indexes, under the app's settings (WAL, ``synchronous=FULL``, foreign keys on, 64 MiB of
cache), 5,000 rows to an ``executemany``, one transaction; only the inserts and the commit
are timed. It is what SQLite alone spends on those rows in that schema (the judgments'
version-5 ids, random in every index on them; the secondary indexes; the foreign-key
lookups): ``import`` and ``merge`` are printed against it too, so the part of a ratio that
is the schema's and the part that is our code's show apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BASELINE = r'''
import json, sqlite3, sys, time
src, db, out = sys.argv[1:4]
t0 = time.perf_counter()
con = sqlite3.connect(db)
con.executescript("""
create table prompts (id text primary key, text text, domain text);
create table candidates (id text primary key, prompt_id text, idx int, text text);
create table judgments (id text primary key, prompt_id text, tutor text);
create table rankings (judgment_id text, candidate_id text, rank int);
create index rj on rankings(judgment_id);
""")
prompts, cands, judgments, ranks = {}, [], [], []
with con:
    with open(src, encoding="utf-8") as f:
        for n, line in enumerate(f):
            r = json.loads(line)
            pid = r["id"]
            if pid not in prompts:
                prompts[pid] = 1
                con.execute("insert into prompts values (?,?,?)", (pid, r["prompt"], r["domain"]))
                cands = [(f"{pid}-{i}", pid, i, t) for i, t in enumerate(r["candidates"])]
                con.executemany("insert into candidates values (?,?,?,?)", cands)
            jid = f"j{n}"
            con.execute("insert into judgments values (?,?,?)", (jid, pid, r["tutor"]))
            con.executemany("insert into rankings values (?,?,?)", [(jid, f"{pid}-{i}", k) for i, k in enumerate(r["ranking"])])
insert = time.perf_counter() - t0
t0 = time.perf_counter()
q = ("select j.id, p.text, c.text, r.rank from judgments j join prompts p on p.id = j.prompt_id "
     "join rankings r on r.judgment_id = j.id join candidates c on c.id = r.candidate_id order by j.rowid")
enc = json.JSONEncoder(ensure_ascii=False).encode
with open(out, "w", encoding="utf-8") as f:
    cur, group = None, []
    def flush():
        for a_text, a_rank, prompt in group:
            for b_text, b_rank, _ in group:
                if a_rank < b_rank:
                    f.write(enc({"prompt": prompt, "chosen": a_text, "rejected": b_text, "margin": (b_rank - a_rank) / 1.0}) + "\n")
    for jid, prompt, text, rank in con.execute(q):
        if jid != cur:
            flush(); cur, group = jid, []
        group.append((text, rank, prompt))
    flush()
read = time.perf_counter() - t0
print(json.dumps({"insert": insert, "read": read}))
'''


SCHEMA_BASELINE = r'''
import json, sqlite3, sys, time
src_path, db = sys.argv[1:3]
src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
tables = ("tutors", "sessions", "prompts", "candidates", "judgments", "rankings")
ddl = [sql for (sql,) in src.execute(
    "select sql from sqlite_master where sql is not null and type in ('table', 'index') "
    "and (tbl_name in (%s)) order by type desc" % ",".join("?" * len(tables)), tables)]
con = sqlite3.connect(db, isolation_level=None)
for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "cache_size = -65536"):
    con.execute(f"PRAGMA {pragma}")
for sql in ddl:
    con.execute(sql)
spent = 0.0
con.execute("begin")
for table in tables:
    cur = src.execute(f"select * from [{table}] order by rowid")
    marks = ",".join("?" * len(cur.description))
    while rows := cur.fetchmany(5000):
        t0 = time.perf_counter()
        con.executemany(f"insert into [{table}] values ({marks})", rows)
        spent += time.perf_counter() - t0
t0 = time.perf_counter()
con.execute("commit")
spent += time.perf_counter() - t0
print(json.dumps({"insert": spent}))
'''


def write_lab_file(path: Path, n: int) -> None:
    """n judgments: n/2 prompts, tutors a and b, 4 candidates, rankings without ties."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n // 2):
            base = {
                "id": f"q{i}",
                "prompt": f"Question {i}: what is the mechanism of drug {i} and its usual dose?",
                "domain": ("medicine", "finance", "stem")[i % 3],
                "candidates": [f"Answer {k} to question {i}: " + "the mechanism is ... " * 6 for k in range(4)],
            }
            f.write(json.dumps({**base, "ranking": [1, 2, 3, 4], "tutor": "ann"}) + "\n")
            f.write(json.dumps({**base, "ranking": [1, 3, 2, 4], "tutor": "bob"}) + "\n")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one process, measured with os.wait4; it runs in
    the temporary folder, so that ``python -c`` imports the package from PYTHONPATH."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True, cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[2:])} failed ({p.returncode}): {err.read().strip()[-800:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def lab(tmp: Path, size: int, src: str | None) -> dict[str, tuple[float, float]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", QT_QPA_PLATFORM="offscreen")
    root = src or str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    py = [sys.executable, "-c", "import sys; from hitl_desktop.cli import main; sys.exit(main(sys.argv[1:]))"]
    records = tmp / "lab.jsonl"
    write_lab_file(records, size)
    db = tmp / "lab.db"
    figures: dict[str, tuple[float, float]] = {}
    figures["import"] = run([*py, "import", str(records), "--db", str(db), "--json"], env)[:2]
    figures["stats --json"] = run([*py, "stats", "--db", str(db), "--json"], env)[:2]
    for consensus in ("", " --consensus"):
        for suffix in (".jsonl", ".parquet"):
            out = tmp / f"pairs{consensus.strip()}{suffix}"
            extra = ["--consensus"] if consensus else []
            cmd = [*py, "export", "--db", str(db), "--format", "trl-preference", "--out", str(out), "--json", *extra]
            s, rss, text = run(cmd, env)
            figures[f"export {suffix[1:]}{consensus}"] = (s, rss)
            rows = json.loads(text)["rows"]
            expected = size // 2 * 5 if consensus else size * 6  # ann and bob differ on one pair
            if rows != expected:
                raise SystemExit(f"export wrote {rows} rows, expected {expected}")
    figures["merge"] = run([*py, "merge", str(db), "--db", str(tmp / "merged.db"), "--json"], env)[:2]
    s, rss, text = run([sys.executable, "-c", BASELINE, str(records), str(tmp / "plain.db"), str(tmp / "plain.jsonl")], env)
    base = json.loads(text)
    figures["sqlite3 insert"] = (base["insert"], rss)
    figures["sqlite3 read + write pairs"] = (base["read"], rss)
    s, rss, text = run([sys.executable, "-c", SCHEMA_BASELINE, str(db), str(tmp / "schema.db")], env)
    figures["sqlite3 insert, the app's schema"] = (json.loads(text)["insert"], rss)
    return figures


def report(size: int, figures: dict[str, tuple[float, float]], label: str) -> None:
    insert, read = figures["sqlite3 insert"][0], figures["sqlite3 read + write pairs"][0]
    schema = figures.get("sqlite3 insert, the app's schema", (0.0, 0.0))[0]
    print(f"\nlab of {size:,} judgments ({size // 2:,} prompts, {size * 2:,} candidates, two tutors) [{label}]")
    print(f"  {'command':<34}{'seconds':>9}{'peak RSS MB':>13}{'x sqlite3':>11}{'x its schema':>14}")
    for name, (s, rss) in figures.items():
        ratio = against = ""
        if not name.startswith("sqlite3"):
            ratio = f"{s / (insert if name in ('import', 'merge') else read):>10.2f}x"
            if name in ("import", "merge") and schema:
                against = f"{s / schema:>13.2f}x"
        print(f"  {name:<34}{s:>9.2f}{rss:>13.0f} {ratio}{against}")
