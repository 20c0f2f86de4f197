"""The ``simd`` int8 product: our own C kernel (``int8_simd.c``) for the CPU's decoding step.

Why: a K <= 9-row decoding step multiplies every weight of the model a few times only, and
on the CPU neither torch kernel reaches the memory's speed there (measured on the 2-core
Xeon, the embedded model's 262k x 640 output layer for 4 rows: ``_weight_int8pack_mm``
22-25 ms, ``_int_mm`` 45 ms, reading the table alone 9.5 ms). The kernel multiplies the same
int8 tables (one scale per output channel; nothing packed, the disk cache's tables used as
they are) by the activations quantized to int16 per row, with AVX-512 VNNI's 16-bit integer
dot products (``vpdpwssd``), the weights prefetched ahead: 9-13 ms for that layer.

Its numbers: the integer sums are exact, so an output depends on its row's activations and
the weights alone, not on the other rows, the thread count or the tile that computed it
(``tests/core/test_int8_simd.py``, bit for bit). Per row, 15 bits against the row's largest
activation (bf16 keeps 8 bits of each value): the logits match a float32 product to bf16's
rounding, as the other kernels' do.

Where: a CPU with AVX-512 VNNI (Intel since Cascade Lake / Ice Lake, AMD since Zen 4) and a C
compiler (``$CC``, else ``cc``) to build it once; the library is kept in the cache
(``<cache>/kernels/``, named after the source's hash), so a later start only loads it.
Elsewhere :func:`available` is False and the model uses torch's kernels
(:func:`.int8.default_kernel`). Threads: OpenMP from the libgomp torch has loaded (the same
pool and wait policy), as many as ``torch.get_num_threads()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

__all__ = ["SOURCE", "above", "available", "library_path", "mm", "rms_norm", "why_unavailable"]

SOURCE = Path(__file__).with_name("int8_simd.c")
#: The compiler's flags (part of the library's name: a change rebuilds it).
FLAGS = ("-O3", "-shared", "-fPIC", "-fopenmp", "-fno-fast-math")
#: ``HITL_INT8_SIMD=0`` turns the kernel off (torch's kernels then), e.g. to compare.
ENV = "HITL_INT8_SIMD"
#: Seconds a build may take before it counts as failed.
BUILD_TIMEOUT = 120
#: Where libgomp's threads sleep as soon as they wait (``OMP_WAIT_POLICY=PASSIVE`` with no
#: ``GOMP_SPINCOUNT``, or ``GOMP_SPINCOUNT=0``: a user's setting; the app's model processes
#: spin briefly, :mod:`.runtime`) a product of fewer multiply-adds runs on the calling
#: thread: waking a sleeping thread costs more than it saves there. Measured on the 2-core
#: Xeon, K=4 decoding steps: 94 ms with every product on 2 threads, 64 ms with the decoder
#: layers' (2.6-10.5 M) on one and the output layer's on two, against 78 ms for
#: ``weight_only``; where the threads spin, all on two: 47 ms against 51 with that split.
#: The numbers do not depend on the thread count.
PASSIVE_SERIAL_WORK = 16_000_000

_lock = threading.Lock()
_state: dict[str, object] = {}


def library_path(root: Path | None = None) -> Path:
    """Where the built kernel is kept: the cache, named after the source and the flags."""
    from hitl_desktop.core.backends import cache

    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    return (root or cache.cache_root()) / "kernels" / f"int8_simd-{digest}.so"


def _build(target: Path) -> str | None:
    """Compile the kernel into ``target`` (atomically); None, or why it could not."""
    compiler = os.environ.get("CC", "").strip() or "cc"
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".int8_simd-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, "-o", tmp, str(SOURCE)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"{compiler} failed: {lines[-1] if lines else done.returncode}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{compiler} failed: {e}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _load() -> ctypes.CDLL | None:
    if os.environ.get(ENV, "").strip() == "0":
        _state["why"] = f"turned off ({ENV}=0)"
        return None
    try:
        path = library_path()
        why = None if path.exists() else _build(path)
    except OSError as e:
        why = f"cannot build it: {e}"
    if why is not None:
        _state["why"] = why
        return None
    try:
        # CDLL: a call releases the GIL while it runs, as torch's ops do (the model process's
        # other threads, the pipe's, run meanwhile). torch is loaded, so its libgomp.so.1
        # (the same soname) serves this library too: one OpenMP runtime, one thread pool.
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        _state["why"] = f"cannot load {path}: {e}"
        return None
    if lib.hitl_int8_isa() != 1:
        _state["why"] = "this CPU has no AVX-512 VNNI"
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.hitl_int8_mm.argtypes = [ptr, i64, i64, i64, ptr, i64, i64, ptr, ptr, i64, ctypes.c_int]
    lib.hitl_int8_mm.restype = ctypes.c_int
    lib.hitl_above.argtypes = [ptr, i64, i64, i64, ptr, i64, ptr, ptr, ptr, ctypes.c_int]
    lib.hitl_above.restype = None
    lib.hitl_rms_norm.argtypes = [ptr, i64, i64, i64, i64, ptr, ctypes.c_float, ptr]
    lib.hitl_rms_norm.restype = None
    return lib


def _library() -> ctypes.CDLL | None:
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                _state["lib"] = _load()
    return _state["lib"]  # type: ignore[return-value]


def _passive() -> bool:
    """Whether libgomp's threads sleep as soon as they wait (read once: its settings are read
    when torch loads it)."""
    if "passive" not in _state:
        policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
        spin = os.environ.get("GOMP_SPINCOUNT", "").strip()
        _state["passive"] = (policy == "PASSIVE" and not spin) or spin == "0"
    return bool(_state["passive"])


def available() -> bool:
    """Whether the kernel runs here (builds it the first time; see the module doc)."""
    return _library() is not None


def why_unavailable() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return None if available() else str(_state.get("why") or "unavailable")


def mm(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x [rows, in] (bf16) @ (weight [out, in] int8 * scales [out] bf16).T`` in bf16, on the
    CPU: the kernel's product (see the module doc). ``weight``'s rows may be a slice of a larger
    table (a fused layer's part); each row must be contiguous."""
    lib = _library()
    if lib is None:
        raise RuntimeError(f"the simd int8 kernel is not available: {why_unavailable()}")
    if x.dtype != torch.bfloat16 or scales.dtype != torch.bfloat16 or weight.dtype != torch.int8:
        raise TypeError("the simd int8 kernel takes bf16 activations and scales, int8 weights")
    if weight.stride(1) != 1 or scales.stride(0) != 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError("the simd int8 kernel needs rows of `in` contiguous values")
    x = x.contiguous() if x.stride(-1) != 1 else x
    rows, width = x.shape
    out = weight.shape[0]
    y = torch.empty((rows, out), dtype=torch.bfloat16)
    threads = 1 if _passive() and rows * out * width < PASSIVE_SERIAL_WORK else torch.get_num_threads()
    code = lib.hitl_int8_mm(
        x.data_ptr(), rows, width, x.stride(0), weight.data_ptr(), out, weight.stride(0),
        scales.data_ptr(), y.data_ptr(), out, threads,
    )  # fmt: skip
    if code != 0:
        raise MemoryError("the simd int8 kernel could not allocate its activations")
    return y


def above(
    logits: torch.Tensor, threshold: torch.Tensor, cap: int
) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """Per row of ``logits`` [rows, vocab] (float32, on the CPU): (ids, logits) of the tokens
    whose logit is >= that row's ``threshold`` [rows], in vocabulary order; None for a row with
    more than ``cap`` of them. One pass over the logits (the sampler's nucleus: see
    :func:`.sampling.sample`); torch's mask and ``nonzero`` give the same where the kernel does
    not run."""
    rows, vocab = logits.shape
    cpu = logits.dtype == torch.float32 and logits.device.type == "cpu" and logits.stride(1) == 1
    lib = _library() if cpu else None  # (never built for a model on a card)
    if lib is None:
        keep = logits >= threshold.reshape(rows, 1).to(logits.dtype)
        out: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for r in range(rows):
            ids = keep[r].nonzero().squeeze(1)
            out.append((ids, logits[r, ids]) if ids.numel() <= cap else None)
        return out
    thr = threshold.reshape(rows).to(torch.float32).contiguous()
    ids = torch.empty((rows, cap), dtype=torch.int64)
    vals = torch.empty((rows, cap), dtype=torch.float32)
    counts = torch.empty(rows, dtype=torch.int64)
    lib.hitl_above(
        logits.data_ptr(), rows, vocab, logits.stride(0), thr.data_ptr(), cap,
        ids.data_ptr(), vals.data_ptr(), counts.data_ptr(), min(torch.get_num_threads(), rows),
    )  # fmt: skip
    return [
        (ids[r, :n], vals[r, :n]) if n <= cap else None
        for r, n in enumerate(counts.tolist())
    ]


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor | None:
    """Gemma's RMSNorm of the bf16 vectors of ``x`` ([rows, d], or [rows, groups, d] with each
    vector contiguous) times ``scale`` (float32 [d] or [groups, d]), in float32, as bf16: one
    pass (torch's ``rms_norm`` with its casts is ~50 us a call for 4 rows, the lean step makes
    109 a token). None where the kernel does not run or for another layout (the caller then
    uses torch's)."""
    if x.dtype != torch.bfloat16 or x.device.type != "cpu" or scale.dtype != torch.float32:
        return None
    lib = _library()
    if lib is None:
        return None
    if x.dim() == 2:
        rows, groups, d = x.shape[0], 1, x.shape[1]
        ok = x.stride(1) == 1 and scale.numel() == d
    elif x.dim() == 3:
        rows, groups, d = x.shape
        ok = x.stride(2) == 1 and x.stride(1) == d and scale.shape in ((groups, d), (d,))
    else:
        return None
    if not ok or not scale.is_contiguous():
        return None
    if scale.dim() == 1 and groups > 1:
        scale = scale.expand(groups, d).contiguous()
    y = torch.empty(x.shape, dtype=torch.bfloat16)
    lib.hitl_rms_norm(x.data_ptr(), rows, groups, d, x.stride(0), scale.data_ptr(), float(eps), y.data_ptr())
    return y
