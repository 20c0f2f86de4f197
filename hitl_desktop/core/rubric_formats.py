"""Importing the two rubric layouts (README "Rubrics"): ``rubrics`` (HealthBench's) and ``rubric-grades``.

Both are JSONL, one object a line. A file is read and checked whole before anything is
written; a bad line refuses the file (``importing.ImportFileError``, by line and field) and the
database is unchanged. Then everything is written in one transaction.

``rubrics``: one row per prompt: ``prompt_id`` (the prompt's external id), ``prompt`` (messages,
the last one the user's turn), ``rubrics`` ``[{criterion, points, tags}]``, optional
``example_tags`` (``domain:…`` names the domain), ``ideal_completions_data``, and our metadata
``rubric_version``, ``rubric_author``, ``rubric_status``, ``approved_by``, ``rubric_template``
(the domain template it started from, when it did; an item may carry its own ``author``). A HealthBench file imports as it is: its rubrics as approved lab rubrics by
``imported``. A prompt already here keeps its text; a rubric equal to one of its versions adds none.

``rubric-grades``: one row per graded completion and grader: ``prompt_id``, ``completion``,
``grader``, ``grader_kind`` (tutor | model), ``grades`` ``[{criterion, criteria_met,
explanation}]``; optional ``model``, ``rubric_version`` (default: the prompt's current rubric),
``score`` (recomputed, never trusted) and ``grader_pseudonymised``. The completion is the
prompt's candidate of that text (added when new); each grade names a criterion of the rubric by
its text, and a row grades every criterion. A grader's grades already here are skipped. A
tutor's grades of two or more candidates of a prompt make that tutor's judgment of it, ranked
by score, unless the tutor judged the prompt already.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_desktop.core.importing.refusals import ImportSummary
from hitl_desktop.core.rubric_limits import (
    MAX_CRITERIA,
    MAX_CRITERION,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_MESSAGES,
    MAX_NAME,
    MAX_RATIONALE,
    MAX_TAGS,
    MAX_TEXT,
    LimitError,
    check_count,
    check_depth,
    check_int,
    check_length,
    check_number,
    check_strings,
    check_version,
    one_line,
    shown,
)
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
    check_points,
    ranks_from_scores,
    score,
)

RUBRICS, GRADES = "rubrics", "rubric-grades"
#: the fields each layout reads; others are counted in ``fields_not_kept`` (never silent)
RUBRIC_FIELDS = frozenset({"prompt_id", "prompt", "rubrics", "example_tags", "ideal_completions_data",
                           "rubric_version", "rubric_author", "rubric_status", "approved_by",
                           "rubric_template"})
GRADE_FIELDS = frozenset({"prompt_id", "completion", "model", "grader", "grader_kind", "rubric_version", "grades",
                          "score", "grader_pseudonymised"})
RUBRIC_LAYOUTS: tuple[str, ...] = (RUBRICS, GRADES)
IMPORTED = "imported"
ROLES = ("system", "user", "assistant")


#: ids of the judgments made from a tutor's imported grades: the same file gives the same ids
RUBRIC_GRADES_NAMESPACE = uuid.UUID("8a3c2d51-6f0e-4b7a-9d12-5e4f3a2b1c0d")


class RubricFileError(RubricError):
    """A rubric file refused whole; ``errors``: (line, field, message) of each bad line.
    core/importing.py turns it into its ``ImportFileError``."""

    def __init__(self, path: Path, errors: list[tuple[int, str, str]]) -> None:
        self.path = str(path)
        self.errors = [(line, one_line(fld), one_line(msg)) for line, fld, msg in errors]
        line, fld, msg = self.errors[0]
        super().__init__(one_line(f"{path}:{line}: {fld + ': ' if fld else ''}{msg}; nothing was imported"))


class _Bad(LimitError):
    """A bad field of one line (``field``, ``message``); limits raise its base class."""


def detect_rubric_layout(path: str | os.PathLike[str]) -> str | None:
    """``rubrics`` or ``rubric-grades`` when the first record of a JSONL file is one; else None."""
    p = Path(path)
    if p.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return None
    try:
        with p.open("rb") as f:
            while raw := f.readline(MAX_LINE_BYTES + 1):
                if raw.strip():
                    obj = json.loads(raw)
                    break
            else:
                return None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("rubrics"), list) and "prompt" in obj:
        return RUBRICS
    if isinstance(obj.get("grades"), list) and "completion" in obj:
        return GRADES
    return None


@dataclass
class RubricImport(ImportSummary):
    """What a rubric file added: the import command's summary (``importing.ImportSummary``,
    whose counts it shares) with the rubric layouts' own."""

    rubrics: int = 0
    criteria: int = 0
    grades: int = 0
    grades_skipped: int = 0  # rows a grader had graded already


def _str(obj: dict[str, Any], key: str, *, required: bool = True, empty: bool = False,
         limit: int = MAX_NAME) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _Bad(key, "is missing or not a string" if not isinstance(value, str) else "is empty")
    return check_length(value, key, limit)


def _read(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str, str]]]:
    rows, errors = [], []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RubricFileError(path, [(0, "", f"cannot read ({e.strerror or e})")]) from e
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            errors.append((n, "", f"the line is {len(raw):,} bytes long, above the limit of 16 MB"))
            continue
        try:
            obj = json.loads(raw)
        except RecursionError:
            errors.append((n, "", f"is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"))
            continue
        except ValueError as e:
            errors.append((n, "", f"not JSON ({shown(str(e), 200)[1:-1]})"))
            continue
        if not isinstance(obj, dict):
            errors.append((n, "", "a record must be a JSON object"))
            continue
        try:
            check_depth(obj)
            check_strings(obj)
        except LimitError as e:
            errors.append((n, e.field, e.message))
            continue
        rows.append((n, obj))
    return rows, errors


def _refuse(path: Path, errors: list[tuple[int, str, str]]) -> None:
    if errors:
        raise RubricFileError(path, errors)


def import_rubric_file(
    store: Any, path: str | os.PathLike[str], *, layout: str | None = None, default_domain: str | None = None
) -> RubricImport:
    """Import a ``rubrics`` or ``rubric-grades`` file: all of it, or nothing."""
    p = Path(path)
    layout = layout or detect_rubric_layout(p)
    if layout not in RUBRIC_LAYOUTS:
        raise RubricError(f"{p}: not a rubrics or rubric-grades file")
    rows, errors = _read(p)
    if layout == RUBRICS:
        return _import_rubrics(store, p, rows, errors, default_domain)
    return _import_grades(store, p, rows, errors)


# -- rubrics ---------------------------------------------------------------------------------


@dataclass
class _RubricRow:
    line: int
    external_id: str
    messages: list[dict[str, str]]
    criteria: list[Criterion]
    domain: str
    meta: dict[str, Any]
    version: int | None
    author: str
    status: str
    approved_by: str | None
    template_version: str = ""


def _criteria(items: Any, author: str) -> list[Criterion]:
    if not isinstance(items, list) or not items:
        raise _Bad("rubrics", "must be a non-empty list of {criterion, points, tags}")
    check_count(items, "rubrics", MAX_CRITERIA, "criteria")
    out = []
    for i, it in enumerate(items):
        where = f"rubrics[{i}]"
        if not isinstance(it, dict):
            raise _Bad(where, "must be an object {criterion, points, tags}")
        text = it.get("criterion")
        if not isinstance(text, str) or not text.strip():
            raise _Bad(f"{where}.criterion", "is empty" if isinstance(text, str) else "is missing or not a string")
        check_length(text, f"{where}.criterion", MAX_CRITERION)
        try:
            points = check_points(it.get("points"), where="points")
        except RubricError as e:
            raise _Bad(f"{where}.points", str(e).removeprefix("points: ")) from None
        tags = it.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _Bad(f"{where}.tags", "must be a list of strings")
        check_count(tags, f"{where}.tags", MAX_TAGS, "tags")
        for j, t in enumerate(tags):
            check_length(t, f"{where}.tags[{j}]", MAX_NAME)
        who = it.get("author", author)
        if not isinstance(who, str):
            raise _Bad(f"{where}.author", "must be a string")
        check_length(who, f"{where}.author", MAX_NAME)
        out.append(Criterion(text=text.strip(), points=points, tags=list(tags), author=who))
    try:
        check_criteria(out)
    except RubricError as e:
        raise _Bad("rubrics", str(e)) from None
    return out


def _parse_rubric_row(line: int, obj: dict[str, Any], default_domain: str | None) -> _RubricRow:
    ext = _str(obj, "prompt_id")
    msgs = obj.get("prompt")
    if isinstance(msgs, str):
        msgs = [{"role": "user", "content": check_length(msgs, "prompt", MAX_TEXT)}]
    if not isinstance(msgs, list) or not msgs:
        raise _Bad("prompt", "must be a non-empty list of messages {role, content}")
    check_count(msgs, "prompt", MAX_MESSAGES + 1, "messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise _Bad(f"prompt[{i}]", f"must be a message {{role ({', '.join(ROLES)}), content (a string)}}")
        check_length(m["content"], f"prompt[{i}].content", MAX_TEXT)
    if msgs[-1]["role"] != "user" or not msgs[-1]["content"].strip():
        raise _Bad(f"prompt[{len(msgs) - 1}]", "the last message must be the user's, and not empty")
    tags = obj.get("example_tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Bad("example_tags", "must be a list of strings")
    check_count(tags, "example_tags", MAX_TAGS, "tags")
    for j, t in enumerate(tags):
        check_length(t, f"example_tags[{j}]", MAX_NAME)
    domain = next((t[len("domain:"):] for t in tags if t.startswith("domain:") and t[7:].strip()), None)
    ideal = obj.get("ideal_completions_data")
    if ideal is not None and not isinstance(ideal, dict):
        raise _Bad("ideal_completions_data", "must be an object or null")
    if ideal is not None:
        try:
            ideal_text = json.dumps(ideal, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise _Bad("ideal_completions_data", "holds a number that is not finite") from None
        check_length(ideal_text, "ideal_completions_data", MAX_TEXT)
    version = obj.get("rubric_version")
    if version is not None:
        check_version(version, "rubric_version")
    author = _str(obj, "rubric_author", required=False) or IMPORTED
    status = obj.get("rubric_status", APPROVED)
    if status not in (PROPOSED, APPROVED):
        raise _Bad("rubric_status", "must be proposed or approved")
    approved_by = _str(obj, "approved_by", required=False)
    template_version = _str(obj, "rubric_template", required=False, empty=True) or ""
    meta: dict[str, Any] = {}
    if "example_tags" in obj:
        meta["example_tags"] = tags
    if ideal is not None:
        meta["ideal_completions_data"] = ideal
    return _RubricRow(
        line=line, external_id=ext or "", messages=msgs, criteria=_criteria(obj.get("rubrics"), author),
        domain=(domain or default_domain or "general").strip(), meta=meta, version=version, author=author,
        status=status, approved_by=(approved_by or author) if status == APPROVED else None,
        template_version=template_version,
    )


def _import_rubrics(store: Any, p: Path, rows: list, errors: list, default_domain: str | None) -> RubricImport:
    from hitl_desktop.core.types import Message, Prompt

    parsed: list[_RubricRow] = []
    seen: dict[str, int] = {}
    for line, obj in rows:
        try:
            row = _parse_rubric_row(line, obj, default_domain)
            if row.external_id in seen:
                raise _Bad("prompt_id", f"the same prompt as line {seen[row.external_id]}")
            seen[row.external_id] = line
            parsed.append(row)
        except LimitError as e:
            errors.append((line, e.field, e.message))
    _refuse(p, errors)
    summary = RubricImport(path=str(p), layout=RUBRICS, records=len(parsed))
    _not_kept(summary, rows, RUBRIC_FIELDS)
    rs = store.rubrics
    with store.transaction():
        existing = store.prompts_by_external_id([r.external_id for r in parsed])
        for row in parsed:
            prompt = existing.get(row.external_id)
            if prompt is None:
                prompt = Prompt(
                    text=row.messages[-1]["content"], domain=row.domain, external_id=row.external_id,
                    messages=[Message(m["role"], m["content"]) for m in row.messages[:-1]], source=p.name,
                )
                store.add_prompt(prompt)
                summary.prompts += 1
                summary.domains[row.domain] = summary.domains.get(row.domain, 0) + 1
            else:
                summary.prompts_reused += 1
            if row.meta:
                store.db.execute("update prompts set rubric_meta = ? where id = ?",
                                 [json.dumps(row.meta, ensure_ascii=False, sort_keys=True), prompt.id])
            if rs.same_version(prompt.id, row.criteria) is not None:
                continue
            rs.save_rubric(prompt.id, row.criteria, author=row.author, status=row.status,
                           approved_by=row.approved_by, version=row.version,
                           template_version=row.template_version)
            summary.rubrics += 1
            summary.criteria += len(row.criteria)
    return summary


# -- grades ----------------------------------------------------------------------------------


@dataclass
class _GradeRow:
    line: int
    prompt_id: str
    rubric: Rubric
    completion: str
    model: str
    grader: str
    kind: str
    met: dict[str, bool]  # criterion id -> met
    notes: dict[str, str]
    pseudonymised: bool


def _parse_grade_row(store: Any, obj: dict[str, Any], prompts: dict[str, Any], rubrics: dict) -> _GradeRow:
    ext = _str(obj, "prompt_id")
    prompt = prompts.get(ext)
    if prompt is None:
        raise _Bad("prompt_id", f"{shown(ext)}: no such prompt here (import its rubric first)")
    completion = _str(obj, "completion", empty=True, limit=MAX_TEXT)
    model = _str(obj, "model", required=False, empty=True) or ""
    grader = _str(obj, "grader")
    kind = obj.get("grader_kind")
    if kind not in GRADER_KINDS:
        raise _Bad("grader_kind", "must be tutor or model")
    version = obj.get("rubric_version")
    if version is not None:
        check_int(version, "rubric_version")
    key = (prompt.id, version)
    if key not in rubrics:
        if version is None:
            rubrics[key] = store.rubrics.current_rubric(prompt.id)
        else:
            rubrics[key] = next((r for r in store.rubrics.versions(prompt.id) if r.version == version), None)
    rubric = rubrics[key]
    if rubric is None:
        raise _Bad("rubric_version" if version is not None else "prompt_id",
                   f"the prompt has no rubric version {version}" if version is not None else "the prompt has no rubric")
    score_given = obj.get("score")
    if score_given is not None:
        try:
            check_number(score_given, "score")
        except LimitError as e:
            raise _Bad("score", f"{e.message} (it is recomputed)") from None
    pseud = obj.get("grader_pseudonymised", False)
    if not isinstance(pseud, bool):
        raise _Bad("grader_pseudonymised", "must be true or false")
    grades = obj.get("grades")
    if not isinstance(grades, list) or not grades:
        raise _Bad("grades", "must be a non-empty list of {criterion, criteria_met, explanation}")
    check_count(grades, "grades", MAX_CRITERIA, "grades")
    by_text = {c.text: c for c in rubric.criteria}
    met: dict[str, bool] = {}
    notes: dict[str, str] = {}
    for i, g in enumerate(grades):
        where = f"grades[{i}]"
        if not isinstance(g, dict):
            raise _Bad(where, "must be an object {criterion, criteria_met, explanation}")
        text = g.get("criterion")
        if not isinstance(text, str):
            raise _Bad(f"{where}.criterion", "is missing or not a string")
        crit = by_text.get(text.strip())
        if crit is None:
            raise _Bad(f"{where}.criterion", f"{shown(text, 60)} is not a criterion of rubric version {rubric.version}")
        if crit.id in met:
            raise _Bad(f"{where}.criterion", f"{shown(text, 60)} is graded twice")
        if not isinstance(g.get("criteria_met"), bool):
            raise _Bad(f"{where}.criteria_met", "must be true or false")
        note = g.get("explanation", "")
        if note is None:
            note = ""
        if not isinstance(note, str):
            raise _Bad(f"{where}.explanation", "must be a string")
        check_length(note, f"{where}.explanation", MAX_RATIONALE)
        met[crit.id] = g["criteria_met"]
        notes[crit.id] = note
    missing = [i for i, c in enumerate(rubric.criteria, 1) if c.id not in met]
    if missing:
        c = rubric.criteria[missing[0] - 1]
        raise _Bad("grades", f"leaves out criterion {missing[0]} of rubric version {rubric.version}: {c.text[:60]!r}")
    return _GradeRow(0, prompt.id, rubric, completion or "", model, grader or "", kind, met, notes, pseud)


def _import_grades(store: Any, p: Path, rows: list, errors: list) -> RubricImport:
    exts = sorted({o["prompt_id"] for _, o in rows if isinstance(o.get("prompt_id"), str)})
    prompts = store.prompts_by_external_id(exts)
    for ext in exts:  # a prompt exported without an external id goes by our id
        if ext not in prompts and store.db.execute("select 1 from prompts where id = ?", [ext]).fetchone():
            prompts[ext] = store.get_prompt(ext)
    parsed: list[_GradeRow] = []
    rubrics: dict[tuple[str, int | None], Rubric | None] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for line, obj in rows:
        try:
            row = _parse_grade_row(store, obj, prompts, rubrics)
            key = (row.prompt_id, row.completion, row.grader)
            if key in seen:
                raise _Bad("grader", f"grades the same completion as line {seen[key]}")
            seen[key] = line
            row.line = line
            parsed.append(row)
        except LimitError as e:
            errors.append((line, e.field, e.message))
    _refuse(p, errors)
    summary = _write_grades(store, p, parsed)
    _not_kept(summary, rows, GRADE_FIELDS)
    return summary


def _not_kept(summary: RubricImport, rows: list[tuple[int, dict[str, Any]]], known: frozenset[str]) -> None:
    for _, obj in rows:
        for key in obj:
            if key not in known:
                summary.fields_not_kept[key] = summary.fields_not_kept.get(key, 0) + 1


def _judgment_id(prompt_key: str, tutor: str) -> str:
    return str(uuid.uuid5(RUBRIC_GRADES_NAMESPACE, f"{prompt_key}\x1f{tutor}"))


def _write_grades(store: Any, p: Path, parsed: list[_GradeRow]) -> RubricImport:
    from hitl_desktop.core.types import Candidate, Judgment

    summary = RubricImport(path=str(p), layout=GRADES, records=len(parsed))
    rs = store.rubrics
    with store.transaction():
        cands: dict[str, dict[str, str]] = {}
        next_idx: dict[str, int] = {}
        runs: dict[str, str] = {}
        by_tutor: dict[tuple[str, str], list[tuple[str, float, list[Grade]]]] = defaultdict(list)
        for row in parsed:
            if row.prompt_id not in cands:
                have = store.candidates_for(row.prompt_id)
                cands[row.prompt_id] = {}
                for c in have:
                    cands[row.prompt_id].setdefault(c.text, c.id)
                next_idx[row.prompt_id] = 1 + max((c.index for c in have), default=-1)
            cid = cands[row.prompt_id].get(row.completion)
            if cid is None:
                cand = Candidate(prompt_id=row.prompt_id, text=row.completion, model=row.model,
                                 index=next_idx[row.prompt_id])
                next_idx[row.prompt_id] += 1
                store.add_candidates([cand], origin="imported")
                cid = cands[row.prompt_id][row.completion] = cand.id
                summary.candidates += 1
            if rs.has_grades(cid, row.rubric.id, row.grader):
                summary.grades_skipped += 1
                continue
            run = None
            if row.kind == MODEL:
                run = runs.get(row.grader)
                if run is None:
                    run = runs[row.grader] = rs.add_grader_run(
                        grader=row.grader, model=row.grader, parameters={"imported_from": p.name})
            grades = [
                Grade(candidate_id=cid, criterion_id=c.id, rubric_id=row.rubric.id, met=row.met[c.id],
                      grader=row.grader, grader_kind=row.kind, note=row.notes[c.id], run_id=run)
                for c in row.rubric.criteria
            ]
            if row.kind == TUTOR:
                tutor = store.ensure_tutor(row.grader)
                if row.pseudonymised:
                    store.db.execute("update tutors set pseudonymised = 1 where id = ?", [tutor.id])
                by_tutor[(row.prompt_id, tutor.id)].append((cid, score(row.rubric.criteria, row.met), grades))
            else:
                summary.grades += rs.save_grades(grades)
        for (pid, tid), graded in by_tutor.items():
            judgment = None
            judged = store.db.execute(
                "select 1 from judgments j where j.prompt_id = ? and j.tutor_id = ? and not exists "
                "(select 1 from judgments s where s.supersedes = j.id)", [pid, tid]).fetchone()
            if len(graded) >= 2 and not judged:
                ranks = ranks_from_scores([s for _, s, _ in graded])
                prompt = store.get_prompt(pid)
                name = store.db.execute("select name from tutors where id = ?", [tid]).fetchone()[0]
                judgment = Judgment(
                    prompt_id=pid, tutor_id=tid, ranks={c: r for (c, _, _), r in zip(graded, ranks, strict=True)},
                    display_order=[c for c, _, _ in graded],
                    id=_judgment_id(prompt.external_id or prompt.id, name),
                )
                store.save_judgment(judgment)
                rs.set_departs(judgment.id, False)
                summary.judgments += 1
            for _, _, grades in graded:
                for g in grades:
                    g.judgment_id = judgment.id if judgment else None
                summary.grades += rs.save_grades(grades)
    return summary
