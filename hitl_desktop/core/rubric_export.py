"""Exporting the rubric layouts (``export --format rubrics | rubric-grades``), and rubric scores
for the pairs of graded judgments. Layouts: README "Rubrics" and core/rubric_formats.py.

``rubrics``: one row per prompt with a rubric, its lab rubric (else its newest version), sorted
by ``prompt_id``. ``ideal_completions_data`` is ``{"ideal_completion": …}`` from the newest
correction of a current judgment of the prompt, else what an imported file gave, else null.

``rubric-grades``: one row per graded candidate, grader and rubric version, when every criterion
of that version is graded (a model's ungraded items leave its row out): the tutors' grades
(re-judged versions left out), or with ``grades_from`` those of that grader (a model or a tutor),
sorted by ``prompt_id``, completion, grader and version; ``score`` is HealthBench's. Tutor names
are pseudonymised unless ``keep_tutor_names``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_desktop.core.rubric_store import CURRENT_GRADE
from hitl_desktop.core.rubrics import TUTOR, Criterion, RubricError, score

RUBRIC_FORMATS: tuple[str, ...] = ("rubrics", "rubric-grades")


@dataclass
class RubricExportSummary:
    """As ``export.ExportSummary`` has it (the export command prints these fields)."""

    format: str
    out: Path
    files: list[Path]
    rows: int
    prompts: int
    train_rows: int = 0
    test_rows: int = 0
    judgments: int = 0
    pairs: int = 0
    domains: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    consensus_prompts: int | None = None
    notes: list[str] = field(default_factory=list)

    def dropped_text(self) -> str:
        return ""


def _points(p: float) -> float | int:
    return int(p) if float(p).is_integer() else float(p)


def _prompt_key(ext: str | None, pid: str) -> str:
    return ext or pid


def rubric_rows(store: Any, *, domain: str | None = None) -> Iterator[dict[str, Any]]:
    rs = store.rubrics
    if not rs.available():
        return
    sql = ("select p.id, p.external_id, p.domain, p.rubric_meta from prompts p "
           "where exists (select 1 from rubrics r where r.prompt_id = p.id)")
    args: list[Any] = []
    if domain:
        sql += " and p.domain = ?"
        args.append(domain)
    rows = sorted(store.db.execute(sql, args).fetchall(), key=lambda r: _prompt_key(r[1], r[0]))
    for pid, ext, dom, meta_text in rows:
        rubric = rs.current_rubric(pid)
        meta = json.loads(meta_text) if meta_text else {}
        prompt = store.get_prompt(pid)
        tags = list(meta.get("example_tags", []))
        if not any(t.startswith("domain:") for t in tags):
            tags.insert(0, f"domain:{dom}")
        corr = store.db.execute(
            "select co.text from corrections co join judgments j on j.id = co.judgment_id where j.prompt_id = ? "
            "and not exists (select 1 from judgments s where s.supersedes = j.id) "
            "order by co.created_at desc, co.rowid desc limit 1", [pid]).fetchone()
        ideal = {"ideal_completion": corr[0]} if corr else meta.get("ideal_completions_data")
        items = []
        for c in rubric.criteria:
            item: dict[str, Any] = {"criterion": c.text, "points": _points(c.points), "tags": list(c.tags)}
            if c.author and c.author != rubric.author:
                item["author"] = c.author
            items.append(item)
        out = {
            "prompt_id": _prompt_key(ext, pid),
            "prompt": [m.to_dict() for m in prompt.conversation()],
            "rubrics": items,
            "example_tags": tags,
            "ideal_completions_data": ideal,
            "rubric_version": rubric.version,
            "rubric_author": rubric.author,
            "rubric_status": rubric.status,
            "approved_by": rubric.approved_by,
        }
        if rubric.template_version:
            out["rubric_template"] = rubric.template_version
        yield out


def grade_rows(
    store: Any, *, grades_from: str | None = None, domain: str | None = None, keep_tutor_names: bool = False
) -> Iterator[dict[str, Any]]:
    rs = store.rubrics
    if not rs.available():
        return
    where, args = [CURRENT_GRADE], []
    if grades_from is None:
        where.append("g.grader_kind = ?")
        args.append(TUTOR)
    else:
        where.append("g.grader = ?")
        args.append(grades_from)
    if domain:
        where.append("p.domain = ?")
        args.append(domain)
    cur = store.db.execute(
        "select coalesce(p.external_id, p.id), c.id, c.text, c.model, g.grader, g.grader_kind, r.id, r.version, "
        "k.text, k.points, k.tags, g.met, g.note from grades g "
        "join candidates c on c.id = g.candidate_id join rubrics r on r.id = g.rubric_id "
        "join prompts p on p.id = c.prompt_id join criteria k on k.id = g.criterion_id "
        f"where {' and '.join(where)} "
        "order by coalesce(p.external_id, p.id), c.text, c.idx, c.id, g.grader, r.version, k.position", args)
    pseudonyms: dict[str, str] = {}
    already = store.pseudonymised_tutors()
    sizes: dict[str, int] = {}  # rubric id -> criteria: a row is written only when every one is graded

    def complete(group: list[tuple]) -> bool:
        rid = group[0][6]
        if rid not in sizes:
            sizes[rid] = store.db.execute("select count(*) from criteria where rubric_id = ?", [rid]).fetchone()[0]
        return len(group) == sizes[rid]

    group: list[tuple] = []
    per_candidate: list[dict[str, Any]] = []  # sorted by the grader's name as written

    def flush() -> Iterator[dict[str, Any]]:
        per_candidate.sort(key=lambda r: (r["grader"], r["grader_kind"], r["rubric_version"]))
        yield from per_candidate
        per_candidate.clear()

    for row in cur:  # one output row per (candidate, grader, rubric version): consecutive rows
        if group and (group[-1][1], group[-1][4], group[-1][6]) != (row[1], row[4], row[6]):
            if complete(group):
                per_candidate.append(_grade_row(store, group, pseudonyms, already, keep_tutor_names))
            if group[-1][1] != row[1]:
                yield from flush()
            group = []
        group.append(row)
    if group and complete(group):
        per_candidate.append(_grade_row(store, group, pseudonyms, already, keep_tutor_names))
    yield from flush()


def _grade_row(store: Any, group: list[tuple], pseudonyms: dict, already: set, keep: bool) -> dict[str, Any]:
    first = group[0]
    grader, kind = first[4], first[5]
    if kind == TUTOR and not keep:
        if grader not in pseudonyms:
            pseudonyms[grader] = store.pseudonym(grader)
        name = pseudonyms[grader]
    else:
        name = grader
    crits = [Criterion(text=r[8], points=float(r[9]), tags=json.loads(r[10] or "[]"), id=str(i))
             for i, r in enumerate(group)]
    met = {str(i): bool(r[11]) for i, r in enumerate(group)}
    row = {
        "prompt_id": first[0],
        "completion": first[2],
        "model": first[3] or "",
        "grader": name,
        "grader_kind": kind,
        "rubric_version": first[7],
        "grades": [{"criterion": r[8], "criteria_met": bool(r[11]), "explanation": r[12] or ""} for r in group],
        "score": score(crits, met),
    }
    if kind == TUTOR:
        row["grader_pseudonymised"] = (not keep) or grader in already
    return row


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Rows to ``path`` through a temporary file beside it (a failed export leaves no half file)."""
    tmp = path.with_name(f".{path.name}.partial")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def export_rubric_format(
    store: Any,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    domain: str | None = None,
    grades_from: str | None = None,
    keep_tutor_names: bool = False,
    **_ignored: Any,
) -> RubricExportSummary:
    """Write ``rubrics`` or ``rubric-grades`` rows to a .jsonl file; :class:`RubricError` when
    it cannot (export.py turns it into its ExportError)."""
    path = Path(out).expanduser()
    if path.suffix.lower() != ".jsonl":
        raise RubricError(f"{path}: the {fmt} format is written as a .jsonl file")
    if fmt == "rubrics":
        rows: Iterable[dict[str, Any]] = rubric_rows(store, domain=domain)
    elif fmt == "rubric-grades":
        if grades_from is not None and grades_from not in set(store.rubrics.graders("model")) | set(
                store.rubrics.graders(TUTOR)):
            raise RubricError(f"--grades-from {grades_from}: no grades by that grader here")
        rows = grade_rows(store, grades_from=grades_from, domain=domain, keep_tutor_names=keep_tutor_names)
    else:
        raise RubricError(f"unknown format {fmt!r}; formats: {', '.join(RUBRIC_FORMATS)}")
    prompts: set[str] = set()

    def counted(it: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for r in it:
            prompts.add(r["prompt_id"])
            yield r

    try:
        n = write_jsonl(path, counted(rows))
    except OSError as e:
        raise RubricError(f"{path}: cannot write ({e.strerror or e})") from e
    return RubricExportSummary(format=fmt, out=path, files=[path], rows=n, train_rows=n, prompts=len(prompts))


def attach_rubric_scores(store: Any, items: Iterable[Any]) -> None:
    """Give each graded judgment's item its ``rubric_scores`` (candidate id -> score, from the
    grades submitted with it), so that its pairs' margin is score(chosen) - score(rejected)."""
    if store is None or not store.rubrics.available():
        return
    wanted = {it.judgment.id: it for it in items}
    if not wanted:
        return
    ids = list(wanted)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = store.db.execute(
            "select g.judgment_id, g.candidate_id, k.id, k.points, g.met, g.rubric_id from grades g "
            f"join criteria k on k.id = g.criterion_id where g.judgment_id in ({','.join('?' * len(chunk))})",
            chunk).fetchall()
        earned: dict[str, dict[str, float]] = {}
        rubric_of: dict[str, str] = {}
        for jid, cid, _kid, points, met, rid in rows:
            earned.setdefault(jid, {}).setdefault(cid, 0.0)
            if met:
                earned[jid][cid] += points
            rubric_of[jid] = rid
        for jid, by_cand in earned.items():
            total = store.db.execute(
                "select coalesce(sum(points), 0) from criteria where rubric_id = ? and points > 0",
                [rubric_of[jid]]).fetchone()[0]
            if total > 0:
                wanted[jid].rubric_scores = {cid: e / total for cid, e in by_cand.items()}
