"""The lead's review: judgment history, prompts by disagreement, adjudication.

No Qt and no SQL here (the store runs the queries); the history view and the review mode in
``qt/`` and ``export --adjudicated`` in the CLI call these functions.

History
    ``history(store, ...)``: judgments newest first, searchable by prompt text, tutor,
    domain and flag, for one session or (a lead) all of them.

Disagreement
    ``disagreements(store)``: the prompts two or more tutors ranked (each tutor by their
    latest judgment, as in core/agreement.py), with the mean and the lowest Kendall tau-b over
    every two tutors' rankings of the prompt; lowest mean first (most disagreement), prompts
    whose tau is undefined (e.g. a tutor tied everything) last.

Adjudication (**rules**)
    ``adjudicate(store, prompt_id=..., ranks=..., rationale=..., adjudicator=...)`` records
    a lead's ranking of a prompt's candidates (candidate id -> rank, 1 = best, ties allowed):
    every ranked candidate must belong to the prompt, ranks are positive integers, two or
    more candidates are ranked, and the rationale and the adjudicator's name are not empty.
    Adjudicating a prompt again **supersedes** the earlier ruling: every adjudication is
    kept (audit trail, never updated or deleted), and the current one is the latest
    (``created_at``, then id). Merging databases brings adjudications along.

Export with adjudications
    ``adjudicated_items(items, adjudications, candidates, consensus=...)`` gives the items
    ``export --adjudicated`` writes. A prompt with a current adjudication becomes ONE
    judgment by the adjudicator (tutor name = the adjudicator, judgment id = the
    adjudication's id, ranks = the adjudicated ranking, strength = the median (lower) of the
    tutors' strengths, rationale = the adjudication's; created_at the adjudication's), and
    each tutor's correction of it is still counted: that tutor's (latest) item carried with
    ``correction_only`` (as a consensus carries its members' corrections), so only its
    correction rows are written; an unchanged correction counts for nothing. Every other prompt
    keeps its per-tutor judgments, or its consensus (majority pairs) when ``consensus`` is true.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from hitl_desktop.core.agreement import latest_by_tutor, tau_b
from hitl_desktop.core.consensus import (
    consensus_items,
    count_unchanged_corrections,
    ranked_pairs,
    several_tutor_prompts,
)
from hitl_desktop.core.ranking import (
    UNCHANGED_CORRECTION,
    RankingError,
    effective_correction,
    ranked_nothing,
    validate_judgment,
    validate_ranks,
)
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import (
    ADJUDICATION_TUTOR_ID,
    FLAGS,
    Adjudication,
    Candidate,
    JudgedItem,
    Judgment,
    Prompt,
)


class ReviewError(ValueError):
    """An adjudication that breaks the rules; the message says which."""


# -- history ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One judgment as the history view lists it."""

    id: str
    created_at: str
    prompt_id: str
    prompt: str
    tutor: str
    domain: str
    flags: tuple[str, ...]
    all_bad: bool
    corrected: bool
    candidates: int
    rationale: str


def history(
    store: Store,
    *,
    session_id: str | None = None,
    text: str = "",
    tutor: str | None = None,
    domain: str | None = None,
    flag: str | None = None,
    limit: int | None = 2000,
    include_superseded: bool = False,
) -> list[HistoryEntry]:
    """Judgments, newest first: one session's (``session_id``) or all of them (``None``),
    narrowed by prompt text (contains), tutor name, domain and flag. Only each judgment's newest
    version, unless ``include_superseded`` (re-judged versions are kept for audit)."""
    if flag and flag not in FLAGS:
        raise ReviewError(f"flag: {flag!r} is not one of {', '.join(FLAGS)}")
    rows = store.judgment_history(
        session_id=session_id, tutor=tutor or None, domain=domain or None,
        text=text.strip() or None, flag=flag or None, limit=limit,
        include_superseded=include_superseded,
    )  # fmt: skip
    return [HistoryEntry(**{**r, "flags": tuple(r["flags"])}) for r in rows]


# -- disagreement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """A prompt several tutors ranked, with how much they agree."""

    prompt: Prompt
    domain: str
    tutors: tuple[str, ...]  # names, sorted
    mean_tau: float | None  # mean Kendall tau-b over every two tutors (None: undefined)
    min_tau: float | None
    adjudicated: bool


def _taus(judged: Mapping[str, JudgedItem]) -> list[float]:
    taus = []
    for t1, t2 in combinations(sorted(judged), 2):
        tau = tau_b(judged[t1].judgment.ranks, judged[t2].judgment.ranks)
        if tau is not None:
            taus.append(tau)
    return taus


def disagreements(store: Store, *, domain: str | None = None) -> list[Disagreement]:
    """Prompts ranked by two or more tutors, most disagreement first (module docstring). The
    judgments are read a prompt at a time (core/judged_reader.py): only the answer is kept."""
    from hitl_desktop.core.judged_reader import Filters, JudgedReader

    out = []
    for batch in JudgedReader(store, Filters(domain=domain)).batches(by_prompt=True):
        latest = {pid: judged for pid, judged in latest_by_tutor(batch).items() if len(judged) >= 2}
        if not latest:
            continue
        adjudicated = {a.prompt_id for a in store.adjudications(prompt_ids=list(latest))}
        for judged in latest.values():
            taus = _taus(judged)
            last = max(judged.values(), key=lambda i: i.judgment.created_at)
            out.append(
                Disagreement(
                    prompt=last.prompt,
                    domain=last.domain,
                    tutors=tuple(sorted(i.tutor_name for i in judged.values())),
                    mean_tau=sum(taus) / len(taus) if taus else None,
                    min_tau=min(taus) if taus else None,
                    adjudicated=last.prompt.id in adjudicated,
                )
            )
    out.sort(key=lambda d: (d.mean_tau is None, d.mean_tau or 0.0, d.min_tau or 0.0, d.prompt.created_at))
    return out


# -- one prompt side by side -------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review mode shows of one prompt."""

    prompt: Prompt
    candidates: list[Candidate]  # all of the prompt's, in generated order
    judged: list[JudgedItem]  # each tutor's latest judgment, by tutor name
    adjudication: Adjudication | None  # the current one
    history: list[Adjudication]  # every adjudication of the prompt, oldest first


def review_item(store: Store, prompt_id: str) -> ReviewItem:
    prompt = store.get_prompt(prompt_id)
    judged = latest_by_tutor(store.judged_items(prompt_id=prompt_id)).get(prompt_id, {})
    every = store.adjudications(prompt_ids=[prompt_id], current_only=False)
    return ReviewItem(
        prompt=prompt,
        candidates=store.candidates_for(prompt_id),
        judged=sorted(judged.values(), key=lambda i: (i.tutor_name, i.judgment.id)),
        adjudication=every[-1] if every else None,
        history=every,
    )


def consensus_ranks(item: ReviewItem) -> dict[str, int]:
    """The tutors' consensus ranking of the prompt, where the adjudicated column starts: ranked
    pairs over each tutor's latest ranks (core/consensus.py), in generated order; an "all bad"
    judgment that ranked nothing abstains, as in ``export --consensus``."""
    ballots = [m.judgment.ranks for m in item.judged if not ranked_nothing(m.judgment)]
    ranked = {c for b in ballots for c in b}
    return ranked_pairs(ballots, [c.id for c in item.candidates if c.id in ranked])


# -- adjudication ------------------------------------------------------------------------------


def check_adjudication(adjudication: Adjudication, candidate_ids: Iterable[str]) -> None:
    """Raise ReviewError unless the adjudication follows the rules (module docstring)."""
    a = adjudication
    known = list(candidate_ids)
    if not a.adjudicator.strip():
        raise ReviewError("adjudicator: a name is needed")
    if not a.rationale.strip():
        raise ReviewError("rationale: say why (an adjudication needs a rationale)")
    if len(a.ranks) < 2:
        raise ReviewError("ranking: rank two or more candidates")
    try:  # the ranks follow a judgment's rules
        validate_judgment(Judgment(prompt_id=a.prompt_id, tutor_id=ADJUDICATION_TUTOR_ID, ranks=a.ranks), known)
    except RankingError as e:
        raise ReviewError(str(e)) from e


def adjudicate(
    store: Store, *, prompt_id: str, ranks: Mapping[str, int], rationale: str, adjudicator: str
) -> Adjudication:
    """Record a lead's ranking of a prompt; it supersedes any earlier one (module docstring)."""
    adjudication = Adjudication(
        prompt_id=prompt_id, ranks=dict(ranks), rationale=rationale.strip(), adjudicator=adjudicator.strip()
    )
    check_adjudication(adjudication, [c.id for c in store.candidates_for(prompt_id)])
    return store.add_adjudication(adjudication)


def find_prompt(store: Store, ref: str) -> Prompt:
    """A prompt by its external id (as imported), else by its id; ReviewError when none."""
    found = store.prompts_by_external_id([ref]).get(ref)
    if found is not None:
        return found
    try:
        return store.get_prompt(ref)
    except StoreError:
        raise ReviewError(f"no prompt {ref!r} (neither an imported id nor a prompt id)") from None


def adjudicate_in_order(
    store: Store, *, prompt: str, ranking: Sequence[object], rationale: str, adjudicator: str
) -> Adjudication:
    """``adjudicate`` with the prompt by reference (``find_prompt``) and one rank per candidate
    in generated order, as an import file's ``ranking`` (the command line's way)."""
    p = find_prompt(store, prompt)
    candidates = store.candidates_for(p.id)
    try:
        ranks = validate_ranks(list(ranking), len(candidates))
    except RankingError as e:
        raise ReviewError(str(e)) from e
    return adjudicate(
        store, prompt_id=p.id, ranks={c.id: r for c, r in zip(candidates, ranks, strict=True)},
        rationale=rationale, adjudicator=adjudicator,
    )  # fmt: skip


# -- export ------------------------------------------------------------------------------------


def _adjudicated_item(a: Adjudication, members: list[JudgedItem], candidates: Sequence[Candidate]) -> JudgedItem:
    last = max(members, key=lambda m: (m.judgment.created_at, m.judgment.id))
    ranked = [c for c in candidates if c.id in a.ranks]
    judgment = Judgment(
        id=a.id,
        prompt_id=a.prompt_id,
        tutor_id=ADJUDICATION_TUTOR_ID,
        ranks={c.id: a.ranks[c.id] for c in ranked},
        rationale=a.rationale,
        strength=statistics.median_low(sorted(m.judgment.strength for m in members)),
        guideline_version=last.judgment.guideline_version,
        created_at=a.created_at,
    )
    return JudgedItem(judgment=judgment, prompt=last.prompt, candidates=ranked, tutor_name=a.adjudicator, domain=last.domain)


def adjudicated_items(
    items: Iterable[JudgedItem],
    adjudications: Iterable[Adjudication],
    candidates: Mapping[str, Sequence[Candidate]],
    *,
    consensus: bool = False,
    dropped: Counter[str] | None = None,
) -> list[JudgedItem]:
    """The items ``export --adjudicated`` writes (module docstring).

    ``adjudications``: the current ones; ``candidates``: prompt id -> its candidates.
    ``dropped`` (optional) counts what assembling them left out: the unchanged corrections of
    a ruled prompt's tutors, and what the consensus leaves out (``consensus_items``); the
    exporter counts the rest. Output: prompts in the order they first appear in ``items``."""
    items = list(items)
    current = {a.prompt_id: a for a in adjudications}
    by_prompt: dict[str, list[JudgedItem]] = defaultdict(list)
    for item in items:
        by_prompt[item.prompt.id].append(item)
    rest = [i for i in items if i.prompt.id not in current]
    if consensus:
        rest = consensus_items(rest, dropped)
    rest_by_prompt: dict[str, list[JudgedItem]] = defaultdict(list)
    for item in rest:
        rest_by_prompt[item.prompt.id].append(item)
    out: list[JudgedItem] = []
    for pid, group in by_prompt.items():
        a = current.get(pid)
        if a is None:
            out.extend(rest_by_prompt.pop(pid, []))
            continue
        members = sorted(
            latest_by_tutor(group).get(pid, {}).values(), key=lambda m: (m.judgment.created_at, m.judgment.id)
        )
        if not members:
            continue
        out.append(_adjudicated_item(a, members, candidates.get(pid, ())))
        if dropped is not None and (n := count_unchanged_corrections(members)):
            dropped[UNCHANGED_CORRECTION] += n
        # each tutor's correction carried alone, as in a consensus (core/consensus.py)
        out.extend(dataclasses.replace(m, correction_only=True) for m in members if effective_correction(m) is not None)
    return out


def export_items(
    store: Store,
    *,
    domain: str | None = None,
    tutor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    consensus: bool = False,
    dropped: Counter[str] | None = None,
) -> tuple[list[JudgedItem], int | None]:
    """The store's judgments (filtered) with the current adjudications applied, and (with
    ``consensus``) how many prompts without a ruling two or more tutors judged. ``dropped``:
    as ``adjudicated_items``."""
    items = list(store.judged_items(domain=domain, tutor=tutor, since=since, until=until))
    pids = sorted({i.prompt.id for i in items})
    adjudications = store.adjudications(prompt_ids=pids)
    cands = store.candidates_by_prompt(sorted({a.prompt_id for a in adjudications}))
    ruled = {a.prompt_id for a in adjudications}
    several = several_tutor_prompts(i for i in items if i.prompt.id not in ruled) if consensus else None
    return adjudicated_items(items, adjudications, cands, consensus=consensus, dropped=dropped), several


def describe_ranks(ranks: Mapping[str, int], candidates: Sequence[Candidate]) -> str:
    """A ranking as "A > B = C > D" with the candidates' letters in generated order."""
    letters = {c.id: chr(ord("A") + i) if i < 26 else str(i + 1) for i, c in enumerate(candidates)}
    levels: dict[int, list[str]] = defaultdict(list)
    for c in candidates:
        if c.id in ranks:
            levels[ranks[c.id]].append(letters[c.id])
    return " > ".join(" = ".join(levels[r]) for r in sorted(levels))
