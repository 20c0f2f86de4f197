"""Prompts and their candidates: adding, reading, the queue, and the protected-candidates rule."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hitl_desktop.core.dbfile import StoreError
from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.rows import (
    CANDIDATE_COLUMNS,
    ORIGINS,
    PROMPT_COLUMNS,
    candidate_to_row,
    prefixed,
    prompt_to_row,
    row_to_candidate,
    row_to_prompt,
)
from hitl_desktop.core.types import Candidate, Prompt


class Prompts(StoreBase):
    """Tables ``prompts`` and ``candidates``. A candidate that came with its prompt (origin
    ``imported`` or ``pack``) is never replaced or deleted; only ``generated`` ones are."""

    # -- prompts ----------------------------------------------------------------------------

    def add_prompt(self, prompt: Prompt) -> Prompt:
        with self.db.atomic():
            self.db["prompts"].insert(prompt_to_row(prompt))
        return prompt

    def get_prompt(self, prompt_id: str) -> Prompt:
        row = self.db.execute(f"select {PROMPT_COLUMNS} from prompts where id = ?", [prompt_id]).fetchone()
        if row is None:
            raise StoreError(f"no prompt {prompt_id}")
        return self._with_gold([row_to_prompt(row)])[0]

    def prompt_ids_by_external_id(self, external_ids: Iterable[str]) -> dict[str, str]:
        """external id -> prompt id, for those that exist."""
        return dict(
            self._rows_in("select external_id, id from prompts where external_id in ({marks})", external_ids)
        )

    def prompts_by_external_id(self, external_ids: Iterable[str]) -> dict[str, Prompt]:
        """external id -> prompt (with its gold ranks), for those that exist."""
        found = list(
            map(
                row_to_prompt,
                self._rows_in(f"select {PROMPT_COLUMNS} from prompts where external_id in ({{marks}})", external_ids),
            )
        )
        return {p.external_id: p for p in self._with_gold(found)}

    def all_prompts(self, *, domain: str | None = None) -> list[Prompt]:
        """Every prompt (of ``domain``), oldest first."""
        where, args = ("where domain = ?", [domain]) if domain else ("", [])
        return [
            row_to_prompt(r)
            for r in self.db.execute(f"select {PROMPT_COLUMNS} from prompts {where} order by created_at, rowid", args)
        ]

    def queued_prompts(
        self,
        *,
        domain: str | None = None,
        tutor_id: str | None = None,
        without_candidates: bool = False,
        limit: int | None = None,
    ) -> list[Prompt]:
        """Prompts waiting for work, oldest first.

        With ``tutor_id``: those this tutor has not judged yet. With ``without_candidates``:
        those that have no candidate yet (for pre-generation).
        """
        where, args = [], []
        if domain:
            where.append("p.domain = ?")
            args.append(domain)
        if tutor_id:
            # "+j.tutor_id": look the prompt's judgments up by prompt id, never scan a tutor's
            # (SQLite would otherwise pick idx_judgments_tutor_id: a scan of every judgment of
            # the tutor for every prompt, 39 s for a queue of 20,000 judged prompts)
            where.append(
                "not exists (select 1 from judgments j where j.prompt_id = p.id and +j.tutor_id = ?)"
            )
            args.append(tutor_id)
        else:
            where.append("not exists (select 1 from judgments j where j.prompt_id = p.id)")
        if without_candidates:
            where.append("not exists (select 1 from candidates c where c.prompt_id = p.id)")
        sql = (
            f"select {prefixed(PROMPT_COLUMNS, 'p')} from prompts p where "
            + " and ".join(where)
            + " order by p.created_at, p.rowid"
        )
        if limit is not None:
            sql += f" limit {int(limit)}"
        return [row_to_prompt(r) for r in self.db.execute(sql, args)]


    # -- candidates -------------------------------------------------------------------------

    def add_candidates(
        self, candidates: Sequence[Candidate], *, origin: str = "generated", set_id: str | None = None
    ) -> None:
        """Save candidates written here (``origin`` generated) or brought in (imported, pack);
        ``set_id`` None: the prompt's own set, else a further set (see ``m0004_lab``)."""
        if origin not in ORIGINS:
            raise StoreError(f"origin: {origin!r} is not one of {', '.join(ORIGINS)}")
        with self.db.atomic():
            self.db["candidates"].insert_all(
                {**candidate_to_row(c), "origin": origin, "set_id": set_id} for c in candidates
            )

    def replace_candidate(self, old_id: str, new: Candidate) -> None:
        """Swap an unjudged generated candidate for a regenerated one, in one transaction (the
        new one joins the old one's set). A candidate that came with its prompt is protected."""
        with self.db.atomic():
            if self.db.execute("select 1 from rankings where candidate_id = ?", [old_id]).fetchone():
                raise StoreError("a judged candidate cannot be replaced")
            row = self.db.execute("select origin, set_id from candidates where id = ?", [old_id]).fetchone()
            if row is None:
                raise StoreError(f"no candidate {old_id}")
            if row[0] != "generated":
                raise StoreError(f"this candidate came with its prompt ({row[0]}); it is never replaced")
            self.db["candidates"].delete(old_id)
            self.db["candidates"].insert({**candidate_to_row(new), "origin": "generated", "set_id": row[1]})

    def delete_unjudged_candidates(self, prompt_id: str) -> int:
        """Remove a prompt's generated candidates that no judgment refers to (before
        regenerating all). Candidates that came with the prompt are never deleted."""
        with self.db.atomic():
            cur = self.db.execute(
                "delete from candidates where prompt_id = ? and origin = 'generated' and id not in "
                "(select candidate_id from rankings) and id not in "
                "(select candidate_id from corrections where candidate_id is not null)",
                [prompt_id],
            )
            return cur.rowcount

    def candidate_origins(self, prompt_id: str) -> dict[str, tuple[str, str | None]]:
        """candidate id -> (origin, set id) for one prompt's candidates."""
        return {
            cid: (origin, set_id)
            for cid, origin, set_id in self.db.execute(
                "select id, origin, set_id from candidates where prompt_id = ?", [prompt_id]
            )
        }

    def origins_by_candidate(self, candidate_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """candidate id -> (origin, set id) for these candidates (a database from before step
        m0004, read without migration: as that step would set them)."""
        cols = "origin, set_id" if self._has_lab_schema() else (
            "case when seed is null then 'imported' else 'generated' end, null")  # fmt: skip
        sql = f"select id, {cols} from candidates where id in ({{marks}})"
        return {cid: (o, sid) for cid, o, sid in self._rows_in(sql, candidate_ids)}

    def current_candidates(self, prompt_id: str) -> list[Candidate]:
        """The candidate set on the bench: the newest further set when there is one, else the
        prompt's own candidates."""
        row = self.db.execute(
            "select set_id from candidates where prompt_id = ? and set_id is not null "
            "order by rowid desc limit 1",
            [prompt_id],
        ).fetchone()
        where = "set_id = ?" if row else "set_id is null"
        args = [prompt_id, row[0]] if row else [prompt_id]
        return [
            row_to_candidate(r)
            for r in self.db.execute(
                f"select {CANDIDATE_COLUMNS} from candidates where prompt_id = ? and {where} "
                "order by idx, created_at",
                args,
            )
        ]

    def set_candidate_origin(self, origin: str) -> None:
        """Mark every candidate in this database as ``origin`` (a pack's, once it is built)."""
        if origin not in ORIGINS:
            raise StoreError(f"origin: {origin!r} is not one of {', '.join(ORIGINS)}")
        with self.db.atomic():
            self.db.execute("update candidates set origin = ?", [origin])

    def candidates_for(self, prompt_id: str) -> list[Candidate]:
        return [
            row_to_candidate(r)
            for r in self.db.execute(
                f"select {CANDIDATE_COLUMNS} from candidates where prompt_id = ? order by idx, created_at",
                [prompt_id],
            )
        ]

    def candidates_by_prompt(self, prompt_ids: Iterable[str]) -> dict[str, list[Candidate]]:
        """prompt id -> ALL its candidates in idx order (what ``gold_ranking`` is aligned with)."""
        wanted = list(prompt_ids)
        out: dict[str, list[Candidate]] = {pid: [] for pid in wanted}
        for r in self._rows_in(
            f"select {CANDIDATE_COLUMNS} from candidates where prompt_id in ({{marks}}) "
            "order by prompt_id, idx, created_at, rowid",
            wanted,
        ):
            out[r[1]].append(row_to_candidate(r))
        return out

    def candidate_keys(self, prompt_ids: Iterable[str]) -> list[tuple[str, str, int, str]]:
        """(prompt id, candidate id, idx, text) of the given prompts' candidates, in idx order."""
        return [
            (pid, cid, idx or 0, text)
            for pid, cid, idx, text in self._rows_in(
                "select prompt_id, id, idx, text from candidates where prompt_id in ({marks}) "
                "order by prompt_id, idx, created_at, rowid",
                prompt_ids,
            )
        ]
