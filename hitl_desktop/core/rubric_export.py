"""Exporting the rubric layouts (``export --format rubrics | rubric-grades``), and rubric scores
for the pairs of graded judgments. Layouts: README "Rubrics" and core/rubric_formats.py.

``rubrics``: one row per prompt with a rubric, its lab rubric (else its newest version), sorted
by ``prompt_id``. ``ideal_completions_data`` is ``{"ideal_completion": …}`` from the newest
correction of a current judgment of the prompt, else what an imported file gave, else null.

``rubric-grades``: one row per graded candidate, grader and rubric version, when every criterion
of that version is graded (a model's ungraded items leave its row out): the tutors' grades
(re-judged versions left out), or with ``grades_from`` those of that grader (a model or a tutor),
sorted by ``prompt_id``, completion, grader and version; ``score`` is HealthBench's. Tutor names
are pseudonymised unless ``keep_tutor_names``; ``tutor`` keeps only that tutor's grades.

Output by the suffix of ``out``, as the other formats have it: ``.jsonl``; ``.parquet`` (written
in batches of ``BATCH`` rows through one ``ParquetWriter``, never all rows in memory); anything
else a folder written with ``datasets.save_to_disk`` (from an Arrow file written in the same
batches, memory-mapped) and a ``README.md`` card. Parquet and the folder share the schema of
:func:`rubric_arrow_schema`; ``ideal_completions_data`` (an object of any keys) is its JSON text
there, and :func:`rows_from_arrow` gives back the JSONL rows. Every output is written under a
temporary name beside it and renamed in place, so a failed export leaves no half file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

from hitl_desktop.core.files import fsync_dir, fsync_file, swap_in_folder, write_row_groups
from hitl_desktop.core.rubric_store import CURRENT_GRADE
from hitl_desktop.core.rubrics import TUTOR, Criterion, RubricError, score

RUBRIC_FORMATS: tuple[str, ...] = ("rubrics", "rubric-grades")
#: rows per batch: an Arrow record batch, a piece of a Parquet row group (bounded memory however many rows)
BATCH = 2_000
#: suffixes that are neither .jsonl nor .parquet nor a folder (as core/export.py refuses them)
REFUSED_SUFFIXES = frozenset({".json", ".csv", ".tsv", ".txt", ".arrow", ".gz", ".zip", ".xz", ".bz2"})
#: files that mark a folder as a dataset export (one of them: it may be replaced)
DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


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
    store: Any, *, grades_from: str | None = None, domain: str | None = None, keep_tutor_names: bool = False,
    tutor: str | None = None,
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
    if tutor is not None:
        where.append("g.grader = ? and g.grader_kind = ?")
        args.extend([tutor, TUTOR])
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
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


# -- Parquet and datasets folders ------------------------------------------------------------


def rubric_arrow_schema(fmt: str):  # noqa: ANN201 (pyarrow is imported only when writing)
    """The pyarrow schema of a rubric layout's rows (Parquet and the datasets folder)."""
    import pyarrow as pa

    text, texts = pa.string(), pa.list_(pa.string())
    if fmt == "rubrics":
        return pa.schema([
            ("prompt_id", text),
            ("prompt", pa.list_(pa.struct([("role", text), ("content", text)]))),
            ("rubrics", pa.list_(pa.struct([("criterion", text), ("points", pa.float64()), ("tags", texts),
                                            ("author", text)]))),
            ("example_tags", texts),
            ("ideal_completions_data", text),  # JSON text: an object of any keys
            ("rubric_version", pa.int64()),
            ("rubric_author", text),
            ("rubric_status", text),
            ("approved_by", text),
            ("rubric_template", text),
        ])
    if fmt == "rubric-grades":
        return pa.schema([
            ("prompt_id", text),
            ("completion", text),
            ("model", text),
            ("grader", text),
            ("grader_kind", text),
            ("rubric_version", pa.int64()),
            ("grades", pa.list_(pa.struct([("criterion", text), ("criteria_met", pa.bool_()),
                                           ("explanation", text)]))),
            ("score", pa.float64()),
            ("grader_pseudonymised", pa.bool_()),
        ])
    raise RubricError(f"unknown format {fmt!r}; formats: {', '.join(RUBRIC_FORMATS)}")


def _to_arrow_row(fmt: str, row: dict[str, Any]) -> dict[str, Any]:
    if fmt != "rubrics":
        return row
    ideal = row.get("ideal_completions_data")
    return {**row, "ideal_completions_data": None if ideal is None else json.dumps(ideal, ensure_ascii=False)}


def rows_from_arrow(fmt: str, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The JSONL rows back from rows read out of Parquet or a datasets folder (``to_pylist``):
    the columns a JSONL row leaves out when empty dropped again, whole points as integers,
    ``ideal_completions_data`` decoded."""
    for r in rows:
        r = dict(r)
        if fmt == "rubrics":
            ideal = r.get("ideal_completions_data")
            r["ideal_completions_data"] = None if ideal is None else json.loads(ideal)
            if r.get("rubric_template") is None:
                r.pop("rubric_template", None)
            items = []
            for it in r.get("rubrics") or []:
                it = dict(it)
                it["points"] = _points(it["points"])
                if it.get("author") is None:
                    it.pop("author", None)
                items.append(it)
            r["rubrics"] = items
        elif r.get("grader_pseudonymised") is None:
            r.pop("grader_pseudonymised", None)
        yield r


def _batches(fmt: str, rows: Iterable[dict[str, Any]], schema: Any) -> Iterator[Any]:
    import pyarrow as pa

    it = iter(rows)
    while batch := list(islice(it, BATCH)):
        yield pa.RecordBatch.from_pylist([_to_arrow_row(fmt, r) for r in batch], schema=schema)


def write_parquet(path: Path, fmt: str, rows: Iterable[dict[str, Any]]) -> int:
    """Rows to a Parquet file, batches of ``BATCH`` gathered into row groups of about
    ``files.ROW_GROUP_BYTES`` (through a temporary file beside it)."""
    import pyarrow.parquet as pq

    schema = rubric_arrow_schema(fmt)
    tmp = path.with_name(f".{path.name}.partial")
    n = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            n = write_row_groups(writer, _batches(fmt, rows, schema))
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


_CARD_USE = {
    "rubrics": "expert rubrics in HealthBench's layout: one row per prompt, its criteria with points and tags",
    "rubric-grades": "rubric grades: one row per graded completion and grader, met / not met per criterion, "
                     "and HealthBench's score",
}


def rubric_card(fmt: str, rows: int, prompts: int, *, pseudonymised: bool, filters: dict[str, Any]) -> str:
    """The README.md of a rubric datasets folder."""
    used = ", ".join(f"{k}={v}" for k, v in filters.items() if v not in (None, "")) or "none"
    cols = "\n".join(f"| `{f.name}` | {f.type} |" for f in rubric_arrow_schema(fmt))
    return f"""---
license: other
license_name: hitl-desktop-export
tags:
  - rubrics
  - human-feedback
  - hitl-desktop
annotations_creators:
  - expert-generated
pretty_name: {json.dumps(f"hitl-desktop {fmt} export")}
format: {json.dumps(fmt)}
---

# hitl-desktop export ({fmt})

{_CARD_USE[fmt]}. Specialists wrote the criteria and graded the answers in hitl-desktop.

- format: `{fmt}`
- rows: {rows}, prompts: {prompts}
- filters: {used}
- tutors: {"pseudonymised (stable per database)" if pseudonymised else "real names (exported with --keep-tutor-names)"}
- exported: {datetime.now(timezone.utc).isoformat(timespec="seconds")}

Load with `datasets.load_from_disk(path)`. `ideal_completions_data` is JSON text here (an
object of any keys in the `.jsonl` layout). Score = (points of the criteria met) / (sum of the
positive points), HealthBench's; it can be negative.

## Columns

| column | type |
| --- | --- |
{cols}
"""


def write_folder(path: Path, fmt: str, rows: Iterable[dict[str, Any]], card: Callable[[int], str]) -> int:
    """Rows to a datasets folder (``save_to_disk``) and its card (``card(rows)``), built under a
    temporary name beside ``path`` and swapped in: a folder that is not a dataset export is
    never replaced. The rows go to an Arrow file in batches first (memory-mapped, not loaded)."""
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo, Features
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise RubricError(f"{path}: is a file; give a folder path, or a .jsonl or .parquet file")
        entries = {p.name for p in path.iterdir()}
        if entries and not entries & set(DATASET_MARKERS):
            raise RubricError(f"{path}: is a folder that is not a dataset export; refusing to replace it")
    schema = rubric_arrow_schema(fmt)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        arrow = work / "rows.arrow"
        n = 0
        with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in _batches(fmt, rows, schema):
                writer.write_batch(batch)
                n += batch.num_rows
        out = work / "dataset"
        ds = Dataset.from_file(str(arrow), info=DatasetInfo(features=Features.from_arrow_schema(schema)))
        ds.save_to_disk(str(out), num_shards=None if len(ds) else 1)
        del ds
        (out / "README.md").write_text(card(n), encoding="utf-8")
        for dirpath, _dirs, files in os.walk(out):
            for name in files:
                fsync_file(os.path.join(dirpath, name))
        swap_in_folder(out, path)
    finally:
        if not was_disabled:
            enable_progress_bars()
        shutil.rmtree(work, ignore_errors=True)
    return n


def _output_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".parquet"):
        return suffix[1:]
    if suffix in REFUSED_SUFFIXES:
        raise RubricError(f"{path}: cannot write {suffix} files; use a .jsonl or .parquet file or a folder path")
    return "folder"


def export_rubric_format(
    store: Any,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    domain: str | None = None,
    tutor: str | None = None,
    grades_from: str | None = None,
    keep_tutor_names: bool = False,
    **_ignored: Any,
) -> RubricExportSummary:
    """Write ``rubrics`` or ``rubric-grades`` rows to a .jsonl or .parquet file or a datasets
    folder; :class:`RubricError` when it cannot (export.py turns it into its ExportError).
    ``tutor``: rubric-grades only, that tutor's grades (by name)."""
    path = Path(out).expanduser()
    kind = _output_kind(path)
    if fmt == "rubrics":
        if tutor is not None:
            raise RubricError("--tutor: the rubrics format holds each prompt's rubric, not a tutor's grades; "
                              "use it with rubric-grades")
        rows: Iterable[dict[str, Any]] = rubric_rows(store, domain=domain)
    elif fmt == "rubric-grades":
        graders = set(store.rubrics.graders("model")) | set(store.rubrics.graders(TUTOR))
        if grades_from is not None and grades_from not in graders:
            raise RubricError(f"--grades-from {grades_from}: no grades by that grader here")
        if tutor is not None and tutor not in set(store.rubrics.graders(TUTOR)):
            raise RubricError(f"--tutor {tutor}: no grades by that tutor here")
        if tutor is not None and grades_from is not None and grades_from != tutor:
            raise RubricError(f"--tutor {tutor} and --grades-from {grades_from} name different graders")
        rows = grade_rows(store, grades_from=grades_from, domain=domain, keep_tutor_names=keep_tutor_names,
                          tutor=tutor)
    else:
        raise RubricError(f"unknown format {fmt!r}; formats: {', '.join(RUBRIC_FORMATS)}")
    prompts: set[str] = set()

    def counted(it: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for r in it:
            prompts.add(r["prompt_id"])
            yield r

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "jsonl":
            n = write_jsonl(path, counted(rows))
        elif kind == "parquet":
            n = write_parquet(path, fmt, counted(rows))
        else:
            shown_tutor = tutor if keep_tutor_names or tutor is None else store.pseudonym(tutor)
            n = write_folder(path, fmt, counted(rows), lambda n: rubric_card(
                fmt, n, len(prompts), pseudonymised=not keep_tutor_names,
                filters={"domain": domain, "tutor": shown_tutor, "grades_from": grades_from}))
    except RubricError:
        raise
    except OSError as e:
        raise RubricError(f"{path}: cannot write ({e.strerror or e})") from e
    except Exception as e:  # pyarrow / datasets errors: one line, naming the output
        first = (str(e).splitlines() or [""])[0]
        raise RubricError(f"{path}: export failed ({type(e).__name__}: {first})") from e
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
