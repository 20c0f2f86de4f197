"""Int8 weight-only layers for the CPU (core/backends/int8.py) and their use by the backend."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hitl_desktop.core.backends.base import SamplingParams  # noqa: E402
from hitl_desktop.core.backends.int8 import Int8Embedding, Int8Linear, quantize_linears  # noqa: E402
from hitl_desktop.core.types import Message  # noqa: E402


def test_int8_linear_matches_its_dequantized_weight_and_stays_near_the_float_one():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(40, 64, generator=g).to(torch.bfloat16)
    bias = torch.randn(40, generator=g).to(torch.bfloat16)
    layer = Int8Linear.from_linear(weight, bias)
    assert layer.weight.dtype == torch.int8 and layer.weight.abs().max() <= 127
    x = torch.randn(3, 5, 64, generator=g).to(torch.bfloat16)
    dequant = layer.weight.float() * layer.scales.float()[:, None]
    # per channel: every weight within half a step, plus the bf16 rounding of the scale (127 x 2^-8)
    assert ((dequant - weight.float()).abs() <= layer.scales.float()[:, None] * 1.0).all()
    y = layer(x)
    assert y.shape == (3, 5, 40)
    expected = x.float() @ dequant.T + bias.float()
    assert torch.allclose(y.float(), expected, atol=0.1, rtol=0.02)
    exact = x.float() @ weight.float().T + bias.float()
    assert (y.float() - exact).abs().max() < 0.05 * exact.abs().max()


def test_quantizing_a_tied_model_shares_one_int8_table(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).eval()
    ids = torch.tensor([[5, 17, 99, 3]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits.float()
        emb_before = model.get_input_embeddings()(ids).float()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    n = quantize_linears(model)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert n > 0 and not linears  # every linear layer replaced
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    assert isinstance(out, Int8Linear) and isinstance(inp, Int8Embedding) and inp.table is out
    assert not model.config.tie_word_embeddings
    with torch.inference_mode():
        after = model(input_ids=ids).logits.float()
        emb_after = inp(ids).float()
    assert torch.allclose(emb_after, emb_before, atol=0.05 * emb_before.abs().max().item())
    # near the bf16 model: same most likely token at most positions, logits close
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.75
    assert (after - before).abs().max() < 0.2 * before.abs().max()


def test_the_backend_uses_int8_on_the_cpu_unless_switched_off(tiny_model_dir, monkeypatch):
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    conv = [Message("user", "Hello")]
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    backend = TransformersBackend.load(tiny_model_dir)
    assert backend.weights == "int8"
    assert isinstance(backend.model.get_output_embeddings(), Int8Linear)
    result = backend.generate(conv, k=2, params=params, seeds=[1, 2])
    assert result.params["weights"] == "int8" and result.dtype == "bfloat16"
    assert result.candidates[0].tokens > 0
    monkeypatch.setenv("HITL_CPU_INT8", "0")
    plain = TransformersBackend.load(tiny_model_dir)
    assert plain.weights == "bfloat16"
    assert isinstance(plain.model.get_output_embeddings(), torch.nn.Linear)
    assert "weights" not in plain.generate(conv, k=2, params=params, seeds=[1, 2]).params
    # float32 is left as it is (the kernel's float32 path is slow)
    monkeypatch.delenv("HITL_CPU_INT8")
    assert TransformersBackend.load(tiny_model_dir, dtype="float32").weights == "float32"


fbgemm = pytest.mark.skipif(
    not {"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines),
    reason="this torch has no fbgemm (not an x86 CPU)",
)


@fbgemm
def test_packed_int8_linear_is_near_exact_and_each_row_independent_of_the_batch():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(300, 64, generator=g).to(torch.bfloat16)
    layer = Int8Linear.from_linear(weight, None)
    x = torch.randn(6, 64, generator=g) * 3
    x[0, 7] = 40.0  # an outlier: a batch-wide 7-bit scale would blur the other rows
    x[3] = 0.0
    dequant = layer.weight.float() * layer.scales.float()[:, None]
    expected = x @ dequant.T
    assert layer.pack(keep_table=False)
    assert layer.weight.is_meta and layer.weight.shape == (300, 64)  # the table is freed
    from hitl_desktop.core.backends.int8 import _fbgemm_mm

    y = _fbgemm_mm(x, layer._packed)
    # ~13 bits per activation: far closer than bf16 activations (2^-8) would be
    err = (y - expected).abs().amax(dim=1)
    bound = x.abs().amax(dim=1) * dequant.abs().sum(dim=1).max() * 2e-4
    assert (err <= bound + 1e-6).all(), (err, bound)
    assert torch.equal(y[3], torch.zeros(300))
    # a row's result is the same alone, in any batch, in any order
    alone = torch.cat([_fbgemm_mm(x[i : i + 1], layer._packed) for i in range(6)])
    assert torch.equal(alone, y)
    assert torch.equal(_fbgemm_mm(x.flip(0), layer._packed).flip(0), y)
    out = layer(x.to(torch.bfloat16).reshape(2, 3, 64))
    assert out.shape == (2, 3, 300) and out.dtype == torch.bfloat16


@fbgemm
def test_fbgemm_products_reuse_inputs_per_thread_and_in_slices():
    """A few rows reuse one input buffer per thread (threads at once stay apart), in and out
    of inference mode; an output layer packed in several slices gives the same numbers."""
    import threading

    from hitl_desktop.core.backends import int8

    g = torch.Generator().manual_seed(2)
    layer = Int8Linear.from_linear(torch.randn(200, 64, generator=g).to(torch.bfloat16), None)
    whole = Int8Linear(layer.weight.clone(), layer.scales.clone(), None)
    assert layer.pack() and whole.pack()
    layer._packed = int8._fbgemm_pack(layer.weight[:90], layer.scales[:90]) + int8._fbgemm_pack(
        layer.weight[90:], layer.scales[90:]
    )
    xs = [torch.randn(r, 64, generator=g).to(torch.bfloat16) for r in (1, 2, 4, 4, 40)]
    expected = [whole(x) for x in xs]
    assert all(torch.equal(layer(x), e) for x, e in zip(xs, expected))  # two slices, same numbers
    with torch.inference_mode():
        assert all(torch.equal(layer(x), e) for x, e in zip(xs, expected))
    wrong = []

    def run() -> None:
        for _ in range(30):
            for x, e in zip(xs, expected):
                if not torch.equal(whole(x), e):
                    wrong.append(x.shape)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    assert {key[1] for key in int8._inputs} >= {1, 2, 4} and 40 not in {key[1] for key in int8._inputs}


@fbgemm
def test_quantize_linears_packs_and_keeps_only_the_embedding_table(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).eval()
    ids = torch.tensor([[5, 17, 99, 3]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits.float()
    quantize_linears(model)
    table = model.get_input_embeddings().table
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert all(m._packed is not None for m in layers)
    assert not table.weight.is_meta  # the embedding still looks its rows up there
    assert all(m.weight.is_meta for m in layers if m is not table)
    with torch.inference_mode():
        after = model(input_ids=ids).logits.float()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.75
    assert (after - before).abs().max() < 0.2 * before.abs().max()


def test_cpu_threads_follow_the_setting_else_the_idle_cores(monkeypatch):
    from hitl_desktop.core.backends.runtime import THREADS_ENV
    from hitl_desktop.core.backends.runtime import cpu_threads as _cpu_threads

    monkeypatch.setenv(THREADS_ENV, "3")
    assert _cpu_threads(8) == 3
    monkeypatch.setenv(THREADS_ENV, "auto")
    assert 1 <= _cpu_threads(8) <= 8
    assert _cpu_threads(1) == 1
    monkeypatch.delenv(THREADS_ENV)
    assert 1 <= _cpu_threads(4) <= 4


def test_generation_restores_the_thread_count_and_texts_do_not_depend_on_it(
    tiny_model_dir, monkeypatch
):
    from hitl_desktop.core.backends.transformers_backend import THREADS_ENV, TransformersBackend

    backend = TransformersBackend.load(tiny_model_dir)
    conv = [Message("user", "Hello")]
    params = SamplingParams(temperature=0.9, max_new_tokens=8)
    before = torch.get_num_threads()
    texts = []
    for threads in ("1", "2"):
        monkeypatch.setenv(THREADS_ENV, threads)
        result = backend.generate(conv, k=3, params=params, seeds=[4, 5, 6])
        texts.append([c.text for c in result.candidates])
        assert torch.get_num_threads() == before
    assert texts[0] == texts[1]


def test_readme_documents_the_thread_setting():
    from pathlib import Path

    from hitl_desktop.core.backends.transformers_backend import THREADS_ENV

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`{THREADS_ENV}`" in readme and "fbgemm" in readme


# -- int_mm: nothing packed, each weight quantized once, tables kept on disk (issue 18 item 3) --

int_mm = pytest.mark.skipif(
    not __import__("hitl_desktop.core.backends.int8", fromlist=["x"]).int_mm_supported(),
    reason="this torch has no int8 matrix product on the CPU",
)


@int_mm
@fbgemm
def test_int_mm_layer_gives_fbgemms_numbers_and_each_row_alone():
    g = torch.Generator().manual_seed(5)
    for out_features, width in ((300, 64), (1536, 640), (640, 2048)):
        layer = Int8Linear.from_linear(torch.randn(out_features, width, generator=g).to(torch.bfloat16), None)
        packed = Int8Linear(layer.weight.clone(), layer.scales.clone(), None)
        assert layer.use_int_mm() and packed.pack()
        x = (torch.randn(6, width, generator=g) * 3).to(torch.bfloat16)
        x[2, 5] = 80.0  # an outlier in one row only
        y = layer(x)
        assert y.dtype == torch.bfloat16 and y.shape == (6, out_features)
        # the same integer sums as fbgemm, scaled in another order: within a bf16 rounding
        ref = packed(x).float()
        assert ((y.float() - ref).abs() <= ref.abs() * 2**-7 + 1e-3).all()
        # a row's result is the same alone, in any batch, in any order (exact integer sums)
        assert torch.equal(torch.cat([layer(x[i : i + 1]) for i in range(6)]), y)
        assert torch.equal(layer(x.flip(0)).flip(0), y)
    wide = Int8Linear.from_linear(torch.randn(8, 4096, generator=g).to(torch.bfloat16), None)
    assert not wide.use_int_mm()  # its int32 sums could overflow: packed for fbgemm instead


@pytest.mark.parametrize("kernel", [pytest.param("int_mm", marks=int_mm), "weight_only"])
def test_quantize_linears_fuses_siblings_into_one_table_and_packs_nothing(tiny_model_dir, kernel):
    """int_mm and weight_only: the same tables (weight_only multiplies them with
    ``_weight_int8pack_mm``, nothing prepared)."""
    from transformers import AutoModelForCausalLM

    from hitl_desktop.core.backends.int8 import int8_tables

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).eval()
    ids = torch.tensor([[5, 17, 99, 3]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits.float()
    quantize_linears(model, int_mm=kernel == "int_mm", weight_only=kernel == "weight_only")
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert layers and all(m._packed is None and m._int_mm == (kernel == "int_mm") for m in layers)
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    fused = attn.q_proj.fused[0]
    assert attn.k_proj.fused[0] is fused and attn.v_proj.fused[0] is fused
    # the siblings' tables are row slices of the fused one: each weight held once
    assert attn.q_proj.weight.data_ptr() == fused.weight.data_ptr()
    assert attn.v_proj.weight.data_ptr() + attn.v_proj.weight.numel() == fused.weight.data_ptr() + fused.weight.numel()
    assert mlp.gate_proj.fused[0] is mlp.up_proj.fused[0] and mlp.down_proj.fused is None
    with torch.inference_mode():
        after = model(input_ids=ids).logits.float()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.75
    assert (after - before).abs().max() < 0.2 * before.abs().max()
    tables = int8_tables(model)
    assert "model.layers.0.self_attn.q_proj+k_proj+v_proj.weight" in tables
    assert "model.layers.0.self_attn.q_proj.weight" not in tables  # stored once, fused


def test_a_warm_load_maps_the_kept_int8_tables_instead_of_quantizing(tiny_model_dir, tmp_path, monkeypatch):
    from hitl_desktop.core.backends import cache, int8
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    if not int8.int_mm_supported():
        pytest.skip("this torch has no int8 matrix product on the CPU")
    root = tmp_path / "cache"
    conv = [Message("user", "Hello")]
    params = SamplingParams(temperature=0.9, max_new_tokens=8)
    first = TransformersBackend.load(tiny_model_dir, cache_dir=root)
    kept = list((root / "int8").glob("*.pt"))
    assert len(kept) == 1 and kept[0].name.endswith(f"-v{cache.INT8_FORMAT}.pt")
    texts = [c.text for c in first.generate(conv, k=3, params=params, seeds=[4, 5, 6]).candidates]
    quantized: list[int] = []
    real = int8.Int8Linear.from_linear.__func__
    monkeypatch.setattr(int8.Int8Linear, "from_linear",
                        classmethod(lambda cls, *a, **kw: quantized.append(1) or real(cls, *a, **kw)))
    warm = TransformersBackend.load(tiny_model_dir, cache_dir=root)
    assert quantized == []  # nothing quantized again: the tables come from the file
    assert [c.text for c in warm.generate(conv, k=3, params=params, seeds=[4, 5, 6]).candidates] == texts
    kept[0].write_bytes(b"not a torch file")  # damaged: quantized again, and kept again
    again = TransformersBackend.load(tiny_model_dir, cache_dir=root)
    assert quantized and [c.text for c in again.generate(conv, k=3, params=params, seeds=[4, 5, 6]).candidates] == texts
    assert cache.read_int8_tables(kept[0]) is not None
    # the lean step's fused products are the fused tables' layers themselves (nothing repacked)
    attn, mlp = first.model.model.layers[0].self_attn, first.model.model.layers[0].mlp
    assert first.lean.layers[0].qkv is attn.q_proj.fused[0]
    assert first.lean.layers[0].gate_up is mlp.gate_proj.fused[0]
    if {"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines):
        monkeypatch.setenv("HITL_INT8_KERNEL", "fbgemm")  # the packed kernel, as before
        packed = TransformersBackend.load(tiny_model_dir, cache_dir=root)
        layers = [m for m in packed.model.modules() if isinstance(m, Int8Linear)]
        assert layers and all(m._packed is not None and not m._int_mm for m in layers)


# -- weight_only: torch's _weight_int8pack_mm on the same tables (the default on AVX-512) --


def test_weight_only_layer_follows_the_dequantized_weight_and_each_row_alone():
    g = torch.Generator().manual_seed(7)
    threads = torch.get_num_threads()
    try:
        for out_features, width in ((300, 64), (1536, 640), (640, 2048), (8, 4096)):
            layer = Int8Linear.from_linear(torch.randn(out_features, width, generator=g).to(torch.bfloat16), None)
            assert not layer._int_mm and layer._packed is None  # no product prepared: weight-only
            x = (torch.randn(6, width, generator=g) * 3).to(torch.bfloat16)
            x[2, 5] = 80.0  # an outlier in one row only
            torch.set_num_threads(2)
            y = layer(x)
            assert y.dtype == torch.bfloat16 and y.shape == (6, out_features)
            ref = x.float() @ (layer.weight.float() * layer.scales.float()[:, None]).T
            assert ((y.float() - ref).abs() <= ref.abs() * 2**-7 + 2e-2 * ref.abs().max()).all()
            # a row's result is the same alone, in any batch, in any order, at any thread count
            assert torch.equal(torch.cat([layer(x[i : i + 1]) for i in range(6)]), y)
            assert torch.equal(layer(x.flip(0)).flip(0), y)
            assert torch.equal(torch.cat([layer(x[:2]), layer(x[2:5]), layer(x[5:])]), y)
            torch.set_num_threads(1)
            assert torch.equal(layer(x), y)
            # a fused table's channels are its siblings' (the lean step's fused products)
            half = out_features // 2
            top = Int8Linear(layer.weight[:half], layer.scales[:half], None)
            assert torch.equal(top(x), y[:, :half])
    finally:
        torch.set_num_threads(threads)


def test_the_default_kernel_is_the_faster_one_for_the_cpu_and_the_switch_overrides_it(monkeypatch):
    from hitl_desktop.core.backends import int8, int8_simd, loading

    monkeypatch.delenv(loading.INT8_KERNEL_ENV, raising=False)
    monkeypatch.setattr(int8_simd, "available", lambda: True)  # our own kernel, where it runs
    assert int8.default_kernel() == "simd" == loading.int8_kernel()
    monkeypatch.setattr(int8_simd, "available", lambda: False)  # else torch's, for the CPU
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert int8.default_kernel() == "weight_only" == loading.int8_kernel()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert int8.default_kernel() == "int_mm" == loading.int8_kernel()
    for kernel in int8.KERNELS:
        monkeypatch.setenv(loading.INT8_KERNEL_ENV, kernel)
        assert loading.int8_kernel() == (kernel if kernel != "simd" else "int_mm")  # simd: not here
    monkeypatch.setenv(loading.INT8_KERNEL_ENV, "no-such-kernel")  # ignored: the default
    assert loading.int8_kernel() == "int_mm"
    monkeypatch.setattr(int8_simd, "available", lambda: True)
    monkeypatch.setenv(loading.INT8_KERNEL_ENV, "simd")
    assert loading.int8_kernel() == "simd"


def test_readme_names_the_kernel_switch_and_each_kernel():
    from pathlib import Path

    from hitl_desktop.core.backends import int8, loading

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`{loading.INT8_KERNEL_ENV}=" in readme
    assert all(f"`{kernel}`" in readme for kernel in int8.KERNELS)


def test_the_thread_count_is_looked_at_again_while_a_generation_runs(monkeypatch):
    """A program busy when the generation began (the window saving a judgment) no longer
    halves the whole generation: every EVERY steps, the median of LOOKS looks decides."""
    from hitl_desktop.core.backends import runtime

    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    looks = iter([1, 1, 1] + [0] * 100)  # busy at the start, then idle
    monkeypatch.setattr(runtime, "busy_elsewhere", lambda: next(looks))
    gov = runtime.CpuThreads(cores=2)
    assert gov.threads == 1
    changes = [(step, n) for step in range(1, 40) if (n := gov.before_step()) is not None]
    assert changes == [(runtime.CpuThreads.EVERY + runtime.CpuThreads.LOOKS - 1, 2)]
    # one busy look among three is a blip: no change
    looks = iter([1, 0, 0] * 10)
    gov = runtime.CpuThreads(cores=2, look=lambda: next(looks))
    gov.threads = 2
    assert all(gov.before_step() is None for _ in range(40))
    # the setting fixes the count; where /proc cannot tell, the count stays
    monkeypatch.setenv(runtime.THREADS_ENV, "2")
    assert runtime.CpuThreads(cores=4).fixed
    monkeypatch.delenv(runtime.THREADS_ENV)
    gov = runtime.CpuThreads(cores=2, look=lambda: None)
    assert all(gov.before_step() is None for _ in range(40))


def test_busy_elsewhere_does_not_count_this_process_own_threads():
    import sys

    from hitl_desktop.core.backends import runtime

    if not sys.platform.startswith("linux"):
        pytest.skip("/proc")
    busy = runtime.busy_elsewhere()
    assert busy is not None and busy >= 0


def test_texts_are_the_same_when_the_thread_count_changes_mid_generation(tiny_model_dir, monkeypatch):
    from hitl_desktop.core.backends import runtime
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend.load(tiny_model_dir)
    conv = [Message("user", "Hello")]
    params = SamplingParams(temperature=0.9, max_new_tokens=40)
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    steady = [c.text for c in backend.generate(conv, k=3, params=params, seeds=[4, 5, 6]).candidates]
    monkeypatch.delenv(runtime.THREADS_ENV)
    counts = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: counts.append(n) or real(n))
    flips = iter([0, 0, 0, 1, 1, 1] * 100)  # idle, then busy, then idle...
    monkeypatch.setattr(runtime, "busy_elsewhere", lambda: next(flips))
    monkeypatch.setattr(runtime.CpuThreads, "EVERY", 4)
    changing = [c.text for c in backend.generate(conv, k=3, params=params, seeds=[4, 5, 6]).candidates]
    assert changing == steady
    if (os_cores := __import__("os").cpu_count() or 1) > 1:
        assert len(set(counts[1:-1])) > 1, counts  # the count did change while it ran
    del os_cores
