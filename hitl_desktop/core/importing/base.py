"""What a layout is to the import pipeline: how its rows are recognised, parsed and written.

A ``Layout`` is registered in registry.py. ``matches(obj)`` says whether a file's first
record is in it (the first layout in the registry's order that matches wins);
``parse(obj, line, ctx)`` turns one row into the plan's item or raises ``LimitError`` /
``RowError`` naming the row's field; ``plan(store, path, default_tutor, summary)`` makes the
object that checks each batch of items against the database (``add_batch(items, errors)``)
and writes it (``write()``), inside the import's one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hitl_desktop.core.importing.refusals import BadLines, ImportSummary
from hitl_desktop.core.store import Store


@dataclass
class ParseContext:
    """What a parser needs besides the row: the --domain default and the fields not kept."""

    default_domain: str | None = None
    #: fields of the rows that have no place in what is written: field -> rows (never silent)
    unkept: dict[str, int] = field(default_factory=dict)


class Plan(Protocol):
    summary: ImportSummary

    def add_batch(self, items: list[Any], errors: BadLines) -> None: ...

    def write(self) -> None: ...

    def close(self) -> None:
        """Called once the import's transaction has ended, committed or rolled back: drop
        what the plan made for the import (a temp table) and nothing else."""
        ...


@dataclass(frozen=True)
class Layout:
    name: str
    matches: Callable[[dict[str, Any]], bool]
    parse: Callable[[Any, int, ParseContext], Any]
    plan: Callable[[Store, str, str, ImportSummary], Plan]
