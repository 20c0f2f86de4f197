"""The judged-items query: which judgments a history, a review or an export looks at.

One ``JudgedItemsQuery`` holds the filters (domain, tutor, time range, session, prompt,
judgment, prompt text, flag, and whether re-judged versions count); ``sql`` turns them into the
``from ... where ...`` that ``Store.judged_items`` and ``Store.judgment_history`` both read, and
``matches`` applies the same filters to items already in memory (an export handed its items).
The domain of an item is its session's domain, else its prompt's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hitl_desktop.core.store.base import CURRENT_JUDGMENT
from hitl_desktop.core.types import JudgedItem

#: The judgments ``j`` with their prompt ``p``, tutor ``t`` and (optional) session ``s``.
JUDGED_FROM = (
    "from judgments j join prompts p on p.id = j.prompt_id "
    "join tutors t on t.id = j.tutor_id left join sessions s on s.id = j.session_id"
)
#: SQL for an item's domain (its session's, else its prompt's).
ITEM_DOMAIN = "coalesce(s.domain, p.domain)"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    """Lower case for ASCII letters only, as SQLite's ``like`` compares."""
    return text.translate(_ASCII_LOWER)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class JudgedItemsQuery:
    """Filters on judged items; an empty one is every current judgment.

    ``tutor`` is a tutor name; ``since``/``until`` are ISO dates or times (UTC), ``until``
    excluded; ``text``: the prompt contains it (case-insensitive for ASCII); ``flag``: some
    candidate carries that flag. A judgment re-judged since (another one ``supersedes`` it) is
    left out unless ``include_superseded``."""

    domain: str | None = None
    tutor: str | None = None
    since: str | None = None
    until: str | None = None
    session_id: str | None = None
    prompt_id: str | None = None
    judgment_id: str | None = None
    text: str | None = None
    flag: str | None = None
    include_superseded: bool = False

    def _conditions(self) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = [
            (f"{ITEM_DOMAIN} = ?", self.domain),
            ("t.name = ?", self.tutor),
            ("j.created_at >= ?", self.since),
            ("j.created_at < ?", self.until),
            ("j.session_id = ?", self.session_id),
            ("j.prompt_id = ?", self.prompt_id),
            ("j.id = ?", self.judgment_id),
        ]
        if self.text:
            found.append(("p.text like ? escape '\\'", f"%{_like_escaped(self.text)}%"))
        if self.flag:
            found.append(
                ("exists (select 1 from rankings f where f.judgment_id = j.id and f.flags like ?)", f'%"{self.flag}"%')
            )
        return [(sql, value) for sql, value in found if value]

    def sql(self, *, lab_schema: bool = True) -> tuple[str, list[Any]]:
        """(``from ... where ...``, its arguments). ``lab_schema``: the database has step m0004
        (``judgments.supersedes``); without it no judgment is superseded."""
        conditions = self._conditions()
        where = ["1=1", *(sql for sql, _ in conditions)]
        if not self.include_superseded and lab_schema:
            where.append(CURRENT_JUDGMENT)
        return f"{JUDGED_FROM} where " + " and ".join(where), [value for _, value in conditions]

    def matches(self, item: JudgedItem) -> bool:
        """Whether an item already read passes the same filters (superseded ones aside: an item
        in memory does not know whether another judgment re-judged it)."""
        j = item.judgment
        return (
            (not self.domain or item.domain == self.domain)
            and (not self.tutor or item.tutor_name == self.tutor)
            and (not self.since or j.created_at >= self.since)
            and (not self.until or j.created_at < self.until)
            and (not self.session_id or j.session_id == self.session_id)
            and (not self.prompt_id or j.prompt_id == self.prompt_id)
            and (not self.judgment_id or j.id == self.judgment_id)
            and (not self.text or _ascii_lower(self.text) in _ascii_lower(item.prompt.text))
            and (not self.flag or any(self.flag in f for f in j.flags.values()))
        )
