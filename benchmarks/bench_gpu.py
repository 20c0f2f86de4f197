"""GPU decoding speed against the weight-read floor (needs an NVIDIA GPU; exits 0 without one).

    python benchmarks/bench_gpu.py                 # 8B-class Llama (random weights) + the embedded model
    python benchmarks/bench_gpu.py --layers 16     # a smaller model for a smaller card
    python benchmarks/bench_gpu.py --json

What it measures, all through the app's own backend (TransformersBackend.generate, K rows
decoded together, sampling per row):

* an 8B-class Llama 3 configuration (hidden 4096, 32 layers, GQA 32/8 heads, vocabulary
  128 256) with random bf16 weights built on the card (nothing is downloaded), K=4 x 64
  new tokens: eager with a dynamic KV cache (the baseline) and the fast path (a static KV
  cache and ``torch.compile``, mode "reduce-overhead", i.e. CUDA graphs), after warm-up runs
  that compile;
* ms per decoding step against the floor: one read of every weight per step, i.e. bytes of
  weights / the card's memory bandwidth (table below; ``--bandwidth`` for another card); the
  aim is >= 0.5 of the floor's speed (H100 SXM, 8B bf16: floor 4.8 ms, aim <= ~10 ms per step);
* tok/s for K=4 (generated tokens / wall time, prefill included);
* the embedded model (Gemma 3 270M) on the same card, eager and fast, same K and length.

A step's time is (wall time - time to the first token) / (tokens per row - 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Peak memory bandwidth in bytes/s, by a substring of torch.cuda.get_device_name() (first
#: match wins, so the more specific names come first). Vendors' data sheets.
BANDWIDTH = [
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM5
    ("GH200", 4.0e12),
    ("B200", 8.0e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12),  # 40 GB
    ("L40S", 0.864e12),
    ("L40", 0.864e12),
    ("L4", 0.300e12),
    ("A10G", 0.600e12),
    ("A10", 0.600e12),
    ("RTX 4090", 1.008e12),
    ("RTX 3090", 0.936e12),
    ("RTX A6000", 0.768e12),
    ("V100", 0.900e12),
    ("T4", 0.320e12),
]

LLAMA_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def bandwidth_of(name: str) -> float | None:
    for key, value in BANDWIDTH:
        if key.lower() in name.lower():
            return value
    return None


def measure(backend, *, k: int, tokens: int, runs: int) -> dict:
    """The best of ``runs`` generations of K x ``tokens`` (EOS banned so every row runs full)."""
    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.types import Message

    backend.logit_bias = {i: float("-inf") for i in backend.eos_ids}
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=tokens)
    conversation = [Message("user", "Explain how a kidney filters blood, step by step.")]
    best = None
    for run in range(runs):
        result = backend.generate(conversation, k=k, params=params, seeds=list(range(run, run + k)))
        written = min(c.tokens for c in result.candidates)
        step_ms = (result.seconds - (result.first_token_seconds or 0.0)) / max(1, written - 1) * 1000
        figures = {
            "seconds": round(result.seconds, 3),
            "first_token_ms": round((result.first_token_seconds or 0.0) * 1000, 1),
            "ms_per_step": round(step_ms, 2),
            "tok_per_s": round(result.tokens / result.seconds, 1),
            "tokens": result.tokens,
        }
        if best is None or figures["ms_per_step"] < best["ms_per_step"]:
            best = figures
    return best


def random_llama(layers: int, device: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hitl_desktop.core.backends.tiny import build_tiny_tokenizer
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    config = LlamaConfig(**{**LLAMA_8B, "num_hidden_layers": layers})
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    # a tokenizer only to write the prompt; ids outside its vocabulary decode to nothing
    tokenizer = build_tiny_tokenizer(chat=True)
    backend = TransformersBackend(
        model, tokenizer, name=f"llama-{params / 1e9:.1f}B-random", revision="random",
        dtype="bfloat16", device=device,
    )
    return backend, params, weight_bytes


def run_pair(backend, *, k: int, tokens: int, runs: int, compile_runs: int) -> dict:
    """Eager (dynamic cache) then fast (static cache + torch.compile), same backend."""
    out = {}
    backend.fast_decode = False
    measure(backend, k=k, tokens=8, runs=1)  # kernels warmed up
    out["eager"] = measure(backend, k=k, tokens=tokens, runs=runs)
    backend.fast_decode = True
    t0 = time.perf_counter()
    measure(backend, k=k, tokens=tokens, runs=compile_runs)  # compiles, records the graphs
    out["compile_s"] = round(time.perf_counter() - t0, 1)
    out["fast"] = measure(backend, k=k, tokens=tokens, runs=runs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per candidate")
    parser.add_argument("--layers", type=int, default=32, help="decoder layers of the 8B config")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile-runs", type=int, default=2, help="warm-up runs of the fast path")
    parser.add_argument("--bandwidth", type=float, default=None, help="the card's bytes/s (else the table)")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            f"bench_gpu: no CUDA device (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda or 'none'}): nothing to measure on this machine."
        )
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cuda:0"
    name = torch.cuda.get_device_name(0)
    bandwidth = args.bandwidth or bandwidth_of(name)
    figures: dict = {"card": name, "bandwidth_bytes_per_s": bandwidth, "k": args.k, "tokens": args.tokens}

    backend, params, weight_bytes = random_llama(args.layers, device)
    floor_ms = weight_bytes / bandwidth * 1000 if bandwidth else None
    llama = {"parameters": params, "weight_bytes": weight_bytes, "floor_ms_per_step": floor_ms}
    llama.update(run_pair(backend, k=args.k, tokens=args.tokens, runs=args.runs, compile_runs=args.compile_runs))
    if floor_ms:
        for way in ("eager", "fast"):
            llama[way]["fraction_of_floor"] = round(floor_ms / llama[way]["ms_per_step"], 3)
        llama["floor_tok_per_s"] = round(args.k * 1000 / floor_ms, 1)
    figures["llama_8b_random"] = llama
    del backend
    torch.cuda.empty_cache()

    if not args.skip_embedded:
        from hitl_desktop.core.backends.transformers_backend import load_backend

        embedded = load_backend(None, device=device)
        figures["embedded"] = {"name": embedded.name, "dtype": embedded.dtype}
        figures["embedded"].update(
            run_pair(embedded, k=args.k, tokens=args.tokens, runs=args.runs, compile_runs=args.compile_runs)
        )

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    bw = f"{bandwidth / 1e12:.2f} TB/s" if bandwidth else "unknown bandwidth (use --bandwidth)"
    print(f"card: {name} ({bw}); K={args.k} x {args.tokens} new tokens; best of {args.runs}")
    floor = f"{floor_ms:.2f} ms/step ({llama['floor_tok_per_s']} tok/s)" if floor_ms else "n/a"
    print(f"llama 8B-class, random bf16: {params / 1e9:.2f} B parameters, {weight_bytes / 1e9:.1f} GB; floor {floor}")
    for way in ("eager", "fast"):
        f = llama[way]
        frac = f" = {f['fraction_of_floor']:.2f} of the floor" if "fraction_of_floor" in f else ""
        print(f"  {way:5}: {f['ms_per_step']} ms/step{frac}, {f['tok_per_s']} tok/s, first token {f['first_token_ms']} ms")
    print(f"  (fast path warm-up/compile: {llama['compile_s']} s)")
    if "embedded" in figures:
        e = figures["embedded"]
        print(f"embedded {e['name']} ({e['dtype']}):")
        for way in ("eager", "fast"):
            f = e[way]
            print(f"  {way:5}: {f['ms_per_step']} ms/step, {f['tok_per_s']} tok/s, first token {f['first_token_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
