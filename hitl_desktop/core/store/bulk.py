"""Many records in one transaction: the write path of an import (and of a pack being built)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.rows import (
    candidate_to_row,
    gold_rows,
    judgment_rows,
    prompt_to_row,
    tutor_to_row,
)
from hitl_desktop.core.types import Candidate, Judgment, Prompt, Session, Tutor


class Bulk(StoreBase):
    """``bulk_insert``: tutors, sessions, prompts, candidates, judgments and gold ranks at once."""

    def bulk_insert(
        self,
        *,
        tutors: Sequence[Tutor] = (),
        sessions: Sequence[Session] = (),
        prompts: Sequence[Prompt] = (),
        candidates: Sequence[Candidate] = (),
        judgments: Sequence[Judgment] = (),
        gold_rankings: Mapping[str, Mapping[str, int]] | None = None,
        candidate_origins: Mapping[str, tuple[str, str | None]] | None = None,
        pseudonymised: Iterable[str] = (),
    ) -> None:
        """Insert many records in ONE transaction: all of them, or (on any error) none.

        Gold ranks: the new prompts' ``gold_ranking`` and ``gold_rankings`` (prompt id ->
        candidate id -> rank) for prompts already stored. ``candidate_origins``: candidate id
        -> (origin, set id) (default: ``imported``, the prompt's own set). ``pseudonymised``:
        ids of the new tutors whose names are already pseudonyms (``m0006_source_values``)."""
        cand_rows = [candidate_to_row(c) for c in candidates]
        if candidate_origins:
            for row in cand_rows:
                row["origin"], row["set_id"] = candidate_origins.get(row["id"], ("imported", None))
        marked = set(pseudonymised)
        rankings: list[dict[str, Any]] = []
        corrections: list[dict[str, Any]] = []
        judgment_list: list[dict[str, Any]] = []
        for j in judgments:
            jrow, rrows, crow = judgment_rows(j)
            judgment_list.append(jrow)
            rankings.extend(rrows)
            if crow is not None:
                corrections.append(crow)
        with self.db.atomic():
            self._insert_many(
                "tutors",
                [{**tutor_to_row(t), **({"pseudonymised": int(t.id in marked)} if marked else {})} for t in tutors],
            )
            self._insert_many(
                "sessions",
                [
                    {"id": x.id, "tutor_id": x.tutor_id, "domain": x.domain, "guideline_version": x.guideline_version,
                     "started_at": x.started_at, "ended_at": x.ended_at}
                    for x in sessions
                ],
            )  # fmt: skip
            self._insert_many("prompts", [prompt_to_row(p) for p in prompts])
            self._insert_many("candidates", cand_rows)
            self._insert_many("judgments", judgment_list)
            self._insert_many("rankings", rankings)
            self._insert_many("corrections", corrections)
            self._insert_many(
                "gold_rankings",
                [r for p in prompts if p.gold_ranking for r in gold_rows(p.id, p.gold_ranking)]
                + [r for pid, g in (gold_rankings or {}).items() for r in gold_rows(pid, dict(g))],
            )
