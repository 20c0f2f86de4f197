"""Unexpected errors for people: one line to show, and the traceback kept in a log file.

A refusal of bad input has its own message (file, line and field); this is for the rest,
the bugs: the CLI's ``main`` and the app's error dialog show ``one_line(exc)`` and keep the
traceback with ``log_traceback(exc)`` in ``errors.log`` in the user's data folder
(``~/.local/share/hitl-desktop/logs/`` on Linux), for a bug report.
"""

from __future__ import annotations

import os
import traceback
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

#: The log is cut back to its newer half past this size.
MAX_LOG_BYTES = 1_000_000
#: One line's length at most.
MAX_LINE = 300


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (line breaks joined, cut to ``MAX_LINE`` characters)."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the error itself
        text = ""
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    name = type(exc).__name__
    line = f"{name}: {text}" if text and not text.startswith(name) else (text or name)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def log_path() -> Path:
    """Where tracebacks are kept: ``errors.log`` in the user's data folder."""
    return platformdirs.user_data_path("hitl-desktop", appauthor=False) / "logs" / "errors.log"


def log_traceback(exc: BaseException, *, context: str = "") -> Path | None:
    """Append ``exc``'s traceback (with the time and ``context``, e.g. the command line) to
    the log; the log's path, or None when it cannot be written (never raises)."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            _keep_newer_half(path)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"--- {when} {_version()} {context}\n{text}\n")
        return path
    except Exception:
        return None


def _keep_newer_half(path: Path) -> None:
    data = path.read_bytes()
    tail = data[len(data) // 2 :]
    cut = tail.find(b"\n--- ")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(tail[cut + 1 :] if cut >= 0 else b"")
    os.replace(tmp, path)


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"hitl-desktop {version('hitl-desktop')}"
    except Exception:
        return "hitl-desktop"
