"""The CUDA fast path (a static KV cache and a compiled decoding step), checked on the CPU:
torch.compile with a backend that only counts the graphs it is given (dynamo guards and
recompiles exactly as it does on a GPU), against the eager path's texts.

What a GPU showed and these keep fixed: a sliding-window model (Gemma 3, the embedded model)
recompiled at every step until torch.compile gave up (2.5 minutes on an H200, then eager);
and each new prompt length or K compiled again (20-35 s each) at the tutor's request."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from hitl_desktop.core.backends.base import SamplingParams  # noqa: E402
from hitl_desktop.core.backends.transformers_backend import (  # noqa: E402
    STATIC_CACHE_MIN,
    TransformersBackend,
)
from hitl_desktop.core.types import Message  # noqa: E402

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)


class Counted:
    """A torch.compile backend that runs the graph as traced and counts the compilations."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


@pytest.fixture
def backend(monkeypatch, tiny_model_dir):
    """The tiny Gemma 3 (sliding-window layers, window 8), its step compiled as on CUDA."""
    # generate() sets the CPU threads, and dynamo guards on them: keep them what they are
    monkeypatch.setenv("HITL_CPU_THREADS", str(torch.get_num_threads()))
    monkeypatch.delenv("HITL_FAST_DECODE", raising=False)
    torch._dynamo.reset()
    b = TransformersBackend.load(tiny_model_dir, dtype="float32")
    assert "sliding_attention" in b.model.config.layer_types
    b.logit_bias = {i: float("-inf") for i in b.eos_ids}  # every row runs to the length
    counted = Counted()
    b._compiled = torch.compile(b.model, backend=counted)  # what _prefill makes on CUDA
    yield b, counted
    torch._dynamo.reset()


def conversation(words: int) -> list[Message]:
    return [Message("user", "Summarise: " + " ".join(["kidney"] * words))]


def texts(b: TransformersBackend, conv, k: int, *, fast: bool) -> list[str]:
    b.fast_decode = fast
    result = b.generate(conv, k=k, params=GREEDY, seeds=list(range(k)))
    assert all(c.tokens == GREEDY.max_new_tokens for c in result.candidates)
    return [c.text for c in result.candidates]


def test_a_sliding_window_model_compiles_once_not_at_every_step(backend):
    b, counted = backend
    conv = conversation(10)  # a prompt longer than the window
    assert len(b.encode_prompt(conv)) > 8
    fast = texts(b, conv, 3, fast=True)
    assert counted.graphs == 1  # 11 decoding steps, one compilation
    assert texts(b, conv, 3, fast=True) == fast
    assert counted.graphs == 1
    # the window still applies: the static path writes what the dynamic cache writes
    assert texts(b, conv, 3, fast=False) == fast


def test_cache_sizes_are_powers_of_two_and_a_third_size_compiles_nothing(backend):
    b, counted = backend
    seen = []
    for words in (2, 60, 150):
        texts(b, conversation(words), 3, fast=True)
        size = b._static_cache[0][1]
        prompt = len(b.encode_prompt(conversation(words)))
        assert size >= prompt + GREEDY.max_new_tokens + 1 and size < 2 * max(STATIC_CACHE_MIN, prompt + 13)
        assert size & (size - 1) == 0 and size >= STATIC_CACHE_MIN
        seen.append(size)
    assert len(set(seen)) == 3
    assert counted.graphs == 2  # static at the first size, then once for any size


def test_compiling_at_load_leaves_nothing_to_compile_at_the_requests(backend):
    b, counted = backend
    b.fast_decode = True
    assert b.compile_fast_path() is None
    assert counted.graphs == 2 and b.fast_decode
    for words, k in ((3, 4), (120, 2), (40, 5), (3, 4)):
        conv = conversation(words)
        fast = texts(b, conv, k, fast=True)
        assert texts(b, conv, k, fast=False) == fast
    assert counted.graphs == 2


def test_a_fast_path_that_cannot_compile_is_turned_off_and_generation_still_works(backend):
    b, _ = backend

    def broken(graph_module, example_inputs):
        raise RuntimeError("no C compiler on this machine")

    b._compiled = torch.compile(b.model, backend=broken)
    b.fast_decode = True
    error = b.compile_fast_path()
    assert error and "no C compiler" in error and "\n" not in error
    assert b.fast_decode is False and b._compiled is None
    assert len(texts(b, conversation(3), 2, fast=False)) == 2


@pytest.mark.parametrize(
    ("switch", "device", "expected"),
    [("", "cuda:0", True), ("", "cpu", False), ("0", "cuda:0", False), ("1", "cpu", True)],
)
def test_fast_decode_default_and_switch(monkeypatch, tiny_model_dir, switch, device, expected):
    monkeypatch.setenv("HITL_FAST_DECODE", switch)
    loaded = TransformersBackend.load(tiny_model_dir, dtype="float32")
    b = TransformersBackend(
        loaded.model, loaded.tokenizer, name="t", revision="r", dtype="float32", device=device
    )
    assert b.fast_decode is expected


def test_bench_gpu_smoke_runs_the_whole_script_on_the_cpu(capsys, monkeypatch):
    """bench_gpu.py --smoke: every code path of the GPU benchmark (eager, fast, the model
    alone, growing prompts) on a tiny Llama, so the script a GPU session runs is known to run."""
    import runpy

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke", "--tokens", "6", "--json"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    import json

    figures = json.loads(out)["llama_8b_random"]
    for way in ("eager", "fast"):
        assert figures[way]["tokens"] == 4 * 6 and figures[way]["forward_ms_per_step"] > 0
    assert [row["cache_tokens"] for row in figures["cache_sizes"]][:3] == sorted(
        row["cache_tokens"] for row in figures["cache_sizes"][:3]
    )
