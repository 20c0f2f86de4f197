"""Prompt sets and existing preference data -> records in the store, all or nothing.

A file is read and checked in full before anything is written; any bad line refuses the
whole file with a message naming the file, the line and the field, and the database is left
as it was. A good file goes in as one transaction.

JSONL, one object a line (blank lines are skipped)::

    {"id": "optional stable id", "prompt": "...", "domain": "medicine",
     "messages": [{"role": "user", "content": "..."}, ...],     # optional earlier turns
     "candidates": [{"text": "...", "model": "..."}, ...],       # optional (or plain strings)
     "ranking": [1, 2, 2, 3],                                    # optional, one rank per candidate
     "tutor": "...", "correction": "...", "corrected_index": 0,  # optional
     "all_bad": false, "strength": 2, "rationale": "...",        # optional
     "flags": [["incorrect"], [], ...],                          # optional, one list per candidate
     "gold_ranking": [1, 2, 3]}                                  # optional: a gold item

CSV: a header row with a ``prompt`` column, and optionally ``domain`` and ``id``.

A record with candidates and a ranking is a finished judgment; without a ranking it waits in
the queue. A record without an ``id`` gets one from its content (domain, earlier turns and
prompt), so the same prompt imported twice is one prompt. Records sharing an ``id`` (in the file or already in the database) are one prompt:
their candidates are matched by text, and each tutor's ranking adds that tutor's judgment.
Importing the same file twice adds nothing the second time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_desktop.core.importing.limits import (
    MAX_CANDIDATES,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    MAX_MESSAGES,
    MAX_NAME,
    MAX_RATIONALE,
    MAX_TEXT,
    LimitError,
    check_depth,
    check_int,
    check_length,
    check_number,
    check_strings,
    may_be_deep,
    shown,
    size,
)
from hitl_desktop.core.layouts import LAYOUTS, RowError, detect_layout, to_record
from hitl_desktop.core.ranking import (
    RankingError,
    is_unchanged_correction,
    validate_ranks,
    without_unchanged_correction,
)
from hitl_desktop.core.store import ORIGINS, Store
from hitl_desktop.core.types import (
    DEFAULT_STRENGTH,
    FLAGS,
    RATING_SCALES,
    STRENGTHS,
    Candidate,
    Correction,
    Judgment,
    Message,
    Prompt,
    Session,
    Tutor,
    now_iso,
)
from hitl_desktop.core.wording import count

ROLES = ("system", "user", "assistant")
DEFAULT_TUTOR = "imported"

#: Namespace of imported judgments' ids (uuid5 of the prompt's external id and the tutor name).
IMPORT_NAMESPACE = uuid.UUID("3d0c8f7e-5a1b-5e2c-8f4d-9b6a7c2e1f30")


def imported_judgment_id(external_id: str, tutor: str) -> str:
    """The id of a tutor's imported judgment of a prompt: the same on every workstation that
    imports that record, so a merge of their databases keeps one copy (as an import does)."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, _to_json([external_id, tutor])))
MAX_ERRORS_SHOWN = 20

#: ``json.dumps(value, ensure_ascii=False)``, without building an encoder per call (ids are
#: hashes of this text: it must never change)
_to_json = json.JSONEncoder(ensure_ascii=False).encode
#: a JSON escape that can make a lone UTF-16 surrogate (\ud800-\udfff) or a NUL: only a line
#: holding one needs its strings checked (a UTF-8 line cannot hold either otherwise)
_SUSPECT_TEXT = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")

ProgressCallback = Callable[[int, int], None]  # (bytes read, total bytes)


@dataclass
class LineError:
    line: int
    field: str
    message: str


#: characters ``str.splitlines`` breaks a line at: escaped in an error, which is one line
_LINE_BREAKS = str.maketrans({c: f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                              for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})  # fmt: skip


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` with its line breaks escaped, cut to ``limit`` characters."""
    text = text.translate(_LINE_BREAKS)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BadLines(list):
    """The bad lines of a file: the first ``MAX_ERRORS_SHOWN`` kept, ``total`` counts them all."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, error: LineError) -> None:  # type: ignore[override]
        self.total += 1
        if len(self) < MAX_ERRORS_SHOWN:
            super().append(error)


class ImportFileError(Exception):
    """A file refused as a whole. ``errors`` lists the bad lines found (the first
    ``MAX_ERRORS_SHOWN``), ``total`` counts them all."""

    def __init__(self, path: str | os.PathLike[str], errors: list[LineError], total: int | None = None) -> None:
        self.path = str(path)
        self.errors = [LineError(e.line, _one_line(e.field, 100), _one_line(e.message)) for e in errors]
        self.total = max(len(errors), total if total is not None else getattr(errors, "total", 0))
        first = self.errors[0]
        where = f"{_one_line(self.path)}:{first.line}" if first.line else _one_line(self.path)
        more = f" (and {count(self.total - 1, 'more bad line')})" if self.total > 1 else ""
        msg = f"{where}: {first.field}: {first.message}" if first.field else f"{where}: {first.message}"
        super().__init__(msg + more + "; nothing was imported")

    def lines(self) -> list[str]:
        """One line per bad line listed: ``file:line: field: message``."""
        path = _one_line(self.path)
        return [
            f"{path}:{e.line}: {e.field + ': ' if e.field else ''}{e.message}" if e.line
            else f"{path}: {e.field + ': ' if e.field else ''}{e.message}"
            for e in self.errors
        ]

    def details(self) -> str:
        return "\n".join(self.lines())


@dataclass
class ImportSummary:
    path: str
    records: int = 0
    prompts: int = 0
    prompts_reused: int = 0
    candidates: int = 0
    judgments: int = 0
    judgments_skipped: int = 0
    corrections: int = 0
    corrections_ignored: int = 0  # equal to the candidate they correct (not stored)
    tutors: int = 0
    queued: int = 0
    domains: dict[str, int] = field(default_factory=dict)
    layout: str = ""  # the layout read (core/layouts.py)
    #: fields of the rows that have no place in a judgment: field -> rows (never silent)
    fields_not_kept: dict[str, int] = field(default_factory=dict)


_RecordError = LimitError  # a bad field of a record: (field, message)


@dataclass
class _Record:
    line: int
    external_id: str | None
    prompt: str
    domain: str
    messages: list[Message]
    candidates: list[tuple[str, str]]  # (text, model)
    ranking: list[int] | None
    tutor: str | None
    correction: str | None
    corrected_index: int | None
    all_bad: bool
    strength: int
    rationale: str
    flags: list[list[str]] | None
    gold_ranking: list[int] | None
    ratings: list[dict[str, int]] | None = None
    seeds: list[int | None] | None = None
    created_at: str | None = None
    judgment_key: str | None = None  # a pair / Nectar row: its own judgment (layouts.to_record)
    full: Judgment | None = None  # a ``judgments`` row: everything, ids included
    full_prompt: Prompt | None = None
    full_candidates: list[Candidate] | None = None
    full_session: Session | None = None
    origins: dict[str, tuple[str, str | None]] | None = None  # a judgments row's candidates
    pseudonymised: bool = False  # a judgments row's tutor name is a pseudonym
    #: a pair row's margin and scores (layouts.py; scores by candidate position, chosen first)
    source_values: dict[str, Any] | None = None


def content_id(domain: str, messages: list[Message], prompt: str) -> str:
    """The id of a record that names none: its content's hash, so that importing the same
    prompt twice (or on two workstations) gives one prompt, not two."""
    payload = _to_json([domain, [m.to_dict() for m in messages], prompt])
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def _expect(obj: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _RecordError(key, f"must be {what}, not {json.dumps(value)}")
    if not isinstance(value, types):
        raise _RecordError(key, f"must be {what}, not {type(value).__name__}")
    return value


def _ranks_fit(ranks: list[int], field: str) -> None:
    """Each rank at most the number of candidates (1 = best; ties share a rank)."""
    n = len(ranks)
    for i, r in enumerate(ranks):
        if r > n:
            raise _RecordError(f"{field}[{i}]", f"rank {shown(r)} is above the number of candidates ({n})")


def _parse_record(obj: Any, line: int, default_domain: str | None, *, check_text: bool = True) -> _Record:
    if not isinstance(obj, dict):
        raise _RecordError("", f"a record must be a JSON object, not {type(obj).__name__}")
    if check_text:
        check_strings(obj)
    prompt = _expect(obj, "prompt", str, "a string")
    if prompt is None or not prompt.strip():
        raise _RecordError("prompt", "is missing or empty")
    check_length(prompt, "prompt", MAX_TEXT)
    ext = _expect(obj, "id", (str, int), "a string")
    ext = None if ext is None else check_length(str(ext), "id", MAX_NAME)
    if ext is not None and not ext.strip():
        raise _RecordError("id", "is empty")
    domain = _expect(obj, "domain", str, "a string") or default_domain or "general"
    check_length(domain, "domain", MAX_NAME)
    domain = domain.strip().lower()
    if not domain:
        raise _RecordError("domain", "is empty")

    messages: list[Message] = []
    raw_messages = _expect(obj, "messages", list, "a list of {role, content} objects") or []
    if len(raw_messages) > MAX_MESSAGES:
        raise _RecordError("messages", f"has {len(raw_messages):,} turns, above the limit of {MAX_MESSAGES:,}")
    for i, m in enumerate(raw_messages):
        if not isinstance(m, dict):
            raise _RecordError(f"messages[{i}]", "must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise _RecordError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, not {shown(role)}")
        if not isinstance(content, str):
            raise _RecordError(f"messages[{i}].content", "must be a string")
        check_length(content, f"messages[{i}].content", MAX_TEXT)
        messages.append(Message(role, content))

    candidates: list[tuple[str, str]] = []
    seeds: list[int | None] = []
    raw_cands = _expect(obj, "candidates", list, "a list") or []
    if len(raw_cands) > MAX_CANDIDATES:
        raise _RecordError("candidates", f"has {len(raw_cands):,} candidates, above the limit of {MAX_CANDIDATES}")
    for i, c in enumerate(raw_cands):
        if isinstance(c, str):
            check_length(c, f"candidates[{i}]", MAX_TEXT)
            candidates.append((c, ""))
            seeds.append(None)
            continue
        if not isinstance(c, dict):
            raise _RecordError(f"candidates[{i}]", "must be an object with text (or a string)")
        text = c.get("text")
        if not isinstance(text, str):
            raise _RecordError(f"candidates[{i}].text", "is missing or not a string")
        check_length(text, f"candidates[{i}].text", MAX_TEXT)
        model = c.get("model", "")
        if model is None:
            model = ""
        if not isinstance(model, str):
            raise _RecordError(f"candidates[{i}].model", "must be a string")
        check_length(model, f"candidates[{i}].model", MAX_NAME)
        seed = c.get("seed")
        if seed is not None:
            check_int(seed, f"candidates[{i}].seed")
        candidates.append((text, model))
        seeds.append(seed)
    texts = [t for t, _ in candidates]
    if len(set(texts)) != len(texts):
        raise _RecordError("candidates", "two candidates have the same text")

    ranking = _expect(obj, "ranking", list, "a list of ranks")
    if ranking is not None:
        if not candidates:
            raise _RecordError("ranking", "given without candidates")
        try:
            ranking = validate_ranks(ranking, len(candidates))
        except RankingError as e:
            field_name, _, msg = str(e).partition(": ")
            raise _RecordError(field_name, msg) from None
        _ranks_fit(ranking, "ranking")

    gold = _expect(obj, "gold_ranking", list, "a list of ranks")
    if gold is not None:
        try:
            gold = validate_ranks(gold, len(candidates), field="gold_ranking")
        except RankingError as e:
            field_name, _, msg = str(e).partition(": ")
            raise _RecordError(field_name, msg) from None
        _ranks_fit(gold, "gold_ranking")

    tutor = _expect(obj, "tutor", str, "a string")
    if tutor is not None and not tutor.strip():
        raise _RecordError("tutor", "is empty")
    if tutor is not None:
        check_length(tutor, "tutor", MAX_NAME)
    correction = _expect(obj, "correction", str, "a string")
    if correction is not None and not correction.strip():
        raise _RecordError("correction", "is empty")
    if correction is not None:
        check_length(correction, "correction", MAX_TEXT)
    corrected_index = _expect(obj, "corrected_index", int, "an integer")
    if corrected_index is not None:
        if correction is None:
            raise _RecordError("corrected_index", "given without a correction")
        if not 0 <= corrected_index < len(candidates):
            raise _RecordError(
                "corrected_index",
                f"{corrected_index} is out of range: the record has {count(len(candidates), 'candidate')}",
            )
    if correction is not None and ranking is None:
        raise _RecordError("correction", "given without a ranking of the candidates")
    all_bad = _expect(obj, "all_bad", bool, "true or false") or False
    strength = _expect(obj, "strength", int, "an integer 1-3")
    if strength is None:
        strength = DEFAULT_STRENGTH
    elif strength not in STRENGTHS:
        raise _RecordError("strength", f"{strength} is not one of {sorted(STRENGTHS)}")
    rationale = check_length(_expect(obj, "rationale", str, "a string") or "", "rationale", MAX_RATIONALE)
    flags = _expect(obj, "flags", list, "a list with one list of flags per candidate")
    if flags is not None:
        if len(flags) != len(candidates):
            raise _RecordError("flags", f"has {len(flags)} entries for {len(candidates)} candidates")
        for i, fl in enumerate(flags):
            if not isinstance(fl, list) or any(f not in FLAGS for f in fl):
                raise _RecordError(f"flags[{i}]", f"must be a list of flags from {', '.join(FLAGS)}")
    ratings = _expect(obj, "ratings", list, "a list with one {scale: 1-5} object per candidate")
    if ratings is not None:
        if len(ratings) != len(candidates):
            raise _RecordError("ratings", f"has {len(ratings)} entries for {len(candidates)} candidates")
        for i, r in enumerate(ratings):
            if r is None:
                ratings[i] = {}
                continue
            if not isinstance(r, dict) or any(
                k not in RATING_SCALES or isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5
                for k, v in r.items()
            ):
                raise _RecordError(
                    f"ratings[{i}]", f"must map {' or '.join(RATING_SCALES)} to an integer from 1 to 5"
                )
    created_at = _expect(obj, "created_at", str, "an ISO 8601 time")
    if created_at is not None:
        check_length(created_at, "created_at", MAX_NAME)
    if ext is None:
        ext = content_id(domain, messages, prompt)
    return _Record(
        line=line,
        external_id=ext,
        prompt=prompt,
        domain=domain,
        messages=messages,
        candidates=candidates,
        ranking=ranking,
        tutor=tutor.strip() if tutor else None,
        correction=correction,
        corrected_index=corrected_index,
        all_bad=all_bad,
        strength=strength,
        rationale=rationale,
        flags=flags,
        gold_ranking=gold,
        ratings=ratings,
        seeds=seeds,
        created_at=created_at,
    )


def _read_jsonl(
    data: bytes,
    default_domain: str | None,
    errors: list[LineError],
    progress,
    layout: str | None = None,
    unkept: dict[str, int] | None = None,
) -> tuple[list[_Record], str | None]:
    """Read every line in one layout: ``layout``, else the first record's (layouts.py)."""
    unkept = {} if unkept is None else unkept
    records: list[_Record] = []
    pos = 0
    total = len(data)
    for lineno, raw in enumerate(data.splitlines(), start=1):
        pos += len(raw) + 1
        if progress and lineno % 2000 == 0:
            progress(min(pos, total), total)
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            errors.append(LineError(lineno, "", f"is {len(raw) / 2**20:.1f} MB long, above the limit of {size(MAX_LINE_BYTES)} for one record"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            errors.append(LineError(lineno, "", f"is not valid UTF-8 (byte {e.start})"))
            continue
        try:
            obj = json.loads(text)
            if may_be_deep(raw):
                check_depth(obj)
        except json.JSONDecodeError as e:
            errors.append(LineError(lineno, "", f"bad JSON: {e.msg} (column {e.colno})"))
            continue
        except RecursionError:
            errors.append(LineError(lineno, "", f"is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"))
            continue
        except ValueError as e:  # an integer of more than 4,300 digits
            errors.append(LineError(lineno, "", f"bad JSON: {str(e).split(':')[0].lower()}"))
            continue
        except LimitError as e:
            errors.append(LineError(lineno, e.field, e.message))
            continue
        check_text = _SUSPECT_TEXT.search(raw) is not None
        layout = _add_object(obj, lineno, default_domain, layout, unkept, records if not errors else None, errors, check_text)
    return records, layout


def _add_object(obj, lineno, default_domain, layout, unkept, records, errors, check_text=True) -> str | None:  # noqa: ANN001
    """One record (a JSONL line or a Parquet row) in the file's layout; returns the layout
    (found from this record's fields when not known yet). ``records`` None: the file is
    refused already, the record is only checked (to list every bad line)."""
    try:
        if check_text:
            check_strings(obj)
        if layout is None:
            layout = detect_layout(obj)
        obj, judgment_key = to_record(layout, obj, unkept)
        rec = _parse_record(obj, lineno, default_domain, check_text=False)
        rec.judgment_key = judgment_key
        if judgment_key is not None:
            rec.source_values = obj.get("source_values")
        if layout == "judgments":
            _parse_full(obj, rec)
        if records is not None:
            records.append(rec)
    except (RowError, LimitError) as e:
        errors.append(LineError(lineno, e.field, e.message))
    except RecursionError:
        errors.append(LineError(lineno, "", f"is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"))
    return layout


def _read_parquet(
    path: Path, default_domain: str | None, errors: list[LineError], layout: str | None, unkept: dict[str, int]
) -> tuple[list[_Record], str | None]:
    """A Parquet file (how public datasets ship): row N is reported as line N."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow's errors: one line, naming the file
        first = (str(e).splitlines() or [""])[0]
        errors.append(LineError(0, "", f"cannot be read as Parquet ({type(e).__name__}: {first})"))
        return [], layout
    records: list[_Record] = []
    for n, obj in enumerate(rows, start=1):
        try:
            check_depth(obj)
        except LimitError as e:
            errors.append(LineError(n, e.field, e.message))
            continue
        layout = _add_object(obj, n, default_domain, layout, unkept, records if not errors else None, errors)
    return records, layout


def _read_csv(data: bytes, default_domain: str | None, errors: list[LineError]) -> list[_Record]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        errors.append(LineError(line, "", f"is not valid UTF-8 (byte {e.start})"))
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as e:
        errors.append(LineError(1, "", f"bad CSV header: {e}"))
        return []
    if fieldnames is None or "prompt" not in [f.strip() for f in fieldnames]:
        errors.append(LineError(1, "prompt", "the header has no 'prompt' column"))
        return []
    records: list[_Record] = []
    try:
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items()}
            obj = {"prompt": row.get("prompt")}
            if row.get("domain"):
                obj["domain"] = row["domain"]
            if row.get("id"):
                obj["id"] = row["id"]
            try:
                rec = _parse_record(obj, reader.line_num, default_domain)
                if not errors:
                    records.append(rec)
            except _RecordError as e:
                errors.append(LineError(reader.line_num, e.field, e.message))
    except csv.Error as e:
        # An unterminated quote is only noticed at the end: it began on the line after the last row.
        line = reader.line_num + 1 if "end of data" in str(e) else reader.line_num
        errors.append(LineError(line, "", f"bad CSV: {e}"))
    return records


def read_records(
    path: str | os.PathLike[str],
    *,
    default_domain: str | None = None,
    on_progress: ProgressCallback | None = None,
    layout: str | None = None,
    summary: ImportSummary | None = None,
) -> list[_Record]:
    """Read and check every record of a file; raise ImportFileError listing the bad lines.

    ``layout``: one of ``layouts.LAYOUTS`` (default: found from the first record's fields).
    ``summary`` gets the layout read and the fields not kept."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise ImportFileError(p, [LineError(0, "", "is a folder, not a file")]) from None
    except OSError as e:
        raise ImportFileError(p, [LineError(0, "", f"cannot be read ({e.strerror})")]) from None
    if layout is not None and layout not in LAYOUTS:
        raise ImportFileError(p, [LineError(0, "", f"unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")])
    errors = BadLines()
    unkept: dict[str, int] = {}
    if p.suffix.lower() == ".csv":
        records = _read_csv(data, default_domain, errors)
        layout = "records"
    elif p.suffix.lower() == ".parquet":
        records, layout = _read_parquet(p, default_domain, errors, layout, unkept)
    else:
        records, layout = _read_jsonl(data, default_domain, errors, on_progress, layout, unkept)
    if summary is not None:
        summary.layout = layout or ""
        summary.fields_not_kept = dict(sorted(unkept.items()))
    if not errors and not records:
        errors.append(LineError(0, "", "holds no records"))
    if errors:
        raise ImportFileError(p, errors)
    if on_progress:
        on_progress(len(data), len(data))
    return records


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    *,
    default_domain: str | None = None,
    default_tutor: str = DEFAULT_TUTOR,
    on_progress: ProgressCallback | None = None,
    layout: str | None = None,
) -> ImportSummary:
    """Import a JSONL or CSV file into the store in one transaction, or refuse it whole.

    ``layout``: see ``read_records`` and core/layouts.py (pair files, Nectar, our records)."""
    plan = _Plan(store, str(path), default_tutor)
    records = read_records(
        path, default_domain=default_domain, on_progress=on_progress, layout=layout, summary=plan.summary
    )
    if plan.summary.layout == "judgments":
        return _import_full(store, path, records, plan.summary)
    plan._row_keys = [r.judgment_key for r in records if r.judgment_key is not None]
    plan.load_existing(sorted({r.external_id for r in records if r.external_id is not None}))
    errors = BadLines()
    for rec in records:
        try:
            plan.add(rec)
        except _RecordError as e:
            errors.append(LineError(rec.line, e.field, e.message))
    if errors:
        raise ImportFileError(path, errors)
    store.bulk_insert(
        tutors=plan.new_tutors,
        prompts=plan.new_prompts,
        candidates=plan.new_candidates,
        judgments=plan.new_judgments,
        gold_rankings=plan.gold_for_existing,
    )
    return plan.summary


class _Plan:
    """What a file adds to the store, worked out before anything is written."""

    def __init__(self, store: Store, path: str, default_tutor: str) -> None:
        self.store = store
        self.source = Path(path).name
        self.default_tutor = default_tutor
        self.summary = ImportSummary(path=path)
        self.new_tutors: list[Tutor] = []
        self.new_prompts: list[Prompt] = []
        self.new_candidates: list[Candidate] = []
        self.new_judgments: list[Judgment] = []
        self.gold_for_existing: dict[str, dict[str, int]] = {}
        self._tutors: dict[str, str] = {t.name: t.id for t in store.tutors()}
        self._prompts: dict[str, tuple[Prompt, int]] = {}  # external id -> (prompt, line)
        self._cands: dict[str, dict[str, Candidate]] = {}  # prompt id -> text -> candidate
        self._next_index: dict[str, int] = {}  # prompt id -> idx of its next new candidate
        self._judged: set[tuple[str, str]] = set()  # (prompt id, tutor id) already judged
        self._reused: set[str] = set()
        self._row_keys: list[str] = []  # judgment ids of pair / Nectar rows (see load_existing)
        self._existing_judgments: set[str] = set()
        self._by_model: dict[tuple[str, str, str], Candidate] = {}  # (prompt id, text, model)

    def load_existing(self, ext_ids: list[str]) -> None:
        """Bring in the prompts of the database that the file's ids name (a few queries in all)."""
        found = self.store.prompts_by_external_id(ext_ids)
        pids = [prompt.id for prompt in found.values()]
        for ext, prompt in found.items():
            self._prompts[ext] = (prompt, 0)
        for pid, cands in self.store.candidates_by_prompt(pids).items():
            self._cands[pid] = {}
            for c in cands:
                self._cands[pid].setdefault(c.text, c)
                self._by_model.setdefault((pid, c.text, c.model), c)
            self._next_index[pid] = max((c.index for c in cands), default=-1) + 1
        self._judged |= self.store.judging_tutor_ids(pids)
        self._existing_judgments = self.store.existing_ids("judgments", self._row_keys)

    def _tutor_id(self, name: str) -> str:
        tid = self._tutors.get(name)
        if tid is None:
            tutor = Tutor(name=name)
            self.new_tutors.append(tutor)
            self._tutors[name] = tid = tutor.id
            self.summary.tutors += 1
        return tid

    def add(self, rec: _Record) -> None:
        s = self.summary
        s.records += 1
        known = self._prompts.get(rec.external_id) if rec.external_id is not None else None
        where = ""
        if known is not None:
            prompt, first_line = known
            where = f"line {first_line}" if first_line else "the database"
            if prompt.text != rec.prompt:
                raise _RecordError("prompt", f"id {rec.external_id!r} has another prompt text in {where}")
            if [m.to_dict() for m in prompt.messages] != [m.to_dict() for m in rec.messages]:
                raise _RecordError("messages", f"id {rec.external_id!r} has other earlier turns in {where}")
            if first_line == 0 and prompt.id not in self._reused:
                self._reused.add(prompt.id)
                s.prompts_reused += 1
        else:
            prompt = Prompt(
                text=rec.prompt,
                domain=rec.domain,
                messages=rec.messages,
                external_id=rec.external_id,
                source=self.source,
            )
            self.new_prompts.append(prompt)
            self._cands[prompt.id] = {}
            self._next_index[prompt.id] = 0
            if rec.external_id is not None:
                self._prompts[rec.external_id] = (prompt, rec.line)
            s.prompts += 1
            s.domains[prompt.domain] = s.domains.get(prompt.domain, 0) + 1

        by_text = self._cands[prompt.id]
        ids: list[str] = []
        for (text, model), seed in zip(rec.candidates, rec.seeds or [None] * len(rec.candidates), strict=True):
            cand = by_text.get(text)
            if cand is not None and rec.judgment_key is not None and cand.model != model:
                # a pair / Nectar row: the same text from another model (or another tutor's
                # identical correction) is its own candidate, so its model is not lost
                cand = self._by_model.get((prompt.id, text, model))
            if cand is None:
                index = self._next_index[prompt.id]
                self._next_index[prompt.id] = index + 1
                cand = Candidate(prompt_id=prompt.id, text=text, model=model, index=index, seed=seed)
                by_text.setdefault(text, cand)
                self._by_model[(prompt.id, text, model)] = cand
                self.new_candidates.append(cand)
                s.candidates += 1
            ids.append(cand.id)
        if rec.gold_ranking is not None:
            # gold ranks go to the candidates' ids, never positions (table gold_rankings)
            gold = dict(zip(ids, rec.gold_ranking))
            if prompt.gold_ranking is not None and prompt.gold_ranking != gold:
                raise _RecordError(
                    "gold_ranking", f"id {rec.external_id!r} has another gold ranking in {where}"
                )
            if prompt.gold_ranking is None and known is not None and known[1] == 0:
                self.gold_for_existing[prompt.id] = gold  # a prompt already in the database
            prompt.gold_ranking = gold

        if rec.ranking is None:
            s.queued += 1
            return
        tutor = rec.tutor or self.default_tutor
        tutor_id = self._tutor_id(tutor)
        # a record: one judgment per prompt and tutor; a pair or Nectar row: its own judgment
        judged_key = (prompt.id, rec.judgment_key or tutor_id)
        if judged_key in self._judged or rec.judgment_key in self._existing_judgments:
            s.judgments_skipped += 1
            return
        self._judged.add(judged_key)
        judgment_id = rec.judgment_key or imported_judgment_id(prompt.external_id or prompt.id, tutor)
        correction = None
        if (
            rec.correction is not None
            and rec.corrected_index is not None
            and is_unchanged_correction(rec.candidates[rec.corrected_index][0], rec.correction)
        ):
            s.corrections_ignored += 1  # equal to the candidate it corrects: no correction
        elif rec.correction is not None:
            corrected = ids[rec.corrected_index] if rec.corrected_index is not None else None
            correction = Correction(
                text=rec.correction,
                candidate_id=corrected,
                id=str(uuid.uuid5(IMPORT_NAMESPACE, f"{judgment_id}:correction")),
            )
            s.corrections += 1
        self.new_judgments.append(
            Judgment(
                id=judgment_id,
                prompt_id=prompt.id,
                tutor_id=tutor_id,
                ranks=dict(zip(ids, rec.ranking)),
                all_bad=rec.all_bad,
                flags={cid: fl for cid, fl in zip(ids, rec.flags or []) if fl},
                rationale=rec.rationale,
                strength=rec.strength,
                display_order=list(ids),
                correction=correction,
                ratings={cid: r for cid, r in zip(ids, rec.ratings or []) if r},
                source_values=_by_candidate(rec.source_values, ids),
                **({"created_at": rec.created_at} if rec.created_at else {}),
            )
        )
        s.judgments += 1


def _by_candidate(values: dict[str, Any] | None, ids: list[str]) -> dict[str, Any]:
    """A row's source values with its scores (by position) given to its candidates' ids."""
    if not values:
        return {}
    out = dict(values)
    if "scores" in out:
        out["scores"] = dict(zip(ids, out["scores"], strict=True))
    return out


# -- the ``judgments`` layout: everything, ids included (core/judgment_records.py) -------------


def _str(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _RecordError(key, "is missing or not a string")
    return check_length(value, key, MAX_NAME)


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    """A short optional text field: None, or a string of at most ``MAX_NAME`` characters."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _RecordError(path, f"must be a string, not {type(value).__name__}")
    return check_length(value, path, MAX_NAME)


def _num(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _RecordError(path, f"must be a number, not {type(value).__name__}")
    return check_int(value, path) if kind is int else check_number(value, path)


def _parse_full(obj: dict[str, Any], rec: _Record) -> None:
    """The ids and provenance of a ``judgments`` row, checked against the row's candidates."""
    raw = obj["candidates"]
    cands: list[Candidate] = []
    prompt_id = _str(obj, "prompt_id")
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise _RecordError(f"candidates[{i}]", "must be an object with id and text")
        params = c.get("params") or {}
        if not isinstance(params, dict):
            raise _RecordError(f"candidates[{i}].params", "must be an object")
        cands.append(
            Candidate(
                prompt_id=prompt_id,
                text=c["text"],
                model=c.get("model") or "",
                model_revision=_opt_str(c, "model_revision", f"candidates[{i}].model_revision") or "",
                dtype=_opt_str(c, "dtype", f"candidates[{i}].dtype") or "",
                params=params,
                seed=_num(c, "seed", f"candidates[{i}].seed", int),
                tokens=_num(c, "tokens", f"candidates[{i}].tokens", int),
                seconds=_num(c, "seconds", f"candidates[{i}].seconds", (int, float)),
                index=_num(c, "index", f"candidates[{i}].index", int) or 0,
                id=_str(c, "id") if isinstance(c.get("id"), str) and c["id"] else _missing(f"candidates[{i}].id"),
                created_at=_opt_str(c, "created_at", f"candidates[{i}].created_at") or now_iso(),
            )
        )
    ids = [c.id for c in cands]
    if len(set(ids)) != len(ids):
        raise _RecordError("candidates", "two candidates have the same id")
    rec.origins = {}
    for i, c in enumerate(raw):
        origin, set_id = c.get("origin", "imported"), c.get("set_id")
        if origin not in ORIGINS:
            raise _RecordError(f"candidates[{i}].origin", f"must be one of {', '.join(ORIGINS)}, not {shown(origin)}")
        if set_id is not None and (not isinstance(set_id, str) or not set_id):
            raise _RecordError(f"candidates[{i}].set_id", "must be a string or null")
        if set_id is not None:
            check_length(set_id, f"candidates[{i}].set_id", MAX_NAME)
        rec.origins[ids[i]] = (origin, set_id)
    pseudonymised = obj.get("tutor_pseudonymised", False)
    if not isinstance(pseudonymised, bool):
        raise _RecordError("tutor_pseudonymised", "must be true or false")
    rec.pseudonymised = pseudonymised
    order = obj.get("display_order") or []
    if not isinstance(order, list):
        raise _RecordError("display_order", "must be a list of candidate ids")
    for i, cid in enumerate(order):
        if cid not in ids:
            raise _RecordError(f"display_order[{i}]", f"names candidate {shown(cid)}, which the row does not hold")
        if cid in order[:i]:
            raise _RecordError(f"display_order[{i}]", f"names candidate {shown(cid)} twice")
    session = obj.get("session")
    full_session = None
    if session is not None:
        if not isinstance(session, dict):
            raise _RecordError("session", "must be an object with id, domain and started_at")
        full_session = Session(
            tutor_id=_str(obj, "tutor_id"),
            domain=_str(session, "domain"),
            guideline_version=_opt_str(session, "guideline_version", "session.guideline_version") or "",
            id=_str(session, "id"),
            started_at=_str(session, "started_at"),
            ended_at=_opt_str(session, "ended_at", "session.ended_at"),
        )
    ext = obj.get("id")
    rec.full_prompt = Prompt(
        text=rec.prompt,
        domain=rec.domain,
        messages=rec.messages,
        external_id=None if ext is None else str(ext),
        source=_opt_str(obj, "prompt_source", "prompt_source") or "",
        parent_judgment_id=_opt_str(obj, "parent_judgment_id", "parent_judgment_id"),
        id=prompt_id,
        created_at=_str(obj, "prompt_created_at"),
    )
    rec.full_candidates = cands
    rec.full_session = full_session
    correction = None
    if rec.correction is not None:
        cid = ids[rec.corrected_index] if rec.corrected_index is not None else None
        correction = Correction(
            text=rec.correction,
            candidate_id=cid,
            id=_str(obj, "correction_id"),
            created_at=_str(obj, "correction_created_at"),
        )
    rec.full = Judgment(
        id=_str(obj, "judgment_id"),
        prompt_id=prompt_id,
        tutor_id=_str(obj, "tutor_id"),
        session_id=full_session.id if full_session else None,
        ranks=dict(zip(ids, rec.ranking or [], strict=True)),
        all_bad=rec.all_bad,
        flags={cid: fl for cid, fl in zip(ids, rec.flags or []) if fl},
        ratings={cid: r for cid, r in zip(ids, rec.ratings or []) if r},
        rationale=rec.rationale,
        strength=rec.strength,
        seconds_spent=_num(obj, "seconds_spent", "seconds_spent", (int, float)),
        display_order=list(order),
        guideline_version=_opt_str(obj, "guideline_version", "guideline_version") or "",
        correction=correction,
        created_at=_str(obj, "created_at"),
        supersedes=_str(obj, "supersedes", required=False),
        source_values=_source_values(obj.get("source_values"), ids),
    )
    if rec.ranking is None:
        raise _RecordError("ranking", "is missing (a judgments row is a finished judgment)")


def _source_values(values: Any, ids: list[str]) -> dict[str, Any]:
    """A ``judgments`` row's ``source_values``: {margin: number, scores: {candidate id: number}}."""
    if values is None:
        return {}
    if not isinstance(values, dict) or set(values) - {"margin", "scores"}:
        raise _RecordError("source_values", "must be an object with margin and/or scores")
    out: dict[str, Any] = {}

    def number(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _RecordError(path, "must be a finite number")
        return float(check_number(value, path))

    if "margin" in values:
        out["margin"] = number(values["margin"], "source_values.margin")
    if "scores" in values:
        scores = values["scores"]
        if not isinstance(scores, dict):
            raise _RecordError("source_values.scores", "must map candidate ids to numbers")
        for cid in scores:
            if cid not in ids:
                raise _RecordError(f"source_values.scores.{cid}", "names a candidate the row does not hold")
        out["scores"] = {cid: number(v, f"source_values.scores.{cid}") for cid, v in scores.items()}
    return out


def _missing(field: str) -> str:
    raise _RecordError(field, "is missing or not a string")


def _import_full(store: Store, path, records: list[_Record], s: ImportSummary) -> ImportSummary:
    """Insert ``judgments`` rows with their own ids: what is already there is reused (prompts,
    candidates, sessions, tutors by name) or skipped (judgments); one transaction."""
    tutors = {t.name: t.id for t in store.tutors()}
    have = {
        t: store.existing_ids(t, ids)
        for t, ids in (
            ("prompts", {r.full_prompt.id for r in records}),
            ("candidates", {c.id for r in records for c in r.full_candidates}),
            ("judgments", {r.full.id for r in records}),
            ("sessions", {r.full_session.id for r in records if r.full_session}),
        )
    }
    by_ext = store.prompt_ids_by_external_id({r.full_prompt.external_id for r in records if r.full_prompt.external_id})
    new_tutors: list[Tutor] = []
    pseudonyms: list[str] = []  # ids of new tutors whose names are pseudonyms
    origins: dict[str, tuple[str, str | None]] = {}
    new: dict[str, list] = {"prompts": [], "candidates": [], "judgments": [], "sessions": []}
    errors = BadLines()
    for rec in records:
        s.records += 1
        p, j = rec.full_prompt, rec.full
        ext_owner = by_ext.get(p.external_id) if p.external_id else None
        if ext_owner is not None and ext_owner != p.id:
            errors.append(LineError(rec.line, "id", f"{p.external_id!r} already names another prompt"))
            continue
        name = rec.tutor or DEFAULT_TUTOR
        if name not in tutors:
            tutors[name] = j.tutor_id
            new_tutors.append(Tutor(name=name, id=j.tutor_id))
            if rec.pseudonymised:
                pseudonyms.append(j.tutor_id)
            s.tutors += 1
        j.tutor_id = tutors[name]
        if rec.full_session is not None:
            rec.full_session.tutor_id = j.tutor_id
        if j.id in have["judgments"]:
            s.judgments_skipped += 1
            continue
        have["judgments"].add(j.id)
        for table, rows in (("prompts", [p]), ("sessions", [rec.full_session] if rec.full_session else []),
                            ("candidates", rec.full_candidates)):  # fmt: skip
            for row in rows:
                if row.id not in have[table]:
                    have[table].add(row.id)
                    new[table].append(row)
                    if table == "prompts":
                        s.prompts += 1
                        s.domains[p.domain] = s.domains.get(p.domain, 0) + 1
                        if p.external_id:
                            by_ext[p.external_id] = p.id
                    elif table == "candidates":
                        s.candidates += 1
                        origins[row.id] = rec.origins[row.id]
                elif table == "prompts" and row is p:
                    s.prompts_reused += 1
        j = without_unchanged_correction(j, rec.full_candidates)
        if rec.correction is not None and j.correction is None:
            s.corrections_ignored += 1
        s.corrections += j.correction is not None
        new["judgments"].append(j)
        s.judgments += 1
    if errors:
        raise ImportFileError(path, errors)
    store.bulk_insert(
        tutors=new_tutors,
        sessions=new["sessions"],
        prompts=new["prompts"],
        candidates=new["candidates"],
        judgments=new["judgments"],
        candidate_origins=origins,
        pseudonymised=pseudonyms,
    )
    return s
