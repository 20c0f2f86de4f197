"""The model cache: a file-hash memo and the store of converted model folders.

Loading a quantised GGUF with transformers means dequantising every tensor: 25-40 s each
start. So a GGUF is converted *once* (by a converter, :func:`.gguf_files.convert_gguf`) into a
plain bf16 folder in ``<cache root>/models/<sha256 prefix>``, keyed by the file's sha256 and
written atomically (a temporary folder, then a rename). Later loads read that folder (~1 s).

The cache root is ``$HITL_DESKTOP_CACHE_DIR`` if set, else
``platformdirs.user_cache_dir("hitl-desktop")``. File hashes are remembered in
``<cache root>/hashes.json`` keyed by path, size and mtime, so a hash is computed once per file.

A model's int8 tables (the CPU's weights, :mod:`.int8`) are kept in
``<cache root>/int8/<sha256>-v<INT8_FORMAT>.pt`` after its first load, and mapped (not read)
on the next ones instead of quantizing again (:func:`int8_tables_path`); a damaged file is
made again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hitl_desktop.core.backends.base import ModelError, NotEnoughMemory, ProgressCallback

CACHE_ENV = "HITL_DESKTOP_CACHE_DIR"
#: Written last into a converted folder: what it was made from. A folder without it is not used.
SOURCE_FILE = "hitl_source.json"
CACHE_FORMAT = 1
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


def _memoised(key: str, root: Path | None, compute: Callable[[], str]) -> str:
    """``compute()``, remembered in the memo under ``key`` (a key names path, size and mtime)."""
    digest = _read_memo(root).get(key)
    if digest is None:
        digest = compute()
        with _hash_lock:
            memo = _read_memo(root)
            memo[key] = digest
            if len(memo) > 500:  # keep it small: the newest entries win
                memo = dict(list(memo.items())[-500:])
            with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing
                _write_json_atomic(_memo_path(root), memo)
    return digest


def _sha256_of(path: Path, h: Any | None = None) -> Any:
    h = h or hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h


def file_sha256(path: str | Path, *, root: Path | None = None) -> str:
    """The sha256 of a file, computed once per (path, size, mtime)."""
    path = Path(path)
    return _memoised("file|" + _file_key(path), root, lambda: _sha256_of(path).hexdigest())


def files_sha256(paths: Iterable[Path], *, base: Path, root: Path | None = None) -> str:
    """One sha256 over several files (names relative to ``base`` and contents), memoised."""
    paths = sorted(paths)

    def compute() -> str:
        h = hashlib.sha256()
        for p in paths:
            h.update(p.relative_to(base).as_posix().encode() + b"\0")
            _sha256_of(p, h)
            h.update(b"\0")
        return h.hexdigest()

    return _memoised("files|" + "|".join(_file_key(p) for p in paths), root, compute)


# ---------------------------------------------------------------------------------------------
# Converted folders, keyed by the source file's sha256

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
    converter: Converter,
    sha256: str | None = None,
    name: str | None = None,
    root: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """The bf16 folder for ``gguf_path``, converting it first if it is not cached yet.

    ``converter`` writes the folder (:func:`.gguf_files.convert_gguf`); ``sha256``: the file's
    hash if already known (else computed, memoised). The conversion writes into a temporary folder
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
        try:
            tmp.mkdir()
            extra = converter(gguf_path, tmp, progress) or {}
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


# ---------------------------------------------------------------------------------------------
# Int8 tables of a model, kept so that a warm start maps them instead of quantizing again

#: Bumped when the int8 tables change (their quantization, their names).
INT8_FORMAT = 1


def int8_tables_path(revision: str, root: Path | None = None) -> Path:
    """Where the int8 tables of the model ``revision`` (its sha256) are kept."""
    safe = "".join(c for c in revision if c.isalnum())[:40] or "unknown"
    return (root or cache_root()) / "int8" / f"{safe}-v{INT8_FORMAT}.pt"


def read_int8_tables(path: Path) -> dict | None:
    """The kept tables, mapped from the file (not read into memory); None when there are
    none or the file is damaged (then they are made again)."""
    import torch

    if not path.is_file():
        return None
    try:
        data = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    except Exception:  # noqa: BLE001 - a truncated or foreign file: quantize again
        return None
    return data if isinstance(data, dict) else None


def write_int8_tables(path: Path, tables: dict) -> None:
    """Keep the tables (atomically: a temporary file, then a rename). A failure (a full
    disk) leaves no file and costs only the next start's quantization."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(tables, tmp)
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - OSError, or torch's RuntimeError for a full disk
        with contextlib.suppress(OSError):
            tmp.unlink()
