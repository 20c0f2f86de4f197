"""Streaming text: each candidate's tokens turned into the text the tutor sees as it grows.

* :class:`Row`: one candidate being written (its seed and generator, token ids, text so far,
  what was last shown, its finish reason).
* :func:`advance` ``(row, decode, stops, final=False)``: decode the newest token(s), only a
  short window (incremental), complete characters only; a stop string (the plain format's
  next ``User:``) ends the row there.
* :func:`show` / :func:`flush`: give ``on_token(i, text)`` the visible text when it grew
  (stripped, never ending in half a UTF-8 character (U+FFFD), without a trailing start of a
  stop string; only growing; the last call carries the final text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hitl_desktop.core.backends.base import TokenCallback
from hitl_desktop.core.backends.plain import held_back

__all__ = ["Row", "advance", "flush", "show", "tidy"]

_TRAILING = re.compile(r"[\s\ufffd]+$")

Decode = Callable[[list[int]], str]


def tidy(text: str) -> str:
    """What is shown: no surrounding white space and no trailing U+FFFD (half a character, or
    an undecodable byte that would otherwise end the text)."""
    return _TRAILING.sub("", text.lstrip())


@dataclass
class Row:
    """One candidate being written."""

    index: int
    seed: int
    generator: Any  # torch.Generator
    ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far (complete characters only)
    prefix_offset: int = 0
    read_offset: int = 0
    shown: str = ""  # last text given to on_token
    finish: str | None = None
    seconds: float = 0.0


def advance(row: Row, decode: Decode, stops: Sequence[str], *, final: bool = False) -> None:
    """Decode the newest token(s) of a row: only a short window, complete characters only
    (``final``: the row is done, a trailing half character is dropped)."""
    prefix = decode(row.ids[row.prefix_offset : row.read_offset])
    full = decode(row.ids[row.prefix_offset :])
    if final:
        full = full.rstrip("\ufffd")
    elif full.endswith("\ufffd"):
        return  # half a character: wait for the rest
    if len(full) > len(prefix):
        old = len(row.text)
        row.text += full[len(prefix) :]
        row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
        for stop in stops:
            at = row.text.find(stop, max(0, old - len(stop) + 1))
            if at >= 0:
                row.text = row.text[:at]
                row.finish = "eos"


def show(row: Row, stops: Sequence[str], on_token: TokenCallback | None) -> None:
    """Give on_token the row's visible text if it grew: a finished row's whole text, else
    the text without a trailing start of a stop string."""
    visible = tidy(row.text if row.finish else held_back(row.text, stops))
    if visible != row.shown:
        row.shown = visible
        if on_token is not None:
            on_token(row.index, visible)


def flush(row: Row, decode: Decode, stops: Sequence[str], on_token: TokenCallback | None) -> None:
    """A finished row: decode what is left (dropping half a character), show the final text."""
    if row.read_offset < len(row.ids):
        advance(row, decode, stops, final=True)
    show(row, stops, on_token)
