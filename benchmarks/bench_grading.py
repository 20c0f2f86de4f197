"""Grading throughput: ``grade_store`` through a served model against a plain ``openai`` client.

    python benchmarks/bench_grading.py [--candidates 40] [--criteria 6] [--workers 16] [--delay 0.02] [--rounds 3]

Starts the grader stub (tests/helpers/grader_stub.py) in its own process on 127.0.0.1: an
OpenAI-compatible server answering each grading request after ``--delay`` seconds (standing in
for a model's latency). Then times, on that server, every (candidate, criterion) of a fresh
database (``--candidates`` x ``--criteria`` requests):

* ours: ``grading.grade_store`` with a ``ServedBackend`` (``--workers`` requests at a time),
  storing every grade with its provenance;
* plain: the ``openai`` client sending the same requests (same bodies: streamed chat
  completions, same messages and sampling parameters) from a pool of ``--workers`` threads,
  parsing each reply with the same parser, storing nothing.

Each figure is the best of ``--rounds`` (a fresh database each round). Prints requests per
second for both and the ratio ours / plain (target >= 0.8); ``--json`` prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def start_stub(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "grader_stub.py"), "ok", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    return proc, url


def make_db(path: Path, n_candidates: int, n_criteria: int):
    from hitl_desktop.core.rubrics import Criterion
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Candidate, Prompt

    store = Store.open(path)
    per_prompt = 4
    for p_i in range(0, n_candidates, per_prompt):
        p = store.add_prompt(Prompt(text=f"Question {p_i}: what should I do about symptom {p_i}?", domain="medicine",
                                    external_id=f"q{p_i}"))
        n = min(per_prompt, n_candidates - p_i)
        store.add_candidates([Candidate(prompt_id=p.id, text=f"Answer {i} mentions rest and fluids {i}.", index=i)
                              for i in range(n)], origin="imported")
        crits = [Criterion(text=f"Criterion {k} mentions {'rest' if k % 2 else 'surgery'}", points=5 - k or 1)
                 for k in range(n_criteria)]
        store.rubrics.save_rubric(p.id, crits, author="lee")
    return store


def ours(url: str, db: Path, args) -> tuple[float, int]:
    from hitl_desktop.core.backends.served import ServedBackend
    from hitl_desktop.core.grading import grade_store

    store = make_db(db, args.candidates, args.criteria)
    backend = ServedBackend(url)
    start = time.perf_counter()
    summary = grade_store(store, backend, workers=args.workers)
    seconds = time.perf_counter() - start
    backend.close()
    store.close()
    assert summary.ungraded == 0, summary
    return seconds, summary.graded


def plain(url: str, db: Path, args) -> tuple[float, int]:
    import openai

    from hitl_desktop.core.grading import GRADER_PARAMS, grader_prompt, parse_reply, work_items
    from hitl_desktop.core.types import Message

    store = make_db(db, args.candidates, args.criteria)
    prompts = [grader_prompt(w.conversation, w.answer, c) for w in work_items(store, "plain") for c in w.criteria]
    store.close()
    client = openai.OpenAI(base_url=url, api_key="none", max_retries=2)
    p = GRADER_PARAMS

    def one(text: str) -> bool:
        stream = client.chat.completions.create(
            model="grader-model", messages=[Message("user", text).to_dict()], stream=True,
            stream_options={"include_usage": True}, max_tokens=p.max_new_tokens, temperature=p.temperature,
            top_p=p.top_p, seed=0)
        reply = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        return parse_reply(reply) is not None

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        ok = sum(pool.map(one, prompts))
    seconds = time.perf_counter() - start
    client.close()
    assert ok == len(prompts)
    return seconds, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=40)
    ap.add_argument("--criteria", type=int, default=6)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--delay", type=float, default=0.02)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.pop("HITL_API_KEY", None)
    os.environ.pop("OPENAI_API_KEY", None)
    proc, url = start_stub(args.delay)
    try:
        best = {"ours": float("inf"), "plain": float("inf")}
        n = args.candidates * args.criteria
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds + 1):  # round 0 warms up
                for name, fn in (("ours", ours), ("plain", plain)):
                    seconds, graded = fn(url, Path(tmp) / f"{name}-{r}.db", args)
                    assert graded == n, (name, graded, n)
                    if r:
                        best[name] = min(best[name], seconds)
    finally:
        proc.terminate()
        proc.wait()
    out = {"requests": n, "workers": args.workers, "delay": args.delay,
           "ours_per_s": round(n / best["ours"], 1), "plain_per_s": round(n / best["plain"], 1),
           "ratio": round(best["plain"] / best["ours"], 3)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{n} grading requests, {args.workers} at a time, server delay {args.delay * 1000:.0f} ms: "
              f"ours {out['ours_per_s']}/s, plain client {out['plain_per_s']}/s, ratio x{out['ratio']:.2f}")


if __name__ == "__main__":
    main()
