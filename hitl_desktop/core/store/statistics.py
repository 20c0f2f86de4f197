"""Figures: counts per domain, a session's summary, and the domains a database knows."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from hitl_desktop.core.store.base import CURRENT_JUDGMENT, StoreBase


class Statistics(StoreBase):
    """Read-only figures over every table (``stats``, ``session_summary``, ``domains``)."""

    def domains(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "select domain from prompts union select domain from sessions order by 1"
            ).fetchall()
        ]

    def session_summary(self, session_id: str) -> dict[str, Any]:
        """Items done, time per item and pairs produced in one session."""
        from hitl_desktop.core.ranking import pairs_for_item

        items = list(self.judged_items(session_id=session_id))
        times = [i.judgment.seconds_spent for i in items if i.judgment.seconds_spent is not None]
        return {
            "session_id": session_id,
            "items": len(items),
            "seconds_per_item": (sum(times) / len(times)) if times else None,
            "pairs": sum(len(pairs_for_item(i)) for i in items),
            "corrections": sum(1 for i in items if i.judgment.correction is not None),
        }

    def stats(self) -> dict[str, Any]:
        """Counts of prompts, candidates, judgments, pairs and tutors, overall and per domain."""
        tally = StatsTally(self.db.execute, CURRENT_JUDGMENT if self._has_lab_schema() else "1=1")
        for item in self.judged_items():
            tally.add(item)
        return tally.figures()


#: the figures of one domain, in ``stats``' order
FIGURES = ("prompts", "candidates", "judgments", "pairs", "corrections", "tutors")


class StatsTally:
    """The figures of ``stats``: counts from SQL aggregates, and what needs the judged items
    (pairs, corrections and tutors per domain, what the pair rules left out) added one item at
    a time. ``Store.stats`` adds every item; ``core/lab_stats.py`` adds them a prompt at a time.

    ``execute``: a connection's ``execute``; ``current``: the SQL condition on ``judgments j``
    of a judgment's newest version (``"1=1"`` for a database without versions).
    """

    def __init__(self, execute: Callable[[str], Any], current: str) -> None:
        self._execute = execute
        self._current = current
        self.per_domain: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
        for dom, n in execute("select domain, count(*) from prompts group by domain"):
            self.per_domain[dom]["prompts"] = n
        for dom, n in execute(
            "select p.domain, count(*) from candidates c join prompts p on p.id = c.prompt_id group by p.domain"
        ):
            self.per_domain[dom]["candidates"] = n
        self._tutors: dict[str, set[str]] = defaultdict(set)
        self.pairs = 0
        self.dropped: Counter[str] = Counter()  # what the pair rules left out, by reason

    def add(self, item: Any) -> None:
        """One judged item (``JudgedItem``): its judgment, pairs, correction and tutor."""
        from hitl_desktop.core.ranking import pairs_for_item

        d = self.per_domain[item.domain]
        d["judgments"] += 1
        n = len(pairs_for_item(item, self.dropped))
        d["pairs"] += n
        self.pairs += n
        if item.judgment.correction is not None:
            d["corrections"] += 1
        self._tutors[item.domain].add(item.judgment.tutor_id)

    def figures(self) -> dict[str, Any]:
        """``stats``' keys: totals, ``domains`` (figures per domain) and ``dropped``."""

        def count(sql: str) -> int:
            return self._execute(sql).fetchone()[0]

        for dom, ids in self._tutors.items():
            self.per_domain[dom]["tutors"] = len(ids)
        current = self._current
        return {
            "prompts": count("select count(*) from prompts"),
            "candidates": count("select count(*) from candidates"),
            "judgments": count(f"select count(*) from judgments j where {current}"),
            "corrections": count(
                "select count(*) from corrections c join judgments j on j.id = c.judgment_id "
                f"where {current}"
            ),
            "pairs": self.pairs,
            "tutors": count("select count(*) from tutors"),
            "queued": count(
                "select count(*) from prompts p where not exists "
                "(select 1 from judgments j where j.prompt_id = p.id)"
            ),
            "domains": {k: self.per_domain[k] for k in sorted(self.per_domain)},
            "dropped": dict(sorted(self.dropped.items())),
        }
