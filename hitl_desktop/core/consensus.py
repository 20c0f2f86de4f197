"""One consensus ranking where several tutors ranked the same prompt.

``consensus_items(items, method=...)`` returns the items to export instead of ``items``:

* For a prompt ranked by ONE tutor, that tutor's latest judgment passes through unchanged.
* For a prompt ranked by SEVERAL tutors (each by their latest judgment: "members"), one
  consensus item ranks the candidates any member ranked:

  - ``"ranked-pairs"`` (the default; Tideman's ranked pairs, as OpenAssistant does): for every
    two candidates count the members who put one above the other (a member who tied them, or
    did not rank both, does not vote). Each majority is a pair (winner, loser) with margin =
    votes for - votes against. Pairs are taken strongest first (larger margin, then more votes
    for, then candidates in generated order) and "locked in" unless they would close a cycle
    with the pairs already locked. A candidate's consensus rank is 1 + the length of the
    longest locked chain above it, so candidates no locked pair separates share a rank (a tie).
    Unlike OpenAssistant, an exact tie between two candidates stays a tie instead of being
    broken arbitrarily.
  - ``"borda"``: each member gives a candidate one point for every candidate they ranked
    below it and half a point for every candidate they tied with it; candidates are ranked by
    total points (equal totals tie).

  The consensus judgment: tutor name and tutor id ``"consensus"``; a deterministic id (uuid5
  of the method, the prompt id and the sorted member judgment ids); strength = the median of
  the members' strengths (lower median); all_bad when more than half of the members said so;
  created_at, guideline version and domain from the latest member; no session, no display
  order, no time; rationale names the method and the members' count. Flags and ratings are
  not carried over.
* Corrections are NOT merged into the consensus: the consensus applies to candidate versus
  candidate. Each member's correction is kept as its own item: a copy of that member's item
  with ``all_bad=True`` (so ``ranking.pairs_for_item`` makes only its correction pairs, with
  the member's ranks as the margins' distances) and the member's own judgment id and tutor.
  ``is_correction_only(item)`` tells such items apart.

Output order: by prompt, in the order the prompts first appear in ``items``; a prompt's
consensus item first, then its correction items.
"""

from __future__ import annotations

import dataclasses
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from hitl_desktop.core.agreement import latest_by_tutor
from hitl_desktop.core.types import CONSENSUS_TUTOR, JudgedItem, Judgment

METHODS = ("ranked-pairs", "borda")

#: Namespace of consensus judgment ids.
CONSENSUS_NAMESPACE = uuid.UUID("6f1b7a52-3c4e-5d0a-9b8e-2f6c1d7e4a90")

_CORRECTION_ONLY_PREFIX = "[correction only] "


def ranked_pairs(ballots: Sequence[Mapping[str, int]], order: Sequence[str]) -> dict[str, int]:
    """Tideman's ranked pairs over ``ballots`` (candidate id -> rank, 1 = best).

    ``order`` lists the candidates (generated order; it breaks ties between equally strong
    pairs). Returns candidate id -> consensus rank (1 = best; ties share a rank).
    """
    pos = {c: i for i, c in enumerate(order)}
    wins: dict[tuple[str, str], int] = defaultdict(int)
    for ballot in ballots:
        for a, b in combinations([c for c in order if c in ballot], 2):
            if ballot[a] < ballot[b]:
                wins[(a, b)] += 1
            elif ballot[b] < ballot[a]:
                wins[(b, a)] += 1
    majorities = []
    for a, b in combinations(order, 2):
        ab, ba = wins[(a, b)], wins[(b, a)]
        if ab > ba:
            majorities.append((ab - ba, ab, a, b))
        elif ba > ab:
            majorities.append((ba - ab, ba, b, a))
    majorities.sort(key=lambda m: (-m[0], -m[1], pos[m[2]], pos[m[3]]))
    beats: dict[str, set[str]] = defaultdict(set)  # locked: winner -> losers

    def reaches(start: str, goal: str) -> bool:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(beats[node])
        return False

    for _, _, winner, loser in majorities:
        if not reaches(loser, winner):  # locking winner > loser closes no cycle
            beats[winner].add(loser)
    above: dict[str, set[str]] = defaultdict(set)
    for w, losers in beats.items():
        for lo in losers:
            above[lo].add(w)
    ranks: dict[str, int] = {}

    def rank(c: str) -> int:
        if c not in ranks:
            ranks[c] = 1 + max((rank(w) for w in above[c]), default=0)
        return ranks[c]

    return {c: rank(c) for c in order}


def borda(ballots: Sequence[Mapping[str, int]], order: Sequence[str]) -> dict[str, int]:
    """Borda count: a point per candidate ranked below, half a point per tie; returns
    candidate id -> consensus rank (1 = most points; equal totals tie)."""
    points: dict[str, float] = dict.fromkeys(order, 0.0)
    for ballot in ballots:
        for c in ballot:
            if c not in points:
                continue
            for other, r in ballot.items():
                if other == c or other not in points:
                    continue
                if ballot[c] < r:
                    points[c] += 1.0
                elif ballot[c] == r:
                    points[c] += 0.5
    levels = sorted(set(points.values()), reverse=True)
    return {c: levels.index(points[c]) + 1 for c in order}


def is_correction_only(item: JudgedItem) -> bool:
    """True for the items ``consensus_items`` makes to carry a member's correction."""
    return item.judgment.all_bad and item.judgment.rationale.startswith(_CORRECTION_ONLY_PREFIX)


def consensus_items(items: Iterable[JudgedItem], method: str = "ranked-pairs") -> list[JudgedItem]:
    """One consensus item per prompt several tutors ranked; see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"consensus method must be one of {', '.join(METHODS)}, not {method!r}")
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
        out.append(_consensus_item(members, method))
        out.extend(_correction_only(m) for m in members if m.judgment.correction is not None)
    return out


def _consensus_item(members: list[JudgedItem], method: str) -> JudgedItem:
    by_id = {}
    for m in members:
        for c in m.candidates:
            by_id.setdefault(c.id, c)
    ballots = [{c: r for c, r in m.judgment.ranks.items() if c in by_id} for m in members]
    candidates = sorted(by_id.values(), key=lambda c: (c.index, c.created_at, c.id))
    order = [c.id for c in candidates]
    ranks = ranked_pairs(ballots, order) if method == "ranked-pairs" else borda(ballots, order)
    last = members[-1]
    prompt_id = last.prompt.id
    member_ids = sorted(m.judgment.id for m in members)
    jid = str(uuid.uuid5(CONSENSUS_NAMESPACE, "|".join([method, prompt_id, *member_ids])))
    strengths = sorted(m.judgment.strength for m in members)
    judgment = Judgment(
        id=jid,
        prompt_id=prompt_id,
        tutor_id=CONSENSUS_TUTOR,
        ranks=ranks,
        all_bad=sum(m.judgment.all_bad for m in members) * 2 > len(members),
        rationale=f"consensus ({method}) of {len(members)} tutors",
        strength=statistics.median_low(strengths),
        guideline_version=last.judgment.guideline_version,
        created_at=last.judgment.created_at,
    )
    return JudgedItem(
        judgment=judgment,
        prompt=last.prompt,
        candidates=candidates,
        tutor_name=CONSENSUS_TUTOR,
        domain=last.domain,
    )


def _correction_only(member: JudgedItem) -> JudgedItem:
    j = member.judgment
    judgment = dataclasses.replace(
        j, all_bad=True, rationale=_CORRECTION_ONLY_PREFIX + j.rationale, flags={}, ratings={}
    )
    return dataclasses.replace(member, judgment=judgment)
