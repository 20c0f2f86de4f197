"""Decoding: the model's forward passes for a batch of K lines sharing one prompt.

:class:`DecodingMixin` (mixed into :class:`~.transformers_backend.TransformersBackend`, whose
state it uses: ``model``, ``device``, ``fast_decode``, ``lean``, ``max_positions``):

* ``_prefill(prompt, width, max_new) -> (logits, cache)``: the prompt runs once (batch 1)
  and its KV cache is copied to the ``width`` lines (the lean Gemma 3 step's own cache on the
  CPU, :mod:`.lean_gemma3`); with the CUDA fast path a StaticCache sized in powers of two.
* ``_step(tokens, cache) -> logits``: one token for every line (the lean step, the compiled
  step on CUDA, or transformers' forward).
* ``compile_fast_path()``: the CUDA fast path's step compiled while the model loads.

Logits are float32, the last position's only; on CUDA they stay on the card (the sampling
narrows them there). Helpers: :func:`forward_keywords`, :func:`warm_up`,
:func:`all_layers_full`, :func:`fast_decode_default`.
"""

from __future__ import annotations

import copy
import inspect
import os
from typing import Any

import torch

from hitl_desktop.core.backends.base import short_error
from hitl_desktop.core.backends.lean_gemma3 import LeanCache

__all__ = [
    "STATIC_CACHE_MIN",
    "DecodingMixin",
    "all_layers_full",
    "fast_decode_default",
    "forward_keywords",
    "warm_up",
]

#: The smallest static KV cache (CUDA fast path), in tokens; a larger one doubles it until the
#: prompt and the answer fit (see DecodingMixin._prefill).
STATIC_CACHE_MIN = 256

_WINDOWED = ("sliding_attention", "chunked_attention")


class DecodingMixin:
    """The forward passes of a batch decode (see the module doc)."""

    model: Any
    device: str
    fast_decode: bool
    lean: Any
    max_positions: int | None
    pad_id: int
    _compiled: Any
    _static_cache: tuple[tuple[int, int], Any] | None
    _keep_kw: dict[str, Any]
    _cache_kw: str

    def compile_fast_path(self) -> str | None:
        """Compile the fast path's decoding step now (while the model loads), not at the first
        request. Where it cannot be compiled here, the fast path is turned off (eager decoding
        still works) and the reason is returned; None when it is ready.

        Two shapes (2 lines and the smallest cache, then 3 lines and the next cache size) make
        torch.compile treat the batch and the cache length as dynamic, so later requests of any
        K and prompt length only record their CUDA graph (under a second) instead of compiling
        (20-35 s each on an H100 or H200; see the README's GPU figures)."""
        with self._lock, torch.inference_mode():  # type: ignore[attr-defined]
            try:
                for width, length in ((2, 8), (3, STATIC_CACHE_MIN)):
                    prompt = [self.pad_id] * length
                    _, past = self._prefill(prompt, width, 2)
                    for _ in range(3):  # CUDA graphs are recorded at the second or third call
                        _, past = self._step([self.pad_id] * width, past)
                self._static_cache = None  # not kept: a request makes its own
            except Exception as e:  # noqa: BLE001 - an old card, a missing compiler: eager still works
                self.fast_decode, self._compiled, self._static_cache = False, None, None
                # torch.compile wraps the compiler's own error, whose message says what failed
                return short_error(getattr(e, "inner_exception", None) or e)
        return None

    @staticmethod
    def _static(past: Any) -> bool:
        return not hasattr(past, "batch_select_indices") or type(past).__name__ == "StaticCache"

    def _forward(self, input_ids: torch.Tensor, past: Any, *, compiled: bool = False) -> tuple[torch.Tensor, Any]:
        """One forward pass: the last position's logits (float32) and the cache. On CUDA the
        logits stay on the card: the sampling narrows them there and brings only the few tokens
        it draws from to the CPU (measured: 9.9 -> 7.4 ms per step, 8B on an H200); elsewhere
        (the CPU, MPS, untested for this) they are on the CPU."""
        model = self._compiled if compiled and self._compiled is not None else self.model
        kw = {self._cache_kw: past} if past is not None else {}
        out = model(input_ids=input_ids, use_cache=True, **kw, **self._keep_kw)
        cache_out = getattr(out, "cache", None)
        if cache_out is None:
            cache_out = getattr(out, "past_key_values", None)
        logits = out.logits[:, -1, :].float()
        return (logits if self.device.startswith("cuda") else logits.cpu()), cache_out

    def _step(self, tokens: list[int], past: Any) -> tuple[torch.Tensor, Any]:
        """One decoding step: one token for every line of the batch."""
        if isinstance(past, LeanCache) and self.lean is not None:
            return self.lean.step(torch.tensor(tokens), past), past
        ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
        return self._forward(ids, past, compiled=self.fast_decode)

    def _prefill(self, prompt: list[int], width: int, max_new: int) -> tuple[torch.Tensor, Any]:
        """Run the prompt once and give its KV cache ``width`` lines: (last logits, cache).

        With ``fast_decode`` the cache is a StaticCache sized for the prompt and the answer,
        rounded up to a power of two from :data:`STATIC_CACHE_MIN` tokens (so a session meets
        few sizes, and attention reads at most twice the tokens it needs), and the decoding step
        is compiled (on CUDA) on first use: by :meth:`compile_fast_path` while the model loads.
        The compiled step treats sizes as static until a second size comes, then compiles once
        for any size (torch.compile's automatic dynamic shapes). The last StaticCache is
        kept and reset for the next request of the same shape: the same tensors at the same
        addresses, so the compiled step and its CUDA graph are reused."""
        if self.fast_decode:
            from transformers import StaticCache

            size = STATIC_CACHE_MIN
            while size < len(prompt) + max_new + 1:
                size *= 2
            if self.max_positions:
                size = min(size, int(self.max_positions))
            if self._static_cache is not None and self._static_cache[0] == (width, size):
                past = self._static_cache[1]
                past.reset()
            else:
                self._static_cache = None  # one static cache at a time (its memory)
                past = StaticCache(config=all_layers_full(self.model.config), max_cache_len=size)
                self._static_cache = ((width, size), past)
            if self._compiled is None and self.device.startswith("cuda"):
                self._compiled = torch.compile(self.model, mode="reduce-overhead")
            ids = torch.tensor([prompt] * width, device=self.device)
            logits, _ = self._forward(ids, past)
            return logits, past
        logits, past = self._forward(torch.tensor([prompt], device=self.device), None)
        if self.lean is not None and hasattr(past, "layers"):
            return logits.expand(width, -1), self.lean.cache_from(past, width, max_new + 1)
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(width)
            return logits.expand(width, -1), past
        # a cache that cannot be copied: run the prompt for every line
        return self._forward(torch.tensor([prompt] * width, device=self.device), None)


def all_layers_full(config: Any) -> Any:
    """``config`` with every sliding-window (or chunked) layer's cache made a full one, for a
    StaticCache that a compiled step can reuse.

    transformers' static sliding-window cache layer counts its length in a Python int, which
    torch.compile guards on: a model with such layers (Gemma 3, the embedded model) recompiled
    at every step until it gave up, 2.5 minutes on an H200, and then ran eager. A full static
    layer counts in a tensor; the model's own sliding-window mask still hides the tokens out of
    the window, so the attention is the same; the cost is that those layers keep the whole
    prompt and answer rather than the window's last tokens (for Gemma 3 270M, one KV head of
    256: 18 kB per token and line over all layers)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    if not types or all(t == "full_attention" for t in types):
        return config
    full = copy.deepcopy(text)
    full.layer_types = ["full_attention" if t in _WINDOWED else t for t in types]
    return full


def forward_keywords(model: Any) -> tuple[dict[str, Any], str]:
    """({"logits_to_keep": 1} where the model takes it, the KV cache's keyword): transformers
    5.x names the cache ``cache`` (``past_key_values`` is deprecated there), 4.x
    ``past_key_values``."""
    try:
        names = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}, "past_key_values"
    keep = {"logits_to_keep": 1} if "logits_to_keep" in names else {}
    return keep, ("cache" if "cache" in names else "past_key_values")


def warm_up(model: Any, device: str = "cpu", cache_kw: str = "cache") -> None:
    """A 2-token prompt, then one decoding step for two rows (what generate runs first)."""
    token = model.config.pad_token_id if isinstance(model.config.pad_token_id, int) else 0
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[token, token]], device=device), use_cache=True)
        past = getattr(out, "cache", None)
        if past is None:
            past = getattr(out, "past_key_values", None)
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(2)
            ids = torch.tensor([[token], [token]], device=device)
            model(input_ids=ids, use_cache=True, **{cache_kw: past})


def fast_decode_default(device: str) -> bool:
    """The CUDA fast path: on for CUDA, unless ``HITL_FAST_DECODE`` says ``0`` (off) or ``1``
    (on, any device)."""
    switch = os.environ.get("HITL_FAST_DECODE", "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    return device.startswith("cuda")
