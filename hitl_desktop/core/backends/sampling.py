"""Sampling: one token per row of a batch of logits, each row from its own generator.

* :func:`sample` ``(logits, params, generators, seen=None, logit_bias=None) -> list[int]``:
  logit bias, repetition penalty (``seen``: the tokens each row has seen), temperature
  (0 = greedy), top-k, top-p, then exactly one draw per row from the row's own
  ``torch.Generator`` (inverse CDF over the kept tokens, most likely first), so a candidate's
  tokens depend only on its seed.
* :func:`draw` ``(probs, ids, top_p, u) -> int``: the inverse-CDF draw among a sorted prefix.

The whole-vocabulary work runs where the logits are (the card, for a model on CUDA); only the
kept tokens (top-k, or the nucleus's first 256...) come to the CPU for the draw, so a step
moves a few kilobytes, not the K x vocabulary logits.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hitl_desktop.core.backends.base import SamplingParams

__all__ = ["NUCLEUS_STEPS", "draw", "sample"]

#: First candidates considered for top-p before widening to the whole vocabulary.
NUCLEUS_STEPS = (256, 4096)


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
    # top-p: look at the most likely 256 tokens first, further only for rows that need it
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    rows_left = list(range(logits.shape[0]))
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for n in (*NUCLEUS_STEPS, vocab):
        n = min(n, vocab)
        sub = logits if len(rows_left) == logits.shape[0] else logits[rows_left]
        vals, idx = sub.topk(n, dim=-1) if n < vocab else sub.sort(dim=-1, descending=True)
        probs = torch.exp(vals - lse[rows_left])
        mass = probs.sum(dim=-1).tolist()
        probs, idx = probs.cpu(), idx.cpu()
        still = []
        for j, r in enumerate(rows_left):
            if mass[j] >= top_p or n == vocab:
                found[r] = (probs[j], idx[j])
            else:
                still.append(r)
        rows_left = still
        if not rows_left:
            break
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
