"""Judgments: saving, taking back, and reading them (with their prompts and candidates) back."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from hitl_desktop.core.dbfile import StoreError
from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.query import ITEM_DOMAIN, JudgedItemsQuery
from hitl_desktop.core.store.rows import (
    CANDIDATE_COLUMNS,
    PROMPT_COLUMNS,
    judgment_rows,
    judgment_select,
    loads,
    row_to_candidate,
    row_to_judgment,
    row_to_prompt,
)
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment


class Judgments(StoreBase):
    """Tables ``judgments``, ``rankings`` and ``corrections``; every read of judged items goes
    through one ``JudgedItemsQuery`` (``core/store/query.py``)."""

    def save_judgment(self, judgment: Judgment) -> Judgment:
        """Save a judgment with its ranks, flags, ratings and correction: one transaction.

        A correction equal (after trimming) to the candidate it corrects is not stored; the
        judgment returned is the one saved."""
        from hitl_desktop.core.ranking import validate_judgment, without_unchanged_correction

        candidates = self.candidates_for(judgment.prompt_id)  # type: ignore[attr-defined]
        validate_judgment(judgment, [c.id for c in candidates])
        judgment = without_unchanged_correction(judgment, candidates)
        jrow, rrows, crow = judgment_rows(judgment)
        try:
            with self.db.atomic():
                self.db["judgments"].insert(jrow)
                self.db["rankings"].insert_all(rrows)
                if crow is not None:
                    self.db["corrections"].insert(crow)
        except sqlite3.IntegrityError as e:
            raise StoreError(f"judgment not saved: {e}") from e
        return judgment

    def delete_judgment(self, judgment_id: str) -> None:
        """Take a judgment back (undo), with its ranks and correction: one transaction."""
        with self.db.atomic():
            if self.db.execute(
                "select 1 from prompts where parent_judgment_id = ?", [judgment_id]
            ).fetchone():
                raise StoreError("this judgment has a continued conversation; it cannot be undone")
            self.db.execute("delete from corrections where judgment_id = ?", [judgment_id])
            self.rubrics.delete_judgment_grades(judgment_id)  # its grades go with it
            self.db.execute("delete from rankings where judgment_id = ?", [judgment_id])
            self.db.execute("delete from judgments where id = ?", [judgment_id])

    def superseding_judgment(self, judgment_id: str) -> str | None:
        """The id of the judgment that re-judged this one, if any."""
        row = self.db.execute("select id from judgments where supersedes = ?", [judgment_id]).fetchone()
        return None if row is None else row[0]

    def judgments_for(self, prompt_id: str) -> list[Judgment]:
        return [item.judgment for item in self.judged_items(prompt_id=prompt_id)]

    def judging_tutor_ids(self, prompt_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(prompt id, tutor id) for every judgment of the given prompts."""
        return set(
            self._rows_in("select distinct prompt_id, tutor_id from judgments where prompt_id in ({marks})", prompt_ids)
        )

    # -- reading judged items: one query ------------------------------------------------------

    def judged_query(self, query: JudgedItemsQuery) -> tuple[str, list[Any]]:
        """The ``from ... where ...`` of ``query`` on this database, with its arguments."""
        return query.sql(lab_schema=self._has_lab_schema())

    def judged_items(
        self,
        *,
        domain: str | None = None,
        tutor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        session_id: str | None = None,
        prompt_id: str | None = None,
        judgment_id: str | None = None,
        include_superseded: bool = False,
        query: JudgedItemsQuery | None = None,
    ) -> Iterator[JudgedItem]:
        """Every judgment with its prompt, candidates, tutor and domain, oldest first.

        The filters are those of ``JudgedItemsQuery`` (pass one as ``query``, or its fields):
        ``tutor`` is a tutor name; ``since``/``until`` are ISO dates or times (UTC). The domain
        of an item is its session's domain, else its prompt's. A judgment that was re-judged
        (another one ``supersedes`` it) is left out unless ``include_superseded``.
        """
        if query is None:
            query = JudgedItemsQuery(
                domain=domain, tutor=tutor, since=since, until=until, session_id=session_id,
                prompt_id=prompt_id, judgment_id=judgment_id, include_superseded=include_superseded,
            )  # fmt: skip
        base, args = self.judged_query(query)
        present = {"supersedes"} if self._has_lab_schema() else set()
        if self._has_source_values():
            present.add("source_values")
        ex = self.db.conn.execute
        cur = ex(
            f"select {judgment_select('j', present | _BASE_COLUMNS)}, t.name as tutor_name, "
            f"{ITEM_DOMAIN} as item_domain {base} order by j.created_at, j.rowid",
            args,
        )
        names = [d[0] for d in cur.description]
        jrows = [dict(zip(names, r)) for r in cur.fetchall()]
        if not jrows:
            return
        ranks: dict[str, list[tuple]] = defaultdict(list)
        for r in ex(
            "select judgment_id, candidate_id, rank, flags, ratings from rankings "
            f"where judgment_id in (select j.id {base})",
            args,
        ):
            ranks[r[0]].append(r)
        corrections = {
            r[0]: Correction(id=r[1], text=r[2], candidate_id=r[3], created_at=r[4])
            for r in ex(
                "select judgment_id, id, text, candidate_id, created_at from corrections "
                f"where judgment_id in (select j.id {base})",
                args,
            )
        }
        prompts = {
            r[0]: row_to_prompt(r)
            for r in ex(f"select {PROMPT_COLUMNS} from prompts where id in (select j.prompt_id {base})", args)
        }
        self._with_gold(list(prompts.values()))  # type: ignore[attr-defined]
        cands: dict[str, list[Candidate]] = defaultdict(list)
        for r in ex(
            f"select {CANDIDATE_COLUMNS} from candidates where prompt_id in (select j.prompt_id {base}) "
            "order by prompt_id, idx, created_at",
            args,
        ):
            cands[r[1]].append(row_to_candidate(r))
        for row in jrows:
            judgment = row_to_judgment(row, ranks.get(row["id"], ()), corrections.get(row["id"]))
            yield JudgedItem(
                judgment=judgment,
                prompt=prompts[judgment.prompt_id],
                candidates=[c for c in cands.get(judgment.prompt_id, ()) if c.id in judgment.ranks],
                tutor_name=row["tutor_name"],
                domain=row["item_domain"],
            )

    def judgment_history(
        self,
        *,
        session_id: str | None = None,
        tutor: str | None = None,
        domain: str | None = None,
        text: str | None = None,
        flag: str | None = None,
        limit: int | None = None,
        include_superseded: bool = False,
        query: JudgedItemsQuery | None = None,
    ) -> list[dict[str, Any]]:
        """Judgments, newest first, as plain rows for the history view: ``id``, ``created_at``,
        ``prompt_id``, ``prompt``, ``tutor``, ``domain``, ``flags`` (sorted, any candidate's),
        ``all_bad``, ``corrected``, ``candidates`` (ranked), ``rationale``.

        The filters are those of ``JudgedItemsQuery`` (the same query as ``judged_items``):
        ``text``: the prompt contains it (case-insensitive for ASCII); ``tutor``: tutor name;
        ``domain``: the item's domain (its session's, else its prompt's); ``flag``: some
        candidate carries that flag. A judgment re-judged since (another ``supersedes`` it) is
        left out unless ``include_superseded`` (the audit trail)."""
        if query is None:
            query = JudgedItemsQuery(
                session_id=session_id, tutor=tutor, domain=domain, text=text, flag=flag,
                include_superseded=include_superseded,
            )  # fmt: skip
        base, args = self.judged_query(query)
        sql = (
            f"select j.id, j.created_at, j.prompt_id, p.text, t.name, {ITEM_DOMAIN}, "
            "j.all_bad, j.rationale, "
            "(select count(*) from rankings r where r.judgment_id = j.id), "
            "(select group_concat(r.flags, '|') from rankings r where r.judgment_id = j.id), "
            "exists (select 1 from corrections c where c.judgment_id = j.id) "
            f"{base} order by j.created_at desc, j.rowid desc"
        )
        if limit is not None:
            sql += f" limit {int(limit)}"
        out = []
        for jid, created_at, pid, ptext, tname, dom, all_bad, rationale, n, flags, corrected in self.db.execute(sql, args):
            found: set[str] = set()
            for part in (flags or "").split("|"):
                found.update(loads(part, []))
            out.append(
                {
                    "id": jid, "created_at": created_at, "prompt_id": pid, "prompt": ptext,
                    "tutor": tname, "domain": dom, "flags": sorted(found), "all_bad": bool(all_bad),
                    "corrected": bool(corrected), "candidates": n, "rationale": rationale or "",
                }
            )  # fmt: skip
        return out


#: The judgment columns every schema has (m0001).
_BASE_COLUMNS = {
    "id", "prompt_id", "tutor_id", "session_id", "all_bad", "rationale", "strength",
    "seconds_spent", "display_order", "guideline_version", "created_at",
}  # fmt: skip
