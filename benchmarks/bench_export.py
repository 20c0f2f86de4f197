"""Export speed: 100 000 preference pairs to JSONL (target < 5 s), against naive baselines.

    python benchmarks/bench_export.py [--pairs 100000] [--k 5] [--keep DIR]

Builds an in-memory store of judgments (K candidates each, no ties, so K(K-1)/2 pairs per
judgment), then times:

* loading the judged items from the store (``Store.judged_items``),
* ``export_dataset`` to JSONL from pre-loaded items (row building + writing) and end to end,
* ``export_dataset`` to Parquet and to a ``datasets`` folder, for reference,
* baseline A: the same rows, ``json.dumps`` + ``write`` + ``flush`` per row (no batching),
* baseline B: the same rows through ``datasets.Dataset.from_list(...).to_json(...)``.

Prints the figures and the ratios. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hitl_desktop.core.export import build_rows, export_dataset  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402
from hitl_desktop.core.types import Candidate, Judgment, Prompt, Tutor  # noqa: E402

LOREM = (
    "Paracetamol is usually given at 500 mg to 1 g every four to six hours, no more than 4 g "
    "in 24 hours for adults; lower limits apply to people who weigh under 50 kg, drink alcohol "
    "regularly or have liver disease. Ποια είναι η δόση; 日本語のテキスト 🙂 "
)


def build_store(n_pairs: int, k: int) -> Store:
    per = k * (k - 1) // 2
    n_judgments = -(-n_pairs // per)
    store = Store.memory()
    tutors = [Tutor(name=f"Tutor {i}") for i in range(5)]
    prompts, cands, judgments = [], [], []
    for n in range(n_judgments):
        p = Prompt(text=f"Question {n}: {LOREM[: 80 + n % 60]}", domain=("medicine", "law")[n % 2])
        cs = [
            Candidate(
                prompt_id=p.id, text=f"Answer {i} / {n}. {LOREM}", model="gemma", seed=i, index=i
            )
            for i in range(k)
        ]
        prompts.append(p)
        cands.extend(cs)
        judgments.append(
            Judgment(
                prompt_id=p.id,
                tutor_id=tutors[n % len(tutors)].id,
                ranks={c.id: i + 1 for i, c in enumerate(cs)},
                strength=1 + n % 3,
            )
        )
    store.bulk_insert(tutors=tutors, prompts=prompts, candidates=cands, judgments=judgments)
    return store


def timed(label: str, fn, figures: dict[str, float]):
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    figures[label] = dt
    print(f"  {label:<48} {dt:7.2f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=5, help="candidates per judgment")
    ap.add_argument(
        "--keep", type=Path, help="write the outputs here instead of a temporary folder"
    )
    args = ap.parse_args(argv)

    print(f"building a store with >= {args.pairs} pairs (K={args.k}) ...")
    store = build_store(args.pairs, args.k)
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    try:
        items = timed(
            "load judged items from the store", lambda: list(store.judged_items()), figures
        )
        s = timed(
            "export jsonl (pre-loaded items)",
            lambda: export_dataset(store, fmt="trl-preference", out=tmp / "a.jsonl", items=items),
            figures,
        )
        print(
            f"    -> {s.rows} rows, {s.judgments} judgments, {(tmp / 'a.jsonl').stat().st_size / 1e6:.0f} MB"
        )
        timed(
            "export jsonl (end to end, from the store)",
            lambda: export_dataset(store, fmt="trl-preference", out=tmp / "b.jsonl"),
            figures,
        )
        timed(
            "export jsonl, 10 % test split",
            lambda: export_dataset(
                store, fmt="trl-preference", out=tmp / "c.jsonl", items=items, test_fraction=0.1
            ),
            figures,
        )
        timed(
            "export parquet (pre-loaded items)",
            lambda: export_dataset(store, fmt="trl-preference", out=tmp / "d.parquet", items=items),
            figures,
        )
        timed(
            "export datasets folder (pre-loaded items)",
            lambda: export_dataset(store, fmt="trl-preference", out=tmp / "e", items=items),
            figures,
        )
        cache: dict[str, str] = {}
        rows = timed(
            "build_rows only",
            lambda: build_rows(
                "trl-preference",
                items,
                tutor_name=lambda n: cache.setdefault(n, store.pseudonym(n)),
            ),
            figures,
        )

        def naive_per_row():
            with open(tmp / "naive.jsonl", "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    f.flush()

        timed("baseline A: json.dumps + write + flush per row", naive_per_row, figures)

        def via_datasets():
            import datasets

            datasets.disable_progress_bars()
            datasets.Dataset.from_list(rows).to_json(str(tmp / "hf.jsonl"), force_ascii=False)

        timed("baseline B: datasets from_list(...).to_json(...)", via_datasets, figures)

        ours = figures["export jsonl (pre-loaded items)"]
        build = figures["build_rows only"]
        print()
        print(
            f"  jsonl export of {s.rows} pairs: {ours:.2f} s (target < 5 s): "
            f"{'OK' if ours < 5 else 'SLOW'}; end to end {figures['export jsonl (end to end, from the store)']:.2f} s"
        )
        writing = max(ours - build, 1e-9)
        print(
            f"  ours: {ours:.2f} s with row building, ~{writing:.2f} s writing (incl. fsync + rename)"
        )
        for name in (
            "baseline A: json.dumps + write + flush per row",
            "baseline B: datasets from_list(...).to_json(...)",
        ):
            base = figures[name]
            # the baselines start from rows already built: compare with our writing part
            print(
                f"  {name.split(':')[0]}: {base:.2f} s writing the same rows; "
                f"ratio baseline / ours-writing = {base / writing:.2f}, "
                f"baseline / ours-total = {base / ours:.2f}"
            )
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
