"""Rankings, and how a judgment becomes reward-model training pairs.

The rules (DESIGN.md section 4):

* A ranking gives each candidate a rank, 1 = best; equal ranks are ties.
* Every two candidates with different ranks make one pair: the better is ``chosen``, the
  worse ``rejected``. K candidates without ties give K*(K-1)/2 pairs; ties give none.
* "All bad" makes no pair among the candidates.
* A correction is a new response written by the tutor: it is ``chosen`` against the
  candidate it corrected and against every other candidate.
* A pair whose two texts are identical is dropped (it teaches nothing; e.g. a correction
  submitted unchanged).

Margin. Ranks are first made dense (1, 3, 3, 7 -> 1, 2, 2, 3) so that the gaps a tutor
leaves do not count. A correction stands one level above the best candidate (dense rank 0).
Then::

    margin = (dense_rank(rejected) - dense_rank(chosen)) * strength / 2

where ``strength`` is the tutor's stated strength of preference: 1 slightly, 2 clearly (the
default, so the margin is the plain rank distance), 3 much better. The margin is always > 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from hitl_desktop.core.types import (
    FLAGS,
    RATING_SCALES,
    STRENGTHS,
    JudgedItem,
    Judgment,
    PreferencePair,
)


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
        raise RankingError(f"ranking: {len(unknown)} ranked candidate(s) do not belong to this prompt")
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
            raise RankingError(f"flags: unknown flag(s) {bad}; known: {list(FLAGS)}")
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


def pairs_for_item(item: JudgedItem) -> list[PreferencePair]:
    """All preference pairs one judgment gives, by the rules in this module's docstring."""
    j = item.judgment
    by_id = {c.id: c for c in item.candidates}
    ranks = {cid: r for cid, r in j.ranks.items() if cid in by_id}
    dense = dense_ranks(ranks)
    messages = tuple(item.prompt.messages)
    pairs: list[PreferencePair] = []

    def add(chosen_text, chosen_id, chosen_model, chosen_seed, rejected, distance, source):
        if chosen_text == rejected.text:
            return
        pairs.append(
            PreferencePair(
                prompt_id=item.prompt.id,
                judgment_id=j.id,
                prompt=item.prompt.text,
                messages=messages,
                chosen=chosen_text,
                rejected=rejected.text,
                margin=margin(distance, j.strength),
                source=source,
                domain=item.domain,
                tutor=item.tutor_name,
                chosen_model=chosen_model,
                rejected_model=rejected.model,
                chosen_id=chosen_id,
                rejected_id=rejected.id,
                chosen_seed=chosen_seed,
                rejected_seed=rejected.seed,
                created_at=j.created_at,
            )
        )

    if not j.all_bad:
        ordered = sorted(ranks, key=lambda cid: (ranks[cid], by_id[cid].index))
        for a, b in combinations(ordered, 2):
            if ranks[a] == ranks[b]:
                continue
            ca = by_id[a]
            add(ca.text, ca.id, ca.model, ca.seed, by_id[b], dense[b] - dense[a], "ranking")
    if j.correction is not None:
        corr = j.correction
        for cid in sorted(ranks, key=lambda c: (ranks[c], by_id[c].index)):
            add(corr.text, corr.id, f"tutor:{item.tutor_name}", None, by_id[cid], dense[cid], "correction")
    return pairs


def pairs_for_items(items: Iterable[JudgedItem]) -> list[PreferencePair]:
    out: list[PreferencePair] = []
    for item in items:
        out.extend(pairs_for_item(item))
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
