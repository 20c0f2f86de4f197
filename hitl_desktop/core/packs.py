"""Work packs: a lab's prompts shared out among its tutors (``hitl-desktop assign``).

A pack is an ordinary hitl-desktop database, ``DIR/<tutor>.db``, built fresh for one tutor:

- that tutor's share of the lab's prompts: each non-gold prompt goes to ``overlap`` tutors
  (default 2), the tutors' loads within one of each other; prompts are taken in an order
  fixed by their ids, so assigning twice gives the same packs;
- the lab's candidates for them (recorded with origin ``pack``: never regenerated away);
  a prompt without candidates is refused (run ``generate`` on the lab's database first);
- every gold prompt the tutor has not judged yet, mixed in unmarked: no gold answer key, no
  telling source, all prompts in one order fixed by a hash (the file is written fresh, so no
  freed page holds a key either);
- the domain guidelines with their versions (so a merged judgment's version resolves);
- the tutor's name (setting ``pack_tutor``): the app opens the pack as that tutor;
- each prompt's lab rubric (the approved version, core/rubric_store.py), and no grade of anyone's.

Re-assigning after some packs came back (merged into the lab's database) gives the
remaining work only: a prompt already judged by ``overlap`` tutors is done, and no tutor gets
a prompt they judged. Packs come back with ``hitl-desktop merge``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import Prompt, Tutor, now_iso
from hitl_desktop.core.wording import count
from hitl_desktop.core.workflow import PACK_TUTOR_KEY

DEFAULT_OVERLAP = 2
_TUTOR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PackError(StoreError):
    """An assignment refused, with a message for the lead; nothing was written."""


@dataclass
class Pack:
    tutor: str
    path: Path
    prompts: list[str] = field(default_factory=list)  # non-gold prompt ids
    gold: list[str] = field(default_factory=list)  # gold prompt ids
    candidates: int = 0


@dataclass
class AssignSummary:
    packs: list[Pack]
    overlap: int
    short: int = 0  # prompts that could not get ``overlap`` tutors (too few left who had not judged them)

    def __str__(self) -> str:
        parts = [f"{p.tutor}: {count(len(p.prompts), 'prompt')} + {len(p.gold)} gold -> {p.path}" for p in self.packs]
        tail = f"; {count(self.short, 'prompt')} short of {self.overlap} tutors" if self.short else ""
        return f"wrote {count(len(self.packs), 'pack')} (overlap {self.overlap}): " + "; ".join(parts) + tail


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _prompt_key(p: Prompt) -> str:
    return p.external_id or p.id


def check_tutors(tutors: list[str]) -> list[str]:
    names = [t.strip() for t in tutors if t.strip()]
    if not names:
        raise PackError("--tutors: name at least one tutor")
    bad = [t for t in names if not _TUTOR_NAME_RE.match(t)]
    if bad:
        raise PackError(f"--tutors: {bad[0]!r} cannot name a pack file (letters, digits, '.', '_', '-')")
    if len(set(names)) != len(names):
        raise PackError("--tutors: a tutor is named twice")
    return names


def plan_assignment(
    lab: Store, *, tutors: list[str], overlap: int = DEFAULT_OVERLAP, domain: str | None = None, limit: int | None = None
) -> tuple[dict[str, list[Prompt]], list[Prompt], dict[tuple[str, str], bool], int]:
    """Who gets which prompt: (tutor -> non-gold prompts, gold prompts, judged, short).

    ``judged[(prompt id, tutor name)]`` is True when that tutor judged the prompt already.
    """
    names = check_tutors(tutors)
    if overlap < 1:
        raise PackError("--overlap: must be at least 1")
    if overlap > len(names):
        raise PackError(f"--overlap {overlap}: more than the {count(len(names), 'tutor')} named")
    prompts = [p for p in lab.all_prompts(domain=domain) if p.parent_judgment_id is None]
    gold_ids = lab.gold_prompt_ids()
    tutor_names = {t.id: t.name for t in lab.tutors()}
    judges: dict[str, set[str]] = {}
    for pid, tid in lab.judging_tutor_ids(p.id for p in prompts):
        judges.setdefault(pid, set()).add(tutor_names.get(tid, tid))
    gold = sorted((p for p in prompts if p.id in gold_ids), key=lambda p: _key(_prompt_key(p)))
    work = [p for p in prompts if p.id not in gold_ids and len(judges.get(p.id, ())) < overlap]
    work.sort(key=lambda p: _key(_prompt_key(p)))
    if limit is not None:
        work = work[:limit]
    load = dict.fromkeys(names, 0)
    share: dict[str, list[Prompt]] = {t: [] for t in names}
    short = 0
    for p in work:
        done = judges.get(p.id, set())
        need = overlap - len(done)
        eligible = sorted((t for t in names if t not in done), key=lambda t: (load[t], _key(_prompt_key(p), t)))
        if len(eligible) < need:
            short += 1
        for t in eligible[:need]:
            share[t].append(p)
            load[t] += 1
    judged = {(pid, t): True for pid, ts in judges.items() for t in ts}
    return share, gold, judged, short


def assign(
    lab: Store,
    *,
    tutors: list[str],
    out_dir: str | os.PathLike[str],
    overlap: int = DEFAULT_OVERLAP,
    domain: str | None = None,
    limit: int | None = None,
    guidelines: GuidelineLibrary | None = None,
) -> AssignSummary:
    """Write one pack per tutor into ``out_dir`` (see the module docstring); the lab's
    database is only read. Refuses (``PackError``, nothing written) a prompt without candidates."""
    share, gold, judged, short = plan_assignment(lab, tutors=tutors, overlap=overlap, domain=domain, limit=limit)
    needed = {p.id: p for ps in share.values() for p in ps} | {p.id: p for p in gold}
    candidates = {pid: lab.current_candidates(pid) for pid in needed}
    missing = [p for pid, p in needed.items() if len(candidates[pid]) < 2]
    if missing:
        example = _prompt_key(missing[0])
        raise PackError(
            f"{count(len(missing), 'prompt')} {'has' if len(missing) == 1 else 'have'} no candidates (e.g. {example}); run "
            f"`hitl-desktop generate --db {lab.path}` first, so every tutor judges the lab's candidates"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PackError(f"{out}: cannot create folder ({e.strerror})") from e
    library = guidelines or GuidelineLibrary()
    domains = sorted({p.domain for p in needed.values()})
    guideline_rows = _guidelines_for(lab, library, domains)
    lab_tutors = {t.name: t for t in lab.tutors()}
    rubric_rows = lab.rubrics.lab_rubric_rows(needed)  # the approved rubrics, never a grade
    packs = []
    for name, mine in share.items():
        golds = [p for p in gold if not judged.get((p.id, name))]
        pack = Pack(tutor=name, path=out / f"{name}.db", prompts=[p.id for p in mine], gold=[p.id for p in golds])
        pack.candidates = _write_pack(
            pack.path,
            tutor=lab_tutors.get(name) or Tutor(name=name),
            prompts=[*mine, *golds],
            candidates=candidates,
            guideline_rows=guideline_rows,
            rubric_rows=rubric_rows,
        )
        packs.append(pack)
    return AssignSummary(packs=packs, overlap=overlap, short=short)


def _guidelines_for(lab: Store, library: GuidelineLibrary, domains: list[str]) -> list[dict[str, str]]:
    """The lab's guideline versions for these domains; the lead's current ones where the lab
    database keeps none."""
    rows = lab.guideline_rows(domains)
    have = {r["domain"] for r in rows}
    for d in domains:
        if d not in have:
            g = library.current(d)
            rows.append({"domain": d, "version": g.version, "text": g.text, "created_at": now_iso()})
    return rows


def _write_pack(
    path: Path,
    *,
    tutor: Tutor,
    prompts: list[Prompt],
    candidates: dict[str, list],
    guideline_rows: list[dict[str, str]],
    rubric_rows: dict[str, list[dict]] | None = None,
) -> int:
    """Build the pack in a new file (nothing of the lab's key was ever written to it), then
    move it into place."""
    tmp = path.with_name(f".{path.name}.partial")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    created = now_iso()
    ordered = sorted(prompts, key=lambda p: _key(tutor.name, _prompt_key(p)))
    clean = [
        Prompt(
            id=p.id,
            text=p.text,
            domain=p.domain,
            messages=p.messages,
            external_id=p.external_id,
            source="pack",
            gold_ranking=None,  # never the answer key
            created_at=created,
        )
        for p in ordered
    ]
    cands = [c for p in ordered for c in candidates[p.id]]
    store = Store.open(tmp)
    try:
        store.bulk_insert(tutors=[tutor], prompts=clean, candidates=cands)
        store.set_candidate_origin("pack")
        for r in guideline_rows:
            store.save_guideline_version(domain=r["domain"], version=r["version"], text=r["text"])
        store.set_setting(PACK_TUTOR_KEY, tutor.name)
        if rubric_rows:
            ids = {p.id for p in ordered}
            rubric_ids = {r["id"] for r in rubric_rows["rubrics"] if r["prompt_id"] in ids}
            store.rubrics.insert_raw({
                "rubrics": [r for r in rubric_rows["rubrics"] if r["id"] in rubric_ids],
                "criteria": [c for c in rubric_rows["criteria"] if c["rubric_id"] in rubric_ids],
            })
        store.vacuum()
    finally:
        store.close()
    for suffix in ("-wal", "-shm"):  # an earlier pack's, never to be applied to this one
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, path)
    return len(cands)
