"""Sampling: one token per row of a batch of logits, each row from its own generator.

* :func:`sample` ``(logits, params, generators, seen=None, logit_bias=None) -> list[int]``:
  logit bias, repetition penalty (``seen``: the tokens each row has seen), temperature
  (0 = greedy), top-k, top-p, then exactly one draw per row from the row's own
  ``torch.Generator`` (inverse CDF over the kept tokens, most likely first), so a candidate's
  tokens depend only on its seed.
* :func:`draw` ``(probs, ids, top_p, u) -> int``: the inverse-CDF draw among a sorted prefix.

The whole-vocabulary work runs where the logits are (the card, for a model on CUDA); only the
kept tokens (top-k, or the nucleus's candidates: :data:`NUCLEUS_FLOORS`) come to the CPU for
the draw, so a step moves a few kilobytes, not the K x vocabulary logits. Top-p's nucleus is
the smallest prefix of the vocabulary sorted by logit, ties in id order (a stable sort), whose
mass reaches top_p; it is looked for among the tokens above a probability floor first (one
pass over the logits, :func:`.int8_simd.above` on the CPU, 3 ms less a step than a top-256
for 4 rows of 262k), which is that sorted order's prefix, so the draw is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from hitl_desktop.core.backends import int8_simd
from hitl_desktop.core.backends.base import SamplingParams

__all__ = ["NUCLEUS_FLOORS", "draw", "sample"]

#: Top-p looks for the nucleus among the tokens of probability >= floor first (at most cap of
#: them), then at the next floor, then in the whole vocabulary: the same tokens, the same draw
#: (``tests/core/test_sampling.py``), sooner.
NUCLEUS_FLOORS = ((1e-4, 4096), (1e-7, 65536))


def sample(
    logits: torch.Tensor,
    params: SamplingParams,
    generators: list[torch.Generator],
    seen: torch.Tensor | None = None,
    logit_bias: Mapping[int, float] | None = None,
) -> list[int]:
    """One token per row (see the module doc)."""
    where = logits.device
    if logit_bias:
        ids = torch.tensor(list(logit_bias), dtype=torch.long, device=where)
        logits = logits.clone()
        bias = torch.tensor(list(logit_bias.values()), dtype=logits.dtype, device=where)
        logits[:, ids] += bias
    if seen is not None:
        p = float(params.repetition_penalty)
        logits = torch.where(seen, torch.where(logits > 0, logits / p, logits * p), logits)
    if params.temperature <= 1e-5:
        return logits.argmax(dim=-1).tolist()
    logits = logits / float(params.temperature)
    vocab = logits.shape[-1]
    top_k = int(params.top_k) if 0 < int(params.top_k) < vocab else 0
    top_p = float(params.top_p) if 0.0 < float(params.top_p) < 1.0 else 1.0
    draws = [float(torch.rand(1, generator=g)) for g in generators]
    if top_k == 0 and top_p >= 1.0:  # the whole distribution, in vocabulary order
        probs = torch.softmax(logits, dim=-1)
        cdf = probs.cumsum(dim=-1)
        u = torch.tensor(draws, dtype=cdf.dtype, device=where).unsqueeze(1) * cdf[:, -1:]
        picks = torch.searchsorted(cdf, u, right=True).clamp_(max=vocab - 1)
        return picks.squeeze(1).tolist()
    if top_k:
        vals, idx = logits.topk(top_k, dim=-1)
        # top-p then applies to the renormalised top-k
        probs, idx = torch.softmax(vals, dim=-1).cpu(), idx.cpu()
        return [draw(probs[r], idx[r], top_p, draws[r]) for r in range(len(draws))]
    # top-p: the nucleus of the whole vocabulary sorted by logit (stable: ties by id). It is
    # found among the tokens of probability >= each floor first (a threshold: so the prefix of
    # that sorted order), the whole vocabulary sorted only for rows that need more
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    rows_left = list(range(logits.shape[0]))
    for floor, cap in NUCLEUS_FLOORS:
        if not rows_left or cap >= vocab:
            break
        sub = logits if len(rows_left) == logits.shape[0] else logits[rows_left]
        kept = int8_simd.above(sub, lse[rows_left].squeeze(1) + math.log(floor), cap)
        still = []
        for j, r in enumerate(rows_left):
            if kept[j] is None:
                still.append(r)
                continue
            ids, vals = kept[j]
            vals, order = vals.sort(descending=True, stable=True)
            probs = torch.exp(vals - lse[r])
            # the mass as draw() sums it (a float64 running sum), so "enough" means the same
            if float(probs.double().cumsum(dim=0)[-1]) >= top_p if probs.numel() else False:
                found[r] = (probs.cpu(), ids[order].cpu())
            else:
                still.append(r)
        rows_left = still
    if rows_left:
        sub = logits if len(rows_left) == logits.shape[0] else logits[rows_left]
        vals, idx = sub.sort(dim=-1, descending=True, stable=True)
        probs = torch.exp(vals - lse[rows_left]).cpu()
        idx = idx.cpu()
        for j, r in enumerate(rows_left):
            found[r] = (probs[j], idx[j])
    return [draw(*found[r], top_p, draws[r]) for r in range(logits.shape[0])]


def draw(probs: torch.Tensor, ids: torch.Tensor, top_p: float, u: float) -> int:
    """Inverse-CDF draw among the top-p prefix of ``probs`` (sorted, most likely first)."""
    cdf = probs.double().cumsum(dim=0)
    if top_p < 1.0:
        # the smallest prefix whose mass reaches top_p (the crossing token included)
        threshold = torch.tensor([min(top_p, float(cdf[-1]))], dtype=cdf.dtype)
        n = int(torch.searchsorted(cdf, threshold).item()) + 1
        cdf = cdf[: min(n, cdf.shape[0])]
    target = torch.tensor([u * float(cdf[-1])], dtype=cdf.dtype)
    j = int(torch.searchsorted(cdf, target, right=True).item())
    return int(ids[min(j, cdf.shape[0] - 1)])
