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
    from hitl_desktop.core.backends.transformers_backend import THREADS_ENV, _cpu_threads

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
