"""Loading: a model folder, a ``.gguf`` file (through the conversion cache) or the embedded
model, into a backend ready to generate.

Functions over the backend class ``cls`` (:class:`~.transformers_backend.TransformersBackend`,
whose classmethods call them):

* :func:`load` ``(cls, path, *, dtype, on_progress, cache_dir, warmup, device)``: a folder loads
  as is; a ``.gguf`` file is converted once into ``cache_dir`` (a bf16 folder, see :mod:`.cache`
  and :mod:`.gguf_files`) or, without one, dequantised by transformers on every load. Offline
  only. Errors are ModelErrors naming the path (NotEnoughMemory when it cannot fit).
* :func:`load_cached`: the converted folder of a GGUF, converting it first if needed; a damaged
  cache entry is converted again, once.
* :func:`finish`: the backend over a loaded model: int8 linear layers on the CPU for a bf16
  model (:mod:`.int8`, ``HITL_CPU_INT8=0``: bf16), moved to its device, warmed up (a model that
  loads but cannot run fails here), the CUDA fast path compiled.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hitl_desktop.core.backends import (
    cache,
    gguf_files,
    int8_simd,
    memory,
    model_files,
    native_gemma3,
)
from hitl_desktop.core.backends.base import (
    ModelError,
    NotEnoughMemory,
    ProgressCallback,
    short_error,
)
from hitl_desktop.core.backends.int8 import (
    KEPT_TABLE_KERNELS,
    KERNELS,
    default_kernel,
    int8_tables,
    quantize_linears,
    supported,
)
from hitl_desktop.core.backends.runtime import configure_torch, quiet_transformers

__all__ = ["DTYPES", "finish", "int8_wanted", "load", "load_cached", "load_folder", "load_gguf", "two_stages"]

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def load(
    cls: Any,
    path: str | os.PathLike[str],
    *,
    dtype: str = "bfloat16",
    on_progress: ProgressCallback | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    warmup: bool = True,
    device: str = "cpu",
) -> Any:
    """Load a local model folder or ``.gguf`` file, offline (see the module doc)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    configure_torch()
    progress = on_progress or (lambda f, m: None)
    path = Path(path).expanduser()
    root = Path(cache_dir).expanduser() if cache_dir is not None else None
    info = model_files.check_model_path(path)  # ModelError: missing, not a model, truncated...
    try:
        if info is None:  # a folder
            return load_folder(cls, path, dtype, progress, warmup, root, device=device)
        if root is None:
            return load_gguf(cls, path, info, dtype, progress, warmup, device=device)
        need = int(info.parameters * DTYPES[dtype].itemsize * 1.2)
        memory.check_memory(path, need, "loading it")
        sha = cache.file_sha256(path, root=root)
        return load_cached(cls, lambda: path, sha, path.stem, root, dtype, progress, warmup, device=device)
    except OSError as e:  # unreadable file or folder (permissions, I/O error)
        raise ModelError(f"{path}: cannot read the model: {e.strerror or e}") from None


def load_cached(
    cls: Any,
    gguf: Callable[[], Path],
    sha: str,
    name: str,
    root: Path,
    dtype: str,
    progress: ProgressCallback,
    warmup: bool,
    *,
    device: str = "cpu",
) -> Any:
    """Load the converted folder of a GGUF (``gguf()`` gives the file), converting it first
    if needed; a damaged cache entry is converted again, once."""
    configure_torch()
    first, then = two_stages(progress)
    for attempt in (1, 2):
        folder = cache.lookup(sha, root)
        if folder is None:
            if attempt == 1:
                first(0.0, f"Preparing {name}")
            folder = cache.ensure_converted(
                gguf(),
                converter=gguf_files.convert_gguf,
                sha256=sha,
                root=root,
                on_progress=first,
                name=name,
            )
        try:
            return load_folder(cls, folder, dtype, then, warmup, root, device=device)
        except NotEnoughMemory:
            raise
        except ModelError:
            if attempt == 2:
                raise
            shutil.rmtree(folder, ignore_errors=True)  # damaged: convert again
    raise AssertionError("unreachable")


def load_folder(
    cls: Any,
    path: Path,
    dtype: str,
    progress: ProgressCallback,
    warmup: bool,
    root: Path | None,
    *,
    device: str = "cpu",
) -> Any:
    weights, params = model_files.folder_weights(path)  # ModelError: not a model folder...
    memory.check_memory(path, int(params * DTYPES[dtype].itemsize * 1.2), "loading it")
    source = cache.read_source(path)
    if source and source.get("sha256"):
        name, revision = str(source.get("name") or path.name), str(source["sha256"])
    else:
        name = path.name
        progress(0.0, f"Checking {path.name}")
        try:
            revision = cache.files_sha256([path / "config.json", *weights], base=path, root=root)
        except OSError as e:
            raise ModelError(f"{path}: cannot read the model files: {e}") from None
    native = _load_native(cls, path, dtype, name, revision, progress, warmup, root, device)
    if native is not None:
        return native
    # transformers' imports (5-8 s on a 2-core machine): only where the model loads through it
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    progress(0.05, f"Loading the tokenizer of {name}")
    # read while the weights load and are quantized (tokenizers reads its file without the
    # GIL: 1-2 s for the embedded model's 262k-token vocabulary)
    tokenizer = _Background(
        lambda: gguf_files.converted_tokenizer(path, source)
        or AutoTokenizer.from_pretrained(str(path), local_files_only=True),
        path,
    )
    try:
        progress(0.3, f"Loading {name}")
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=DTYPES[dtype])
    except MemoryError:
        tokenizer.wait()
        raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
    except Exception as e:  # noqa: BLE001 - many failure modes inside transformers
        tokenizer.wait()
        raise ModelError(f"{path}: cannot load the model ({short_error(e)})") from None
    return finish(
        cls, model, tokenizer, name=name, revision=revision, dtype=dtype, path=path,
        progress=progress, warmup=warmup, device=device, root=root,
    )


def _load_native(
    cls: Any,
    path: Path,
    dtype: str,
    name: str,
    revision: str,
    progress: ProgressCallback,
    warmup: bool,
    root: Path | None,
    device: str,
) -> Any | None:
    """The backend of a Gemma 3 folder loaded without transformers (:mod:`.native_gemma3`),
    or None when it does not load that way (then transformers loads it)."""
    from_parts = getattr(cls, "from_native_parts", None)  # the transformers backend's classes
    if root is None or from_parts is None:
        return None
    tables = native_gemma3.loadable(
        path, root=root, device=device, dtype=DTYPES[dtype], kernel=int8_kernel(), int8=int8_wanted(DTYPES[dtype])
    )
    if tables is None:
        return None
    progress(0.3, f"Loading {name}")
    try:
        parts = native_gemma3.load_parts(path, tables, kernel=int8_kernel())
    except MemoryError:
        raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
    except (OSError, RuntimeError, ValueError):  # a damaged file: transformers loads it, and says what is wrong
        return None
    if parts is None:
        return None
    backend = from_parts(parts, name=name, revision=revision, path=path)
    if warmup:
        progress(0.9, "Warming up")
        try:
            backend.warmup()
        except MemoryError:
            raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{path}: the model loads but does not run ({short_error(e)})") from None
    progress(1.0, f"{name} ready")
    return backend


def load_gguf(
    cls: Any,
    path: Path,
    info: gguf_files.GgufInfo,
    dtype: str,
    progress: ProgressCallback,
    warmup: bool,
    *,
    device: str = "cpu",
) -> Any:
    memory.check_memory(path, int(info.parameters * 4 * 1.5), "loading it")
    progress(0.0, f"Checking {path.name}")
    revision = cache.file_sha256(path)
    quiet_transformers()
    model, tokenizer = gguf_files.read_gguf(path, dtype=DTYPES[dtype], progress=progress)
    return finish(
        cls, model, tokenizer, name=path.stem, revision=revision, dtype=dtype, path=path,
        progress=progress, warmup=warmup, device=device,
    )


def finish(
    cls: Any,
    model: Any,
    tokenizer: Any,
    *,
    name: str,
    revision: str,
    dtype: str,
    path: Path,
    progress: ProgressCallback,
    warmup: bool,
    device: str = "cpu",
    root: Path | None = None,
) -> Any:
    """The backend over a loaded model; ``warmup`` runs it once, so a model that loads but
    cannot run fails here, with a ModelError naming the path. ``root``: the cache, where the
    int8 tables are kept after the first load (:func:`.cache.int8_tables_path`) and mapped
    from on the next ones."""
    model.eval()
    quantized = device == "cpu" and int8_wanted(DTYPES[dtype])
    if quantized:
        progress(0.8, f"Preparing {name} for the CPU")
        kernel = int8_kernel()
        layout = kernel in KEPT_TABLE_KERNELS
        kept = cache.int8_tables_path(revision, root) if (layout and root is not None and revision) else None
        tables = cache.read_int8_tables(kept) if kept is not None else None
        quantize_linears(
            model, int_mm=kernel == "int_mm", weight_only=kernel == "weight_only", simd=kernel == "simd", tables=tables
        )
        if kept is not None and tables is None:
            cache.write_int8_tables(kept, int8_tables(model))
    if device != "cpu":
        progress(0.85, f"Moving {name} to {device}")
        try:
            model.to(device)
        except Exception as e:  # noqa: BLE001 - out of device memory, a missing kernel...
            raise ModelError(f"{path}: cannot move the model to {device} ({short_error(e)})") from None
    if isinstance(tokenizer, _Background):
        tokenizer = tokenizer.result()
    tokenizer.padding_side = "left"
    backend = cls(model, tokenizer, name=name, revision=revision, dtype=dtype, path=path, device=device)
    backend.weights = "int8" if quantized else dtype
    if warmup:
        progress(0.9, "Warming up")
        try:
            backend.warmup()
        except MemoryError:
            raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{path}: the model loads but does not run ({short_error(e)})") from None
        if backend.fast_decode and device.startswith("cuda"):
            progress(0.92, f"Compiling {name} for the GPU (up to a minute the first time)")
            failed = backend.compile_fast_path()
            if failed:
                progress(0.98, f"{name}: the GPU fast path is off ({failed}); decoding eagerly")
    progress(1.0, f"{name} ready")
    return backend


class _Background:
    """``make()`` run in a thread; :meth:`result` waits for it, its failure a ModelError
    naming ``path`` (as a failure in the loading thread is)."""

    def __init__(self, make: Callable[[], Any], path: Path) -> None:
        self._path = path
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(make,), name="tokenizer-load", daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Any]) -> None:
        try:
            self._out["value"] = make()
        except BaseException as e:  # noqa: BLE001 - handed to the loading thread
            self._out["error"] = e

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        e = self._out.get("error")
        if isinstance(e, MemoryError):
            raise NotEnoughMemory(f"{self._path}: too large for this computer's memory") from None
        if e is not None:
            raise ModelError(f"{self._path}: cannot load the model ({short_error(e)})") from None
        return self._out["value"]


def int8_wanted(dtype: torch.dtype) -> bool:
    """Int8 weights for a bf16 model on the CPU (:mod:`.int8`), unless ``HITL_CPU_INT8=0``."""
    return os.environ.get("HITL_CPU_INT8", "").strip() != "0" and supported(dtype)


#: Which int8 product the CPU uses (:data:`.int8.KERNELS`): by default the faster one on
#: this CPU (:func:`.int8.default_kernel`: ``simd``, our own kernel, where the CPU has AVX-512
#: VNNI and a C compiler built it; else ``weight_only`` where torch runs AVX-512 kernels, else
#: ``int_mm``), all on the int8 tables as they are (nothing packed, q/k/v and gate/up
#: quantized as one table each, kept in the cache); ``fbgemm``: the tables packed for
#: fbgemm, the fused ones unpacked and packed again (the slower load the tables replaced).
#: ``simd`` asked for where it does not run gives the default.
INT8_KERNEL_ENV = "HITL_INT8_KERNEL"


def int8_kernel() -> str:
    wanted = os.environ.get(INT8_KERNEL_ENV, "").strip()
    if wanted == "simd" and not int8_simd.available():
        return default_kernel()
    return wanted if wanted in KERNELS else default_kernel()


def two_stages(progress: ProgressCallback) -> tuple[ProgressCallback, ProgressCallback]:
    """Progress for a conversion (0-0.9) then a load (0.9-1, or 0-1 when nothing was converted)."""
    used = [False]

    def first(f: float, message: str) -> None:
        used[0] = True
        progress(0.9 * f, message)

    def then(f: float, message: str) -> None:
        progress(0.9 + 0.1 * f if used[0] else f, message)

    return first, then
