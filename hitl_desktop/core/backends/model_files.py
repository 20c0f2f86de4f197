"""Model files checked without loading anything (no torch): a model path, and a folder's
weight files and parameter count."""

from __future__ import annotations

import json
from pathlib import Path

from hitl_desktop.core.backends import gguf_files
from hitl_desktop.core.backends.base import ModelError


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
                + (f" (and {len(missing) - 1} more weight file(s))" if len(missing) > 1 else "")
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


def check_model_path(path: str | Path) -> gguf_files.GgufInfo | None:
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
        if not gguf_files.looks_like_gguf(path):
            raise ModelError(f"{path}: not a model: expected a model folder or a .gguf file")
        return gguf_files.read_gguf_info(path)
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model: {e.strerror or e}") from None
