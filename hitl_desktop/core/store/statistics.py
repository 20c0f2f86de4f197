"""Figures: counts per domain, a session's summary, and the domains a database knows."""

from __future__ import annotations

from collections import Counter, defaultdict
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
        from hitl_desktop.core.ranking import pairs_for_item

        def count(sql: str) -> int:
            return self.db.execute(sql).fetchone()[0]

        current = CURRENT_JUDGMENT if self._has_lab_schema() else "1=1"

        per_domain: dict[str, dict[str, int]] = defaultdict(
            lambda: {"prompts": 0, "candidates": 0, "judgments": 0, "pairs": 0, "corrections": 0, "tutors": 0}
        )
        for dom, n in self.db.execute("select domain, count(*) from prompts group by domain"):
            per_domain[dom]["prompts"] = n
        for dom, n in self.db.execute(
            "select p.domain, count(*) from candidates c join prompts p on p.id = c.prompt_id group by p.domain"
        ):
            per_domain[dom]["candidates"] = n
        tutors_by_domain: dict[str, set[str]] = defaultdict(set)
        total_pairs = 0
        dropped: Counter[str] = Counter()  # what the pair rules left out, by reason
        for item in self.judged_items():
            d = per_domain[item.domain]
            d["judgments"] += 1
            n = len(pairs_for_item(item, dropped))
            d["pairs"] += n
            total_pairs += n
            if item.judgment.correction is not None:
                d["corrections"] += 1
            tutors_by_domain[item.domain].add(item.judgment.tutor_id)
        for dom, ids in tutors_by_domain.items():
            per_domain[dom]["tutors"] = len(ids)
        return {
            "prompts": count("select count(*) from prompts"),
            "candidates": count("select count(*) from candidates"),
            "judgments": count(f"select count(*) from judgments j where {current}"),
            "corrections": count(
                "select count(*) from corrections c join judgments j on j.id = c.judgment_id "
                f"where {current}"
            ),
            "pairs": total_pairs,
            "tutors": count("select count(*) from tutors"),
            "queued": count(
                "select count(*) from prompts p where not exists "
                "(select 1 from judgments j where j.prompt_id = p.id)"
            ),
            "domains": {k: per_domain[k] for k in sorted(per_domain)},
            "dropped": dict(sorted(dropped.items())),
        }
