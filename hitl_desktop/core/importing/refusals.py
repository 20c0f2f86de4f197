"""How an import reports: the bad lines of a refused file, and the summary of an imported one.

A file is refused whole: ``ImportFileError`` names its first bad line in one line of text
and keeps the first ``MAX_ERRORS_SHOWN`` (``total`` counts them all), for the CLI and the
app to list one line each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hitl_desktop.core.wording import count

#: Bad lines kept (and listed) of a refused file; all are counted.
MAX_ERRORS_SHOWN = 20


@dataclass
class LineError:
    line: int
    field: str
    message: str


#: characters ``str.splitlines`` breaks a line at: escaped in an error, which is one line
_LINE_BREAKS = str.maketrans({c: f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                              for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})  # fmt: skip


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` with its line breaks escaped, cut to ``limit`` characters."""
    text = text.translate(_LINE_BREAKS)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BadLines(list):
    """The bad lines of a file: the first ``MAX_ERRORS_SHOWN`` kept, ``total`` counts them all."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, error: LineError) -> None:  # type: ignore[override]
        self.total += 1
        if len(self) < MAX_ERRORS_SHOWN:
            super().append(error)


class ImportFileError(Exception):
    """A file refused as a whole. ``errors`` lists the bad lines found (the first
    ``MAX_ERRORS_SHOWN``), ``total`` counts them all."""

    def __init__(self, path: str | os.PathLike[str], errors: list[LineError], total: int | None = None) -> None:
        self.path = str(path)
        self.errors = [LineError(e.line, _one_line(e.field, 100), _one_line(e.message)) for e in errors]
        self.total = max(len(errors), total if total is not None else getattr(errors, "total", 0))
        first = self.errors[0]
        where = f"{_one_line(self.path)}:{first.line}" if first.line else _one_line(self.path)
        more = f" (and {count(self.total - 1, 'more bad line')})" if self.total > 1 else ""
        msg = f"{where}: {first.field}: {first.message}" if first.field else f"{where}: {first.message}"
        super().__init__(msg + more + "; nothing was imported")

    def lines(self) -> list[str]:
        """One line per bad line listed: ``file:line: field: message``."""
        path = _one_line(self.path)
        return [
            f"{path}:{e.line}: {e.field + ': ' if e.field else ''}{e.message}" if e.line
            else f"{path}: {e.field + ': ' if e.field else ''}{e.message}"
            for e in self.errors
        ]

    def details(self) -> str:
        return "\n".join(self.lines())


@dataclass
class ImportSummary:
    path: str
    records: int = 0
    prompts: int = 0
    prompts_reused: int = 0
    candidates: int = 0
    judgments: int = 0
    judgments_skipped: int = 0
    corrections: int = 0
    corrections_ignored: int = 0  # equal to the candidate they correct (not stored)
    tutors: int = 0
    queued: int = 0
    domains: dict[str, int] = field(default_factory=dict)
    layout: str = ""  # the layout read (core/layouts.py)
    #: fields of the rows that have no place in a judgment: field -> rows (never silent)
    fields_not_kept: dict[str, int] = field(default_factory=dict)
