"""How much tutors agree with each other, and with gold items.

Compared: every prompt ranked by two or more tutors, each tutor by their LATEST judgment of it
(judgments are ordered by ``created_at``, later in the list wins a tie). A judgment's ranks are
used as given, "all bad" ones included when they rank the bad answers (the order among bad
answers is still an opinion); an "all bad" judgment that ranked nothing (every candidate at one
rank) is left out: it is not "all tied".
A consensus item (tutor "consensus") is not a tutor: leave such items out of the input.

* ``krippendorff_alpha``: Krippendorff's alpha at the ORDINAL level (``krippendorff.alpha``).
  A unit is one (prompt, candidate); a tutor's value is the rank they gave it; the reliability
  matrix is tutors x units with NaN where a tutor did not rank that candidate. Only units with
  two or more values count (``units``).
* ``kendall_tau``: the mean of Kendall's tau-b (``scipy.stats.kendalltau``, which handles ties)
  between every two tutors' rankings of the same prompt, over the candidates both ranked, over
  all such (prompt, tutor pair). A pair whose tau is undefined (fewer than two shared
  candidates, or one tutor tied everything) is left out.
* ``prompts``: how many prompts were compared; ``pairs``: how many (prompt, tutor pair) taus
  went into the mean.

A figure with nothing to compare is ``None``.

Gold items: a prompt with ``gold_ranking`` (candidate id -> reference rank, stored in the
``gold_rankings`` table) is a reference; ``gold_agreement`` gives each tutor's mean tau-b
against it.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import TYPE_CHECKING, Any

from hitl_desktop.core.ranking import ranked_nothing
from hitl_desktop.core.types import CONSENSUS_TUTOR, JudgedItem

if TYPE_CHECKING:
    from hitl_desktop.core.store import Store

#: The tutor name of consensus items (see consensus.py); never counted as a tutor.


def latest_by_tutor(items: Iterable[JudgedItem]) -> dict[str, dict[str, JudgedItem]]:
    """prompt id -> tutor id -> that tutor's latest judged item of the prompt."""
    ordered = sorted(enumerate(items), key=lambda e: (e[1].judgment.created_at, e[0]))
    out: dict[str, dict[str, JudgedItem]] = defaultdict(dict)
    for _, item in ordered:
        if item.tutor_name == CONSENSUS_TUTOR:
            continue
        out[item.prompt.id][item.judgment.tutor_id] = item
    return dict(out)


def tau_b(a: Mapping[str, int], b: Mapping[str, int]) -> float | None:
    """Kendall's tau-b between two rankings (candidate id -> rank) over the candidates both
    ranked; None when undefined (fewer than two shared, or no variation on one side)."""
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        return None
    x = tuple(a[c] for c in shared)
    y = tuple(b[c] for c in shared)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return _kendall_tau_b(x, y)


@lru_cache(maxsize=65536)
def _kendall_tau_b(x: tuple[int, ...], y: tuple[int, ...]) -> float | None:
    # Rankings of a few candidates repeat a lot, and scipy's call overhead (~1 ms) dominates:
    # cache by value.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scipy.stats import kendalltau  # imported when needed: scipy takes ~1 s to load

        tau = float(kendalltau(x, y).statistic)
    return None if math.isnan(tau) else tau


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class PromptAgreement:
    """What one prompt adds to an :class:`AgreementTally`: the value profile of each of its
    units (candidates two or more tutors ranked) and the tau of each tutor pair that has one."""

    profiles: tuple[tuple[tuple[float, int], ...], ...]
    taus: tuple[float, ...]


def prompt_agreement(judged: Mapping[str, JudgedItem]) -> PromptAgreement | None:
    """One prompt's part of the agreement figures (its latest judgment per tutor), None when
    fewer than two tutors ranked something."""
    judged = {tid: it for tid, it in judged.items() if not ranked_nothing(it.judgment)}
    if len(judged) < 2:
        return None
    ranks = {tid: item.judgment.ranks for tid, item in judged.items()}
    profiles = []
    for cid in sorted({c for r in ranks.values() for c in r}):
        values = [float(r[cid]) for r in ranks.values() if cid in r]
        if len(values) >= 2:
            profiles.append(_value_counts(values))
    taus = []
    for t1, t2 in combinations(sorted(ranks), 2):
        tau = tau_b(ranks[t1], ranks[t2])
        if tau is not None:
            taus.append(tau)
    return PromptAgreement(tuple(profiles), tuple(taus))


def _value_counts(values: list[float]) -> tuple[tuple[float, int], ...]:
    """``tuple(sorted(Counter(values).items()))`` (sorts ``values``): a unit's few values
    counted without a Counter each (stats makes one per candidate two tutors ranked)."""
    values.sort()
    out = []
    i, n = 0, len(values)
    while i < n:
        v, j = values[i], i + 1
        while j < n and values[j] == v:
            j += 1
        out.append((v, j - i))
        i = j
    return tuple(out)


class AgreementTally:
    """``agreement`` accumulated a prompt at a time: the coincidences behind alpha (units with
    the same values counted together) and the sum of the taus, so memory does not grow."""

    def __init__(self) -> None:
        self.profiles: Counter[tuple[tuple[float, int], ...]] = Counter()  # unit values -> units
        self.units = self.prompts = self.pairs = 0
        self.tau_sum = 0.0

    def add_prompt(self, judged: Mapping[str, JudgedItem]) -> None:
        """One prompt's latest judgment per tutor (``latest_by_tutor(...)[prompt id]``)."""
        self.take(prompt_agreement(judged))

    def take(self, part: PromptAgreement | None) -> None:
        """One prompt's part (:func:`prompt_agreement`), as :meth:`add_prompt` adds it."""
        if part is None:
            return
        self.prompts += 1
        for profile in part.profiles:
            self.units += 1
            self.profiles[profile] += 1
        for tau in part.taus:
            self.tau_sum += tau
            self.pairs += 1

    def add(self, items: Iterable[JudgedItem]) -> None:
        """Judged items holding every judgment of their prompts."""
        for judged in latest_by_tutor(items).values():
            self.add_prompt(judged)

    def figures(self) -> dict[str, Any]:
        return {
            "krippendorff_alpha": alpha_from_profiles(self.profiles),
            "kendall_tau": self.tau_sum / self.pairs if self.pairs else None,
            "units": self.units,
            "prompts": self.prompts,
            "pairs": self.pairs,
        }


def agreement(items: Iterable[JudgedItem]) -> dict[str, Any]:
    """Agreement between tutors over the prompts two or more of them ranked (module docstring).

    Returns ``{"krippendorff_alpha", "kendall_tau", "units", "prompts", "pairs"}``.
    """
    tally = AgreementTally()
    latest = latest_by_tutor(items)
    for pid in sorted(latest):
        tally.add_prompt(latest[pid])
    return tally.figures()


def alpha_from_profiles(profiles: Mapping[tuple[tuple[float, ...], ...], int]) -> float | None:
    """Krippendorff's ordinal alpha from units given as ``((value, coders), ...) -> how many
    such units``: the coincidence matrix summed over them, then alpha as ``krippendorff.alpha``
    computes it (``1 - sum(o * d) / sum(e * d)``, ordinal distances from the value counts)."""
    domain = sorted({v for profile in profiles for v, _ in profile})
    if len(domain) < 2:
        return None
    import numpy as np

    index = {v: i for i, v in enumerate(domain)}
    size = len(domain)
    o = np.zeros((size, size))
    for profile, units in profiles.items():
        vc = np.zeros(size)
        for v, c in profile:
            vc[index[v]] = c
        m = vc.sum()
        if m < 2:
            continue
        o += units * (np.outer(vc, vc) - np.diag(vc)) / (m - 1)
    n_v = o.sum(axis=0)
    if n_v.sum() <= 1:
        return None
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n_v.sum() - 1)
    cum = np.concatenate([[0.0], np.cumsum(n_v)])
    i = np.arange(size)
    lo, hi = np.minimum(i[:, None], i[None, :]), np.maximum(i[:, None], i[None, :])
    d = (cum[hi + 1] - cum[lo] - (n_v[lo] + n_v[hi]) / 2) ** 2
    expected = (e * d).sum()
    if expected == 0:
        return None
    return _finite(1 - (o * d).sum() / expected)


def ordinal_alpha(columns: Sequence[Sequence[float]]) -> float | None:
    """Krippendorff's ordinal alpha of unit columns (one value per coder, NaN = missing)."""
    if not columns:
        return None
    import krippendorff  # imported when needed, with numpy
    import numpy as np

    data = np.array(columns, dtype=float).T  # coders x units
    values = data[~np.isnan(data)]
    if np.unique(values).size < 2:
        return None  # one value only: agreement is undefined (no expected disagreement)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    except (ValueError, ZeroDivisionError):
        return None
    return _finite(alpha)


def agreement_by_domain(items: Iterable[JudgedItem]) -> dict[str, dict[str, Any]]:
    """``agreement`` per domain: the item's domain (its session's, else its prompt's), as in
    ``Store.stats`` and ``export --domain``. (Should two tutors judge one prompt under different
    session domains, each domain compares only its own judgments.)"""
    groups: dict[str, list[JudgedItem]] = defaultdict(list)
    for item in items:
        groups[item.domain].append(item)
    return {dom: agreement(groups[dom]) for dom in sorted(groups)}


# -- gold items ------------------------------------------------------------------------------


class GoldTally:
    """``gold_agreement`` accumulated a prompt at a time (a sum and a count per tutor)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.names: dict[str, str] = {}

    def add_prompt(self, judged: Mapping[str, JudgedItem]) -> None:
        for tid, item in judged.items():
            gold = item.prompt.gold_ranking
            if not gold:
                continue
            self.names[tid] = item.tutor_name
            tau = tau_b(item.judgment.ranks, gold)
            if tau is not None:
                self.sums[tid] += tau
                self.counts[tid] += 1

    def figures(self) -> dict[str, dict[str, Any]]:
        return {
            tid: {
                "tutor": self.names[tid],
                "kendall_tau": self.sums[tid] / self.counts[tid] if self.counts[tid] else None,
                "items": self.counts[tid],
            }
            for tid in sorted(self.names, key=lambda t: self.names[t])
        }


def gold_agreement(items: Iterable[JudgedItem]) -> dict[str, dict[str, Any]]:
    """tutor id -> {"tutor", "kendall_tau" (mean tau-b with gold), "items"} over gold prompts.

    A gold prompt's ``gold_ranking`` maps candidate ids to reference ranks (table
    ``gold_rankings``); a tutor's ranks are compared over the candidates both rank. Each
    tutor's latest judgment of a prompt counts; ``items`` counts the taus in the mean.
    """
    tally = GoldTally()
    for judged in latest_by_tutor(items).values():
        tally.add_prompt(judged)
    return tally.figures()


class StatsAgreement:
    """The ``"agreement"`` object of ``stats --json``, fed a prompt's judged items at a time."""

    def __init__(self) -> None:
        self.all = AgreementTally()
        self.domains: dict[str, AgreementTally] = defaultdict(AgreementTally)
        self.gold = GoldTally()

    def add(self, items: Sequence[JudgedItem]) -> None:
        """Items holding every judgment of their prompts (a batch of whole prompts).

        A prompt whose items are all of one domain adds the same part to the overall tally
        and to that domain's, so it is computed once. The domain's tally gets its prompts in
        the order it would list them itself: a domain's items keep their order among all the
        items, and so do its prompts in ``latest_by_tutor``. Where a batch holds a prompt
        judged under two domains (sessions of different domains), each domain's tally reads
        its own items, as the figures define it."""
        domains: dict[str, set[str]] = defaultdict(set)
        for item in items:
            domains[item.prompt.id].add(item.domain)
        one_domain = all(len(d) == 1 for d in domains.values())
        for pid, judged in latest_by_tutor(items).items():
            part = prompt_agreement(judged)
            self.all.take(part)
            self.gold.add_prompt(judged)
            if one_domain:
                (dom,) = domains[pid]
                self.domains[dom].take(part)
        if one_domain:
            for dom in {item.domain for item in items}:  # every domain has figures, even one tutor's
                self.domains.setdefault(dom, AgreementTally())
            return
        by_domain: dict[str, list[JudgedItem]] = defaultdict(list)
        for item in items:
            by_domain[item.domain].append(item)
        for dom, group in by_domain.items():
            self.domains[dom].add(group)

    def figures(self) -> dict[str, Any]:
        return {
            **self.all.figures(),
            "by_domain": {dom: self.domains[dom].figures() for dom in sorted(self.domains)},
            "gold": {
                g["tutor"]: {"kendall_tau": g["kendall_tau"], "items": g["items"]}
                for g in self.gold.figures().values()
            },
        }


# -- for `hitl-desktop stats --json` ---------------------------------------------------------


def agreement_stats(store: Store, *, items: Sequence[JudgedItem] | None = None) -> dict[str, Any]:
    """The ``"agreement"`` object of ``stats --json`` (over ``items`` when the caller has read
    the store's judged items already; else read from the store a prompt at a time).

    Keys: those of ``agreement`` (``krippendorff_alpha``, ``kendall_tau``: float or null;
    ``units``, ``prompts``, ``pairs``: int), ``by_domain``: domain -> the same keys, and
    ``gold``: tutor name -> ``{"kendall_tau": float or null, "items": int}``.
    """
    tally = StatsAgreement()
    if items is not None:
        tally.add(list(items))
    else:
        from hitl_desktop.core.judged_reader import JudgedReader

        for batch in JudgedReader(store).batches(by_prompt=True):
            tally.add(batch)
    return tally.figures()
