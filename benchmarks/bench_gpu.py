"""GPU decoding speed against the weight-read floor (needs an NVIDIA GPU; exits 0 without one).

    python benchmarks/bench_gpu.py                 # 8B-class Llama (random weights) + the embedded model
    python benchmarks/bench_gpu.py --layers 16     # a smaller model for a smaller card
    python benchmarks/bench_gpu.py --json
    python benchmarks/bench_gpu.py --embedded-config ~/.cache/hitl-desktop/models/a5fd3b62230aa5ec
    python benchmarks/bench_gpu.py --smoke         # a tiny Llama on the CPU: the script runs

Figures measured on H100 and H200 cards: README ("GPU figures") and benchmarks/gpu-results.json.

What it measures, all through the app's own backend (TransformersBackend.generate, K rows
decoded together, sampling per row):

* an 8B-class Llama 3 configuration (hidden 4096, 32 layers, GQA 32/8 heads, vocabulary
  128 256) with random bf16 weights built on the card (nothing is downloaded), K=4 x 64
  new tokens: eager with a dynamic KV cache (the baseline) and the fast path (a static KV
  cache and ``torch.compile``, mode "reduce-overhead", i.e. CUDA graphs), compiled first as
  the app compiles it while a model loads (``compile_fast_path``), then a warm-up request;
* ms per decoding step against the floor: one read of every weight per step, i.e. bytes of
  weights / the card's memory bandwidth (table below; ``--bandwidth`` for another card); the
  aim is >= 0.5 of the floor's speed (H100 SXM, 8B bf16: floor 4.8 ms, aim <= ~10 ms per step);
* tok/s for K=4 (generated tokens / wall time, prefill included);
* the embedded model (Gemma 3 270M) on the same card, eager and fast, same K and length;
  ``--embedded-config DIR`` builds it with random weights from a folder holding its
  config.json and tokenizer files (the converted model in the app's cache), for a card whose
  machine lacks the GGUF: speed does not depend on the weights' values;
* "forward": ms per decoding step of the model alone (the same cache and compiled step,
  waiting for each step's logits, no sampling or detokenising), so the loop's own cost per
  step is the difference; "queued": the same steps without waiting (the card's own time);
* growing prompts (embedded model): the first request and ms per step at each static-cache
  size (powers of two), i.e. what a longer prompt costs once the step is compiled.

Random weights give a nearly flat next-token distribution, which no trained model gives, and
top-p 0.95 over a flat distribution sorts the whole vocabulary every step; so the random
models sample at temperature 0.1, which makes their distribution about as peaked as a trained
model's (the embedded model loaded from its GGUF samples at 1.0, as in the app).

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
    temperature = 0.1 if backend.revision == "random" else 1.0  # see the module doc
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=tokens)
    conversation = [Message("user", "Explain how a kidney filters blood, step by step.")]
    best = None
    for run in range(runs):
        result = backend.generate(conversation, k=k, params=params, seeds=list(range(run, run + k)))
        written = min(c.tokens for c in result.candidates)
        step_ms = (
            (result.seconds - (result.first_token_seconds or 0.0)) / max(1, written - 1) * 1000
        )
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


def forward_ms(backend, *, k: int, steps: int = 32) -> dict:
    """ms per decoding step of the model alone, K lines, the backend's own cache and step:
    "forward_ms_per_step" waits for each step (what decoding waits: the next token needs
    these logits), "pipelined_ms_per_step" queues them all (the card's own time; the
    difference is the host's per-step cost: launches, guards, the input's copy)."""
    import torch

    from hitl_desktop.core.types import Message

    cuda = backend.device.startswith("cuda")
    prompt = backend.encode_prompt(
        [Message("user", "Explain how a kidney filters blood, step by step.")]
    )
    width = max(2, k)
    out = {}
    with torch.inference_mode():
        for name, wait in (("forward_ms_per_step", True), ("pipelined_ms_per_step", False)):
            _, past = backend._prefill(prompt, width, steps + 8)
            for _ in range(3):  # the first steps record the CUDA graphs
                _, past = backend._step([backend.pad_id] * width, past)
            _, past = backend._prefill(prompt, width, steps + 8)
            torch.cuda.synchronize() if cuda else None
            t0 = time.perf_counter()
            for _ in range(steps):
                logits, past = backend._step([backend.pad_id] * width, past)
                if wait:
                    logits[0, 0].item()
            torch.cuda.synchronize() if cuda else None
            out[name] = round((time.perf_counter() - t0) / steps * 1000, 2)
    return out


def cache_sizes(backend, *, k: int, tokens: int) -> list[dict]:
    """The fast path's first request at each static-cache size (prompts of growing length),
    then a second request of that length: the compile paid (once static, then once for any
    size), and ms per step at that cache size."""
    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.types import Message

    backend.fast_decode = True
    backend.logit_bias = {i: float("-inf") for i in backend.eos_ids}
    temperature = 0.1 if backend.revision == "random" else 1.0
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=tokens)
    rows = []
    for words in (20, 400, 1200, 60):
        conversation = [Message("user", "Summarise: " + " ".join(["kidney"] * words))]
        prompt_tokens = len(backend.encode_prompt(conversation))
        first = backend.generate(conversation, k=k, params=params, seeds=list(range(k)))
        again = backend.generate(conversation, k=k, params=params, seeds=list(range(k)))
        written = min(c.tokens for c in again.candidates)
        step = (again.seconds - (again.first_token_seconds or 0.0)) / max(1, written - 1) * 1000
        row = {
            "prompt_tokens": prompt_tokens,
            "cache_tokens": backend._static_cache[0][1],
            "first_request_s": round(first.seconds, 2),
            "ms_per_step": round(step, 2),
        }
        progress(f"{backend.name} cache size: {row}")
        rows.append(row)
    return rows


def random_model(folder: Path, device: str):
    """The model whose config.json and tokenizer are in ``folder``, with random bf16 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    config = AutoConfig.from_pretrained(folder)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    name = f"{config.model_type} from {folder.name}/config.json (random weights)"
    return TransformersBackend(
        model, tokenizer, name=name, revision="random", dtype="bfloat16", device=device
    )


def random_llama(layers: int, device: str, overrides: dict | None = None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hitl_desktop.core.backends.tiny import build_tiny_tokenizer
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    config = LlamaConfig(**{**LLAMA_8B, "num_hidden_layers": layers, **(overrides or {})})
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
        model,
        tokenizer,
        name=f"llama-{params / 1e9:.1f}B-random",
        revision="random",
        dtype="bfloat16",
        device=device,
    )
    return backend, params, weight_bytes


def run_pair(backend, *, k: int, tokens: int, runs: int, compile_runs: int) -> dict:
    """Eager (dynamic cache) then fast (static cache + torch.compile), same backend. The fast
    way is compiled first as the app compiles it while the model loads
    (``compile_fast_path``: two shapes, so the step is compiled for any K and cache size);
    "fast_compile_s" is that time. A way that fails is reported as its error, and the other
    is still measured."""
    out: dict = {}
    for way in ("eager", "fast"):
        backend.fast_decode = way == "fast"
        try:
            if way == "fast":
                t0 = time.perf_counter()
                failed = backend.compile_fast_path()
                if failed:
                    raise RuntimeError(f"compile_fast_path: {failed}")
                out["fast_compile_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()  # then the request's own shape: its CUDA graph recorded
            measure(backend, k=k, tokens=tokens if way == "fast" else 8, runs=compile_runs)
            out[f"{way}_warmup_s"] = round(time.perf_counter() - t0, 1)
            out[way] = measure(backend, k=k, tokens=tokens, runs=runs)
            out[way].update(forward_ms(backend, k=k))
        except Exception as e:  # noqa: BLE001 - a benchmark reports what failed and goes on
            out[way] = {"error": f"{type(e).__name__}: {e}"[:500]}
        progress(f"{backend.name} {way}: {out[way]}")
    return out


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per candidate")
    parser.add_argument("--layers", type=int, default=32, help="decoder layers of the 8B config")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile-runs", type=int, default=1, help="warm-up runs of each way")
    parser.add_argument(
        "--bandwidth", type=float, default=None, help="the card's bytes/s (else the table)"
    )
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-llama", action="store_true", help="only the embedded model")
    parser.add_argument(
        "--skip-cache-sizes", action="store_true", help="no requests of growing prompt length"
    )
    parser.add_argument(
        "--embedded-config",
        type=Path,
        default=None,
        help="a folder with the embedded model's config.json and tokenizer: random weights of its shape",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--json-out", type=Path, default=None, help="also write the figures to this file"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny Llama on the CPU: checks the script runs"
    )
    args = parser.parse_args()

    import torch

    if args.smoke:
        return smoke(args)
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
    import transformers

    figures: dict = {
        "card": name,
        "bandwidth_bytes_per_s": bandwidth,
        "k": args.k,
        "tokens": args.tokens,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    progress(f"{name}, torch {torch.__version__}, transformers {transformers.__version__}")

    if not args.skip_llama:
        figures["llama_8b_random"] = llama_figures(args, device, bandwidth, layers=args.layers)
        torch.cuda.empty_cache()

    if not args.skip_embedded:
        from hitl_desktop.core.backends.transformers_backend import load_backend

        if args.embedded_config:
            embedded = random_model(args.embedded_config, device)
        else:
            embedded = load_backend(None, device=device)
        figures["embedded"] = embedded_figures(embedded, args, sizes=not args.skip_cache_sizes)
    report(figures, args)
    return 0


def llama_figures(
    args: argparse.Namespace,
    device: str,
    bandwidth: float | None,
    *,
    layers: int,
    overrides: dict | None = None,
    sizes: bool = False,
) -> dict:
    """The random Llama's figures, eager and fast, against the weight-read floor."""
    backend, params, weight_bytes = random_llama(layers, device, overrides)
    progress(f"llama built: {params / 1e9:.2f} B parameters")
    floor_ms = weight_bytes / bandwidth * 1000 if bandwidth else None
    llama = {"parameters": params, "weight_bytes": weight_bytes, "floor_ms_per_step": floor_ms}
    llama.update(
        run_pair(
            backend, k=args.k, tokens=args.tokens, runs=args.runs, compile_runs=args.compile_runs
        )
    )
    if sizes:
        llama["cache_sizes"] = cache_sizes(backend, k=args.k, tokens=args.tokens)
    if floor_ms:
        for way in ("eager", "fast"):
            if "ms_per_step" in llama[way]:
                llama[way]["fraction_of_floor"] = round(floor_ms / llama[way]["ms_per_step"], 3)
        llama["floor_tok_per_s"] = round(args.k * 1000 / floor_ms, 1)
    return llama


def embedded_figures(embedded, args: argparse.Namespace, *, sizes: bool) -> dict:
    """The embedded model's figures, eager and fast, and (``sizes``) at growing prompts."""
    out = {"name": embedded.name, "dtype": embedded.dtype}
    out.update(
        run_pair(
            embedded, k=args.k, tokens=args.tokens, runs=args.runs, compile_runs=args.compile_runs
        )
    )
    if sizes:
        try:
            out["cache_sizes"] = cache_sizes(embedded, k=args.k, tokens=args.tokens)
        except Exception as e:  # noqa: BLE001 - a benchmark reports what failed and goes on
            out["cache_sizes"] = [{"error": f"{type(e).__name__}: {e}"[:500]}]
    return out


def report(figures: dict, args: argparse.Namespace) -> None:
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    name, bandwidth = figures["card"], figures["bandwidth_bytes_per_s"]
    bw = f"{bandwidth / 1e12:.2f} TB/s" if bandwidth else "unknown bandwidth (use --bandwidth)"
    print(f"card: {name} ({bw}); K={args.k} x {args.tokens} new tokens; best of {args.runs}")
    if "llama_8b_random" in figures:
        print_llama(figures["llama_8b_random"])
    if "embedded" in figures:
        e = figures["embedded"]
        print(f"embedded {e['name']} ({e['dtype']}):")
        for way in ("eager", "fast"):
            print(f"  {way:5}: {line(e[way])}")
        for row in e.get("cache_sizes", []):
            if "error" in row:
                print(f"  growing prompts: failed: {row['error']}")
            else:
                print(
                    f"  prompt {row['prompt_tokens']} tokens, cache {row['cache_tokens']}: first "
                    f"request {row['first_request_s']} s, then {row['ms_per_step']} ms/step"
                )


def print_llama(llama: dict) -> None:
    params, weight_bytes, floor_ms = (
        llama["parameters"],
        llama["weight_bytes"],
        llama["floor_ms_per_step"],
    )
    floor = f"{floor_ms:.2f} ms/step ({llama['floor_tok_per_s']} tok/s)" if floor_ms else "n/a"
    print(
        f"llama 8B-class, random bf16: {params / 1e9:.2f} B parameters, "
        f"{weight_bytes / 1e9:.1f} GB; floor {floor}"
    )
    for way in ("eager", "fast"):
        print(f"  {way:5}: {line(llama[way])}")
    print(
        f"  (fast path compiled in {llama.get('fast_compile_s', '?')} s, "
        f"then {llama.get('fast_warmup_s', '?')} s to the first request)"
    )


def line(f: dict) -> str:
    if "error" in f:
        return f"failed: {f['error']}"
    frac = f" = {f['fraction_of_floor']:.2f} of the floor" if "fraction_of_floor" in f else ""
    return (
        f"{f['ms_per_step']} ms/step{frac} ({f['forward_ms_per_step']} ms the model alone, "
        f"{f['pipelined_ms_per_step']} queued), "
        f"{f['tok_per_s']} tok/s, first token {f['first_token_ms']} ms"
    )


def smoke(args: argparse.Namespace) -> int:
    """The whole script on the CPU with a tiny Llama (and the embedded config, if given)."""
    tiny = dict(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
    )
    args.runs = args.compile_runs = 1
    figures = {
        "card": "cpu (smoke)",
        "bandwidth_bytes_per_s": 1e11,
        "k": args.k,
        "tokens": args.tokens,
        "llama_8b_random": llama_figures(args, "cpu", 1e11, layers=2, overrides=tiny, sizes=True),
    }
    if args.embedded_config:
        embedded = random_model(args.embedded_config, "cpu")
        figures["embedded"] = embedded_figures(embedded, args, sizes=False)
    report(figures, args)
    failed = [
        w
        for part in ("llama_8b_random", "embedded")
        for w in ("eager", "fast")
        if "error" in figures.get(part, {}).get(w, {})
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
