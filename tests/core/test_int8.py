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
