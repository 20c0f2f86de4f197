"""Memory: whether a model fits in what is available now, checked before loading or converting."""

from __future__ import annotations

from pathlib import Path

from hitl_desktop.core.backends.base import NotEnoughMemory


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


def check_memory(path: Path, needed: int, what: str) -> None:
    """NotEnoughMemory if ``needed`` bytes are more than the memory available now."""
    avail = available_memory()
    if avail is not None and needed > avail:
        raise NotEnoughMemory(
            f"{path}: too large for this computer's memory: {what} needs about "
            f"{needed / 2**30:.1f} GB and only {avail / 2**30:.1f} GB is available"
        )
