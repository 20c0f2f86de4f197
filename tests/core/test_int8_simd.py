"""The ``simd`` int8 product (core/backends/int8_simd.c): its numbers, its independence of the
other rows and of the thread count, its build and its fallback."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.backends import int8, int8_simd
from hitl_desktop.core.backends.int8 import Int8Linear, quantize_linears

needs_kernel = pytest.mark.skipif(
    not int8_simd.available(), reason=f"the simd kernel does not run here: {int8_simd.why_unavailable()}"
)


def _reference(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return x.double() @ (w.double() * s.double()[:, None]).T


def _close(y: torch.Tensor, ref: torch.Tensor) -> bool:
    # bf16 out (2^-8 of each value) plus the int16 activations (2^-15 of the row's largest,
    # over `in` products)
    bound = ref.abs() * 2**-7 + 1e-3 * ref.abs().amax(dim=1, keepdim=True) + 1e-30
    return bool(((y.double() - ref).abs() <= bound).all())


def _table(out: int, width: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.randint(-127, 128, (out, width), dtype=torch.int8, generator=g)
    s = (torch.rand(out, generator=g) * 0.02 + 1e-4).to(torch.bfloat16)
    return w, s


@needs_kernel
@pytest.mark.parametrize(
    ("out", "width"),
    [(1, 8), (3, 40), (67, 72), (300, 64), (1536, 640), (640, 2048), (130, 4104 + 40), (5, 9000)],
)
def test_the_product_follows_the_float_product_and_each_row_alone(out, width):
    g = torch.Generator().manual_seed(out * 7 + width)
    w, s = _table(out, width, g)
    x = (torch.randn(9, width, generator=g) * 3).to(torch.bfloat16)
    x[2, width // 3] = 80.0  # an outlier in one row only
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        y = int8_simd.mm(x, w, s)
        assert y.dtype == torch.bfloat16 and y.shape == (9, out)
        assert _close(y, _reference(x, w, s))
        # a row's numbers are the same alone, in any batch, in any order, at any thread count
        assert torch.equal(torch.cat([int8_simd.mm(x[i : i + 1], w, s) for i in range(9)]), y)
        assert torch.equal(int8_simd.mm(x.flip(0), w, s).flip(0), y)
        assert torch.equal(torch.cat([int8_simd.mm(x[:2], w, s), int8_simd.mm(x[2:7], w, s), int8_simd.mm(x[7:], w, s)]), y)
        torch.set_num_threads(1)
        assert torch.equal(int8_simd.mm(x, w, s), y)
        # a fused table's channels are its parts' (row slices of one table, as the lean step's)
        if out > 1:
            half = out // 2
            assert torch.equal(int8_simd.mm(x, w[half:], s[half:]), y[:, half:])
    finally:
        torch.set_num_threads(threads)


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 9),
    out=st.integers(1, 70),
    width=st.integers(1, 200),
    scale=st.sampled_from([1e-3, 1.0, 300.0]),
    seed=st.integers(0, 2**16),
)
def test_any_shape_matches_the_float_product_and_a_row_does_not_see_the_others(rows, out, width, scale, seed):
    g = torch.Generator().manual_seed(seed)
    w, s = _table(out, width, g)
    x = (torch.randn(rows, width, generator=g) * scale).to(torch.bfloat16)
    y = int8_simd.mm(x, w, s)
    assert _close(y, _reference(x, w, s))
    r = seed % rows
    assert torch.equal(int8_simd.mm(x[r : r + 1], w, s), y[r : r + 1])


@needs_kernel
def test_the_integer_sums_do_not_overflow_on_long_rows():
    """Every weight 127, every activation its row's largest (32767 as int16): sums of 2^31 and
    more, which the kernel carries in float32 every 4096 products."""
    for width in (4096, 12288, 65536):
        w = torch.full((4, width), 127, dtype=torch.int8)
        s = torch.ones(4, dtype=torch.bfloat16)
        x = torch.ones(2, width, dtype=torch.bfloat16)
        y = int8_simd.mm(x, w, s)
        assert torch.equal(y, torch.full((2, 4), 127.0 * width).to(torch.bfloat16))


@needs_kernel
def test_a_zero_row_gives_zeros_and_a_row_with_nan_or_infinity_gives_nan_alone():
    g = torch.Generator().manual_seed(3)
    w, s = _table(20, 64, g)
    x = torch.randn(4, 64, generator=g).to(torch.bfloat16)
    x[1] = 0.0
    x[2, 7] = float("nan")
    x[3, 9] = float("inf")
    y = int8_simd.mm(x, w, s)
    assert torch.equal(y[1], torch.zeros(20, dtype=torch.bfloat16))
    assert y[2].isnan().all() and y[3].isnan().all()
    assert torch.equal(y[0], int8_simd.mm(x[:1], w, s)[0]) and not y[0].isnan().any()


@needs_kernel
def test_strided_activations_and_wrong_inputs():
    g = torch.Generator().manual_seed(5)
    w, s = _table(33, 48, g)
    wide = torch.randn(3, 100, generator=g).to(torch.bfloat16)
    x = wide[:, 10:58]  # rows of 48 contiguous values, a row stride of 100
    assert torch.equal(int8_simd.mm(x, w, s), int8_simd.mm(x.contiguous(), w, s))
    with pytest.raises(TypeError):
        int8_simd.mm(x.float(), w, s)
    with pytest.raises(ValueError):
        int8_simd.mm(x, w.t().contiguous().t(), s)  # columns contiguous, not rows
    with pytest.raises(ValueError):
        int8_simd.mm(torch.randn(3, 47).to(torch.bfloat16), w, s)


@needs_kernel
def test_a_layer_on_the_simd_kernel_and_the_model_quantized_for_it(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    g = torch.Generator().manual_seed(11)
    layer = Int8Linear.from_linear(torch.randn(96, 64, generator=g).to(torch.bfloat16), None)
    x = torch.randn(2, 3, 64, generator=g).to(torch.bfloat16)
    plain = layer(x)  # torch's weight-only kernel
    assert layer.use_simd() and "simd" in repr(layer)
    y = layer(x)
    assert y.shape == plain.shape and _close(y.reshape(6, 96), _reference(x.reshape(6, 64), layer.weight, layer.scales))

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).eval()
    ids = torch.tensor([[5, 17, 99, 3]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits.float()
    quantize_linears(model, simd=True)
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert layers and all(m._simd and m._packed is None and not m._int_mm for m in layers)
    assert all(m.fused[0]._simd for m in layers if m.fused is not None)  # the lean step's fused products
    with torch.inference_mode():
        after = model(input_ids=ids).logits.float()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.75
    assert (after - before).abs().max() < 0.2 * before.abs().max()


def test_the_kernel_is_built_once_into_the_cache_and_named_after_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("HITL_DESKTOP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(int8_simd, "_state", {})
    path = int8_simd.library_path()
    assert path.parent == tmp_path / "kernels" and path.name.startswith("int8_simd-")
    if int8_simd._build(path) is not None:
        pytest.skip("no C compiler that builds the kernel here")
    built = path.stat().st_mtime_ns
    int8_simd.available()
    assert path.stat().st_mtime_ns == built  # found, not built again
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_without_a_compiler_the_kernel_is_unavailable_and_the_model_uses_torchs(tmp_path, monkeypatch):
    from hitl_desktop.core.backends import loading

    monkeypatch.setenv("HITL_DESKTOP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-hitl")
    monkeypatch.setattr(int8_simd, "_state", {})
    assert not int8_simd.available()
    assert "no C compiler" in int8_simd.why_unavailable()
    assert int8.default_kernel() != "simd"
    monkeypatch.setenv(loading.INT8_KERNEL_ENV, "simd")  # asked for, not there: the default
    assert loading.int8_kernel() == int8.default_kernel()
    layer = Int8Linear.from_linear(torch.randn(8, 16).to(torch.bfloat16), None)
    assert not layer.use_simd() and not layer._simd
    with pytest.raises(RuntimeError, match="not available"):
        int8_simd.mm(torch.randn(1, 16).to(torch.bfloat16), layer.weight, layer.scales)
    # a compiler that fails says why, and leaves nothing behind
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(int8_simd, "_state", {})
    assert not int8_simd.available() and "false failed" in int8_simd.why_unavailable()
    assert not any((tmp_path / "kernels").iterdir())


def test_the_switch_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv(int8_simd.ENV, "0")
    monkeypatch.setattr(int8_simd, "_state", {})
    assert not int8_simd.available() and int8_simd.ENV in int8_simd.why_unavailable()


@needs_kernel
@pytest.mark.parametrize(("rows", "groups", "d"), [(4, 1, 640), (1, 1, 7), (3, 5, 256), (17, 1, 640), (2, 3, 33)])
def test_the_one_pass_norm_is_torchs_rms_norm_to_a_bf16_rounding(rows, groups, d):
    g = torch.Generator().manual_seed(rows * 100 + d)
    wide = (torch.randn(rows, groups * d + 9, generator=g) * 4).to(torch.bfloat16)
    x = wide[:, : groups * d].reshape(rows, groups, d) if groups > 1 else wide[:, :d]  # strided rows
    scale = 1.0 + torch.randn(groups, d, generator=g) * 0.3 if groups > 1 else 1.0 + torch.randn(d, generator=g) * 0.3
    y = int8_simd.rms_norm(x, scale.contiguous(), 1e-6)
    want = (torch.rms_norm(x.float(), (d,), None, 1e-6) * scale).to(torch.bfloat16)
    assert y is not None and y.shape == x.shape and y.dtype == torch.bfloat16
    diff = (y.float() - want.float()).abs()
    assert bool((diff <= want.float().abs() * 2**-7 + 1e-6).all())  # at most one bf16 step
    assert float((diff > 0).float().mean()) < 0.02  # and rarely that
    # a row alone: the same numbers
    assert torch.equal(int8_simd.rms_norm(x[1:2] if rows > 1 else x, scale.contiguous(), 1e-6), y[1:2] if rows > 1 else y)
    # what it does not take: the caller's torch path
    assert int8_simd.rms_norm(x.float(), scale.contiguous(), 1e-6) is None
    assert int8_simd.rms_norm(x, scale.double(), 1e-6) is None
