"""Rankings, and how a judgment becomes reward-model training pairs.

The rules (DESIGN.md section 4):

* A ranking gives each candidate a rank, 1 = best; equal ranks are ties.
* Every two candidates with different ranks make one pair: the better is ``chosen``, the
  worse ``rejected``. K candidates without ties give K*(K-1)/2 pairs; ties give none.
* "All bad" makes no pair among the candidates.
* A correction is a new response written by the tutor: it is ``chosen`` against the
  candidate it corrected and against every other candidate.
* No degenerate rows: a correction equal (after trimming) to the candidate it corrects is no
  correction (not stored; ignored if an older version stored it); a pair whose two texts are
  identical is dropped; one judgment never yields the same (chosen, rejected) twice. What is
  left out is counted (the ``dropped`` counters, keys below).
* A consensus item (core/consensus.py) yields exactly its majority pairs, with
  ``margin = votes_for - votes_against``.
* Splits group a prompt with every turn continued from it (``conversation_groups``).

Margin. Ranks are first made dense (1, 3, 3, 7 -> 1, 2, 2, 3) so that the gaps a tutor
leaves do not count. A correction stands one level above the best candidate (dense rank 0).
Then::

    margin = (dense_rank(rejected) - dense_rank(chosen)) * strength / 2

where ``strength`` is the tutor's stated strength of preference: 1 slightly, 2 clearly (the
default, so the margin is the plain rank distance), 3 much better. The margin is always > 0,
except an imported pair's own margin (``Judgment.source_values["margin"]``, core/layouts.py):
its ranking pair is written with the margin the source gave, whatever it was.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from hitl_desktop.core.types import (
    DISQUALIFYING_FLAGS,
    FLAGS,
    RATING_SCALES,
    STRENGTHS,
    Candidate,
    Correction,
    JudgedItem,
    Judgment,
    PreferencePair,
)
from hitl_desktop.core.wording import count


class RankingError(ValueError):
    """A judgment that breaks the ranking rules; the message says which rule."""


def dense_ranks(ranks: Mapping[str, int]) -> dict[str, int]:
    """Map ranks onto 1..L keeping ties: {a: 1, b: 3, c: 3, d: 7} -> {a: 1, b: 2, c: 2, d: 3}."""
    levels = {r: i for i, r in enumerate(sorted(set(ranks.values())), start=1)}
    return {cid: levels[r] for cid, r in ranks.items()}


def margin(rank_distance: int, strength: int) -> float:
    """The documented margin: rank distance times strength / 2."""
    return rank_distance * strength / 2


def validate_ranks(ranks: Sequence[object], n_candidates: int, *, field: str = "ranking") -> list[int]:
    """Check a list of ranks, one per candidate: positive integers (ties allowed)."""
    if len(ranks) != n_candidates:
        raise RankingError(
            f"{field}: has {len(ranks)} ranks for {n_candidates} candidates (one rank per candidate)"
        )
    out = []
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise RankingError(f"{field}[{i}]: rank {r!r} is not a positive integer")
        out.append(r)
    return out


def validate_judgment(judgment: Judgment, candidate_ids: Sequence[str]) -> None:
    """Raise RankingError unless the judgment fits its prompt's candidates and the rules."""
    known = set(candidate_ids)
    if not judgment.ranks:
        raise RankingError("ranking: no candidate is ranked")
    unknown = set(judgment.ranks) - known
    if unknown:
        verb = "does" if len(unknown) == 1 else "do"
        raise RankingError(f"ranking: {count(len(unknown), 'ranked candidate')} {verb} not belong to this prompt")
    for cid, r in judgment.ranks.items():
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise RankingError(f"ranking: rank {r!r} of candidate {cid} is not a positive integer")
    if judgment.strength not in STRENGTHS:
        raise RankingError(f"strength: {judgment.strength!r} is not one of {sorted(STRENGTHS)}")
    for cid, flags in judgment.flags.items():
        if cid not in judgment.ranks:
            raise RankingError(f"flags: candidate {cid} is not ranked")
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise RankingError(f"flags: unknown {'flag' if len(bad) == 1 else 'flags'} {bad}; known: {list(FLAGS)}")
    for cid, ratings in judgment.ratings.items():
        if cid not in judgment.ranks:
            raise RankingError(f"ratings: candidate {cid} is not ranked")
        for scale, value in ratings.items():
            if scale not in RATING_SCALES:
                raise RankingError(f"ratings: unknown scale {scale!r}; known: {list(RATING_SCALES)}")
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise RankingError(f"ratings.{scale}: {value!r} is not an integer from 1 to 5")
    c = judgment.correction
    if c is not None:
        if not c.text.strip():
            raise RankingError("correction: is empty")
        if c.candidate_id is not None and c.candidate_id not in judgment.ranks:
            raise RankingError("correction: corrects a candidate that is not ranked")


#: Why rows were left out: the keys of the ``dropped`` counters that exports and ``stats``
#: report ("2 unchanged correction(s) ignored"). The rules are in docs/data-rules.md.
UNCHANGED_CORRECTION = "unchanged correction(s) ignored"
SAME_TEXT_PAIR = "pair(s) with chosen equal to rejected dropped"
REPEATED_PAIR = "repeated pair(s) of one judgment dropped"
ABSTAINED = "all-bad judgment(s) without ranks abstained"
KTO_CONFLICT = "completion(s) given both KTO labels by the consensus dropped"
FLAGGED_TOP = "flagged top-ranked completion(s) not counted as desirable"


def _count(dropped: Counter[str] | None, key: str, n: int = 1) -> None:
    if dropped is not None:
        dropped[key] += n


def is_unchanged_correction(original: str, text: str) -> bool:
    """A correction equal to the text it corrects, after trimming, is no correction."""
    return original.strip() == text.strip()


def ranked_nothing(judgment: Judgment) -> bool:
    """An "all bad" judgment that did not rank the candidates (they all share one rank): it
    abstains in consensus and agreement."""
    return judgment.all_bad and len(set(judgment.ranks.values())) <= 1


def without_unchanged_correction(judgment: Judgment, candidates: Iterable[Candidate]) -> Judgment:
    """The judgment as it is stored: a correction equal (after trimming) to the candidate it
    corrects is no correction, so it is left out (at save time and at import time)."""
    corr = judgment.correction
    if corr is None or corr.candidate_id is None:
        return judgment
    for c in candidates:
        if c.id == corr.candidate_id and is_unchanged_correction(c.text, corr.text):
            return dataclasses.replace(judgment, correction=None)
    return judgment


def effective_correction(item: JudgedItem) -> Correction | None:
    """The item's correction, or None when it has none or it equals the candidate it corrects
    (stored by an older version, or imported: it is ignored)."""
    corr = item.judgment.correction
    if corr is None or corr.candidate_id is None:
        return corr
    for c in item.candidates:
        if c.id == corr.candidate_id:
            return None if is_unchanged_correction(c.text, corr.text) else corr
    return corr


def is_disqualified(item: JudgedItem, candidate_id: str) -> bool:
    """Flagged incorrect, unsafe or hallucination: never a desirable KTO/SFT completion."""
    return not DISQUALIFYING_FLAGS.isdisjoint(item.judgment.flags.get(candidate_id, ()))


def _ratings(j: Judgment, cid: str) -> tuple[tuple[str, int], ...]:
    r = j.ratings.get(cid)
    return tuple(sorted(r.items())) if r else ()


#: One side of a pair as the row builders need it, made once per candidate (or correction)
#: and shared by every pair it is in: (text, id, model, seed, flags, ratings), flags a tuple
#: and ratings sorted (scale, value) pairs, as in ``PreferencePair``.
Side = tuple[str, str, str, "int | None", tuple[str, ...], tuple[tuple[str, int], ...]]
#: A pair before it is a ``PreferencePair``: (chosen, rejected, margin, source).
PairSpec = tuple[Side, Side, float, str]


def pair_specs(item: JudgedItem, dropped: Counter[str] | None = None, *, bare: bool = False) -> list[PairSpec]:
    """The pairs of ``pairs_for_item`` as (chosen side, rejected side, margin, source), in the
    same order, by the same rules: what export and stats build their rows and counts from
    without a ``PreferencePair`` per pair. ``dropped`` counts what the rules left out.
    ``bare``: sides without flags and ratings (empty), for who only counts the pairs."""
    j = item.judgment
    flags, ratings = ({}, {}) if bare else (j.flags, j.ratings)
    by_id = {c.id: c for c in item.candidates}
    if flags or ratings:
        side: dict[str, Side] = {}
        for cid, c in by_id.items():
            r = ratings.get(cid)
            side[cid] = (c.text, cid, c.model, c.seed, tuple(flags.get(cid, ())), tuple(sorted(r.items())) if r else ())
    else:  # most judgments: no flag and no rating
        side = {cid: (c.text, cid, c.model, c.seed, (), ()) for cid, c in by_id.items()}
    ranks = {cid: r for cid, r in j.ranks.items() if cid in by_id}
    out: list[PairSpec] = []
    seen: set[tuple[str, str]] = set()

    def add(chosen: Side, rejected: Side, value: float, source: str) -> None:
        key = (chosen[0], rejected[0])
        if key[0] == key[1]:
            _count(dropped, SAME_TEXT_PAIR)
        elif key in seen:
            _count(dropped, REPEATED_PAIR)
        else:
            seen.add(key)
            out.append((chosen, rejected, value, source))

    ordered: list[str] | None = None
    dense: dict[str, int] | None = None
    if item.correction_only:
        pass
    elif item.majorities is not None:
        for m in item.majorities:
            if m.winner in by_id and m.loser in by_id:
                add(side[m.winner], side[m.loser], consensus_margin(m.votes_for, m.votes_against), "consensus")
    elif not j.all_bad:
        ordered, dense = _ordered_dense(ranks, by_id)
        kept = j.source_values.get("margin")  # an imported pair's own margin, as it was
        graded = item.rubric_scores  # a graded judgment: the score difference (README "Rubrics")
        strength = j.strength
        # combinations(ordered, 2) with margin() written inline (the hot loop)
        levels = [(side[cid], ranks[cid], dense[cid], cid) for cid in ordered]
        if kept is None and not graded and len({s[0] for s, _, _, _ in levels}) == len(levels):
            # distinct texts: no pair of equal texts and none repeated; margins from ranks
            for i, (sa, ra, da, _a) in enumerate(levels):
                for sb, rb, db, _b in levels[i + 1 :]:
                    if ra != rb:
                        out.append((sa, sb, (db - da) * strength / 2, "ranking"))
        else:
            for i, (sa, ra, da, a) in enumerate(levels):
                for sb, rb, db, b in levels[i + 1 :]:
                    if ra == rb:
                        continue
                    value = (db - da) * strength / 2 if kept is None else float(kept)
                    if graded and a in graded and b in graded:
                        value = graded[a] - graded[b]
                    add(sa, sb, value, "ranking")
    corr = j.correction
    if corr is None:
        return out
    corr = effective_correction(item)
    if corr is None:
        _count(dropped, UNCHANGED_CORRECTION)
        return out
    if dense is None:
        ordered, dense = _ordered_dense(ranks, by_id)
    seen.update((a[0], b[0]) for a, b, _, _ in out)  # the fast path above keeps no seen set
    mine: Side = (corr.text, corr.id, f"tutor:{item.tutor_name}", None,
                  tuple(flags.get(corr.id, ())), () if bare else _ratings(j, corr.id))  # fmt: skip
    for cid in ordered:
        add(mine, side[cid], margin(dense[cid], j.strength), "correction")
    return out


def _ordered_dense(ranks: Mapping[str, int], by_id: Mapping[str, Candidate]) -> tuple[list[str], dict[str, int]]:
    """The ranked candidates best first (then in generated order), and their dense ranks
    (``dense_ranks``, from the same walk)."""
    ordered = sorted(ranks, key=lambda cid: (ranks[cid], by_id[cid].index))
    dense: dict[str, int] = {}
    level, last = 0, None
    for cid in ordered:
        r = ranks[cid]
        if level == 0 or r != last:
            level += 1
            last = r
        dense[cid] = level
    return ordered, dense


def pairs_for_item(item: JudgedItem, dropped: Counter[str] | None = None) -> list[PreferencePair]:
    """All preference pairs one judgment gives, by the rules in this module's docstring.

    ``dropped`` (optional) counts what the rules left out, by the keys above.
    """
    j = item.judgment
    messages = tuple(item.prompt.messages)
    return [
        PreferencePair(
            prompt_id=item.prompt.id,
            judgment_id=j.id,
            prompt=item.prompt.text,
            messages=messages,
            chosen=ch[0],
            rejected=rej[0],
            margin=value,
            source=source,
            domain=item.domain,
            tutor=item.tutor_name,
            chosen_model=ch[2],
            rejected_model=rej[2],
            chosen_id=ch[1],
            rejected_id=rej[1],
            chosen_seed=ch[3],
            rejected_seed=rej[3],
            created_at=j.created_at,
            chosen_flags=ch[4],
            rejected_flags=rej[4],
            chosen_ratings=ch[5],
            rejected_ratings=rej[5],
            rationale=j.rationale,
        )
        for ch, rej, value, source in pair_specs(item, dropped)
    ]


def consensus_margin(votes_for: int, votes_against: int) -> float:
    """A consensus pair's margin: the vote difference (1 for a 2-1 or 1-0 majority)."""
    return float(votes_for - votes_against)


def pairs_for_items(
    items: Iterable[JudgedItem], dropped: Counter[str] | None = None
) -> list[PreferencePair]:
    out: list[PreferencePair] = []
    for item in items:
        out.extend(pairs_for_item(item, dropped))
    return out


def split_prompt_ids(prompt_ids: Iterable[str], *, test_fraction: float, seed: int) -> set[str]:
    """The prompt ids that go to the test split: deterministic for a seed and a set of ids.

    Splitting by prompt means no prompt (and so none of its pairs) is in both splits.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), not {test_fraction}")
    ids = sorted(set(prompt_ids))
    if test_fraction == 0 or not ids:
        return set()
    random.Random(seed).shuffle(ids)
    # At least one prompt on each side when there are two or more.
    n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
    return set(ids[:n_test])


def conversation_groups(items: Iterable[JudgedItem]) -> dict[str, str]:
    """prompt id -> its conversation's key: a prompt and every turn continued from it share one.

    Two prompts are in one conversation when their first user turn is the same text (a
    continued turn's earlier turns start with the prompt it continues, in the app and in
    imported records alike) or when one continues a judgment of the other
    (``parent_judgment_id``). The key is the smallest prompt id of the group.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    items = list(items)
    prompt_of_judgment = {it.judgment.id: it.prompt.id for it in items}
    for it in items:
        p = it.prompt
        first = next((m.content for m in p.messages if m.role == "user"), p.text)
        union("p:" + p.id, "t:" + first)
        if p.parent_judgment_id in prompt_of_judgment:
            union("p:" + p.id, "p:" + prompt_of_judgment[p.parent_judgment_id])
    groups: dict[str, list[str]] = {}
    for node in list(parent):
        if node.startswith("p:"):
            groups.setdefault(find(node), []).append(node[2:])
    return {pid: min(pids) for pids in groups.values() for pid in pids}


def split_conversations(
    items: Iterable[JudgedItem], *, test_fraction: float, seed: int
) -> set[str]:
    """The prompt ids that go to the test split, whole conversations at a time
    (``conversation_groups``): no conversation is in both splits, and with two or more
    conversations both splits hold at least one. Deterministic for a seed and a set of items."""
    groups = conversation_groups(items)
    test_keys = split_prompt_ids(groups.values(), test_fraction=test_fraction, seed=seed)
    return {pid for pid, key in groups.items() if key in test_keys}
