"""Flat memory (issue 18): export (JSONL, Parquet; plain and --consensus) and the figures of
``stats --json`` and the Quality dashboard read the database a batch at a time, so their peak
memory does not grow with the number of judgments. Measured at two sizes, ten times apart:
the peak of Python's allocations (tracemalloc) may grow by at most a small factor, not by
ten."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from hitl_desktop.core.export import export_dataset
from hitl_desktop.core.lab_stats import lab_stats
from hitl_desktop.core.quality import quality_summary
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt, Tutor

SMALL, LARGE = 600, 6_000  # judgments: half as many prompts, two tutors each
GROWTH = 1.3


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Batches of 50 judgments and 200 rows: both sizes hold many (the peak is one batch's)."""
    from hitl_desktop.core import judged_reader
    from hitl_desktop.core.export import files

    monkeypatch.setattr(judged_reader, "BATCH", 50)
    monkeypatch.setattr(files, "BATCH_ROWS", 200)


def build(path, n: int) -> Store:
    store = Store.open(path)
    ann, bob = Tutor(name="ann"), Tutor(name="bob")
    prompts, cands, judgments = [], [], []
    for i in range(n // 2):
        p = Prompt(text=f"Question {i}: what is the usual dose of drug {i}?", domain=("medicine", "law", "stem")[i % 3])
        cs = [Candidate(prompt_id=p.id, text=f"Answer {k} to question {i}. " * 4, index=k, seed=k, model=f"m{k % 2}")
              for k in range(4)]  # fmt: skip
        prompts.append(p)
        cands.extend(cs)
        for t, ranking in ((ann, [1, 2, 3, 4]), (bob, [1, 3, 2, 4])):
            judgments.append(
                Judgment(
                    prompt_id=p.id, tutor_id=t.id, ranks={c.id: r for c, r in zip(cs, ranking, strict=True)},
                    flags={cs[3].id: ["incorrect"]}, seconds_spent=float(10 + i % 50),
                    display_order=[c.id for c in reversed(cs)],
                    correction=Correction(text=f"A better answer {i}", candidate_id=cs[0].id) if i % 5 == 0 else None,
                    created_at=f"2026-01-01T{i % 24:02d}:00:00.{i:06d}",
                )
            )  # fmt: skip
    store.bulk_insert(tutors=[ann, bob], prompts=prompts, candidates=cands, judgments=judgments)
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    made = {n: build(root / f"lab-{n}.db", n) for n in (SMALL, LARGE)}
    yield made
    for s in made.values():
        s.close()


def peak(fn) -> int:
    """Peak bytes of Python's allocations during ``fn()`` (Arrow's own buffers are measured
    as RSS by benchmarks/bench_store.py)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, top = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return top


CASES = {
    "jsonl": dict(fmt="trl-preference", suffix=".jsonl"),
    "parquet": dict(fmt="trl-preference", suffix=".parquet"),
    "jsonl --consensus": dict(fmt="trl-preference", suffix=".jsonl", consensus=True),
    "kto parquet --consensus": dict(fmt="kto", suffix=".parquet", consensus=True),
    "hh-rlhf datasets folder": dict(fmt="hh-rlhf", suffix="-folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_peak_memory_does_not_grow_with_the_database(stores, tmp_path, case):
    opts = dict(CASES[case])
    suffix = opts.pop("suffix")
    export_dataset(stores[SMALL], out=tmp_path / f"warm{suffix}", **opts)  # imports, caches
    peaks, rows = {}, {}
    for n, store in stores.items():
        out = tmp_path / f"{n}{suffix}"
        summary = None

        def run(store=store, out=out):
            nonlocal summary
            summary = export_dataset(store, out=out, **opts)

        peaks[n] = peak(run)
        rows[n] = summary.rows
    assert rows[LARGE] >= 9 * rows[SMALL] > 0, rows  # ten times the rows ...
    assert peaks[LARGE] <= GROWTH * peaks[SMALL], f"peak grew {peaks[LARGE] / peaks[SMALL]:.2f}x: {peaks}"


def test_stats_and_dashboard_peak_memory_does_not_grow_with_the_database(stores):
    for name, fn in (("stats", lambda s: lab_stats(s, rounds=20)), ("dashboard", quality_summary)):
        fn(stores[SMALL])  # imports, caches
        peaks, judged = {}, {}
        for n, store in stores.items():
            out = {}
            peaks[n] = peak(lambda store=store, out=out, fn=fn: out.update(r=fn(store)))
            judged[n] = out["r"]["judgments"]
        assert judged == {SMALL: SMALL, LARGE: LARGE}
        assert peaks[LARGE] <= GROWTH * peaks[SMALL], f"{name}: peak grew {peaks[LARGE] / peaks[SMALL]:.2f}x: {peaks}"


#: A split export keeps ids, never rows: a few hundred bytes per prompt at most.
SPLIT_BYTES_PER_PROMPT = 400


@pytest.mark.slow  # ~35 s on a busy 2-core machine, with the rest of this file's ~70 s
@pytest.mark.parametrize("suffix", [".jsonl", "-folder"])
def test_a_split_export_keeps_only_ids(stores, tmp_path, suffix):
    opts = dict(fmt="trl-preference", test_fraction=0.2, seed=3)
    export_dataset(stores[SMALL], out=tmp_path / f"warm{suffix}", **opts)
    peaks = {}
    for n, store in stores.items():
        peaks[n] = peak(lambda store=store, n=n: export_dataset(store, out=tmp_path / f"{n}{suffix}", **opts))
    extra_prompts = (LARGE - SMALL) // 2
    assert peaks[LARGE] <= GROWTH * peaks[SMALL] + SPLIT_BYTES_PER_PROMPT * extra_prompts, peaks


def _lab_file(path, n: int) -> None:
    """n judgments as records: n/2 prompts, two tutors each, 4 candidates."""
    import json

    with path.open("w", encoding="utf-8") as f:
        for i in range(n // 2):
            base = {"id": f"q{i}", "prompt": f"Question {i}: the dose of drug {i}?", "domain": "medicine",
                    "candidates": [f"Answer {k} to question {i}. " * 4 for k in range(4)]}  # fmt: skip
            f.write(json.dumps({**base, "ranking": [1, 2, 3, 4], "tutor": "ann"}) + "\n")
            f.write(json.dumps({**base, "ranking": [1, 3, 2, 4], "tutor": "bob"}) + "\n")


def test_import_peak_memory_does_not_grow_with_the_file(tmp_path):
    """Batches of 100 records: what the import keeps between batches (the line each prompt was
    first seen on, the prompts of the database it reused) is in SQLite's temp database, not
    in memory (before: a dict of every prompt's id and line)."""
    from hitl_desktop.core.importing import import_file

    warm = tmp_path / "warm.jsonl"
    _lab_file(warm, 20)
    import_file(Store.memory(), warm, batch_size=100)  # what a first import loads, once
    peaks = {}
    for n in (SMALL, LARGE):
        src = tmp_path / f"lab-{n}.jsonl"
        _lab_file(src, n)
        store = Store.open(tmp_path / f"import-{n}.db")
        peaks[n] = peak(lambda store=store, src=src: import_file(store, src, batch_size=100))
        assert store.db.execute("select count(*) from judgments").fetchone()[0] == n
        store.close()
    assert peaks[LARGE] <= GROWTH * peaks[SMALL], peaks


PARQUET_WRITE = r"""
import resource, sys
from pathlib import Path
from hitl_desktop.core import files
from hitl_desktop.core.export import files as export_files

export_files.BATCH_ROWS = 50
files.ROW_GROUP_BYTES = 2 << 20
n, out = int(sys.argv[1]), Path(sys.argv[2])
rows = ({"prompt": f"Question {i // 6}: the dose of drug {i // 6}?", "chosen": f"Answer 1 to {i}. " * 8,
         "rejected": f"Answer 2 to {i}. " * 8, "margin": 1.0, "judgment_id": f"{i:036d}", "tutor": "tutor-1",
         "chosen_seed": i, "rejected_seed": i + 1, "chosen_flags": [], "rejected_flags": ["incorrect"]}
        for i in range(n))
export_files.write_parquet(out / "warm.parquet", "trl-preference", [next(rows)])  # imports, once
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
export_files.write_parquet(out / "rows.parquet", "trl-preference", rows)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_parquet_writer_memory_does_not_grow_with_the_rows(tmp_path):
    """Arrow's and the Parquet writer's own memory, which tracemalloc does not see: the growth
    of the peak RSS of a process writing 2,000 rows and 100,000 rows (in batches of 50). The
    writer keeps some 40 KB per row group until it closes the file, so row groups of one batch
    each (2,000 of them here) grew it by some 80 MB; row groups of about ROW_GROUP_BYTES keep
    it to a few."""
    import subprocess
    import sys

    import pyarrow.parquet as pq

    grown = {}
    for n in (2_000, 100_000):
        out = tmp_path / str(n)
        out.mkdir()
        done = subprocess.run([sys.executable, "-c", PARQUET_WRITE, str(n), str(out)], capture_output=True, text=True,
                              check=True)  # fmt: skip
        grown[n] = float(done.stdout)
        meta = pq.ParquetFile(out / "rows.parquet").metadata
        assert meta.num_rows == n - 1
    assert meta.num_row_groups < 100  # (100,000 rows: some 30 groups of 2 MB, not 2,000 of one batch)
    assert grown[100_000] - grown[2_000] < 25, f"peak RSS grew by {grown} MB"
