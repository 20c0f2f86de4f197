"""Bring other hitl-desktop databases (tutors' workstations) into one.

``merge_databases(target, sources)`` adds the sources' rows to ``target``:

* Rows keep their UUIDs. A row whose id is already in the target is skipped, so merging the
  same source twice changes nothing.
  An imported judgment's id is derived from its record (``importing.imported_judgment_id``:
  the prompt's external id and the tutor), so two workstations that imported the same file
  merge into one copy of it, as importing the file twice would.
* The same thing under another id is mapped onto the target's row instead of being added
  ("matched"), and every reference to it is rewritten:

  - a tutor with the same **name** is the same tutor (sessions.tutor_id, judgments.tutor_id);
  - a prompt with the same **external id** is the same prompt (candidates.prompt_id,
    judgments.prompt_id). Prompts without an external id are matched by id only;
  - a candidate of the same (target) prompt with the same **text** is the same candidate
    (rankings.candidate_id, corrections.candidate_id, the ids inside judgments.display_order).
    Identical texts are paired in order: the n-th candidate with text X in the source's prompt
    is the n-th one with text X in the target's (idx order).

  So several tutors' judgments of one item sit together on one prompt and one set of candidates.
* A new candidate for a prompt that already has one at its ``idx`` is given the next free idx.
* Gold ranks (``gold_rankings``, against candidate ids) follow their prompt and candidates
  through the same mapping; a prompt that already has gold ranks in the target keeps them. A
  source from before that table (gold by position in ``prompts.gold_ranking``) gives its ranks
  to its candidates in idx order, as the m0003 migration does.
* Adjudications (core/review.py) come along with their prompt id and the candidate ids in
  their ranking remapped; they are never updated, so the latest one of a prompt, from
  whichever database, is the current one.
* Existing target rows are never modified (a tutor's domains, a prompt's gold ranking stay as
  the target has them). Settings (the pseudonym salt) and the schema records are not merged.

Safety:

* Every source is checked before anything happens and opened READ-ONLY (``Store.open_readonly``):
  a file that is not a hitl-desktop database, or was written by a newer hitl-desktop (schema
  steps this version does not know), is refused with ``NotAHitlDatabase`` and nothing changes.
* The target (a file) is first copied with SQLite's online backup API by
  ``core.backup.backup_database(target, reason="merge")``: a checked copy in the rolling
  ``backups/`` folder next to it, ``<stem>-<UTC timestamp>-merge.db`` (``MergeSummary.backup``),
  restorable with ``hitl-desktop restore``.
* The whole merge, all sources together, is ONE transaction: on any error nothing is merged.

An older source (fewer schema steps) merges too: its rows carry the columns it has, and the
target's defaults fill the rest. A future schema step that renames or repurposes a column of a
merged table must revisit this module.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_desktop.core.collector import paused as paused_gc
from hitl_desktop.core.rubric_merge import RubricMergePlans
from hitl_desktop.core.store import NotAHitlDatabase, Store, StoreError
from hitl_desktop.core.wording import count

#: on_progress(fraction 0..1, message), as in backends.base.ProgressCallback.
ProgressCallback = Callable[[float, str], None]

TABLES = Store.MERGE_TABLES

#: Source rows read, planned and inserted at a time (memory is bounded by a batch).
BATCH_SIZE = 5_000


class MergeError(StoreError):
    """A merge failed part-way; the target was rolled back and is unchanged."""


@dataclass
class MergeSummary:
    """What a merge did, per table.

    ``added``: new rows. ``skipped``: rows already in the target (same id; for rankings: those
    of a skipped judgment). ``matched``: rows that are the same thing as a target row under
    another id (tutor name, prompt external id, candidate text) and were mapped onto it.
    """

    sources: list[str] = field(default_factory=list)
    backup: str | None = None
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    matched: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    @property
    def total_added(self) -> int:
        return sum(self.added.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "backup": self.backup,
            "added": dict(self.added),
            "skipped": dict(self.skipped),
            "matched": dict(self.matched),
        }

    def __str__(self) -> str:
        parts = [
            f"{t}: +{self.added[t]}"
            + (f" ({self.matched[t]} matched)" if self.matched[t] else "")
            + (f" ({self.skipped[t]} already there)" if self.skipped[t] else "")
            for t in TABLES
        ]
        return f"merged {count(len(self.sources), 'database')}: " + ", ".join(parts)


def open_sources(target: Store, sources: Sequence[str | os.PathLike[str]]) -> list[Store]:
    """Open every source read-only, or refuse (closing those already open) with a clear message."""
    opened: list[Store] = []
    try:
        for src in sources:
            p = Path(src)
            if target.path is not None and p.exists() and Path(target.path).exists():
                try:
                    same = os.path.samefile(p, target.path)
                except OSError:
                    same = False
                if same:
                    raise NotAHitlDatabase(f"{p}: is the target database itself")
            opened.append(Store.open_readonly(p))
    except BaseException:
        for s in opened:
            s.close()
        raise
    return opened


def merge_databases(
    target: Store,
    sources: Sequence[str | os.PathLike[str]],
    *,
    on_progress: ProgressCallback | None = None,
    backup: bool = True,
) -> MergeSummary:
    """Merge ``sources`` (database files) into ``target``: one transaction, backup first.

    Raises ``NotAHitlDatabase`` (a source refused; nothing done), ``StoreError`` (backup
    failed; nothing done) or ``MergeError`` (the merge failed and was rolled back).
    """
    stores = open_sources(target, sources)
    summary = MergeSummary(sources=[str(s.path) for s in stores])
    if not stores:
        return summary
    try:
        if backup and target.path is not None:
            from hitl_desktop.core.backup import backup_database

            summary.backup = str(backup_database(target, reason="merge"))
        counts = [s.table_counts() for s in stores]
        total = sum(sum(c.values()) for c in counts) or 1
        progress = _Progress(on_progress, total)
        merger = _Merger(target, summary, progress)
        try:
            with paused_gc(), target.db.atomic():
                for src in stores:
                    merger.merge(src)
        except StoreError as e:
            raise MergeError(f"merge failed, nothing merged: {e}") from e
        except Exception as e:
            raise MergeError(f"merge failed, nothing merged: {type(e).__name__}: {e}") from e
        progress.report(1.0, "merged")
    finally:
        for s in stores:
            s.close()
    return summary


#: Tables planned on rows as tuples (``_plan_<table>(rows, column -> position)``).
_TUPLE_PLANS = frozenset({"candidates", "judgments", "rankings"})


def _replaced(row: tuple, values: dict[int, Any]) -> tuple:
    """``row`` with the values at some positions replaced."""
    out = list(row)
    for i, v in values.items():
        out[i] = v
    return tuple(out)


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def advance(self, n: int, message: str) -> None:
        self.done += n
        self.report(min(1.0, self.done / self.total), message)

    def report(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(fraction, message)


class _Merger(RubricMergePlans):
    """Plans and inserts one source after another, inside the caller's transaction.

    Remapping tables (source id -> target id) only hold rows that were matched; every other id
    stays as it is. Because the target is queried inside the transaction, rows added from an
    earlier source (or batch) are seen by later ones.
    """

    def __init__(self, target: Store, summary: MergeSummary, progress: _Progress) -> None:
        self.t = target
        self.s = summary
        self.progress = progress
        self.tutor_map: dict[str, str] = {}
        self.prompt_map: dict[str, str] = {}
        self.candidate_map: dict[str, str] = {}
        # target prompt id -> (text -> candidate ids in idx order, used idx values)
        self.cand_keys: dict[str, tuple[dict[str, list[str]], set[int]]] = {}
        self.skipped_judgments: set[str] = set()
        self._gold_added: set[str] = set()
        self._gold_keys: set[tuple[str, str]] = set()
        # candidates come grouped by source prompt: how often each text was seen in this one
        self._cand_src_prompt: str | None = None
        self._occurrences: Counter[str] = Counter()
        # (judgment id, candidate id) of the rankings planned in this batch and the one before
        # (a judgment's rankings are contiguous, so they span at most two batches)
        self._ranking_keys: tuple[set[tuple[str, str]], set[tuple[str, str]]] = (set(), set())

    def merge(self, src: Store) -> None:
        name = Path(src.path).name if src.path else "source"
        self._gold_added = set()
        for table in TABLES:
            if not src.has_table(table) and table != "gold_rankings":  # an older source
                # (no adjudications yet); one without gold_rankings still has its gold by
                # position, which Store.iter_raw_rows turns into rows
                continue
            self._cand_src_prompt = None
            if table in _TUPLE_PLANS:  # the big tables: rows as tuples, no dict per row
                columns = src.raw_columns(table)
                plan_rows = getattr(self, f"_plan_{table}")
                at = {c: i for i, c in enumerate(columns)}
                for batch in src.iter_raw_rows(table, batch_size=BATCH_SIZE, as_tuples=True):
                    rows = plan_rows(batch, at)
                    self.t.insert_raw_rows(table, rows, columns)
                    self.s.added[table] += len(rows)
                    self.progress.advance(len(batch), f"{name}: {table}")
                continue
            plan = getattr(self, f"_plan_{table}")
            for batch in src.iter_raw_rows(table, batch_size=BATCH_SIZE):
                rows = plan(batch)
                self.t.insert_raw_rows(table, rows)
                self.s.added[table] += len(rows)
                self.progress.advance(len(batch), f"{name}: {table}")

    # -- one plan per table: rows to insert (remapped); counts skipped and matched ------------

    def _present(self, table: str, batch: list[dict[str, Any]]) -> set[str]:
        return self._present_ids(table, [r["id"] for r in batch])

    def _present_ids(self, table: str, ids: list[str]) -> set[str]:
        present = self.t.existing_ids(table, ids)
        if present:
            self.s.skipped[table] += sum(1 for i in ids if i in present)
        return present

    def _plan_tutors(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("tutors", batch)
        rest = [r for r in batch if r["id"] not in present]
        by_name = self.t.tutor_ids_by_name(r["name"] for r in rest)
        out = []
        for r in rest:
            tid = by_name.get(r["name"])
            if tid is not None:
                self.tutor_map[r["id"]] = tid
                self.s.matched["tutors"] += 1
            else:
                out.append(r)
        return out

    def _plan_sessions(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("sessions", batch)
        out = []
        for r in batch:
            if r["id"] in present:
                continue
            out.append({**r, "tutor_id": self.tutor_map.get(r["tutor_id"], r["tutor_id"])})
        return out

    def _plan_prompts(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("prompts", batch)
        rest = [r for r in batch if r["id"] not in present]
        by_ext = self.t.prompt_ids_by_external_id(
            r["external_id"] for r in rest if r["external_id"] is not None
        )
        out = []
        for r in rest:
            pid = by_ext.get(r["external_id"]) if r["external_id"] is not None else None
            if pid is not None:
                self.prompt_map[r["id"]] = pid
                self.s.matched["prompts"] += 1
            else:
                out.append(r)
        return self._plan_prompts_gold_free(out)

    def _keys_for(self, prompt_ids: set[str]) -> None:
        missing = [p for p in prompt_ids if p not in self.cand_keys]
        for pid in missing:
            self.cand_keys[pid] = ({}, set())
        for pid, cid, idx, text in self.t.candidate_keys(missing):
            by_text, used = self.cand_keys[pid]
            by_text.setdefault(text, []).append(cid)
            used.add(idx)

    def _plan_candidates(self, batch: list[tuple], at: dict[str, int]) -> list[tuple]:
        i_id, i_pid, i_idx, i_text = at["id"], at["prompt_id"], at["idx"], at["text"]
        present = self._present_ids("candidates", [r[i_id] for r in batch])
        pmap = self.prompt_map
        self._keys_for({pmap.get(r[i_pid], r[i_pid]) for r in batch})
        last = pmap.get(batch[-1][i_pid], batch[-1][i_pid])
        cand_keys, occurrences, cmap = self.cand_keys, self._occurrences, self.candidate_map
        out = []
        for r in batch:
            src_pid, text, cid = r[i_pid], r[i_text], r[i_id]
            if src_pid != self._cand_src_prompt:
                self._cand_src_prompt = src_pid
                occurrences.clear()
            pid = pmap.get(src_pid, src_pid)
            by_text, used = cand_keys[pid]
            nth = occurrences[text]
            occurrences[text] = nth + 1
            same_text = by_text.get(text)
            if same_text is None:
                same_text = by_text[text] = []
            if present and cid in present:
                continue
            if nth < len(same_text):
                cmap[cid] = same_text[nth]
                self.s.matched["candidates"] += 1
                continue
            idx = r[i_idx] if r[i_idx] is not None else 0
            if idx in used:
                idx = max(used) + 1
            used.add(idx)
            same_text.append(cid)
            if pid != src_pid or idx != r[i_idx] or type(idx) is not type(r[i_idx]):
                r = _replaced(r, {i_pid: pid, i_idx: idx})
            out.append(r)
        # keep only the prompt in progress (it may go on in the next batch); the others are in
        # the target once this batch is inserted and are read again from there if need be
        self.cand_keys = {last: cand_keys[last]}
        return out

    def _plan_judgments(self, batch: list[tuple], at: dict[str, int]) -> list[tuple]:
        i_id, i_pid, i_tid = at["id"], at["prompt_id"], at["tutor_id"]
        i_order = at.get("display_order")
        present = self._present_ids("judgments", [r[i_id] for r in batch])
        self.skipped_judgments.update(present)
        pmap, tmap, cmap = self.prompt_map, self.tutor_map, self.candidate_map
        if not (present or pmap or tmap or cmap):
            return batch  # nothing to skip or remap
        out = []
        for r in batch:
            if present and r[i_id] in present:
                continue
            change = {}
            if pmap and r[i_pid] in pmap:
                change[i_pid] = pmap[r[i_pid]]
            if tmap and r[i_tid] in tmap:
                change[i_tid] = tmap[r[i_tid]]
            order = r[i_order] if i_order is not None else None
            if order and cmap:
                ids = json.loads(order)
                remapped = [cmap.get(c, c) for c in ids]
                if remapped != ids:
                    change[i_order] = json.dumps(remapped, separators=(",", ":"))
            out.append(_replaced(r, change) if change else r)
        return out

    def _plan_rankings(self, batch: list[tuple], at: dict[str, int]) -> list[tuple]:
        i_jid, i_cid = at["judgment_id"], at["candidate_id"]
        before, _ = self._ranking_keys
        current: set[tuple[str, str]] = set()
        self._ranking_keys = (current, before)
        skipped, cmap = self.skipped_judgments, self.candidate_map
        if not cmap:  # no candidate mapped: no two can land on one, no key to keep
            self._ranking_keys = (set(), set())
            if not skipped:
                return batch
            out = [r for r in batch if r[i_jid] not in skipped]
            self.s.skipped["rankings"] += len(batch) - len(out)
            return out
        out = []
        for r in batch:
            if r[i_jid] in skipped:
                self.s.skipped["rankings"] += 1
                continue
            cid = cmap.get(r[i_cid], r[i_cid])
            key = (r[i_jid], cid)
            if key in current or key in before:  # two candidates landed on one: keep one rank
                self.s.skipped["rankings"] += 1
                continue
            current.add(key)
            out.append(_replaced(r, {i_cid: cid}) if cid != r[i_cid] else r)
        return out

    def _plan_prompts_gold_free(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "gold_ranking": None} if r.get("gold_ranking") else r for r in rows]

    def _plan_gold_rankings(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        mapped = [
            {
                **r,
                "prompt_id": self.prompt_map.get(r["prompt_id"], r["prompt_id"]),
                "candidate_id": self.candidate_map.get(r["candidate_id"], r["candidate_id"]),
            }
            for r in batch
        ]
        # prompts whose gold came from this merge (an earlier batch) may take more of it
        has_gold = self.t.gold_prompt_ids_among({r["prompt_id"] for r in mapped}) - self._gold_added
        out = []
        for r in mapped:
            key = (r["prompt_id"], r["candidate_id"])
            if r["prompt_id"] in has_gold or key in self._gold_keys:
                self.s.skipped["gold_rankings"] += 1
                continue
            self._gold_keys.add(key)
            self._gold_added.add(r["prompt_id"])
            out.append(r)
        return out

    def _plan_corrections(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("corrections", batch)
        out = []
        for r in batch:
            if r["id"] in present:
                continue
            if r["judgment_id"] in self.skipped_judgments:  # the target's judgment stays as it is
                self.s.skipped["corrections"] += 1
                continue
            cid = r["candidate_id"]
            out.append(
                {**r, "candidate_id": None if cid is None else self.candidate_map.get(cid, cid)}
            )
        return out

    def _plan_guidelines(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Guideline versions the target lacks (a version is its text: same key, same text)."""
        have = self.t.guideline_keys()
        out = []
        for r in batch:
            key = (r["domain"], r["version"])
            if key in have:
                self.s.skipped["guidelines"] += 1
                continue
            have.add(key)
            out.append(r)
        return out

    def _plan_adjudications(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = self._present("adjudications", batch)
        out = []
        for r in batch:
            if r["id"] in present:
                continue
            row = {**r, "prompt_id": self.prompt_map.get(r["prompt_id"], r["prompt_id"])}
            if self.candidate_map:
                ranks = json.loads(r["ranking"])
                row["ranking"] = json.dumps(
                    {self.candidate_map.get(c, c): rank for c, rank in ranks.items()},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
            out.append(row)
        return out
