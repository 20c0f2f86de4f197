"""The SQL of rubrics, criteria and grades (tables of migration ``m0007_rubrics``).

``RubricStore(db)`` works on the same ``sqlite_utils.Database`` as the ``Store`` (``store.rubrics``).

Versions: a prompt's rubric versions count from 1, whoever wrote them. Criteria are immutable
per version: saving makes a new version whose criteria have new ids; a criterion carried over
from an earlier version (passed with that version's criterion id) keeps its ``key``, the id it
had when first written, so grades can be followed across versions. Saving criteria equal to
the author's latest version (text, points, tags, order) makes no new version.

A lab rubric: a version a lead approved; of several, the latest approval is the prompt's lab
rubric (packs carry it, exports use it). Rows of ``rubrics`` and ``criteria`` are never deleted.

Grades: one per (candidate, criterion, grader) and judgment. A tutor's grades carry the
judgment they were submitted with (undo deletes them with it; a re-judged judgment keeps its
own for audit and only the newest version counts). A model's grades carry a grader run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hitl_desktop.core.rubrics import (
    APPROVED,
    GRADER_KINDS,
    MODEL,
    PROPOSED,
    TUTOR,
    Criterion,
    Grade,
    Rubric,
    RubricError,
    check_criteria,
)
from hitl_desktop.core.sqlitelib import Database
from hitl_desktop.core.types import new_id, now_iso

#: the tables of m0007, parents before children (merge order)
RUBRIC_TABLES: tuple[str, ...] = ("rubrics", "criteria", "grader_runs", "grades")

_RUBRIC_COLS = "id, prompt_id, version, author, created_at, status, approved_by, approved_at"
#: m0008's column; a database opened read-only may predate it (then every rubric reads "")
_TEMPLATE_COL = "template_version"
_CRITERION_COLS = "id, rubric_id, key, position, text, points, tags, author, created_at"
_GRADE_COLS = (
    "id, candidate_id, criterion_id, rubric_id, grader, grader_kind, met, note, judgment_id, run_id, created_at"
)

#: a tutor's grades that count: not superseded by a re-judgment (a model's have no judgment)
CURRENT_GRADE = (
    "(g.judgment_id is null or not exists (select 1 from judgments s where s.supersedes = g.judgment_id))"
)


def _criterion(row: Sequence[Any]) -> Criterion:
    return Criterion(
        id=row[0], key=row[2], text=row[4], points=float(row[5]), tags=json.loads(row[6] or "[]"),
        author=row[7] or "", created_at=row[8],
    )


def _grade(row: Sequence[Any]) -> Grade:
    return Grade(
        id=row[0], candidate_id=row[1], criterion_id=row[2], rubric_id=row[3], grader=row[4],
        grader_kind=row[5], met=bool(row[6]), note=row[7] or "", judgment_id=row[8], run_id=row[9],
        created_at=row[10],
    )


def _same(a: Sequence[Criterion], b: Sequence[Criterion]) -> bool:
    return len(a) == len(b) and all(
        x.text.strip() == y.text.strip() and float(x.points) == float(y.points) and list(x.tags) == list(y.tags)
        for x, y in zip(a, b, strict=True)
    )


class RubricStore:
    """Rubrics, criteria, grades and grader runs of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cols: str | None = None

    @property
    def _rubric_cols(self) -> str:
        """The columns a rubric is read from: ``_RUBRIC_COLS`` then its template version."""
        if self._cols is None:
            has = _TEMPLATE_COL in {c.name for c in self.db["rubrics"].columns}
            self._cols = f"{_RUBRIC_COLS}, {_TEMPLATE_COL if has else repr('')}"
        return self._cols

    def available(self) -> bool:
        """Whether the database has the rubric tables (one opened read-only may predate them)."""
        return self.db["rubrics"].exists()

    # -- rubrics ---------------------------------------------------------------------------

    def _rubric(self, row: Sequence[Any]) -> Rubric:
        crits = [
            _criterion(r)
            for r in self.db.execute(
                f"select {_CRITERION_COLS} from criteria where rubric_id = ? order by position", [row[0]]
            )
        ]
        return Rubric(
            id=row[0], prompt_id=row[1], version=row[2], author=row[3] or "", created_at=row[4],
            status=row[5], approved_by=row[6], approved_at=row[7], criteria=crits,
            template_version=row[8] or "",
        )

    def rubric(self, rubric_id: str) -> Rubric:
        row = self.db.execute(f"select {self._rubric_cols} from rubrics where id = ?", [rubric_id]).fetchone()
        if row is None:
            raise RubricError(f"no rubric {rubric_id}")
        return self._rubric(row)

    def versions(self, prompt_id: str) -> list[Rubric]:
        """Every version of a prompt's rubric, oldest first."""
        rows = self.db.execute(
            f"select {self._rubric_cols} from rubrics where prompt_id = ? order by version", [prompt_id]
        ).fetchall()
        return [self._rubric(r) for r in rows]

    def latest_by(self, prompt_id: str, author: str) -> Rubric | None:
        """The newest version ``author`` saved for the prompt."""
        row = self.db.execute(
            f"select {self._rubric_cols} from rubrics where prompt_id = ? and author = ? order by version desc limit 1",
            [prompt_id, author],
        ).fetchone()
        return None if row is None else self._rubric(row)

    def lab_rubric(self, prompt_id: str) -> Rubric | None:
        """The prompt's lab rubric: the version approved last."""
        row = self.db.execute(
            f"select {self._rubric_cols} from rubrics where prompt_id = ? and status = ? "
            "order by approved_at desc, version desc limit 1",
            [prompt_id, APPROVED],
        ).fetchone()
        return None if row is None else self._rubric(row)

    def current_rubric(self, prompt_id: str) -> Rubric | None:
        """What exports use by default: the lab rubric, else the newest version."""
        lab = self.lab_rubric(prompt_id)
        if lab is not None:
            return lab
        row = self.db.execute(
            f"select {self._rubric_cols} from rubrics where prompt_id = ? order by version desc limit 1", [prompt_id]
        ).fetchone()
        return None if row is None else self._rubric(row)

    def save_rubric(
        self,
        prompt_id: str,
        criteria: Sequence[Criterion],
        *,
        author: str,
        status: str = PROPOSED,
        approved_by: str | None = None,
        created_at: str | None = None,
        version: int | None = None,
        template_version: str = "",
    ) -> Rubric:
        """A new version of the prompt's rubric (one transaction); see the module docstring.
        ``version``: the number to give it (an import) when the prompt has none of that number.
        ``template_version``: the domain template the criteria started from (recorded as is).

        Raises :class:`RubricError` for criteria that break the rules (``check_criteria``)."""
        check_criteria(criteria)
        if status not in (PROPOSED, APPROVED):
            raise RubricError(f"status: {status!r} is not proposed or approved")
        mine = self.latest_by(prompt_id, author)
        if mine is not None and mine.status == status and _same(mine.criteria, criteria):
            return mine
        ids = [c.id for c in criteria]
        keys = dict(
            self.db.execute(
                "select c.id, c.key from criteria c join rubrics r on r.id = c.rubric_id "
                f"where r.prompt_id = ? and c.id in ({','.join('?' * len(ids))})",
                [prompt_id, *ids],
            ).fetchall()
        )
        when = created_at or now_iso()
        with self.db.atomic():
            taken = version is None or self.db.execute(
                "select 1 from rubrics where prompt_id = ? and version = ?", [prompt_id, version]
            ).fetchone()
            if taken:
                version = 1 + self.db.execute(
                    "select coalesce(max(version), 0) from rubrics where prompt_id = ?", [prompt_id]
                ).fetchone()[0]
            rubric = Rubric(
                prompt_id=prompt_id, criteria=[], version=version, author=author, created_at=when,
                status=status, approved_by=approved_by if status == APPROVED else None,
                approved_at=when if status == APPROVED else None, template_version=template_version or "",
            )
            row = {
                "id": rubric.id, "prompt_id": prompt_id, "version": version, "author": author,
                "created_at": when, "status": status, "approved_by": rubric.approved_by,
                "approved_at": rubric.approved_at,
            }
            if rubric.template_version:
                row[_TEMPLATE_COL] = rubric.template_version
            self.db["rubrics"].insert(row)
            rows = []
            for pos, c in enumerate(criteria):
                cid = new_id()
                new = Criterion(
                    id=cid, key=keys.get(c.id) or cid, text=c.text.strip(), points=float(c.points),
                    tags=list(c.tags), author=c.author or author, created_at=c.created_at or when,
                )
                rubric.criteria.append(new)
                rows.append(
                    {
                        "id": cid, "rubric_id": rubric.id, "key": new.key, "position": pos, "text": new.text,
                        "points": new.points, "tags": json.dumps(new.tags, ensure_ascii=False),
                        "author": new.author, "created_at": new.created_at,
                    }
                )
            self.db["criteria"].insert_all(rows)
        return rubric

    def same_version(self, prompt_id: str, criteria: Sequence[Criterion]) -> Rubric | None:
        """A version of the prompt's rubric with exactly these criteria (text, points, tags, order)."""
        for r in self.versions(prompt_id):
            if _same(r.criteria, criteria):
                return r
        return None

    def approve(self, rubric_id: str, *, lead: str) -> Rubric:
        """Make this version the prompt's lab rubric (a lead's decision, as an adjudication)."""
        rubric = self.rubric(rubric_id)
        when = now_iso()
        with self.db.atomic():
            self.db.execute(
                "update rubrics set status = ?, approved_by = ?, approved_at = ? where id = ?",
                [APPROVED, lead, when, rubric_id],
            )
        rubric.status, rubric.approved_by, rubric.approved_at = APPROVED, lead, when
        return rubric

    def to_approve(self, *, domain: str | None = None, limit: int = 200) -> Iterator[dict[str, Any]]:
        """The prompts whose rubric waits for a lead ("rubrics to approve"): versions newer than
        the lab rubric, or proposals and no lab rubric at all; the newest version first, at most
        ``limit``, streamed. Each: prompt_id, external_id, text (its first 200 characters),
        domain, versions, authors (sorted), newest (version), newest_at (its time), lab_version
        (None: no lab rubric)."""
        cur = self.db.execute(
            """
            with lab as (
                select prompt_id, version from (
                    select prompt_id, version, row_number() over (
                        partition by prompt_id order by approved_at desc, version desc) as n
                    from rubrics where status = ?) where n = 1),
            agg as (
                select prompt_id, count(*) as versions, max(version) as newest,
                       group_concat(distinct author) as authors
                from rubrics group by prompt_id)
            select a.prompt_id, p.external_id, substr(p.text, 1, 200), p.domain, a.versions, a.authors,
                   a.newest, r.created_at, lab.version
            from agg a
            join prompts p on p.id = a.prompt_id
            join rubrics r on r.prompt_id = a.prompt_id and r.version = a.newest
            left join lab on lab.prompt_id = a.prompt_id
            where (lab.version is null or a.newest > lab.version) and (? is null or p.domain = ?)
            order by r.created_at desc, a.prompt_id
            limit ?
            """,
            [APPROVED, domain, domain, max(0, int(limit))],
        )
        for row in cur:
            yield {
                "prompt_id": row[0], "external_id": row[1] or "", "text": row[2], "domain": row[3],
                "versions": row[4], "authors": sorted({a for a in (row[5] or "").split(",") if a}),
                "newest": row[6], "newest_at": row[7], "lab_version": row[8],
            }

    def prompt_ids_with_rubrics(self) -> list[str]:
        return [r[0] for r in self.db.execute("select distinct prompt_id from rubrics order by prompt_id")]

    # -- grades ----------------------------------------------------------------------------

    def save_grades(self, grades: Iterable[Grade]) -> int:
        """Insert grades (one transaction); each must name a criterion of its rubric."""
        rows = []
        for g in grades:
            if g.grader_kind not in GRADER_KINDS:
                raise RubricError(f"grader_kind: {g.grader_kind!r} is not tutor or model")
            rows.append(
                {
                    "id": g.id, "candidate_id": g.candidate_id, "criterion_id": g.criterion_id,
                    "rubric_id": g.rubric_id, "grader": g.grader, "grader_kind": g.grader_kind,
                    "met": 1 if g.met else 0, "note": g.note or "", "judgment_id": g.judgment_id,
                    "run_id": g.run_id, "created_at": g.created_at,
                }
            )
        if not rows:
            return 0
        crit_ids = sorted({r["criterion_id"] for r in rows})
        owner: dict[str, str] = {}
        for start in range(0, len(crit_ids), 500):
            chunk = crit_ids[start : start + 500]
            owner.update(self.db.execute(
                f"select id, rubric_id from criteria where id in ({','.join('?' * len(chunk))})", chunk))
        for r in rows:
            if owner.get(r["criterion_id"]) != r["rubric_id"]:
                raise RubricError(f"grade {r['id']}: criterion {r['criterion_id']} is not one of rubric {r['rubric_id']}")
        with self.db.atomic():
            self.db["grades"].insert_all(rows, batch_size=500)
        return len(rows)

    def grades_for_judgment(self, judgment_id: str) -> list[Grade]:
        return [
            _grade(r)
            for r in self.db.execute(
                f"select {_GRADE_COLS} from grades where judgment_id = ? order by rowid", [judgment_id]
            )
        ]

    def delete_judgment_grades(self, judgment_id: str) -> int:
        """Take back the grades submitted with a judgment (undo); call inside its transaction."""
        return self.db.execute("delete from grades where judgment_id = ?", [judgment_id]).rowcount

    def set_departs(self, judgment_id: str, departs: bool | None) -> None:
        self.db.execute(
            "update judgments set departs_from_scores = ? where id = ?",
            [None if departs is None else int(departs), judgment_id],
        )

    def departs(self, judgment_id: str) -> bool | None:
        row = self.db.execute("select departs_from_scores from judgments where id = ?", [judgment_id]).fetchone()
        return None if row is None or row[0] is None else bool(row[0])

    def iter_grades(
        self, *, grader_kind: str | None = TUTOR, grader: str | None = None, prompt_id: str | None = None
    ) -> Iterator[Grade]:
        """Grades that count (a re-judged judgment's are left out), streamed in rowid order."""
        where, args = [CURRENT_GRADE], []
        if grader_kind is not None:
            where.append("g.grader_kind = ?")
            args.append(grader_kind)
        if grader is not None:
            where.append("g.grader = ?")
            args.append(grader)
        if prompt_id is not None:
            where.append("g.rubric_id in (select id from rubrics where prompt_id = ?)")
            args.append(prompt_id)
        cols = ", ".join(f"g.{c.strip()}" for c in _GRADE_COLS.split(","))
        cur = self.db.execute(f"select {cols} from grades g where {' and '.join(where)} order by g.rowid", args)
        for r in cur:
            yield _grade(r)

    def has_grades(self, candidate_id: str, rubric_id: str, grader: str) -> bool:
        return self.db.execute(
            "select 1 from grades where candidate_id = ? and rubric_id = ? and grader = ? limit 1",
            [candidate_id, rubric_id, grader],
        ).fetchone() is not None

    def graded_pairs(self, grader: str, *, kind: str = MODEL) -> set[tuple[str, str]]:
        """(candidate id, criterion id) that ``grader`` of ``kind`` has graded already (a tutor
        who shares a model grader's name does not grade for it)."""
        return set(self.db.execute(
            "select candidate_id, criterion_id from grades where grader = ? and grader_kind = ?", [grader, kind]))

    def graders(self, kind: str = MODEL) -> list[str]:
        return [r[0] for r in self.db.execute(
            "select distinct grader from grades where grader_kind = ? order by grader", [kind])]

    # -- model graders ---------------------------------------------------------------------

    def add_grader_run(
        self, *, grader: str, model: str, parameters: dict[str, Any] | None = None, prompt_version: str = ""
    ) -> str:
        run_id = new_id()
        self.db["grader_runs"].insert(
            {
                "id": run_id, "grader": grader, "model": model,
                "parameters": json.dumps(parameters or {}, sort_keys=True), "prompt_version": prompt_version,
                "created_at": now_iso(),
            }
        )
        return run_id

    def grader_run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "select id, grader, model, parameters, prompt_version, created_at from grader_runs where id = ?", [run_id]
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "grader": row[1], "model": row[2], "parameters": json.loads(row[3] or "{}"),
                "prompt_version": row[4], "created_at": row[5]}

    # -- packs -----------------------------------------------------------------------------

    def lab_rubric_rows(self, prompt_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The lab rubrics of these prompts as raw rows {"rubrics": [...], "criteria": [...]}
        for a pack (never a grade: a tutor grades without anchoring)."""
        out: dict[str, list[dict[str, Any]]] = {"rubrics": [], "criteria": []}
        if not self.available():
            return out
        for pid in prompt_ids:
            lab = self.lab_rubric(pid)
            if lab is None:
                continue
            out["rubrics"].append(_raw(self.db, "rubrics", "id = ?", [lab.id])[0])
            out["criteria"].extend(_raw(self.db, "criteria", "rubric_id = ?", [lab.id]))
        return out

    def insert_raw(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        with self.db.atomic():
            for table in RUBRIC_TABLES:
                if rows.get(table):
                    self.db[table].insert_all(rows[table], batch_size=500)


def _raw(db: Database, table: str, where: str, args: list[Any]) -> list[dict[str, Any]]:
    cur = db.execute(f"select * from [{table}] where {where} order by rowid", args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]
