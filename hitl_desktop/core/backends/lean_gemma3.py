"""A lean decoding step for Gemma 3 text models on the CPU.

transformers' Gemma 3 forward spends more time on its per-step machinery than on the
decoder's arithmetic when it decodes one token for a few rows on a CPU: attention masks
built at every step, rotary tables per layer type, the DynamicCache's concatenations, the
output classes and decorators of 18 layers, and its attention's grouped-query path (torch's
CPU attention with ``enable_gqa`` is 3-10x slower than with the queries of a key head packed
together). Measured on the embedded 270M model, 2-core machine, K=4: 131 ms per step with
transformers' step against 81-88 ms with this one (the README's figures; about 25 ms of each
is the 262k-token output layer). :class:`LeanGemma3` runs the same arithmetic in
plain torch, with the loaded model's own modules and weights (its int8 linear layers where
the CPU backend made them, :mod:`.int8`), in the same dtypes and the same order, so its
logits are those of transformers' step (equal in float32, to the last bf16 rounding
otherwise; the tests compare them):

* a model loaded through transformers runs the prompt there (batch 1), and its DynamicCache
  is copied into preallocated KV buffers per layer ([rows, kv heads, length, head dim]:
  :class:`LeanCache`); a model loaded without it (:mod:`.native_gemma3`) runs the prompt
  through :meth:`LeanGemma3.prefill`, which writes those buffers itself;
* each step writes one key/value per row and layer in place, and attends over a slice of
  the buffer: the whole sequence for a full-attention layer, the last ``sliding_window``
  tokens for a sliding one. No mask is built: every row is one sequence and all rows have
  the same length (they share the prompt), so a decoding step needs none;
* the query/key/value projections of a layer are one matrix product, and so are the MLP's
  gate and up projections, when the layers are int8 (the output channels of an int8
  product do not depend on each other, so the fused product gives the same numbers);
* finished rows are dropped with :meth:`LeanCache.batch_select_indices`, as with
  transformers' cache.

Only :func:`supports` models run here (Gemma 3's text model, default rotary or a static
scaling of it, no attention soft-capping, causal attention, on the CPU); other
architectures and devices keep transformers' step. ``HITL_LEAN_DECODE=0`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from hitl_desktop.core.backends import int8_simd
from hitl_desktop.core.backends.int8 import Int8Linear

__all__ = ["ENV", "LeanCache", "LeanGemma3", "enabled", "supports"]

#: The switch: ``HITL_LEAN_DECODE=0`` keeps transformers' step for every model.
ENV = "HITL_LEAN_DECODE"
#: Rotary types whose tables do not change with the sequence length (transformers'
#: ``dynamic``/``longrope`` ones do, and keep transformers' step).
_STATIC_ROPE = ("default", "linear", "llama3", "yarn")


def enabled() -> bool:
    """Whether the lean step may be used (``HITL_LEAN_DECODE`` is not ``0``)."""
    return os.environ.get(ENV, "").strip() != "0"


def supports(model: Any, device: str = "cpu") -> bool:
    """Whether :class:`LeanGemma3` computes this model's decoding step."""
    if device != "cpu" or type(model).__name__ != "Gemma3ForCausalLM":
        return False
    config = model.config
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    if getattr(config, "use_bidirectional_attention", False):
        return False
    types = getattr(config, "layer_types", None)
    if not types or any(t not in ("full_attention", "sliding_attention") for t in types):
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    for t in set(types):
        params = rope.get(t) if isinstance(rope, dict) else None
        if not isinstance(params, dict) or params.get("rope_type", "default") not in _STATIC_ROPE:
            return False
    return hasattr(model.model, "rotary_emb") and hasattr(model.model.rotary_emb, "full_attention_inv_freq")


class LeanCache:
    """Per-layer KV buffers for rows that all hold the same number of tokens.

    ``keys[i]``/``values[i]``: [rows, kv heads, capacity, head dim]; the layer's tokens are the
    first ``filled[i]`` positions of the buffer, the sequence's last ``filled[i]`` tokens
    (all of them for a full-attention layer; at least the window's for a sliding one, whose
    buffer is shifted back when it fills up). ``length``: the tokens in each row's sequence.
    """

    def __init__(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        filled: list[int],
        length: int,
    ) -> None:
        self.keys, self.values, self.filled, self.length = keys, values, filled, length

    @property
    def rows(self) -> int:
        return self.keys[0].shape[0]

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (finished rows are dropped), as transformers' cache."""
        self.keys = [k.index_select(0, indices) for k in self.keys]
        self.values = [v.index_select(0, indices) for v in self.values]


class _Norm:
    """Gemma's RMSNorm, ``x * rsqrt(mean(x^2) + eps) * (1 + w)`` in float32, cast back
    (torch's rms_norm: the same operations, one call). ``step``: the same in the decoding step,
    on the CPU in bf16 where the simd kernel runs its one-pass norm (:func:`.int8_simd.rms_norm`,
    the same operations in float32, to a bf16 rounding; ~50 us a call less). The prefill keeps
    torch's, so its KV cache is transformers' prefill's bit for bit (a model loaded through
    transformers and one loaded natively write the same candidates)."""

    __slots__ = ("eps", "scale", "shape")

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        self.eps = float(eps)
        self.scale = 1.0 + weight.detach().float()
        self.shape = tuple(self.scale.shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rms_norm(x.float(), self.shape, self.scale, self.eps).to(x.dtype)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        y = int8_simd.rms_norm(x, self.scale, self.eps)
        return self(x) if y is None else y


class _HeadNorms:
    """The query and key norms of a layer, over the heads of both at once ([rows, query
    heads + kv heads, head dim]): each head normalised alone, times its own (1 + w)."""

    __slots__ = ("eps", "scale", "shape")

    def __init__(self, q_weight: torch.Tensor, k_weight: torch.Tensor, eps: float, heads: int, kv_heads: int) -> None:
        self.eps = float(eps)
        q, k = 1.0 + q_weight.detach().float(), 1.0 + k_weight.detach().float()
        self.scale = torch.cat((q.expand(heads, -1), k.expand(kv_heads, -1)))
        self.shape = tuple(q.shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.rms_norm(x.float(), self.shape, None, self.eps) * self.scale).to(x.dtype)

    def step(self, x: torch.Tensor) -> torch.Tensor:  # as _Norm.step
        y = int8_simd.rms_norm(x, self.scale, self.eps)
        return self(x) if y is None else y


class _Layer:
    __slots__ = (
        "attn_in",
        "attn_out",
        "down",
        "ff_in",
        "ff_out",
        "gate_up",
        "o_proj",
        "qk_norm",
        "qkv",
        "sliding",
        "act",
    )


def _fuse(parts: list[Any]) -> Any:
    """One product for several linear layers fed the same input: an int8 layer whose output
    channels are theirs, one after another (channels are independent, so the numbers are
    the same); None when they are not all int8 (fbgemm-packed) layers without bias.
    Layers quantized as slices of one fused table (``int8.quantize_linears(int_mm=True)``)
    give that table's layer itself: nothing unpacked, copied or packed again."""
    whole = parts[0].fused[0] if isinstance(parts[0], Int8Linear) and parts[0].fused else None
    if whole is not None:
        spans = [p.fused if isinstance(p, Int8Linear) else None for p in parts]
        ends = [0] + [span[2] for span in spans if span]
        if all(span and span[0] is whole and span[1] == ends[i] for i, span in enumerate(spans)) and (
            ends[-1] == whole.out_features
        ):
            return whole
    if not all(isinstance(p, Int8Linear) and p.bias is None and p._packed is not None for p in parts):
        return None
    weights, scales = [], []
    for p in parts:
        for packed in p._packed:
            w, _ = torch.ops.quantized.linear_unpack(packed)
            weights.append(w.int_repr())
            scales.append(w.q_per_channel_scales().to(p.scales.dtype))
    fused = Int8Linear(torch.cat(weights), torch.cat(scales), None)
    if not fused.pack(keep_table=False):
        return None
    return fused


class LeanGemma3:
    """The decoding step of a loaded Gemma 3 text model (see the module doc)."""

    def __init__(self, model: Any) -> None:
        """The step of a loaded transformers model (its own modules and weights)."""
        text = model.model
        rotary = text.rotary_emb
        self._build(
            model.config,
            embed=text.embed_tokens,
            lm_head=model.lm_head,
            weight=lambda name: model.get_parameter(name),
            linear=model.get_submodule,
            inv_freq={
                t: (getattr(rotary, f"{t}_inv_freq").float(), float(getattr(rotary, f"{t}_attention_scaling")))
                for t in set(model.config.layer_types)
            },
            act=text.layers[0].mlp.act_fn,
        )

    @classmethod
    def from_parts(
        cls,
        config: Any,
        *,
        embed: Any,
        lm_head: Any,
        weight: Callable[[str], torch.Tensor],
        linear: Callable[[str], Any],
        inv_freq: dict[str, tuple[torch.Tensor, float]],
        act: Callable[[torch.Tensor], torch.Tensor],
    ) -> LeanGemma3:
        """The step of a model held without transformers (:mod:`.native_gemma3`): ``config``
        with transformers' names for the fields used here, ``weight(name)`` the tensor of a
        norm and ``linear(name)`` the (int8) layer under transformers' names (``model.layers.0
        .self_attn.q_proj``...), ``inv_freq`` {layer type: (inverse frequencies, scaling)}."""
        lean = cls.__new__(cls)
        lean._build(config, embed=embed, lm_head=lm_head, weight=weight, linear=linear, inv_freq=inv_freq, act=act)
        return lean

    def _build(
        self,
        config: Any,
        *,
        embed: Any,
        lm_head: Any,
        weight: Callable[[str], torch.Tensor],
        linear: Callable[[str], Any],
        inv_freq: dict[str, tuple[torch.Tensor, float]],
        act: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        eps = float(config.rms_norm_eps)
        self.embed = embed
        self.final_norm = _Norm(weight("model.norm.weight"), eps)
        self.lm_head = lm_head
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(config.head_dim)
        self.window = int(config.sliding_window)
        self.scaling = float(config.query_pre_attn_scalar) ** -0.5
        self.inv_freq = inv_freq
        self.layers: list[_Layer] = []
        for i in range(int(config.num_hidden_layers)):
            at = f"model.layers.{i}"
            layer = _Layer()
            layer.sliding = config.layer_types[i] == "sliding_attention"
            layer.attn_in = _Norm(weight(f"{at}.input_layernorm.weight"), eps)
            layer.attn_out = _Norm(weight(f"{at}.post_attention_layernorm.weight"), eps)
            layer.ff_in = _Norm(weight(f"{at}.pre_feedforward_layernorm.weight"), eps)
            layer.ff_out = _Norm(weight(f"{at}.post_feedforward_layernorm.weight"), eps)
            layer.qk_norm = _HeadNorms(
                weight(f"{at}.self_attn.q_norm.weight"), weight(f"{at}.self_attn.k_norm.weight"), eps,
                self.heads, self.kv_heads,
            )  # fmt: skip
            q, k, v = (linear(f"{at}.self_attn.{n}_proj") for n in "qkv")
            layer.qkv = _fuse([q, k, v]) or (q, k, v)
            layer.o_proj = linear(f"{at}.self_attn.o_proj")
            gate, up = linear(f"{at}.mlp.gate_proj"), linear(f"{at}.mlp.up_proj")
            layer.gate_up = _fuse([gate, up]) or (gate, up)
            layer.down = linear(f"{at}.mlp.down_proj")
            layer.act = act
            self.layers.append(layer)

    # ------------------------------------------------------------------------------ cache

    def cache_from(self, past: Any, rows: int, room: int) -> LeanCache:
        """The KV buffers for ``rows`` rows from transformers' cache of one row (the prompt),
        with room for ``room`` more tokens."""
        length = int(past.get_seq_length())
        keys, values, filled = [], [], []
        for i, layer in enumerate(self.layers):
            k, v = past.layers[i].keys, past.layers[i].values
            n = k.shape[2]
            capacity = length + room
            if layer.sliding:
                capacity = max(n + 1, min(capacity, 2 * self.window))
            shape = (rows, self.kv_heads, capacity, self.head_dim)
            kb = torch.empty(shape, dtype=k.dtype)
            vb = torch.empty(shape, dtype=v.dtype)
            kb[:, :, :n] = k
            vb[:, :, :n] = v
            keys.append(kb)
            values.append(vb)
            filled.append(n)
        return LeanCache(keys, values, filled, length)

    # ------------------------------------------------------------------------------- step

    def _rotary(self, position: int, dtype: torch.dtype) -> dict[bool, tuple[torch.Tensor, torch.Tensor]]:
        """(cos, sin) of one position for the sliding (True) and full (False) layers, as
        transformers computes them; sin has rotate_half's signs folded in (its first half
        negated), so that the rotation is ``x * cos + swap_halves(x) * sin``."""
        return self._rotary_at(torch.tensor([float(position)]), dtype)

    def _rotary_at(self, pos: torch.Tensor, dtype: torch.dtype) -> dict[bool, tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`_rotary` of the positions ``pos`` (float32, [n]): cos and sin [n, head dim]."""
        out = {}
        half = self.head_dim // 2
        for t, (inv_freq, scaling) in self.inv_freq.items():
            freqs = pos[:, None] * inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = (emb.cos() * scaling).to(dtype)
            sin = (emb.sin() * scaling).to(dtype)
            sin[:, :half] = -sin[:, :half]
            out[t == "sliding_attention"] = (cos, sin)
        return out

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """transformers' ``x * cos + rotate_half(x) * sin``, where rotate_half(x) is
        (-second half, first half): the halves swapped, the sign in ``sin``."""
        *lead, dim = x.shape
        swapped = x.reshape(*lead, 2, dim // 2).flip(-2).reshape(x.shape)
        return (x * cos) + (swapped * sin)

    def prefill(self, prompt: list[int], rows: int, room: int) -> tuple[torch.Tensor, LeanCache]:
        """The prompt (one sequence, ``prompt``: token ids) run once: its last logits for
        ``rows`` rows ([rows, vocab], float32) and their KV buffers, with room for ``room``
        more tokens. What transformers' forward computes for it (:mod:`.native_gemma3` runs a
        prompt here): causal attention, a sliding layer's queries seeing the last
        ``sliding_window`` tokens; a sliding layer's buffer keeps the ``sliding_window - 1``
        last ones, all that the next token attends to besides itself."""
        n = len(prompt)
        h = self.embed(torch.tensor(prompt))  # [n, hidden]
        dtype = h.dtype
        rotary = self._rotary_at(torch.arange(n, dtype=torch.float32), dtype)
        heads, kv_heads, head_dim = self.heads, self.kv_heads, self.head_dim
        q_width, kv_width = heads * head_dim, kv_heads * head_dim
        at = torch.arange(n)
        causal = at[None, :] <= at[:, None]  # [query, key]
        masks = {False: causal, True: causal & (at[None, :] > at[:, None] - self.window)}
        keys, values, filled = [], [], []
        for layer in self.layers:
            x = layer.attn_in(h)
            if isinstance(layer.qkv, tuple):
                qkv = torch.cat([proj(x) for proj in layer.qkv], dim=-1)
            else:
                qkv = layer.qkv(x)
            cos, sin = rotary[layer.sliding]
            qk = layer.qk_norm(qkv[:, : q_width + kv_width].reshape(n, heads + kv_heads, head_dim))
            qk = self._rope(qk, cos[:, None, :], sin[:, None, :]).transpose(0, 1)  # [heads + kv, n, dim]
            k = qk[heads:]
            v = qkv[:, q_width + kv_width :].reshape(n, kv_heads, head_dim).transpose(0, 1)
            group = heads // kv_heads
            o = torch.nn.functional.scaled_dot_product_attention(
                qk[:heads][None],
                k.repeat_interleave(group, dim=0)[None],
                v.repeat_interleave(group, dim=0)[None],
                attn_mask=masks[layer.sliding],
                scale=self.scaling,
            )  # [1, heads, n, dim]
            h = h + layer.attn_out(layer.o_proj(o[0].transpose(0, 1).reshape(n, q_width)))
            x = layer.ff_in(h)
            if isinstance(layer.gate_up, tuple):
                gate, up = (proj(x) for proj in layer.gate_up)
            else:
                gate, up = layer.gate_up(x).chunk(2, dim=-1)
            h = h + layer.ff_out(layer.down(layer.act(gate) * up))
            kept = min(n, self.window - 1) if layer.sliding else n
            capacity = n + room
            if layer.sliding:
                capacity = max(kept + 1, min(capacity, 2 * self.window))
            kb = torch.empty((rows, kv_heads, capacity, head_dim), dtype=dtype)
            vb = torch.empty_like(kb)
            kb[:, :, :kept] = k[:, n - kept :]
            vb[:, :, :kept] = v[:, n - kept :]
            keys.append(kb)
            values.append(vb)
            filled.append(kept)
        logits = self.lm_head(self.final_norm(h[n - 1 :]))
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float().expand(rows, -1), LeanCache(keys, values, filled, n)

    def step(self, tokens: torch.Tensor, cache: LeanCache) -> torch.Tensor:
        """One token per row (``tokens``: [rows]): the next logits [rows, vocab] (float32),
        the token's keys and values written into ``cache``."""
        rows = tokens.shape[0]
        h = self.embed(tokens)  # [rows, hidden]
        dtype = h.dtype
        rotary = self._rotary(cache.length, dtype)
        heads, kv_heads, head_dim = self.heads, self.kv_heads, self.head_dim
        q_width = heads * head_dim
        kv_width = kv_heads * head_dim
        for i, layer in enumerate(self.layers):
            x = layer.attn_in.step(h)
            if isinstance(layer.qkv, tuple):
                qkv = torch.cat([proj(x) for proj in layer.qkv], dim=-1)
            else:
                qkv = layer.qkv(x)
            # queries and keys: normed and rotated together, [rows, heads + kv heads, head dim]
            qk = layer.qk_norm.step(qkv[:, : q_width + kv_width].reshape(rows, heads + kv_heads, head_dim))
            qk = self._rope(qk, *rotary[layer.sliding])
            # the query heads that share a key/value head are that head's "queries" (GQA
            # without repeating keys; torch's CPU attention is 3-10x slower with enable_gqa)
            q = qk[:, :heads].reshape(rows, kv_heads, heads // kv_heads, head_dim)
            k = qk[:, heads:].reshape(rows, kv_heads, 1, head_dim)
            v = qkv[:, q_width + kv_width :].reshape(rows, kv_heads, 1, head_dim)
            keys, values = self._store(cache, i, layer.sliding, k, v)
            o = torch.nn.functional.scaled_dot_product_attention(q, keys, values, scale=self.scaling)
            o = layer.o_proj(o.reshape(rows, q_width))
            h = h + layer.attn_out.step(o)
            x = layer.ff_in.step(h)
            if isinstance(layer.gate_up, tuple):
                gate, up = (proj(x) for proj in layer.gate_up)
            else:
                gate, up = layer.gate_up(x).chunk(2, dim=-1)
            x = layer.down(layer.act(gate) * up)
            h = h + layer.ff_out.step(x)
        cache.length += 1
        logits = self.lm_head(self.final_norm.step(h))
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()

    def _store(
        self, cache: LeanCache, i: int, sliding: bool, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new key and value of layer ``i``; the keys and values it attends to."""
        kb, vb, n = cache.keys[i], cache.values[i], cache.filled[i]
        if n == kb.shape[2] and sliding and n >= self.window:
            # a sliding layer's buffer is full: keep the window's last tokens
            keep = self.window - 1
            kb[:, :, :keep] = kb[:, :, n - keep : n].clone()
            vb[:, :, :keep] = vb[:, :, n - keep : n].clone()
            n = keep
        elif n == kb.shape[2]:  # more tokens than the room asked for: grow
            kb = cache.keys[i] = torch.cat((kb, torch.empty_like(kb)), dim=2)
            vb = cache.values[i] = torch.cat((vb, torch.empty_like(vb)), dim=2)
        kb[:, :, n : n + 1] = k
        vb[:, :, n : n + 1] = v
        n += 1
        cache.filled[i] = n
        start = max(0, n - self.window) if sliding else 0
        return kb[:, :, start:n], vb[:, :, start:n]
