"""Int8 weight-only linear layers for generation on the CPU.

On a CPU without native bf16 matmuls (no AVX512-BF16 / AMX, e.g. any AVX2 machine) a bf16
``linear`` is emulated and decoding is bound by it: measured on the 2-core dev machine,
the embedded model's 18 decoder layers took ~90 ms and its 262k-token output layer ~110 ms
per step for 4 rows in bf16, against ~24 ms and ~53 ms with the weights in int8 (one scale
per output channel, symmetric) multiplied by torch's ``_weight_int8pack_mm`` kernel. It also
halves the weights read per step.

:func:`quantize_linears` replaces the model's ``nn.Linear`` layers (the output layer
included) in place by :class:`Int8Linear`. A tied output layer is untied first: the input
embedding keeps its bf16 table for the lookup, the output layer gets its own int8 copy
(quantized in slices, so the peak memory never holds a float32 copy of the whole table).
The embedded model's weights come from a 4-bit GGUF, so one more rounding to 8 bits per
channel changes the logits very little (greedy texts may still differ after some tokens).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Int8Linear", "quantize_linears", "supported"]

#: Rows quantized at a time (bounds the float32 temporary: 16384 x hidden x 4 bytes).
_SLICE = 16384


def supported(dtype: torch.dtype) -> bool:
    """Whether this torch has the int8 weight-only CPU kernel for activations of ``dtype``
    (bf16 only: the kernel's float32 path is several times slower than plain float32)."""
    return dtype == torch.bfloat16 and hasattr(torch.ops.aten, "_weight_int8pack_mm")


class Int8Linear(torch.nn.Module):
    """``y = x @ (w_int8 * scale).T + bias``, one scale per output channel."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scales", scales)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)

    @classmethod
    def from_linear(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Int8Linear:
        """Quantize a float weight [out, in]: symmetric, per output channel, in slices."""
        out_features, dtype = weight.shape[0], weight.dtype
        q = torch.empty(weight.shape, dtype=torch.int8)
        scales = torch.empty(out_features, dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, out_features, _SLICE):
                w = weight[start : start + _SLICE].float()
                s = w.abs().amax(dim=1).clamp_(min=1e-12) / 127.0
                q[start : start + _SLICE] = (w / s[:, None]).round_().clamp_(-127, 127).to(torch.int8)
                scales[start : start + _SLICE] = s
        b = None if bias is None else bias.detach().clone()
        return cls(q, scales.to(dtype), b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).to(self.scales.dtype).contiguous()
        y = torch.ops.aten._weight_int8pack_mm(x2, self.weight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _fits(layer: torch.nn.Linear) -> bool:
    # the CPU kernel needs the inner dimension to be a multiple of 8 (it crashes otherwise)
    return layer.in_features % 8 == 0 and layer.weight.device.type == "cpu"


def quantize_linears(model: Any) -> int:
    """Replace every ``nn.Linear`` of ``model`` (a bf16 model on the CPU) by :class:`Int8Linear`,
    untying a tied output layer from the input embedding first. Returns how many were replaced."""
    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    tied = out is not None and inp is not None and out.weight is inp.weight
    # names only: each float layer is freed as soon as it is replaced (the peak memory)
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and _fits(module)
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child)
        setattr(parent, child, Int8Linear.from_linear(module.weight.detach(), module.bias))
        del module
    if tied and model.get_output_embeddings() is not out:
        # keep transformers from tying them again (save_pretrained / resize_token_embeddings)
        model.config.tie_word_embeddings = False
        text_config = getattr(model.config, "get_text_config", lambda: None)()
        if text_config is not None:
            text_config.tie_word_embeddings = False
    return len(targets)
