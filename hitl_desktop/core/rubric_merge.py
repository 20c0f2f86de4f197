"""How a merge brings rubrics, criteria, grader runs and grades across (core/merging.py).

A mixin of ``merging._Merger``: one ``_plan_<table>`` per table of ``RUBRIC_TABLES``, using the
merger's maps (prompts by external id, candidates by text) and its skipped judgments.

- Rows keep their ids; a row already in the target is skipped (the lab rubric a pack carried
  comes back under its own id, so it is not doubled).
- A rubric version whose number the target's prompt already uses (two tutors' packs each wrote
  a version 1) takes the next free number; grades name rubrics and criteria by id, so nothing
  else changes.
- Grades follow their candidate through the candidate map; a grade of a judgment the target
  already had stays out, as that judgment's rankings do.
"""

from __future__ import annotations

from typing import Any


class RubricMergePlans:
    """Mixed into ``_Merger``; relies on its ``t``, ``s``, ``prompt_map``, ``candidate_map``,
    ``skipped_judgments`` and ``_present``."""

    t: Any
    s: Any
    prompt_map: dict[str, str]
    candidate_map: dict[str, str]
    skipped_judgments: set[str]

    def _present(self, table: str, batch: list[dict[str, Any]]) -> set[str]:  # pragma: no cover
        raise NotImplementedError

    def _plan_rubrics(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("rubrics", batch)
        out = []
        for r in batch:
            if r["id"] in present:
                continue
            pid = self.prompt_map.get(r["prompt_id"], r["prompt_id"])
            row = {**r, "prompt_id": pid}
            taken = self.t.db.execute(
                "select 1 from rubrics where prompt_id = ? and version = ?", [pid, r["version"]]
            ).fetchone()
            if taken or any(o["prompt_id"] == pid and o["version"] == r["version"] for o in out):
                top = self.t.db.execute(
                    "select coalesce(max(version), 0) from rubrics where prompt_id = ?", [pid]
                ).fetchone()[0]
                row["version"] = 1 + max([top, *(o["version"] for o in out if o["prompt_id"] == pid)])
            out.append(row)
        return out

    def _plan_criteria(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("criteria", batch)
        return [r for r in batch if r["id"] not in present]

    def _plan_grader_runs(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("grader_runs", batch)
        return [r for r in batch if r["id"] not in present]

    def _plan_grades(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("grades", batch)
        out = []
        for r in batch:
            if r["id"] in present:
                continue
            if r["judgment_id"] is not None and r["judgment_id"] in self.skipped_judgments:
                self.s.skipped["grades"] += 1
                continue
            out.append({**r, "candidate_id": self.candidate_map.get(r["candidate_id"], r["candidate_id"])})
        return out
