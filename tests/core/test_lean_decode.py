"""The lean CPU decoding step of Gemma 3 text models (core/backends/lean_gemma3.py) against
transformers' own step, on tiny Gemma 3 models built here: float32 and bf16, with and
without int8 linear layers, prompts longer than the sliding window (so the window and the
sliding buffers' shifts are exercised), rows dropped mid-way; and the backend's texts with
the lean step on and off."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hitl_desktop.core.backends import lean_gemma3  # noqa: E402
from hitl_desktop.core.backends.base import SamplingParams  # noqa: E402
from hitl_desktop.core.backends.int8 import Int8Linear, quantize_linears  # noqa: E402
from hitl_desktop.core.backends.lean_gemma3 import LeanCache, LeanGemma3  # noqa: E402
from hitl_desktop.core.backends.tiny import build_tiny_tokenizer  # noqa: E402
from hitl_desktop.core.backends.transformers_backend import TransformersBackend  # noqa: E402
from hitl_desktop.core.types import Message  # noqa: E402

WINDOW = 8


def gemma3(dtype=torch.float32, *, int8=False, kv_heads=1, seed=0):
    """A tiny Gemma 3: sliding-window layers (window 8) around two full-attention layers, GQA
    (4 query heads on ``kv_heads``), tied embedding, a global rotary scaling like the large
    Gemma 3 models'."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        head_dim=32,
        query_pre_attn_scalar=32,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        },
        max_position_embeddings=4096,
        initializer_range=0.1,  # peaky logits: greedy tokens are not near-ties
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    # Gemma's norms start at zero weights (scale 1): give them weights of their own
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.3)
    model = model.to(dtype)
    if int8:  # True: fbgemm-packed (quantize_linears' default); or a kernel's name
        kernel = int8 if isinstance(int8, str) else "fbgemm"
        assert quantize_linears(model, int_mm=kernel == "int_mm", weight_only=kernel == "weight_only") > 0
    return model


def prefill(model, prompt):
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    return out.logits[:, -1].float(), out.cache


def hf_step(model, tokens, past):
    with torch.inference_mode():
        out = model(input_ids=torch.tensor(tokens).unsqueeze(1), cache=past, use_cache=True)
    return out.logits[:, -1].float()


def run_both(model, prompt, rows, steps, *, drop_at=None, keep=None):
    """Decode ``steps`` greedy steps of ``rows`` rows (each row its own first token) with
    transformers and with the lean step, the lean step fed transformers' tokens; the two
    logits at every step. ``drop_at``: the step where only the rows ``keep`` go on."""
    lean = LeanGemma3(model)
    _, past = prefill(model, prompt)
    past.batch_repeat_interleave(rows)
    _, one = prefill(model, prompt)
    cache = lean.cache_from(one, rows, steps + 1)
    tokens = [(7 + 31 * r) % 512 for r in range(rows)]
    pairs = []
    with torch.inference_mode():
        for step in range(steps):
            if step == drop_at:
                idx = torch.tensor(keep)
                past.batch_select_indices(idx)
                cache.batch_select_indices(idx)
                tokens = [tokens[i] for i in keep]
            ref = hf_step(model, tokens, past)
            got = lean.step(torch.tensor(tokens), cache)
            pairs.append((ref, got))
            tokens = ref.argmax(-1).tolist()
    return pairs


PROMPT = [2, *range(10, 40)]  # 31 tokens: almost four windows


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_float32_logits_equal_transformers_step(kv_heads):
    model = gemma3(torch.float32, kv_heads=kv_heads)
    pairs = run_both(model, PROMPT, 3, 30)
    for ref, got in pairs:
        assert got.shape == ref.shape and got.dtype == torch.float32
        assert torch.allclose(got, ref, atol=2e-5, rtol=1e-5), (got - ref).abs().max()


@pytest.mark.parametrize("int8", [False, True, "weight_only"], ids=["bf16", "bf16-int8", "bf16-int8-weight-only"])
def test_bf16_greedy_tokens_and_logits_follow_transformers_step(int8):
    model = gemma3(torch.bfloat16, int8=int8)
    if int8:
        assert isinstance(model.model.layers[0].self_attn.q_proj, Int8Linear)
    pairs = run_both(model, PROMPT, 4, 30)
    same = sum(bool((ref.argmax(-1) == got.argmax(-1)).all()) for ref, got in pairs)
    assert same == len(pairs)
    for ref, got in pairs:
        # the same arithmetic in the same dtypes: at most a bf16 rounding of the logits apart
        scale = ref.abs().max()
        assert (got - ref).abs().max() <= 0.02 * scale


def test_rows_dropped_mid_way_keep_matching():
    model = gemma3(torch.float32, kv_heads=2)
    pairs = run_both(model, PROMPT, 4, 24, drop_at=9, keep=[0, 2, 3])
    assert [p[0].shape[0] for p in pairs] == [4] * 9 + [3] * 15
    for ref, got in pairs:
        assert torch.allclose(got, ref, atol=2e-5, rtol=1e-5)
    # and a drop down to one row (the backend keeps two, but the cache allows it)
    pairs = run_both(model, PROMPT, 3, 12, drop_at=4, keep=[1])
    for ref, got in pairs:
        assert torch.allclose(got, ref, atol=2e-5, rtol=1e-5)


def test_sliding_buffers_are_bounded_and_shifted_while_full_layers_grow():
    model = gemma3(torch.float32)
    lean = LeanGemma3(model)
    _, one = prefill(model, PROMPT)
    cache = lean.cache_from(one, 2, 40)
    assert isinstance(cache, LeanCache) and cache.length == len(PROMPT) and cache.rows == 2
    sliding = [i for i, layer in enumerate(lean.layers) if layer.sliding]
    full = [i for i, layer in enumerate(lean.layers) if not layer.sliding]
    assert all(cache.keys[i].shape[2] == 2 * WINDOW for i in sliding)
    assert all(cache.keys[i].shape[2] == len(PROMPT) + 40 for i in full)
    # the last window-1 prompt tokens in the sliding layers (transformers keeps those)
    assert all(cache.filled[i] == WINDOW - 1 for i in sliding)
    # a cache given too little room grows its full layers rather than failing
    small = lean.cache_from(prefill(model, PROMPT)[1], 2, 1)
    _, past = prefill(model, PROMPT)
    past.batch_repeat_interleave(2)
    with torch.inference_mode():
        for t in range(5):
            got = lean.step(torch.tensor([t + 3, t + 4]), small)
            ref = hf_step(model, [t + 3, t + 4], past)
            assert torch.allclose(got, ref, atol=2e-5, rtol=1e-5)


def test_supports_only_gemma3_text_models_on_the_cpu(monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = gemma3()
    assert lean_gemma3.supports(model)
    assert not lean_gemma3.supports(model, "cuda:0") and not lean_gemma3.supports(model, "mps")
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    llama = LlamaForCausalLM(config)
    assert not lean_gemma3.supports(llama)
    model.config.attn_logit_softcapping = 50.0  # Gemma 2 style soft-capping: transformers' step
    assert not lean_gemma3.supports(model)
    monkeypatch.setenv(lean_gemma3.ENV, "0")
    assert not lean_gemma3.enabled()
    monkeypatch.setenv(lean_gemma3.ENV, "1")
    assert lean_gemma3.enabled()


# ------------------------------------------------------------------------------ backend


def backend(model, dtype):
    b = TransformersBackend(
        model, build_tiny_tokenizer(chat=True), name="tiny-gemma3", revision="r", dtype=dtype
    )
    b.logit_bias = {i: float("-inf") for i in b.eos_ids}
    return b


def conversation(words: int) -> list[Message]:
    return [Message("user", "Summarise: " + " ".join(["kidney"] * words))]


def test_the_switch_turns_the_lean_step_off(monkeypatch):
    model = gemma3()
    assert backend(model, "float32").lean is not None
    monkeypatch.setenv(lean_gemma3.ENV, "0")
    assert backend(model, "float32").lean is None


@pytest.mark.parametrize(
    ("dtype", "int8"),
    [("float32", False), ("bfloat16", True), ("bfloat16", "int_mm"), ("bfloat16", "weight_only")],
    ids=["float32", "bf16-int8", "bf16-int8-int-mm", "bf16-int8-weight-only"],
)
def test_backend_texts_are_the_same_with_the_lean_step_on_and_off(dtype, int8):
    """float32: the same texts, greedy and sampled (equal logits). bf16: the logits are
    within a bf16 rounding of each other (the step above), so greedy texts are the same and
    a sampled text can part where a draw falls within that rounding of a token's boundary
    (measured: 1-5 of 30 candidates, whichever int8 kernel): most are the same."""
    b = backend(gemma3(getattr(torch, dtype), int8=int8), dtype)
    lean = b.lean
    assert lean is not None
    conv = conversation(12)
    assert len(b.encode_prompt(conv)) > WINDOW
    greedy = SamplingParams(temperature=0.0, max_new_tokens=30)
    sampled = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=30)

    def both(params, seeds):
        on = [c.text for c in b.generate(conv, k=3, params=params, seeds=seeds).candidates]
        b.lean = None
        off = [c.text for c in b.generate(conv, k=3, params=params, seeds=seeds).candidates]
        b.lean = lean
        return on, off

    on, off = both(greedy, [4, 5, 6])
    assert on == off
    triples = [[s, s + 1, s + 2] for s in range(0, 30, 3)] if dtype == "bfloat16" else [[4, 5, 6]]
    same = total = 0
    for seeds in triples:
        on, off = both(sampled, seeds)
        same += sum(a == c for a, c in zip(on, off))
        total += len(on)
    assert same == total if dtype == "float32" else same >= 0.75 * total


@pytest.mark.parametrize("kernel", ["fbgemm", "int_mm", "weight_only"])
def test_on_the_lean_path_a_candidate_depends_only_on_its_seed(kernel):
    b = backend(gemma3(torch.bfloat16, int8=kernel), "bfloat16")
    assert b.lean is not None
    b.logit_bias = {i: 2.0 for i in b.eos_ids}  # rows end at different steps: the batch shrinks
    conv = conversation(12)
    params = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=24)
    four = b.generate(conv, k=4, params=params, seeds=[11, 12, 13, 14]).candidates
    assert len({c.tokens for c in four}) > 1  # some rows finished early
    alone = [b.generate(conv, k=1, params=params, seeds=[s]).candidates[0] for s in (11, 12, 13, 14)]
    assert [c.text for c in alone] == [c.text for c in four]
    mixed = b.generate(conv, k=3, params=params, seeds=[99, 13, 11]).candidates
    assert mixed[1].text == four[2].text and mixed[2].text == four[0].text


def test_the_readme_names_the_switch_and_the_module():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`{lean_gemma3.ENV}=0` turns it off" in readme
    assert "core/backends/lean_gemma3.py" in readme


@pytest.mark.parametrize(
    ("dtype", "int8", "kv_heads"),
    [(torch.float32, False, 1), (torch.float32, False, 2), (torch.bfloat16, "weight_only", 1), (torch.bfloat16, "int_mm", 2)],
    ids=["f32", "f32-gqa2", "bf16-int8-weight-only", "bf16-int8-int-mm-gqa2"],
)
@pytest.mark.parametrize("length", [1, 5, len(PROMPT)], ids=["1", "5", "31"])
def test_prefill_follows_transformers_forward(dtype, int8, kv_heads, length):
    """The lean prefill (a prompt without transformers) gives transformers' last logits and a
    cache from which the steps decode as from transformers' own: prompts shorter than the
    window and almost four windows long."""
    model = gemma3(dtype, int8=int8, kv_heads=kv_heads)
    lean = LeanGemma3(model)
    prompt = PROMPT[:length]
    ref, past = prefill(model, prompt)
    with torch.inference_mode():
        got, cache = lean.prefill(prompt, 3, 20)
    assert got.shape == (3, ref.shape[-1]) and got.dtype == torch.float32
    assert cache.rows == 3 and cache.length == length
    tol = dict(atol=2e-5, rtol=1e-5) if dtype == torch.float32 else None
    for row in got:
        if tol:
            assert torch.allclose(row, ref[0], **tol), (row - ref[0]).abs().max()
        else:
            assert (row - ref[0]).abs().max() <= 0.02 * ref.abs().max()
            assert row.argmax() == ref[0].argmax()
    theirs = lean.cache_from(past, 3, 20)
    tokens = [5, 77, 300]
    with torch.inference_mode():
        for _ in range(12):
            a, b = lean.step(torch.tensor(tokens), theirs), lean.step(torch.tensor(tokens), cache)
            if tol:
                assert torch.allclose(a, b, **tol)
            else:
                assert (a - b).abs().max() <= 0.02 * a.abs().max()
                assert (a.argmax(-1) == b.argmax(-1)).all()
            tokens = a.argmax(-1).tolist()
