"""Int8 weight-only linear layers for generation on the CPU.

On a CPU without native bf16 matmuls (no AVX512-BF16 / AMX, e.g. any AVX2 machine) a bf16
``linear`` is emulated and decoding is bound by it: measured on the 2-core dev machine,
the embedded model's 18 decoder layers took ~90 ms and its 262k-token output layer ~110 ms
per step for 4 rows in bf16, against ~24 ms and ~53 ms with the weights in int8 (one scale
per output channel, symmetric) multiplied by torch's ``_weight_int8pack_mm`` kernel. It also
halves the weights read per step.

:func:`quantize_linears` replaces the model's ``nn.Linear`` layers (the output layer
included) in place by :class:`Int8Linear`. A tied output layer's int8 table (quantized in
slices, so the peak memory never holds a float32 copy of the whole table) also serves the
input embedding's lookups (:class:`Int8Embedding`), so the bf16 table is dropped: 270 MB
less for the embedded model's 262k x 640 table.
The embedded model's weights come from a 4-bit GGUF, so one more rounding to 8 bits per
channel changes the logits very little (greedy texts may still differ after some tokens).

Where torch has fbgemm (x86 CPUs) the weights are also packed for its int8 x int8 matrix
product (:meth:`Int8Linear.pack`), about twice as fast as ``_weight_int8pack_mm`` on an AVX2
CPU. Its activations are quantized to 7 bits with one scale for the whole batch, which would
make a candidate depend on the others and loses precision; instead each row is scaled to
[-63, 63] and split into its rounded value and the remainder (times 126), both exact small
integers for fbgemm, and one more row pinned at +-63.5 fixes fbgemm's scale to 1. The halves
are one product with twice the rows (the weights are read once), recombined per row: about
13 bits of precision per activation (better than bf16), and each row's result depends on
that row alone (integer sums are exact).

Which product multiplies the tables is :func:`default_kernel`'s choice for the CPU (the
backend's ``HITL_INT8_KERNEL`` overrides it, :data:`KERNELS`). Where the CPU has AVX-512 VNNI
and a C compiler built it, it is ``simd``: our own kernel (:mod:`.int8_simd`) on the same
tables as ``weight_only``, int16 activations and exact integer sums, about twice as fast as
``_weight_int8pack_mm`` on the output layer (:meth:`Int8Linear.use_simd`). Where torch runs its AVX-512
kernels (this CPU has AVX512-BF16) it is ``weight_only``: ``_weight_int8pack_mm`` on the
tables as they are, one call per layer with the bf16 activations (float32 sums, each row and
each output channel computed alone: a row's numbers do not depend on the other rows, the
fused siblings or the thread count, checked bit for bit), measured 8.3 ms for the output
layer against 13-25 ms for ``int_mm`` and a K=4 decoding step of 31 ms against 61 ms. On AVX2
it is ``int_mm``, twice as fast there. ``weight_only`` uses the same kept, fused tables as
``int_mm`` (``quantize_linears(weight_only=True)``) and packs nothing.

``int_mm`` is the same integer products as fbgemm without packing
(:meth:`Int8Linear.use_int_mm`, ``quantize_linears(int_mm=True)``): ``torch._int_mm`` on the
int8 table as it is, the two halves recombined in int32 (exact) and scaled once, so a row's
result still depends on that row alone and is fbgemm's to a float32 rounding. Nothing is
packed (fbgemm's packing of the 262k-row output layer was most of a warm load), every weight
is quantized once, q/k/v and gate/up as one table each whose row slices are the separate
layers (:data:`FUSED_GROUPS`: the lean step's fused products need no unpacking and
repacking), the output layer multiplies the table the input embedding reads (no packed copy:
~300 MB less resident), and the tables can be kept on disk and mapped on the next load
(:func:`int8_tables`, ``tables=``; :mod:`.cache`). Layers wider than
:data:`INT_MM_MAX_WIDTH` are packed for fbgemm (their int32 sums could overflow).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import torch

from hitl_desktop.core.backends import int8_simd

__all__ = [
    "FUSED_GROUPS",
    "KERNELS",
    "Int8Embedding",
    "Int8Linear",
    "default_kernel",
    "int8_tables",
    "int_mm_supported",
    "quantize_linears",
    "supported",
    "use_kernel",
]

#: The int8 products a CPU model can use (:func:`default_kernel`, ``HITL_INT8_KERNEL``):
#: ``weight_only``: torch's ``_weight_int8pack_mm`` on the tables as they are (bf16
#: activations, float32 sums); ``int_mm``: ``torch._int_mm`` integer products on the same
#: tables (:func:`_int_mm_product`); ``fbgemm``: fbgemm's packed kernel (packed at load).
#: ``simd``: our own kernel (:mod:`.int8_simd`: AVX-512 VNNI, int16 activations) on the same
#: tables as ``weight_only``, where the CPU has it and a C compiler built it.
KERNELS = ("simd", "weight_only", "int_mm", "fbgemm")
#: The kernels that multiply the tables as they are (fused groups, nothing packed): their
#: tables are kept in the disk cache after the first load and mapped on the next ones.
KEPT_TABLE_KERNELS = ("simd", "weight_only", "int_mm")
#: The kept-table kernels that take bf16 activations as they come, the ones the natively
#: loaded model (:mod:`.native_gemma3`) multiplies with (``int_mm`` splits activations).
NATIVE_KERNELS = ("simd", "weight_only")

#: Rows quantized at a time (bounds the float32 temporaries: 4096 x hidden x 4 bytes).
_SLICE = 4096
#: fbgemm path: each activation row is scaled to [-_HI, _HI]; the remainder of its rounding
#: (at most 0.5) is scaled by _LO into the same range (see the module doc).
_HI = 63.0
_LO = 126.0
#: The pinned row's values: fbgemm's 7-bit activation range is then exactly [-63.5, 63.5],
#: scale 1, zero point 64, for every batch.
_PIN = 63.5
#: Output rows packed at a time (bounds the temporaries while packing the output layer).
_PACK_ROWS = 32768


def default_kernel() -> str:
    """The faster int8 product on this CPU, measured on the embedded model's layers (2
    cores, 4 rows, the 262k x 640 output layer): ``simd`` where it runs (:mod:`.int8_simd`:
    a CPU with AVX-512 VNNI and a C compiler; 9-13 ms against 22-25 ms for ``weight_only`` on
    the Intel Xeon); else, where torch runs its AVX-512 kernels,
    ``weight_only`` (8.3 ms, against 13-25 ms for ``int_mm``: one call, no activation
    splitting); on AVX2 (``ATEN_CPU_CAPABILITY=avx2`` on the same CPU), ``int_mm`` (12.9 ms
    against 26.5 ms for ``weight_only``). Both keep a row's numbers independent of the other
    rows and of the thread count (``tests/core/test_int8.py``)."""
    if int8_simd.available():
        return "simd"
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if capability.startswith("AVX512") and hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        return "weight_only"
    return "int_mm"


def supported(dtype: torch.dtype) -> bool:
    """Whether this torch has the int8 weight-only CPU kernel for activations of ``dtype``
    (bf16 only: the kernel's float32 path is several times slower than plain float32)."""
    return dtype == torch.bfloat16 and hasattr(torch.ops.aten, "_weight_int8pack_mm")


class Int8Linear(torch.nn.Module):
    """``y = x @ (w_int8 * scale).T + bias``, one scale per output channel."""

    def __init__(
        self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight)
        self.register_buffer("scales", scales)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        self._packed: Any = None  # fbgemm's packed weights (see pack)
        self._int_mm = False  # torch._int_mm on the int8 table itself (see use_int_mm)
        self._simd = False  # our own kernel on the int8 table itself (see use_simd)
        #: (the fused layer, first channel, end) when this layer's table is a slice of one
        #: fused with its siblings' (q/k/v, gate/up: :func:`quantize_linears` ``fuse``)
        self.fused: tuple[Int8Linear, int, int] | None = None

    def use_int_mm(self) -> bool:
        """Multiply with ``torch._int_mm`` on the int8 table as it is: the same integer
        products as fbgemm's (:func:`_int_mm_product`) without packing anything, so a load
        costs no packing and a table mapped from the disk cache is used in place. False (nothing changed) where this torch's CPU has no such kernel."""
        if (
            not int_mm_supported()
            or self.in_features % 8
            or self.in_features > INT_MM_MAX_WIDTH
            or self.weight.device.type != "cpu"
        ):
            return False
        self._int_mm = True
        return True

    def use_simd(self) -> bool:
        """Multiply with our own kernel (:mod:`.int8_simd`) on the int8 table as it is (a
        fused layer's slice too): nothing packed. False (nothing changed) where it does not
        run (no AVX-512 VNNI or no compiler) or for a table it does not take."""
        if (
            self.weight.device.type != "cpu"
            or self.scales.dtype != torch.bfloat16
            or self.weight.stride(1) != 1
            or not int8_simd.available()
        ):
            return False
        self._simd = True
        return True

    def pack(self, *, keep_table: bool = True) -> bool:
        """Pack the weights for fbgemm's int8 product (x86 CPUs), which ``forward`` then uses.
        ``keep_table=False`` frees the int8 table afterwards (``weight`` keeps its shape and
        dtype, on the meta device). False (nothing changed) where torch lacks fbgemm."""
        packed = _fbgemm_pack(self.weight, self.scales)
        if packed is None:
            return False
        self._packed = packed
        if not keep_table:
            self.weight = torch.empty(self.weight.shape, dtype=torch.int8, device="meta")
        return True

    @classmethod
    def from_linear(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        mapped: list[tuple[int, int]] = (),  # type: ignore[assignment]
    ) -> Int8Linear:
        """Quantize a float weight [out, in]: symmetric, per output channel, in slices.
        ``mapped``: the spans of mapped weight files (:func:`_file_mappings`), whose pages
        each slice read are dropped again (the peak memory)."""
        out_features, dtype = weight.shape[0], weight.dtype
        q = torch.empty(weight.shape, dtype=torch.int8)
        scales = torch.empty(out_features, dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, out_features, _SLICE):
                w = weight[start : start + _SLICE].float()
                s = w.abs().amax(dim=1).clamp_(min=1e-12) / 127.0
                q[start : start + _SLICE] = (
                    (w / s[:, None]).round_().clamp_(-127, 127).to(torch.int8)
                )
                scales[start : start + _SLICE] = s
                _drop_pages(weight[start : start + _SLICE], mapped)
        b = None if bias is None else bias.detach().clone()
        return cls(q, scales.to(dtype), b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if self._packed is not None:
            y = _fbgemm_mm(x.reshape(-1, self.in_features), self._packed, self.scales.dtype)
        elif self._simd:
            y = int8_simd.mm(x.reshape(-1, self.in_features).to(torch.bfloat16), self.weight, self.scales)
        elif self._int_mm:
            y = _int_mm_product(x.reshape(-1, self.in_features), self.weight, self._float_scales())
        else:
            x2 = x.reshape(-1, self.in_features).to(self.scales.dtype).contiguous()
            y = torch.ops.aten._weight_int8pack_mm(x2, self.weight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def _float_scales(self) -> torch.Tensor:
        """The scales as float32, made once."""
        cached = getattr(self, "_scales_f32", None)
        if cached is None or cached.shape != self.scales.shape:
            cached = self._scales_f32 = self.scales.double().float()
        return cached

    def extra_repr(self) -> str:
        packed = (
            ", fbgemm" if self._packed is not None
            else ", int_mm" if self._int_mm
            else ", simd" if self._simd
            else ", weight_only"
        )  # fmt: skip
        return f"in_features={self.in_features}, out_features={self.out_features}, int8{packed}"


def use_kernel(layers: Any, kernel: str) -> None:
    """Set the product of these :class:`Int8Linear` layers (and of the fused tables they are
    slices of) to ``kernel`` where it is ``simd`` (:meth:`Int8Linear.use_simd`); the other
    kernels are chosen when the tables are made (:func:`quantize_linears`)."""
    if kernel != "simd":
        return
    for layer in layers:
        if isinstance(layer, Int8Linear):
            if layer.fused is not None:
                layer.fused[0].use_simd()
            layer.use_simd()


def _fbgemm_engine() -> str | None:
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("fbgemm", "x86") if e in engines), None)


def _fbgemm_pack(q: torch.Tensor, scales: torch.Tensor) -> list[Any] | None:
    """fbgemm's packed form of int8 weights [out, in] with per-channel scales, in slices of
    :data:`_PACK_ROWS` output rows; None where torch cannot."""
    engine = _fbgemm_engine()
    if engine is None or q.device.type != "cpu" or not hasattr(torch.ops.quantized, "linear_dynamic"):
        return None
    old = torch.backends.quantized.engine
    packed = []
    # quantized tensors are deprecated in newer torch (a warning): only the packing uses one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.backends.quantized.engine = engine
            for start in range(0, q.shape[0], _PACK_ROWS):
                part = q[start : start + _PACK_ROWS]
                weight = torch._make_per_channel_quantized_tensor(
                    part,
                    scales[start : start + _PACK_ROWS].double(),
                    torch.zeros(part.shape[0], dtype=torch.long),
                    0,
                )
                packed.append(torch.ops.quantized.linear_prepack(weight, None))
                del weight
        except (RuntimeError, AttributeError, NotImplementedError):
            return None
        finally:
            torch.backends.quantized.engine = old
    return packed


#: Batches up to this many rows reuse their fbgemm input buffer (decoding steps).
_REUSED_ROWS = 16
#: The reused buffers, by (thread, rows, width): a plain dict, not threading.local, whose
#: data a Qt thread's state drops at every slot call (PySide then crashed, seen in the GUI
#: tests). Emptied when it holds this many (threads come and go).
_inputs: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
_MAX_INPUTS = 256


def _fbgemm_input(rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fbgemm's input [2 rows + 1, width] with its pinned last row, and its two halves (the
    rounded rows and their remainders). Reused per thread for a few rows (a decoding step
    makes some 70 products: building it each time cost more than the product for small layers)."""
    if rows > _REUSED_ROWS:
        return _new_input(rows, width)
    key = (threading.get_ident(), rows, width)
    found = _inputs.get(key)
    if found is None:
        if len(_inputs) >= _MAX_INPUTS:
            _inputs.clear()
        with torch.inference_mode(False):  # a plain tensor: written in and out of inference mode
            found = _inputs[key] = _new_input(rows, width)
    return found


def _new_input(rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inp = torch.zeros(2 * rows + 1, width)
    inp[-1, 0] = _PIN
    inp[-1, 1] = -_PIN
    return inp, inp[:rows], inp[rows : 2 * rows]


def _fbgemm_mm(
    x: torch.Tensor, packed: list[Any], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``x [rows, in] @ W.T`` through fbgemm, each row exact to ~13 bits and independent of
    the other rows (see the module doc); computed in float32, returned in ``dtype``."""
    rows, width = x.shape
    x = x.float()
    a = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30)
    scaled = x * (_HI / a)
    inp, hi, lo = _fbgemm_input(rows, width)
    torch.round(scaled, out=hi)
    torch.sub(scaled, hi, out=lo).mul_(_LO)
    back = a / _HI
    if len(packed) == 1:
        out = torch.ops.quantized.linear_dynamic(inp, packed[0], True)
        return out[:rows].add_(out[rows : 2 * rows], alpha=1.0 / _LO).mul_(back).to(dtype)
    # slice by slice into the result (no concatenation of the float32 halves)
    parts = []
    for p in packed:
        out = torch.ops.quantized.linear_dynamic(inp, p, True)
        parts.append(out[:rows].add_(out[rows : 2 * rows], alpha=1.0 / _LO).mul_(back).to(dtype))
    return torch.cat(parts, dim=1)


_INT_MM: list[bool] = []
#: The widest input the int_mm product takes: its int32 sums of ``hi * 126 + lo`` stay below
#: 2^31 up to 2113 (wider layers are packed for fbgemm instead).
INT_MM_MAX_WIDTH = 2048


def int_mm_supported() -> bool:
    """Whether ``torch._int_mm`` multiplies int8 matrices on this CPU (checked once)."""
    if not _INT_MM:
        try:
            a = torch.ones(2, 8, dtype=torch.int8)
            ok = bool(torch.equal(torch._int_mm(a, a.t()), torch.full((2, 2), 8, dtype=torch.int32)))
        except (RuntimeError, AttributeError, NotImplementedError):
            ok = False
        _INT_MM.append(ok)
    return _INT_MM[0]


def _int_mm_product(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x [rows, in] @ (q * scales).T`` with ``torch._int_mm``: each row split into its
    rounded value and the remainder (times 126) as in :func:`_fbgemm_mm`, both exact small
    integers, one int32 product with twice the rows (the table read once), recombined per
    row in integers (``hi * 126 + lo``: exact, below 2^31 for rows up to 2048 wide), then
    scaled once in float32. Each row's result depends on that row alone; it is fbgemm's to
    float32 rounding (the same integer sums, scaled in another order)."""
    rows = x.shape[0]
    dtype = x.dtype
    x = x.float()
    a = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30)
    scaled = x * (_HI / a)
    hi = torch.round(scaled)
    lo = scaled.sub_(hi).mul_(_LO).round_()
    acc = torch._int_mm(torch.cat((hi, lo)).to(torch.int8), q.t())
    whole = torch.add(acc[rows:], acc[:rows], alpha=int(_LO))  # int32, exact
    out = torch.mul(whole, scales).mul_(a / (_HI * _LO))  # to float32 in the product
    return out if dtype == torch.float32 else out.to(dtype)


class Int8Embedding(torch.nn.Module):
    """The input embedding looked up in the output layer's int8 table (a tied model): row
    ``q[id] * scale[id]``, times the model's ``embed_scale`` where it has one (Gemma)."""

    def __init__(self, table: Int8Linear, embed_scale: torch.Tensor | None) -> None:
        super().__init__()
        self.table = table
        self.num_embeddings, self.embedding_dim = table.weight.shape
        self.register_buffer("embed_scale", embed_scale, persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # its shape and dtype, for code that inspects them
        return self.table.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        scales = self.table.scales
        rows = torch.nn.functional.embedding(input_ids, self.table.weight).to(scales.dtype)
        rows = rows * scales[input_ids].unsqueeze(-1)
        if self.embed_scale is not None:
            rows = rows * self.embed_scale.to(scales.dtype)
        return rows


def _plain_embedding(module: Any) -> bool:
    """An nn.Embedding whose forward is the lookup (times ``embed_scale``, Gemma's scaled one)."""
    kind = type(module)
    return kind is torch.nn.Embedding or (
        isinstance(module, torch.nn.Embedding)
        and kind.__name__.endswith("ScaledWordEmbedding")
        and isinstance(getattr(module, "embed_scale", None), torch.Tensor)
    )


def _fits(layer: torch.nn.Linear) -> bool:
    # the CPU kernel needs the inner dimension to be a multiple of 8 (it crashes otherwise)
    return layer.in_features % 8 == 0 and layer.weight.device.type == "cpu"


def _give_back_freed_memory() -> None:
    """Return the freed float weights to the system (glibc keeps freed heap memory otherwise:
    measured +170 MB of resident memory for the embedded model)."""
    import contextlib
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's mappings of ``.safetensors`` files (Linux)."""
    spans = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith(".safetensors"):
                    start, _, end = fields[0].partition("-")
                    spans.append((int(start, 16), int(end, 16)))
    except OSError:
        pass
    return spans


def _drop_pages(weight: torch.Tensor, spans: list[tuple[int, int]]) -> None:
    """Drop the resident pages of a (contiguous) float weight that is a read-only view of a
    mapped safetensors file: clean file pages, read again from the file if ever touched.
    Otherwise the whole file ends up resident while it is quantized (the peak memory)."""
    import ctypes

    if not spans or not weight.is_contiguous():
        return
    size = weight.numel() * weight.element_size()
    begin = weight.data_ptr()
    if not any(lo <= begin and begin + size <= hi for lo, hi in spans):
        return  # memory of its own: freed with the tensor
    page = 4096
    first, last = -(-begin // page) * page, (begin + size) // page * page
    if last > first:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 4)  # MADV_DONTNEED


#: Sibling linear layers fed the same input, quantized as one table when ``int_mm`` is on: a
#: fused product for a decoding step that computes them together (:mod:`.lean_gemma3`).
FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _fuse_groups(model: Any, max_width: int | None = INT_MM_MAX_WIDTH) -> list[tuple[str, list[str]]]:
    """(parent name, child names) of each :data:`FUSED_GROUPS` group of plain linear layers
    without bias, of one input width, that the int8 kernel takes (inputs up to ``max_width``;
    None: any)."""
    found = []
    for name, module in model.named_modules():
        for group in FUSED_GROUPS:
            parts = [getattr(module, child, None) for child in group]
            if all(type(p) is torch.nn.Linear and p.bias is None and _fits(p) for p in parts) and (
                len({p.in_features for p in parts}) == 1
                and (max_width is None or parts[0].in_features <= max_width)
            ):
                found.append((name, list(group)))
    return found


def _stored(tables: Any, key: str, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The int8 table and scales stored under ``key`` (:func:`int8_tables`), if they fit."""
    if not tables:
        return None
    w, sc = tables.get(f"{key}.weight"), tables.get(f"{key}.scales")
    if w is None or sc is None or tuple(w.shape) != shape or w.dtype != torch.int8 or sc.shape != (shape[0],):
        return None
    return w, sc


def int8_tables(model: Any) -> dict[str, torch.Tensor]:
    """The int8 tables and scales of a model :func:`quantize_linears` made (``int_mm``),
    each stored once (a fused group under ``PARENT.q_proj+k_proj+v_proj``), for the disk
    cache; :func:`quantize_linears` ``tables=`` takes them back instead of quantizing."""
    out: dict[str, torch.Tensor] = {}
    # every name of a shared layer (a tied output layer is also the embedding's table):
    # torch.save keeps a shared tensor once
    for name, module in model.named_modules(remove_duplicate=False):
        if not isinstance(module, Int8Linear) or module.weight.is_meta:
            continue
        if module.fused is not None:
            if module.fused[1] == 0:
                parent, _, child = name.rpartition(".")
                group = next(g for g in FUSED_GROUPS if g[0] == child)
                key = f"{parent}.{'+'.join(group)}" if parent else "+".join(group)
                out[f"{key}.weight"], out[f"{key}.scales"] = module.fused[0].weight, module.fused[0].scales
            continue
        out[f"{name}.weight"], out[f"{name}.scales"] = module.weight, module.scales
    return out


def quantize_linears(
    model: Any,
    *,
    pack: bool = True,
    int_mm: bool = False,
    weight_only: bool = False,
    simd: bool = False,
    tables: Any = None,
) -> int:
    """Replace every ``nn.Linear`` of ``model`` (a bf16 model on the CPU) by :class:`Int8Linear`,
    untying a tied output layer from the input embedding first. ``pack``: pack them for
    fbgemm where torch has it (:meth:`Int8Linear.pack`; only the table the input embedding
    reads is kept as well). ``int_mm``: instead multiply the int8 tables as they are
    (:meth:`Int8Linear.use_int_mm`, the same numbers; nothing packed), each weight quantized
    once, and the :data:`FUSED_GROUPS` siblings quantized as one table whose row slices are
    the siblings' (``layer.fused``): no copy, and the fused product needs no repacking.
    Falls back to ``pack`` where torch has no int8 matrix product. ``weight_only``: the same
    tables as ``int_mm`` (fused, kept), multiplied by ``_weight_int8pack_mm`` (bf16
    activations; no width limit, nothing packed). ``simd``: the same tables as ``weight_only``,
    multiplied by our own kernel (:meth:`Int8Linear.use_simd`) where it runs, else by
    ``_weight_int8pack_mm``. ``tables``: int8 tables
    kept from an earlier load (:func:`int8_tables`, e.g. mapped from the disk cache), used as
    they are instead of quantizing again where their shapes fit. Returns how many were
    replaced."""
    if int_mm and not int_mm_supported():
        int_mm = False
    if simd:
        weight_only = True
    if weight_only:
        int_mm = False
    layout = int_mm or weight_only  # the tables as they are: fused groups, kept tables
    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    tied = out is not None and inp is not None and out.weight is inp.weight
    del out  # (no reference to the float tables may stay: their memory is freed below)
    # names only: each float layer is freed as soon as it is replaced (the peak memory)
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and _fits(module)
    ]
    spans = _file_mappings()
    done: set[str] = set()
    groups = _fuse_groups(model, None if weight_only else INT_MM_MAX_WIDTH) if layout else ()
    for parent_name, group in groups:
        parent = model.get_submodule(parent_name) if parent_name else model
        weights = [getattr(parent, child).weight.detach() for child in group]
        key = f"{parent_name}.{'+'.join(group)}" if parent_name else "+".join(group)
        kept = _stored(tables, key, (sum(w.shape[0] for w in weights), weights[0].shape[1]))
        if kept is not None:
            fused = Int8Linear(kept[0], kept[1].to(weights[0].dtype), None)
        else:
            fused = Int8Linear.from_linear(torch.cat(weights), None)
        for w in weights:
            _drop_pages(w, spans)
        del weights
        start = 0
        for child in group:
            width = getattr(parent, child).out_features
            part = Int8Linear(fused.weight[start : start + width], fused.scales[start : start + width], None)
            part.fused = (fused, start, start + width)
            setattr(parent, child, part)
            done.add(f"{parent_name}.{child}" if parent_name else child)
            start += width
    for name in targets:
        if name in done:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child)
        kept = _stored(tables, name, tuple(module.weight.shape)) if layout else None
        if kept is not None:
            bias = None if module.bias is None else module.bias.detach().clone()
            layer = Int8Linear(kept[0], kept[1].to(module.weight.dtype), bias)
            _drop_pages(module.weight.detach(), spans)
        else:
            layer = Int8Linear.from_linear(module.weight.detach(), module.bias, mapped=spans)
        setattr(parent, child, layer)
        del module
    new_out = model.get_output_embeddings()
    if tied and isinstance(new_out, Int8Linear) and _plain_embedding(inp):
        # one int8 table for both: the bf16 table is dropped
        model.set_input_embeddings(Int8Embedding(new_out, getattr(inp, "embed_scale", None)))
        del inp
    if tied and isinstance(new_out, Int8Linear):
        # keep transformers from tying them again (save_pretrained / resize_token_embeddings)
        model.config.tie_word_embeddings = False
        text_config = getattr(model.config, "get_text_config", lambda: None)()
        if text_config is not None:
            text_config.tie_word_embeddings = False
    if simd:
        use_kernel(list(model.modules()), "simd")  # nothing to prepare either
    elif weight_only:
        pass  # Int8Linear.forward's own product: nothing to prepare
    elif int_mm:
        table = getattr(model.get_input_embeddings(), "table", None)
        for module in list(model.modules()):
            if isinstance(module, Int8Linear):
                if module.fused is not None:
                    module.fused[0].use_int_mm()
                if not module.use_int_mm() and pack:  # too wide for it: fbgemm
                    module.pack(keep_table=module is table)
    elif pack:
        table = getattr(model.get_input_embeddings(), "table", None)
        for module in list(model.modules()):
            if isinstance(module, Int8Linear) and not module.pack(keep_table=module is table):
                break  # no fbgemm in this torch
    # the float weights left (norms) in memory of their own: a weight loaded from safetensors
    # may be a view of the file's mapping, which would keep every page read so far resident
    with torch.no_grad():
        for param in model.parameters():
            param.data = param.data.clone()
    _give_back_freed_memory()
    return len(targets)
