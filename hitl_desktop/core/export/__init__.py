"""Judgments -> training data files, as a pipeline: selection -> rows -> file.

Pure Python (no Qt). The CLI and the GUI call :func:`export_dataset` with an
:class:`ExportOptions`; each stage is a module of this package:

``selection``  which judged items (filters, each judgment's newest version, consensus,
               adjudication), read from SQLite a batch at a time (core/judged_reader.py);
``rows``       one small writer per format (:func:`build_rows`; the formats and their rules
               are documented there), ``columns`` their names and types;
``files``      JSONL, Parquet or a datasets folder, written in bounded batches (``card``: the
               folder's README).

Memory stays flat: no stage holds more than a batch of items or rows (a split export keeps
the prompt ids of the test split, and its conversation keys while it finds them).

Output by the suffix of ``out``: ``.jsonl`` (UTF-8, one object a line), ``.parquet``, anything
else a folder written with ``datasets.save_to_disk`` plus a ``README.md`` dataset card. A few
suffixes of file types we do not write (``.json``, ``.csv``...) are refused rather than turned
into a folder. With a test fraction the split is by conversation (a prompt with every turn
continued from it; no conversation in both splits), files
``<stem>-train<suffix>`` / ``<stem>-test<suffix>`` or a ``DatasetDict`` with train and test.
Every file or folder is written to a temporary name in the same folder, synced, then renamed
into place: on any error nothing partial is left and an existing output is untouched.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any

from hitl_desktop.core import collector, ranking
from hitl_desktop.core.export.card import dataset_card
from hitl_desktop.core.export.card import size_category as _size_category  # noqa: F401 - reached here
from hitl_desktop.core.export.columns import (
    COLUMNS,
    FORMATS,
    ExportError,
    ExportSummary,
    arrow_schema,
    check_format,
)
from hitl_desktop.core.export.files import (
    Rows,
    numeric_columns,
    oserror,
    output_kind,
    replace_files,
    replace_folder,
)
from hitl_desktop.core.export.files import write_folder as _write_folder
from hitl_desktop.core.export.files import write_jsonl as _write_jsonl
from hitl_desktop.core.export.files import write_parquet as _write_parquet
from hitl_desktop.core.export.lines import LINES, lines_builder
from hitl_desktop.core.export.rows import (
    PAIRED,
    VALUES,
    build_rows,
    build_values,
    one_label_each,
    render_prompt,
    render_transcript,
)
from hitl_desktop.core.export.selection import Selection, test_prompt_ids
from hitl_desktop.core.judged_reader import Filters
from hitl_desktop.core.ranking import effective_correction, pair_specs
from hitl_desktop.core.rubric_export import RUBRIC_FORMATS, export_rubric_format
from hitl_desktop.core.rubrics import RubricError
from hitl_desktop.core.types import CONSENSUS_TUTOR, JudgedItem

__all__ = [
    "COLUMNS",
    "FORMATS",
    "ExportError",
    "ExportOptions",
    "ExportSummary",
    "arrow_schema",
    "build_rows",
    "dataset_card",
    "export_dataset",
    "render_prompt",
    "render_transcript",
]


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What one export writes, and where (the CLI's ``export`` options)."""

    fmt: str
    out: str | os.PathLike[str]
    domain: str | None = None
    tutor: str | None = None  # a tutor name
    since: Any = None  # ISO date or time (UTC), date or datetime
    until: Any = None
    test_fraction: float = 0.0
    seed: int = 0
    keep_tutor_names: bool = False
    include_top_ranked: bool = False
    consensus: bool = False
    adjudicated: bool = False
    grades_from: str | None = None  # rubric-grades: that grader's grades, not the tutors'


def export_dataset(
    store,
    options: ExportOptions | None = None,
    /,
    *,
    items: Iterable[JudgedItem] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    assembled: dict[str, int] | None = None,
    consensus_prompts: int | None = None,
    **fields: Any,
) -> ExportSummary:
    """Write the selected judgments in one format (``options``, or its fields as keywords);
    see the module docstring.

    ``items``: pre-selected judged items to export instead of the store's, as they are (no
    filter applies to them). ``on_progress(done, total)``: ``total`` is the number of
    judgments read (once per pass: a split export reads them three times) plus one for putting
    the files in place; ``done == total`` once everything is in place. ``assembled``: what
    assembling ``items`` already left out, added to the summary; ``consensus_prompts``: how
    many prompts of a consensus assembled so had two or more tutors.
    """
    opts = dataclasses.replace(options, **fields) if options is not None else ExportOptions(**fields)
    if opts.fmt in RUBRIC_FORMATS:  # the rubric layouts have their own writer (core/rubric_export.py)
        try:
            return export_rubric_format(store, fmt=opts.fmt, out=opts.out, domain=opts.domain, tutor=opts.tutor,
                                        grades_from=opts.grades_from, keep_tutor_names=opts.keep_tutor_names)
        except RubricError as e:
            raise ExportError(str(e)) from None
    with collector.sparse():  # full collections were a quarter of an export's time
        return _Export(store, opts, items, on_progress, assembled, consensus_prompts).run()


def _as_time(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class _Tally:
    """What one split's rows hold, counted as they stream."""

    def __init__(self, *, by_set: bool) -> None:
        self.rows = self.judgments = self.pairs = self.prompt_count = 0
        self.domains: set[str] = set()
        self._by_set = by_set
        self._prompts: set[str] = set()
        self._last: str | None = None

    def item(self, item: JudgedItem) -> None:
        self.judgments += 1
        self.domains.add(item.domain)
        pid = item.prompt.id
        if self._by_set:
            self._prompts.add(pid)
        elif pid != self._last:  # a stream keeps a prompt's items together
            self.prompt_count += 1
        self._last = pid

    @property
    def prompts(self) -> int:
        return len(self._prompts) if self._by_set else self.prompt_count


def _counted(chunks: Iterable[list[dict[str, Any]]], tally: _Tally) -> Iterator[list[dict[str, Any]]]:
    for rows in chunks:
        tally.rows += len(rows)
        yield rows


class _Export:
    """One run of :func:`export_dataset`."""

    def __init__(self, store, opts: ExportOptions, items, on_progress, assembled, consensus_prompts) -> None:
        self.store, self.opts, self.on_progress = store, opts, on_progress
        check_format(opts.fmt)
        self.fmt = opts.fmt
        self.out = Path(opts.out).expanduser()
        self.kind = output_kind(self.out)
        if self.fmt == "judgments":
            if self.kind != "jsonl":
                raise ExportError(f"{self.out}: the judgments format is written as a .jsonl file")
            for flag in ("consensus", "adjudicated"):
                if getattr(opts, flag):
                    raise ExportError(f"the judgments format holds each tutor's own judgments; drop --{flag}")
        try:
            self.test_fraction = float(opts.test_fraction)
        except (TypeError, ValueError) as e:
            raise ExportError(f"test fraction must be a number in [0, 1), not {opts.test_fraction!r}") from e
        if not 0.0 <= self.test_fraction < 1.0:
            raise ExportError(f"test fraction must be in [0, 1), not {self.test_fraction}")
        self.split = self.test_fraction > 0
        self.filters = Filters(opts.domain, opts.tutor, _as_time(opts.since), _as_time(opts.until))
        if items is None and store is None:
            raise ExportError("nothing to export: no store and no items")
        if items is not None and self.filters.any():
            raise ExportError("filters select the store's judgments; pre-selected items are exported as they are")
        if opts.adjudicated and store is None:
            raise ExportError("the adjudications are in the store: --adjudicated needs it")
        if not opts.keep_tutor_names and store is None:
            raise ExportError("pseudonymising tutors needs the store (or keep_tutor_names=True)")
        self.selection = Selection(
            store, self.filters, consensus=opts.consensus, adjudicated=opts.adjudicated, items=items
        )
        self.dropped: Counter[str] = Counter(assembled or {})
        self.consensus_prompts = self.selection.several_tutor_prompts() if opts.consensus else consensus_prompts
        self.already = store.pseudonymised_tutors() if self.fmt == "judgments" and store is not None else set()
        self._names: dict[str, str] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        by_set = items is not None
        self.tallies = {"train": _Tally(by_set=by_set), "test": _Tally(by_set=by_set)}
        n = self.selection.count()
        self.total = n * (1 + 2 * self.split) + 1  # the split's own pass, then one per split
        self.done = 0
        self._every = max(1, n // 100)
        self._reported = 0

    # -- helpers ------------------------------------------------------------------------------

    def tutor_name(self, name: str) -> str:
        if self.opts.keep_tutor_names or name == CONSENSUS_TUTOR:  # the consensus is no person
            return name
        p = self._names.get(name)
        if p is None:
            p = self._names[name] = self.store.pseudonym(name)
        return p

    def is_pseudonym(self, name: str) -> bool:
        return not self.opts.keep_tutor_names or name in self.already

    def _read(self, n: int) -> None:
        self.done += n
        if self.on_progress is not None and self.done - self._reported >= self._every and self.done < self.total:
            self._reported = self.done
            self.on_progress(self.done, self.total)

    # -- rows ---------------------------------------------------------------------------------

    def rows(self, which: str, *, form: str = "dicts") -> Iterator[Any]:
        """The rows of one split ("train" is everything without a split), counted. ``form``:
        "dicts", "values" (tuples in the columns' order, a format of ``rows.VALUES`` only) or
        "lines" (JSON lines, a format of ``lines.LINES`` only)."""
        tally = self.tallies[which]
        chunks = self._chunks(which, tally, form)
        if self.opts.consensus and self.fmt in ("kto", "sft"):
            chunks = self._one_label_each(chunks)
        return chain.from_iterable(_counted(chunks, tally))

    def arrow_rows(self, which: str) -> Rows:
        """The rows for the Arrow writers (Parquet, datasets): tuples where the format has
        them (``rows.VALUES``)."""
        values = self.fmt in VALUES
        return Rows(self.rows(which, form="values" if values else "dicts"), values=values)

    def jsonl_rows(self, which: str) -> Rows:
        """The rows for the JSONL writer: lines where the format has them (``lines.LINES``)."""
        if self.fmt in LINES:
            return Rows(self.rows(which, form="lines"), lines=True)
        # where a row's floats may be (files.jsonl_batch_encoder); judgments: free-form values
        return Rows(self.rows(which), floats=numeric_columns(self.fmt), exact=self.fmt == "judgments")

    def _chunks(self, which: str, tally: _Tally, form: str = "dicts") -> Iterator[list[Any]]:
        """The rows, a list per batch of items (paired formats) or per item."""
        fmt, judgments = self.fmt, self.fmt == "judgments"
        # what assembling the items leaves out is counted once, on the first pass
        assembling = self.dropped if which == "train" else None
        paired = fmt in PAIRED
        build = {"dicts": build_rows, "values": build_values}.get(form) or lines_builder(fmt)
        for batch in self.selection.batches(dropped=assembling, on_read=self._read):
            if self.split:
                batch = [it for it in batch if (it.prompt.id in self.test_ids) == (which == "test")]
            if paired:  # a pair is a row: the batch's rows at once
                rows = build(fmt, batch, tutor_name=self.tutor_name, dropped=self.dropped)
                for it in batch:
                    tally.item(it)
                tally.pairs += len(rows)
                yield rows
                continue
            sessions = origins = None
            if judgments and self.store is not None:
                wanted = {sid for it in batch if (sid := it.judgment.session_id) and sid not in self._sessions}
                if wanted:
                    self._sessions.update(self.store.sessions_by_id(wanted))
                sessions = self._sessions
                origins = self.store.origins_by_candidate({c.id for it in batch for c in it.candidates})
            for it in batch:
                rows = build_rows(
                    fmt, (it,), tutor_name=self.tutor_name, include_top_ranked=self.opts.include_top_ranked,
                    dropped=self.dropped, sessions=sessions, origins=origins, is_pseudonym=self.is_pseudonym,
                )  # fmt: skip
                tally.item(it)
                tally.pairs += len(pair_specs(it, bare=True))
                if it.judgment.correction is not None and effective_correction(it) is None:
                    self.dropped[ranking.UNCHANGED_CORRECTION] += 1
                yield rows

    def _one_label_each(self, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        """``one_label_each`` over each prompt's rows (a stream keeps them together)."""
        group: list[dict[str, Any]] = []
        for row in chain.from_iterable(chunks):
            if group and row["prompt_id"] != group[-1]["prompt_id"]:
                yield one_label_each(group, self.dropped)
                group = []
            group.append(row)
        yield one_label_each(group, self.dropped)

    # -- the run ------------------------------------------------------------------------------

    def summary(self, files: list[Path]) -> ExportSummary:
        train, test = self.tallies["train"], self.tallies["test"]
        known = self.selection.prompts()
        summary = ExportSummary(
            format=self.fmt,
            out=self.out,
            files=files,
            rows=train.rows + test.rows,
            train_rows=train.rows,
            test_rows=test.rows,
            judgments=train.judgments + test.judgments,
            prompts=known if known is not None else train.prompts + test.prompts,
            pairs=train.pairs + test.pairs,
            domains=sorted(train.domains | test.domains),
            dropped={why: n for why, n in self.dropped.items() if n},
            consensus_prompts=self.consensus_prompts,
        )
        if self.consensus_prompts == 0:
            summary.notes.append(
                "no prompt was judged by two or more tutors: the consensus is each tutor's own judgment"
            )
        return summary

    def card(self) -> str:
        o = self.opts
        filters = {
            "domain": o.domain,
            "tutor": o.tutor if o.keep_tutor_names or not o.tutor else self.tutor_name(o.tutor),
            "since": self.filters.since,
            "until": self.filters.until,
            "test_fraction": self.test_fraction,
            "seed": o.seed if self.split else None,
        }
        return dataset_card(self.summary([self.out]), filters=filters, pseudonymised=not o.keep_tutor_names)

    def run(self) -> ExportSummary:
        out = self.out
        parent = out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise oserror(out, e) from e
        if not parent.is_dir():
            raise ExportError(f"{out}: cannot write (parent {parent} is not a folder)")
        try:
            self.test_ids = (
                test_prompt_ids(self.selection, test_fraction=self.test_fraction, seed=self.opts.seed,
                                on_read=self._read)  # fmt: skip
                if self.split
                else set()
            )
            if self.kind == "folder":
                files = [out]
                splits = {"train": self.arrow_rows("train"), "test": self.arrow_rows("test")}
                replace_folder(out, lambda tmp: _write_folder(tmp, self.fmt, splits, self.card, self.split))
            else:
                if self.split:
                    files = [out.with_name(f"{out.stem}-{name}{out.suffix}") for name in ("train", "test")]
                else:
                    files = [out]
                targets = [(path, self._file_writer(name)) for path, name in zip(files, ("train", "test"))]
                replace_files(targets, self.kind)
        except ExportError:
            raise
        except OSError as e:
            raise oserror(out, e) from e
        except Exception as e:  # pyarrow / datasets errors: one line, naming the output
            first = (str(e).splitlines() or [""])[0]
            raise ExportError(f"{out}: export failed ({type(e).__name__}: {first})") from e
        summary = self.summary(files)
        if self.on_progress is not None:
            self.on_progress(self.total, self.total)
        return summary

    def _file_writer(self, which: str) -> Callable[[Path], None]:
        # the writers are looked up here, at call time: tests replace them on this module
        if self.kind == "jsonl":
            return lambda tmp: _write_jsonl(tmp, self.jsonl_rows(which))
        return lambda tmp: _write_parquet(tmp, self.fmt, self.arrow_rows(which))
