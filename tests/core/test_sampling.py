"""Top-p sampling's rule (core/backends/sampling.py): the nucleus is the smallest prefix of the
vocabulary sorted by logit (ties in id order) whose mass reaches top_p, and one inverse-CDF
draw per row from the row's own generator; found among the tokens above a probability floor
first, which must change nothing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.backends import int8_simd, sampling
from hitl_desktop.core.backends.base import SamplingParams


def _reference(logits: torch.Tensor, params: SamplingParams, seeds: list[int]) -> list[int]:
    """The rule written out plainly: the whole vocabulary sorted, the prefix, the draw."""
    out = []
    for r, seed in enumerate(seeds):
        u = float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))
        row = logits[r].float() / float(params.temperature)
        vals, ids = row.sort(descending=True, stable=True)
        probs = torch.exp(vals - torch.logsumexp(row, dim=0))
        out.append(sampling.draw(probs, ids, float(params.top_p), u))
    return out


def _sample(logits: torch.Tensor, params: SamplingParams, seeds: list[int]) -> list[int]:
    return sampling.sample(logits, params, [torch.Generator().manual_seed(s) for s in seeds])


@pytest.fixture(params=["kernel", "torch"])
def gather(request, monkeypatch):
    """Both ways of finding the tokens above the floor: the C pass and torch's mask."""
    if request.param == "kernel":
        if not int8_simd.available():
            pytest.skip(f"the simd kernel does not run here: {int8_simd.why_unavailable()}")
    else:
        monkeypatch.setattr(int8_simd, "_state", {"lib": None, "why": "off for this test"})
    return request.param


@settings(max_examples=60, deadline=None)
@given(
    vocab=st.sampled_from([7, 300, 5000, 70000]),
    rows=st.integers(1, 5),
    spread=st.sampled_from([0.01, 0.5, 3.0, 12.0]),
    top_p=st.sampled_from([0.05, 0.5, 0.9, 0.95, 0.999]),
    temperature=st.sampled_from([0.3, 0.8, 1.0, 1.7]),
    seed=st.integers(0, 2**20),
)
def test_top_p_draws_the_rules_token_with_ties_and_flat_or_peaked_rows(vocab, rows, spread, top_p, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    # bf16-rounded logits: many exact ties, as the model's output layer gives
    logits = (torch.randn(rows, vocab, generator=g) * spread).to(torch.bfloat16).float()
    logits[0, : min(5, vocab)] = logits[0, 0]  # a tie at the top
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=1)
    seeds = [seed + r for r in range(rows)]
    assert _sample(logits, params, seeds) == _reference(logits, params, seeds)


def test_both_ways_of_finding_the_nucleus_draw_the_same_tokens(gather):
    g = torch.Generator().manual_seed(1)
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=1)
    for spread in (0.05, 1.0, 4.0, 20.0):  # flat (the whole vocabulary sorted) to peaked
        logits = (torch.randn(4, 262144, generator=g) * spread).to(torch.bfloat16).float()
        logits[1, 100:140] += 15.0
        seeds = [11, 12, 13, 14]
        assert _sample(logits, params, seeds) == _reference(logits, params, seeds)


def test_a_row_with_forbidden_tokens_never_draws_them(gather):
    logits = torch.zeros(2, 1000)
    logits[:, 10] = 8.0
    logits[:, 11] = 8.0
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=1)
    bias = {10: float("-inf"), 11: float("-inf")}
    picks = sampling.sample(logits, params, [torch.Generator().manual_seed(s) for s in (1, 2)], logit_bias=bias)
    assert all(p not in (10, 11) for p in picks)


def test_above_gives_the_tokens_at_or_above_the_threshold_in_vocabulary_order(gather):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 10007, generator=g)
    threshold = torch.tensor([2.5, 10.0, -10.0])
    kept = int8_simd.above(logits, threshold, cap=2000)
    ids, vals = kept[0]
    want = (logits[0] >= 2.5).nonzero().squeeze(1)
    assert torch.equal(ids, want) and torch.equal(vals, logits[0, want])
    assert kept[1][0].numel() == 0  # none above: an empty row
    assert kept[2] is None  # every token: more than the cap
    strided = torch.randn(2, 300, generator=g)[:, 10:260]
    got = int8_simd.above(strided, torch.tensor([0.5, 1.0]), cap=300)
    for r, t in enumerate((0.5, 1.0)):
        assert torch.equal(got[r][0], (strided[r] >= t).nonzero().squeeze(1))


def test_the_floors_only_shorten_the_search(monkeypatch):
    """With the floors off (straight to the whole vocabulary) the draws are the same."""
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(4, 50000, generator=g) * 2.0).to(torch.bfloat16).float()
    params = SamplingParams(temperature=0.9, top_p=0.9, max_new_tokens=1)
    seeds = [5, 6, 7, 8]
    fast = _sample(logits, params, seeds)
    monkeypatch.setattr(sampling, "NUCLEUS_FLOORS", ())
    assert _sample(logits, params, seeds) == fast
