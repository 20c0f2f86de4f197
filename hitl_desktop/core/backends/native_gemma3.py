"""A Gemma 3 text model loaded from its files, without transformers: the warm start on the CPU.

Through transformers a warm start of the embedded model costs its imports (5.4-7.6 s on the
2-core machine: ``from_pretrained`` pulls in ``torch.distributed.tensor``, ``torch._dynamo``
and scipy) and ``from_pretrained`` itself (2.5-3.5 s). Everything the CPU needs to run a
Gemma 3 is already on disk after the first load, though: the int8 tables of its linear layers
(the cache's, :func:`.cache.int8_tables_path`), its norms in the safetensors file, its
``config.json`` and its ``tokenizer.json``. :func:`load` maps those and runs the prompt and
the decoding steps through :class:`.lean_gemma3.LeanGemma3` (its :meth:`~.LeanGemma3.prefill`
and :meth:`~.LeanGemma3.step`), the same arithmetic as transformers' forward in the same
dtypes (the tests compare the logits and the texts): torch, ``safetensors`` and
``tokenizers`` are all it imports.

:func:`loadable` says when that applies; anything else loads through transformers as before
(which writes the int8 tables for the next start):

* a folder whose ``config.json`` is a Gemma 3 text model the lean step computes (default or
  linear rotary, no attention soft-capping, causal, a tied embedding), one safetensors file;
* the CPU, bf16 activations, int8 weights multiplied by the ``simd`` or the ``weight_only``
  kernel (the defaults where the CPU has AVX-512 VNNI, or where torch runs AVX-512 kernels:
  :func:`.loading.int8_kernel`), the tables cached;
* no chat template (a base model: the plain prompt format), the tokenizer's ``tokenizer.json``
  with the special tokens a conversion recorded (``hitl_source.json``);
* ``HITL_NATIVE_LOAD`` is not ``0``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from hitl_desktop.core.backends import cache
from hitl_desktop.core.backends.int8 import (
    FUSED_GROUPS,
    NATIVE_KERNELS,
    Int8Embedding,
    Int8Linear,
    use_kernel,
)
from hitl_desktop.core.backends.lean_gemma3 import LeanGemma3

__all__ = ["ENV", "TokenizerFile", "enabled", "load_parts", "loadable"]

#: ``HITL_NATIVE_LOAD=0`` loads every model through transformers.
ENV = "HITL_NATIVE_LOAD"
_ACTIVATIONS = {"gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh")}


def enabled() -> bool:
    return os.environ.get(ENV, "").strip() != "0"


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _supported_config(config: dict) -> bool:
    """A Gemma 3 text model that :class:`.LeanGemma3` computes, from its ``config.json``
    (what :func:`.lean_gemma3.supports` checks on a loaded one; rotary: default or linear,
    whose tables are made here)."""
    if config.get("architectures") != ["Gemma3ForCausalLM"] or config.get("model_type") != "gemma3_text":
        return False
    if config.get("attn_logit_softcapping") is not None or config.get("use_bidirectional_attention"):
        return False
    if config.get("hidden_activation", "gelu_pytorch_tanh") not in _ACTIVATIONS:
        return False
    if not config.get("tie_word_embeddings", True):
        return False  # the input embedding is looked up in the output layer's int8 table
    types = config.get("layer_types")
    if not isinstance(types, list) or len(types) < int(config.get("num_hidden_layers") or 0) or not types:
        return False
    if any(t not in ("full_attention", "sliding_attention") for t in types):
        return False
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict):
        return False
    for t in set(types):
        params = rope.get(t)
        if not isinstance(params, dict) or params.get("rope_type", "default") not in ("default", "linear"):
            return False
        if params.get("partial_rotary_factor", 1.0) != 1.0:
            return False
    needed = ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "sliding_window",
              "query_pre_attn_scalar", "rms_norm_eps", "vocab_size", "num_hidden_layers", "intermediate_size")  # fmt: skip
    return all(isinstance(config.get(k), (int, float)) for k in needed)


def _chat_template(folder: Path) -> str | None:
    if (folder / "chat_template.jinja").is_file():
        return "chat_template.jinja"
    tpl = (_json(folder / "tokenizer_config.json") or {}).get("chat_template")
    return tpl if tpl else None


def loadable(folder: Path, *, root: Path, device: str, dtype: torch.dtype, kernel: str, int8: bool) -> Path | None:
    """The cached int8 tables' file (in the cache ``root``) when ``folder`` loads here (see the
    module doc), else None."""
    if not enabled() or device != "cpu" or dtype != torch.bfloat16 or not int8:
        return None
    if kernel not in NATIVE_KERNELS:
        return None
    config = _json(folder / "config.json")
    source = _json(folder / "hitl_source.json")
    if config is None or source is None or not _supported_config(config):
        return None
    if not source.get("fast_tokenizer") or not source.get("sha256") or _chat_template(folder):
        return None
    if not (folder / "tokenizer.json").is_file() or not (folder / "model.safetensors").is_file():
        return None
    tables = cache.int8_tables_path(str(source["sha256"]), root)
    return tables if tables.is_file() else None


# ------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Encoding:
    input_ids: list[int]


class TokenizerFile:
    """The tokenizer of a ``tokenizer.json`` through ``tokenizers`` alone, with the part of
    transformers' ``PreTrainedTokenizerFast`` API the backend uses (the same ids and texts as
    that class built on the same file with the same special tokens: tested). ``special``:
    {"bos_token": "<bos>", ...} as the conversion recorded them."""

    chat_template = None
    padding_side = "left"

    def __init__(self, path: Path, special: dict[str, str]) -> None:
        from tokenizers import Tokenizer

        self.backend_tokenizer = Tokenizer.from_file(str(path))
        self._named = {k: v for k, v in special.items() if isinstance(v, str)}
        self.added_tokens_decoder = self.backend_tokenizer.get_added_tokens_decoder()
        self.unk_token_id = self._id("unk_token")
        self.eos_token_id = self._id("eos_token")
        self.bos_token_id = self._id("bos_token")
        self.pad_token_id = self._id("pad_token")
        self.all_special_ids = [i for i in (self.bos_token_id, self.eos_token_id, self.unk_token_id, self.pad_token_id) if i is not None]

    def _id(self, name: str) -> int | None:
        token = self._named.get(name)
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    def __call__(self, text: str, add_special_tokens: bool = True) -> _Encoding:
        return _Encoding(list(self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids))

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        found = self.backend_tokenizer.token_to_id(token)
        return self.unk_token_id if found is None else found

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)


# ----------------------------------------------------------------------------------- model


def _inv_freq(config: dict) -> dict[str, tuple[torch.Tensor, float]]:
    """{layer type: (inverse frequencies, attention scaling)} as transformers' Gemma 3 rotary
    embedding makes them (``default``: base ** -(2i / dim); ``linear``: divided by ``factor``;
    scaling 1)."""
    dim = int(config["head_dim"])
    out = {}
    for t in set(config["layer_types"]):
        params = config["rope_parameters"][t]
        base = float(params["rope_theta"])
        inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
        if params.get("rope_type", "default") == "linear":
            inv = inv / float(params["factor"])
        out[t] = (inv, 1.0)
    return out


def _layer(tables: dict[str, torch.Tensor], key: str) -> Int8Linear:
    """The int8 layer kept under ``key`` (:func:`.int8.int8_tables`), its scales in bf16 as
    :func:`.int8.quantize_linears` makes them; KeyError when the tables lack it."""
    return Int8Linear(tables[f"{key}.weight"], tables[f"{key}.scales"].to(torch.bfloat16), None)


def _split(fused: Int8Linear, widths: list[int]) -> list[Int8Linear]:
    """The fused table's row slices as their own layers (``layer.fused`` naming the whole), as
    :func:`.int8.quantize_linears` makes them."""
    parts, start = [], 0
    for width in widths:
        part = Int8Linear(fused.weight[start : start + width], fused.scales[start : start + width], None)
        part.fused = (fused, start, start + width)
        parts.append(part)
        start += width
    return parts


@dataclass
class NativeParts:
    """What :func:`load_parts` gives the backend: the lean model, the tokenizer, the config
    (transformers' field names) and the generation config's EOS ids."""

    lean: LeanGemma3
    tokenizer: TokenizerFile
    config: SimpleNamespace
    generation_eos: Any
    vocab_size: int


def load_parts(folder: Path, tables_path: Path, *, kernel: str = "weight_only") -> NativeParts | None:
    """The model of ``folder`` (:func:`loadable`), its int8 products by ``kernel``
    (``weight_only`` or ``simd``: :func:`.int8.use_kernel`), or None when a file does not hold
    what it should (the caller then loads through transformers, which writes the tables again)."""
    from safetensors import safe_open

    config = _json(folder / "config.json") or {}
    source = _json(folder / "hitl_source.json") or {}
    tables = cache.read_int8_tables(tables_path)
    if not tables:
        return None
    n_layers = int(config["num_hidden_layers"])
    heads, kv_heads, dim = int(config["num_attention_heads"]), int(config["num_key_value_heads"]), int(config["head_dim"])
    hidden, inter = int(config["hidden_size"]), int(config["intermediate_size"])
    shapes = {"q_proj": (heads * dim, hidden), "k_proj": (kv_heads * dim, hidden), "v_proj": (kv_heads * dim, hidden),
              "o_proj": (hidden, heads * dim), "gate_proj": (inter, hidden), "up_proj": (inter, hidden),
              "down_proj": (hidden, inter)}  # fmt: skip
    linears: dict[str, Int8Linear] = {}
    try:
        for i in range(n_layers):
            for parent, group in ((f"model.layers.{i}.self_attn", FUSED_GROUPS[0]), (f"model.layers.{i}.mlp", FUSED_GROUPS[1])):
                whole = _layer(tables, f"{parent}.{'+'.join(group)}")
                parts = _split(whole, [shapes[name][0] for name in group])
                linears.update({f"{parent}.{name}": part for name, part in zip(group, parts, strict=True)})
            for parent, name in ((f"model.layers.{i}.self_attn", "o_proj"), (f"model.layers.{i}.mlp", "down_proj")):
                linears[f"{parent}.{name}"] = _layer(tables, f"{parent}.{name}")
        lm_head = _layer(tables, "lm_head")
    except KeyError:
        return None
    for name, layer in linears.items():
        if (layer.out_features, layer.in_features) != shapes[name.rpartition(".")[2]]:
            return None
    if (lm_head.out_features, lm_head.in_features) != (int(config["vocab_size"]), hidden):
        return None
    use_kernel([*linears.values(), lm_head], kernel)
    norms: dict[str, torch.Tensor] = {}
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            if "norm" in name:
                norms[name] = f.get_tensor(name).to(torch.bfloat16)
    cfg = SimpleNamespace(**{k: v for k, v in config.items() if isinstance(k, str) and k.isidentifier()})
    cfg.final_logit_softcapping = config.get("final_logit_softcapping")
    embed = Int8Embedding(lm_head, torch.tensor(float(hidden) ** 0.5))
    try:
        lean = LeanGemma3.from_parts(
            cfg,
            embed=embed,
            lm_head=lm_head,
            weight=norms.__getitem__,
            linear=linears.__getitem__,
            inv_freq=_inv_freq(config),
            act=_ACTIVATIONS[config.get("hidden_activation", "gelu_pytorch_tanh")],
        )
    except KeyError:
        return None
    special = source.get("tokenizer_kwargs") or {}
    tokenizer = TokenizerFile(folder / "tokenizer.json", special)
    generation = (_json(folder / "generation_config.json") or {}).get("eos_token_id")
    return NativeParts(lean, tokenizer, cfg, generation, lm_head.out_features)
