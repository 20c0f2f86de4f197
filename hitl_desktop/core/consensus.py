"""One consensus per prompt where several tutors judged it (``export --consensus``).

``consensus_items(items)`` returns the items to export instead of ``items``. The rule is a
contract (README "Consensus", docs/data-rules.md):

* Each tutor counts with their LATEST judgment of a prompt ("members"). A prompt only one
  tutor judged passes through as that tutor's judgment, unchanged.
* For a prompt with several members, for two candidates a, b, count the members that ranked
  both: ``a > b`` is a consensus pair **iff more of them put a above b than b above a**. A
  member that tied them does not vote; an "all bad" judgment that ranked nothing (every
  candidate at one rank) abstains altogether. Every majority pair is exported, even inside a
  cycle, and no other: never a pair between candidates no member ranked together. The
  consensus item carries these pairs as ``JudgedItem.majorities``; its margin is the vote
  difference (``ranking.consensus_margin``).
* Its ranking (for ``nectar`` and the KTO/SFT "top-ranked" answers) is Tideman's ranked pairs
  over the same votes, as OpenAssistant does: majorities are taken strongest first (larger
  difference, then more votes for, then generated order) and locked in unless they close a
  cycle with those already locked; a candidate's rank is 1 + the longest locked chain above
  it, so candidates no locked pair separates share a rank. So every locked majority holds
  in the ranking; a majority inside a cycle that could not be locked is still exported as a pair.
* The consensus judgment: tutor name and tutor id ``"consensus"``; a deterministic id (uuid5 of
  the prompt id and the sorted member judgment ids); strength = the lower median of the
  members'; ``all_bad`` when more than half of the members said so; flags = every flag any
  member raised on a candidate (so a completion one tutor flagged unsafe is never a desirable
  KTO/SFT example); ratings = per scale the lower median of the members' ratings; created_at,
  guideline version and domain from the latest member; no correction.
* Each member's correction still yields that member's correction pairs: the member's item is
  kept with ``correction_only=True`` (its judgment id and tutor unchanged), and exporters write
  only its correction (pairs against the member's candidates with the member's margins, a KTO
  or SFT row for the correction, a nectar row ranking the correction above the member's
  candidates, which tie).

Output order: by prompt, in the order the prompts first appear in ``items``; a prompt's
consensus item first, then its correction items.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter

from hitl_desktop.core.agreement import latest_by_tutor
from hitl_desktop.core.ranking import (
    ABSTAINED,
    UNCHANGED_CORRECTION,
    effective_correction,
    ranked_nothing,
)
from hitl_desktop.core.types import CONSENSUS_TUTOR, Candidate, JudgedItem, Judgment, Majority

#: Namespace of consensus judgment ids.
CONSENSUS_NAMESPACE = uuid.UUID("6f1b7a52-3c4e-5d0a-9b8e-2f6c1d7e4a90")
_NAMESPACE_BYTES = CONSENSUS_NAMESPACE.bytes

#: Candidates in generated order (then by creation and id).
_GENERATED_ORDER = attrgetter("index", "created_at", "id")


def majorities(ballots: Sequence[Mapping[str, int]], order: Sequence[str]) -> list[Majority]:
    """Every majority pair among ``ballots`` (candidate id -> rank, 1 = best), strongest first.

    ``order`` lists the candidates (generated order; it orders equally strong pairs).
    Only ballots that ranked both candidates vote on a pair; a tie is no vote.
    """
    pos = {c: i for i, c in enumerate(order)}
    if len(pos) == len(order):  # the candidates once each (as a consensus has them)
        return _majorities_of_distinct(ballots, order)
    wins: dict[tuple[str, str], int] = {}
    for ballot in ballots:
        ranked = [c for c in order if c in ballot]
        for i, a in enumerate(ranked):
            ra = ballot[a]
            for b in ranked[i + 1 :]:
                rb = ballot[b]
                if ra < rb:
                    key = (a, b)
                elif rb < ra:
                    key = (b, a)
                else:
                    continue
                wins[key] = wins.get(key, 0) + 1
    # (strength, votes for, positions): the sort key; no two pairs share the positions
    found: list[tuple[int, int, int, int, str, str, int, int]] = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            ab, ba = wins.get((a, b), 0), wins.get((b, a), 0)
            if ab > ba:
                found.append((ba - ab, -ab, pos[a], pos[b], a, b, ab, ba))
            elif ba > ab:
                found.append((ab - ba, -ba, pos[b], pos[a], b, a, ba, ab))
    found.sort()
    return [Majority(w, lo, vf, va) for _, _, _, _, w, lo, vf, va in found]


def _majorities_of_distinct(ballots: Sequence[Mapping[str, int]], order: Sequence[str]) -> list[Majority]:
    """``majorities`` where ``order`` names each candidate once: each pair's votes counted
    over the ballots directly."""
    found: list[tuple[int, int, int, int, str, str, int, int]] = []
    for i, a in enumerate(order):
        with_a = [b for b in ballots if a in b]
        if not with_a:
            continue
        for j in range(i + 1, len(order)):
            b = order[j]
            ab = ba = 0
            for ballot in with_a:
                rb = ballot.get(b)
                if rb is None:
                    continue
                ra = ballot[a]
                if ra < rb:
                    ab += 1
                elif rb < ra:
                    ba += 1
            if ab > ba:
                found.append((ba - ab, -ab, i, j, a, b, ab, ba))
            elif ba > ab:
                found.append((ab - ba, -ba, j, i, b, a, ba, ab))
    found.sort()
    return [Majority(w, lo, vf, va) for _, _, _, _, w, lo, vf, va in found]


def ranked_pairs(ballots: Sequence[Mapping[str, int]], order: Sequence[str]) -> dict[str, int]:
    """Tideman's ranked pairs over ``ballots``; candidate id -> consensus rank (ties share)."""
    return ranking_from_majorities(majorities(ballots, order), order)


def _reaches(beats: Mapping[str, set[str]], start: str, goal: str) -> bool:
    """Whether the locked pairs lead from ``start`` to ``goal`` (or they are one)."""
    if start == goal:
        return True
    first = beats.get(start)
    if not first:
        return False
    stack, seen = list(first), {start}
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            more = beats.get(node)
            if more:
                stack.extend(more)
    return False


def ranking_from_majorities(strongest_first: Sequence[Majority], order: Sequence[str]) -> dict[str, int]:
    """Lock the majorities strongest first unless they close a cycle; rank by longest chain."""
    beats: dict[str, set[str]] = {}  # locked: winner -> losers
    for m in strongest_first:
        if not _reaches(beats, m.loser, m.winner):  # locking winner > loser closes no cycle
            beats.setdefault(m.winner, set()).add(m.loser)
    above: dict[str, list[str]] = {}
    for w, losers in beats.items():
        for lo in losers:
            above.setdefault(lo, []).append(w)
    ranks: dict[str, int] = {}
    return {c: _chain_rank(c, above, ranks) for c in order}


def _chain_rank(c: str, above: Mapping[str, list[str]], ranks: dict[str, int]) -> int:
    """1 + the longest locked chain above ``c`` (memoised in ``ranks``; a module function,
    not a closure calling itself: that would make a reference cycle, garbage the collector
    has to find, per prompt)."""
    r = ranks.get(c)
    if r is None:
        r = 1
        for w in above.get(c, ()):
            r = max(r, _chain_rank(w, above, ranks) + 1)
        ranks[c] = r
    return r


def several_tutor_prompts(items: Iterable[JudgedItem]) -> int:
    """How many prompts two or more tutors judged (consensus tutor items left out)."""
    return sum(1 for judged in latest_by_tutor(items).values() if len(judged) >= 2)


def consensus_items(
    items: Iterable[JudgedItem], dropped: Counter[str] | None = None
) -> list[JudgedItem]:
    """One consensus item per prompt several tutors judged; see the module docstring.

    ``dropped`` (optional) counts what the consensus of several tutors leaves out: abstaining
    all-bad judgments (``ranking.ABSTAINED``) and members' unchanged corrections
    (``ranking.UNCHANGED_CORRECTION``; a prompt one tutor judged passes through, and its
    exporter counts them).
    """
    items = [i for i in items if i.tutor_name != CONSENSUS_TUTOR]
    first_seen: dict[str, int] = {}
    for n, item in enumerate(items):
        first_seen.setdefault(item.prompt.id, n)
    latest = latest_by_tutor(items)
    out: list[JudgedItem] = []
    for pid in sorted(latest, key=first_seen.__getitem__):
        members = sorted(latest[pid].values(), key=lambda i: (i.judgment.created_at, i.judgment.id))
        if len(members) == 1:
            out.append(members[0])
            continue
        voters = [m for m in members if not ranked_nothing(m.judgment)]
        if dropped is not None:
            _count(dropped, ABSTAINED, len(members) - len(voters))
            _count(dropped, UNCHANGED_CORRECTION, count_unchanged_corrections(members))
        if voters:
            out.append(_consensus_item(members, voters))
        out.extend(
            dataclasses.replace(m, correction_only=True)
            for m in members
            if effective_correction(m) is not None
        )
    return out


def _count(dropped: Counter[str], why: str, n: int) -> None:
    if n:
        dropped[why] += n


def count_unchanged_corrections(members: Iterable[JudgedItem]) -> int:
    """How many of these judgments hold a correction equal to the candidate it corrects."""
    return sum(1 for m in members if m.judgment.correction is not None and effective_correction(m) is None)


def consensus_id(name: str) -> str:
    """``str(uuid.uuid5(CONSENSUS_NAMESPACE, name))``, without the UUID object."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _median_low(values: Iterable[int]) -> int:
    """``statistics.median_low`` of a non-empty collection."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _consensus_item(members: list[JudgedItem], voters: list[JudgedItem]) -> JudgedItem:
    by_id: dict[str, Candidate] = {}
    for m in voters:
        ranks = m.judgment.ranks
        for c in m.candidates:
            if c.id in ranks and c.id not in by_id:
                by_id[c.id] = c
    ballots = [{c: r for c, r in m.judgment.ranks.items() if c in by_id} for m in voters]
    candidates = sorted(by_id.values(), key=_GENERATED_ORDER)
    order = [c.id for c in candidates]
    found = majorities(ballots, order)
    last = members[-1]
    prompt_id = last.prompt.id
    member_ids = sorted(m.judgment.id for m in members)
    jid = consensus_id("|".join(["majority", prompt_id, *member_ids]))
    flags: dict[str, set[str]] = {}
    ratings: dict[str, dict[str, list[int]]] = {}
    for m in members:
        j = m.judgment
        for cid, fl in j.flags.items():
            if cid in by_id:
                flags.setdefault(cid, set()).update(fl)
        for cid, scales in j.ratings.items():
            if cid in by_id:
                for scale, value in scales.items():
                    ratings.setdefault(cid, {}).setdefault(scale, []).append(value)
    judgment = Judgment(
        id=jid,
        prompt_id=prompt_id,
        tutor_id=CONSENSUS_TUTOR,
        ranks=ranking_from_majorities(found, order),
        all_bad=sum(m.judgment.all_bad for m in members) * 2 > len(members),
        flags={cid: sorted(fl) for cid, fl in flags.items() if fl},
        ratings={cid: {s: _median_low(v) for s, v in sorted(sc.items())} for cid, sc in ratings.items()},
        rationale=f"consensus (majority pairs) of {len(members)} tutors",
        strength=_median_low([m.judgment.strength for m in members]),
        guideline_version=last.judgment.guideline_version,
        created_at=last.judgment.created_at,
    )
    return JudgedItem(
        judgment=judgment,
        prompt=last.prompt,
        candidates=candidates,
        tutor_name=CONSENSUS_TUTOR,
        domain=last.domain,
        majorities=tuple(found),
    )
