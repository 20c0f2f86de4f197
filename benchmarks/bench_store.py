"""Storage figures, each beside a baseline measured in the same run.

    python benchmarks/bench_store.py [--size 100000] [--src DIR]       # lab scale (bench_lab.py)
    python benchmarks/bench_store.py --classic [--judgments 2000] [--records 20000] [--pairs 100000]

Lab scale (the default, benchmarks/bench_lab.py): import, stats, export (JSONL and Parquet,
plain and --consensus) and merge of a generated lab database, each in its own process with its
seconds and peak RSS, beside plain sqlite3 inserting and reading back the same rows.

Classic (``--classic``):

1. Judgments saved per second (synchronous=FULL, WAL, one transaction per judgment) vs the
   naive way: every row (judgment, each rank, the correction) inserted and committed alone.
2. Import of 20 000 records (one transaction) vs row-by-row inserts with a commit each
   (measured on a slice and scaled: the full naive run takes minutes); then the same file
   again (every id known: nothing added) vs reading the known prompts one id at a time.
3. Export of 100 000 trl-preference pairs to JSONL vs the naive way: one query per judgment
   (N+1) and a write + flush per row. Target: ours < 5 s.
4. Import of a 100 000-row public-layout preference file (Anthropic HH-RLHF transcripts),
   one transaction with progress, vs the naive way: each row parsed and saved through the
   Store's one-item calls (prompt, candidates, judgment: a commit each; measured on a slice
   and scaled).
5. Export of 100 000 consensus pairs (three tutors per prompt, ``--consensus``) vs the same
   rows the naive way: one query and one consensus per prompt (N+1), a write + flush per row.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hitl_desktop.core.consensus import consensus_items  # noqa: E402
from hitl_desktop.core.export import build_rows, export_dataset  # noqa: E402
from hitl_desktop.core.importing import import_file  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt  # noqa: E402

K = 4


def seed_prompts(store: Store, n: int, *, k: int = K) -> list[tuple[Prompt, list[Candidate]]]:
    prompts = [Prompt(text=f"Question {i}: what is the mechanism of drug {i}?", domain="medicine") for i in range(n)]
    cands = {p.id: [Candidate(prompt_id=p.id, text=f"Answer {j} to {p.text} " * 8, index=j, seed=j, model="bench") for j in range(k)] for p in prompts}
    store.bulk_insert(prompts=prompts, candidates=[c for cs in cands.values() for c in cs])
    return [(p, cands[p.id]) for p in prompts]


def judgment_for(prompt: Prompt, cands: list[Candidate], tutor_id: str, i: int) -> Judgment:
    return Judgment(
        prompt_id=prompt.id,
        tutor_id=tutor_id,
        ranks={c.id: r for c, r in zip(cands, [1, 2, 3, 4])},
        flags={cands[-1].id: ["incorrect"]},
        seconds_spent=30.0,
        display_order=[c.id for c in reversed(cands)],
        correction=Correction(text=f"Corrected answer {i}", candidate_id=cands[0].id) if i % 3 == 0 else None,
    )


def bench_saves(tmp: Path, n: int) -> None:
    store = Store.open(tmp / "saves.db")
    tutor = store.ensure_tutor("bench")
    work = seed_prompts(store, n)
    t0 = time.perf_counter()
    for i, (p, cs) in enumerate(work):
        store.save_judgment(judgment_for(p, cs, tutor.id, i))
    ours = n / (time.perf_counter() - t0)
    store.close()

    # Baseline: the same rows, each INSERT committed on its own (autocommit), same pragmas.
    base = Store.open(tmp / "saves-naive.db")
    tutor = base.ensure_tutor("bench")
    work = seed_prompts(base, n)
    conn = sqlite3.connect(tmp / "saves-naive.db", isolation_level=None)
    conn.execute("pragma synchronous = FULL")
    t0 = time.perf_counter()
    for i, (p, cs) in enumerate(work):
        j = judgment_for(p, cs, tutor.id, i)
        conn.execute(
            "insert into judgments (id, prompt_id, tutor_id, created_at, display_order) values (?,?,?,?,?)",
            [j.id, j.prompt_id, j.tutor_id, j.created_at, json.dumps(j.display_order)],
        )
        for cid, r in j.ranks.items():
            conn.execute("insert into rankings (judgment_id, candidate_id, rank) values (?,?,?)", [j.id, cid, r])
        if j.correction:
            conn.execute(
                "insert into corrections (id, judgment_id, candidate_id, text, created_at) values (?,?,?,?,?)",
                [j.correction.id, j.id, j.correction.candidate_id, j.correction.text, j.created_at],
            )
    naive = n / (time.perf_counter() - t0)
    conn.close()
    base.close()
    print(f"judgments saved/s (synchronous=FULL): ours {ours:8.0f}  | naive row-by-row commits {naive:8.0f}  | x{ours / naive:.1f}")
    print("   (ours: one transaction per judgment = one fsync; the naive way pays one per row)")


def write_records(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({
                "id": f"r{i}", "prompt": f"Question {i}", "domain": ["medicine", "finance", "stem"][i % 3],
                "candidates": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], "ranking": [1, 2, 2, 3], "tutor": f"t{i % 7}",
            }) + "\n")


def bench_import(tmp: Path, n: int) -> None:
    path = tmp / "records.jsonl"
    write_records(path, n)
    store = Store.open(tmp / "import.db")
    t0 = time.perf_counter()
    summary = import_file(store, path)
    ours = time.perf_counter() - t0
    store.close()
    assert summary.judgments == n

    # Baseline on a slice: every row inserted and committed on its own, scaled to n.
    slice_n = min(n, 500)
    store = Store.open(tmp / "import-naive.db")
    tutors = {f"t{i}": store.ensure_tutor(f"t{i}").id for i in range(7)}
    t0 = time.perf_counter()
    with path.open() as f:
        for _, line in zip(range(slice_n), f):
            rec = json.loads(line)
            p = Prompt(text=rec["prompt"], domain=rec["domain"], external_id=rec["id"])
            store.add_prompt(p)
            cands = [Candidate(prompt_id=p.id, text=t, index=i) for i, t in enumerate(rec["candidates"])]
            for c in cands:
                store.add_candidates([c])
            store.save_judgment(Judgment(prompt_id=p.id, tutor_id=tutors[rec["tutor"]], ranks={c.id: r for c, r in zip(cands, rec["ranking"])}))
    naive = (time.perf_counter() - t0) * n / slice_n
    store.close()
    print(f"import of {n} records: ours {ours:6.2f} s ({n / ours:,.0f} records/s) | naive per-row commits ~{naive:6.1f} s (from {slice_n}) | x{naive / ours:.0f}")

    # Importing the same file again: every id is known, so it adds nothing; what it costs is
    # reading the known prompts, candidates and judges. Baseline: those reads one id at a time.
    store = Store.open(tmp / "import.db")
    t0 = time.perf_counter()
    again = import_file(store, path)
    ours = time.perf_counter() - t0
    assert again.judgments == 0 and again.judgments_skipped == n
    t0 = time.perf_counter()
    for pid in store.prompt_ids_by_external_id(f"r{i}" for i in range(n)).values():
        store.get_prompt(pid)
        store.candidates_for(pid)
        store.judgments_for(pid)
    naive = time.perf_counter() - t0
    store.close()
    print(f"re-import of the same {n} records (all known): ours {ours:6.2f} s | naive reads per known id {naive:6.2f} s (reads alone) | x{naive / ours:.1f}")


def bench_export(tmp: Path, pairs: int) -> None:
    # 4 candidates with ranks 1,2,3,4 give 6 pairs per judgment.
    n = pairs // 6
    store = Store.open(tmp / "export.db")
    tutor = store.ensure_tutor("bench")
    work = seed_prompts(store, n)
    judgments = [
        Judgment(prompt_id=p.id, tutor_id=tutor.id, ranks={c.id: r for c, r in zip(cs, [1, 2, 3, 4])}, display_order=[c.id for c in cs])
        for p, cs in work
    ]
    store.bulk_insert(judgments=judgments)
    t0 = time.perf_counter()
    summary = export_dataset(store, fmt="trl-preference", out=tmp / "pairs.jsonl")
    ours = time.perf_counter() - t0

    # Baseline: the same rows, with one query per judgment (N+1) and a write + flush per row.
    t0 = time.perf_counter()
    ids = [r[0] for r in store.db.execute("select prompt_id from judgments")]
    with (tmp / "pairs-naive.jsonl").open("w") as f:
        for pid in ids:
            for row in build_rows("trl-preference", list(store.judged_items(prompt_id=pid)), tutor_name=store.pseudonym):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
    naive = time.perf_counter() - t0
    store.close()
    verdict = "meets" if ours < 5 else "MISSES"
    print(f"export of {summary.rows:,} trl-preference pairs to JSONL: ours {ours:5.2f} s | naive N+1 queries {naive:6.2f} s | x{naive / ours:.1f}  ({verdict} the < 5 s target)")


def write_hh_rlhf(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            head = f"\n\nHuman: Question {i % (n // 2 or 1)}: is drug {i} safe with warfarin?\n\nAssistant: "
            f.write(json.dumps({"chosen": head + f"No: bleeding risk ({i}).", "rejected": head + f"Yes, always ({i})."}) + "\n")


def bench_public_import(tmp: Path, n: int) -> None:
    from hitl_desktop.core.layouts import parse_transcript

    path = tmp / "hh-rlhf.jsonl"
    write_hh_rlhf(path, n)
    store = Store.open(tmp / "public.db")
    ticks = []
    t0 = time.perf_counter()
    summary = import_file(store, path, on_progress=lambda done, total: ticks.append(done))
    ours = time.perf_counter() - t0
    store.close()
    assert summary.layout == "hh-rlhf" and summary.judgments == n

    # Baseline on a slice: each row parsed, then prompt, candidates and judgment saved with
    # the Store's one-item calls (a transaction each), scaled to n.
    slice_n = min(n, 500)
    store = Store.open(tmp / "public-naive.db")
    tutor = store.ensure_tutor("imported")
    t0 = time.perf_counter()
    with path.open() as f:
        for _, line in zip(range(slice_n), f):
            row = json.loads(line)
            chosen, rejected = parse_transcript(row["chosen"], "chosen"), parse_transcript(row["rejected"], "rejected")
            p = store.add_prompt(Prompt(text=chosen[-2]["content"]))
            cands = [Candidate(prompt_id=p.id, text=t[-1]["content"], index=i) for i, t in enumerate((chosen, rejected))]
            for c in cands:
                store.add_candidates([c])
            store.save_judgment(Judgment(prompt_id=p.id, tutor_id=tutor.id, ranks={cands[0].id: 1, cands[1].id: 2}))
    naive = (time.perf_counter() - t0) * n / slice_n
    store.close()
    print(
        f"import of {n:,} HH-RLHF rows (public layout): ours {ours:6.2f} s ({n / ours:,.0f} rows/s, "
        f"{len(ticks)} progress reports) | naive one-item saves ~{naive:6.1f} s (from {slice_n}) | x{naive / ours:.0f}"
    )


def bench_consensus_export(tmp: Path, pairs: int) -> None:
    # three tutors rank each prompt's 4 candidates; two agree: 6 majority pairs per prompt
    n = pairs // 6
    store = Store.open(tmp / "consensus.db")
    tutors = [store.ensure_tutor(f"t{i}").id for i in range(3)]
    work = seed_prompts(store, n)
    votes = ([1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1])
    judgments = [
        Judgment(prompt_id=p.id, tutor_id=t, ranks={c.id: r for c, r in zip(cs, v)}, created_at=f"2026-01-01T00:00:0{k}")
        for p, cs in work
        for k, (t, v) in enumerate(zip(tutors, votes))
    ]
    store.bulk_insert(judgments=judgments)
    t0 = time.perf_counter()
    summary = export_dataset(store, fmt="trl-preference", out=tmp / "consensus.jsonl", consensus=True)
    ours = time.perf_counter() - t0

    # Baseline: the same rows the N+1 way: per prompt one query, its consensus, a write +
    # flush per row.
    t0 = time.perf_counter()
    rows = 0
    pids = [r[0] for r in store.db.execute("select distinct prompt_id from judgments")]
    with (tmp / "consensus-naive.jsonl").open("w") as f:
        for pid in pids:
            items = consensus_items(list(store.judged_items(prompt_id=pid)))
            for row in build_rows("trl-preference", items, tutor_name=store.pseudonym):
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                rows += 1
    naive = time.perf_counter() - t0
    store.close()
    assert rows == summary.rows
    print(f"export of {summary.rows:,} consensus pairs (3 tutors per prompt): ours {ours:5.2f} s | naive N+1 consensus {naive:6.2f} s | x{naive / ours:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judgments", type=int, default=1000)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--public-rows", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100_000, help="lab scale: judgments in the lab database")
    ap.add_argument("--src", default=None, help="lab scale: run the commands of the package in this folder")
    ap.add_argument("--classic", action="store_true", help="the per-operation figures instead of the lab")
    args = ap.parse_args()
    if not args.classic:
        from bench_lab import lab, report

        with tempfile.TemporaryDirectory(prefix="hitl-lab-") as d:
            figures = lab(Path(d), args.size, args.src)
        report(args.size, figures, args.src or "this checkout")
        return
    with tempfile.TemporaryDirectory(prefix="hitl-bench-") as d:
        tmp = Path(d)
        print(f"hitl-desktop storage benchmark (SQLite {sqlite3.sqlite_version}, files in {tmp})")
        bench_saves(tmp, args.judgments)
        bench_import(tmp, args.records)
        bench_export(tmp, args.pairs)
        bench_public_import(tmp, args.public_rows)
        bench_consensus_export(tmp, args.pairs)


if __name__ == "__main__":
    main()
