"""What changed: the small value a workflow announces after every mutation, and its subscribers.

In the spirit of Anki's ``OpChanges`` and napari's evented ``ViewerModel``: the core never
knows who is listening. A mutation ends with ``self.announce(Change.QUEUE, Change.ITEM)``; each
view subscribed with ``workflow.subscribe(callback)`` receives one :class:`Changes` value and
redraws only what it names. Nothing here imports Qt: a Qt view that must run on the GUI thread
does its own queuing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Change(enum.Enum):
    """One part of the application state a view may show."""

    DATABASE = "database"  # another database was opened (everything below changed too)
    SESSION = "session"  # the session (tutor, domain, guideline version) started, ended or switched
    QUEUE = "queue"  # what waits for the tutor
    ITEM = "item"  # the item on the bench (prompt, judging state)
    CANDIDATES = "candidates"  # the candidates of the item on the bench
    HISTORY = "history"  # judgments saved, undone or superseded
    RUBRIC = "rubric"  # the rubric of the item on the bench (criteria, version)
    GRADES = "grades"  # the grades of the item on the bench
    SETTINGS = "settings"  # a setting the views show (lead mode, theme...)


@dataclass(frozen=True)
class Changes:
    """The set of parts one mutation changed. ``DATABASE`` implies every other part."""

    parts: frozenset[Change]

    def __contains__(self, part: object) -> bool:
        return part in self.parts or (Change.DATABASE in self.parts and isinstance(part, Change))

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __or__(self, other: Changes) -> Changes:
        return Changes(self.parts | other.parts)

    @classmethod
    def of(cls, *parts: Change) -> Changes:
        return cls(frozenset(parts))


Subscriber = Callable[[Changes], None]


class Evented:
    """A mixin: ``subscribe`` views, ``announce`` what changed. Announcements made while a
    :meth:`batch` is open are merged and delivered once when it closes, so one user action
    (submit: history, queue, item, session summary) reaches each view as one ``Changes``."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._batch_depth = 0
        self._pending: set[Change] = set()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(changes)`` after every mutation; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def announce(self, *parts: Change | Iterable[Change]) -> None:
        flat: set[Change] = set()
        for p in parts:
            flat.update([p] if isinstance(p, Change) else p)
        if not flat:
            return
        self._pending |= flat
        if self._batch_depth == 0:
            self._deliver()

    def batch(self) -> _Batch:
        return _Batch(self)

    def _deliver(self) -> None:
        changes = Changes(frozenset(self._pending))
        self._pending = set()
        for callback in list(self._subscribers):
            callback(changes)


class _Batch:
    def __init__(self, owner: Evented) -> None:
        self.owner = owner

    def __enter__(self) -> Evented:
        self.owner._batch_depth += 1
        return self.owner

    def __exit__(self, *exc: object) -> None:
        self.owner._batch_depth -= 1
        if self.owner._batch_depth == 0 and self.owner._pending:
            if exc[0] is not None:  # a failed mutation announces what it may have touched anyway
                log.debug("announcing %s after a failed mutation", self.owner._pending)
            self.owner._deliver()
