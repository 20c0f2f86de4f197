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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
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


def agreement(items: Iterable[JudgedItem]) -> dict[str, Any]:
    """Agreement between tutors over the prompts two or more of them ranked (module docstring).

    Returns ``{"krippendorff_alpha", "kendall_tau", "units", "prompts", "pairs"}``.
    """
    by_prompt = {}
    for p, judged in latest_by_tutor(items).items():
        judged = {tid: it for tid, it in judged.items() if not ranked_nothing(it.judgment)}
        if len(judged) >= 2:
            by_prompt[p] = judged
    tutors = sorted({tid for judged in by_prompt.values() for tid in judged})
    row_of = {tid: i for i, tid in enumerate(tutors)}
    columns: list[list[float]] = []
    taus: list[float] = []
    for pid in sorted(by_prompt):
        judged = by_prompt[pid]
        ranks = {tid: item.judgment.ranks for tid, item in judged.items()}
        cand_ids = sorted({c for r in ranks.values() for c in r})
        for cid in cand_ids:
            column = [math.nan] * len(tutors)
            for tid, r in ranks.items():
                if cid in r:
                    column[row_of[tid]] = float(r[cid])
            if sum(not math.isnan(v) for v in column) >= 2:
                columns.append(column)
        for t1, t2 in combinations(sorted(ranks), 2):
            tau = tau_b(ranks[t1], ranks[t2])
            if tau is not None:
                taus.append(tau)
    return {
        "krippendorff_alpha": ordinal_alpha(columns),
        "kendall_tau": _mean(taus),
        "units": len(columns),
        "prompts": len(by_prompt),
        "pairs": len(taus),
    }


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


def gold_agreement(items: Iterable[JudgedItem]) -> dict[str, dict[str, Any]]:
    """tutor id -> {"tutor", "kendall_tau" (mean tau-b with gold), "items"} over gold prompts.

    A gold prompt's ``gold_ranking`` maps candidate ids to reference ranks (table
    ``gold_rankings``); a tutor's ranks are compared over the candidates both rank. Each
    tutor's latest judgment of a prompt counts; ``items`` counts the taus in the mean.
    """
    taus: dict[str, list[float]] = defaultdict(list)
    names: dict[str, str] = {}
    for judged in latest_by_tutor(items).values():
        for tid, item in judged.items():
            gold = item.prompt.gold_ranking
            if not gold:
                continue
            names[tid] = item.tutor_name
            tau = tau_b(item.judgment.ranks, gold)
            if tau is not None:
                taus[tid].append(tau)
    return {
        tid: {"tutor": names[tid], "kendall_tau": _mean(taus[tid]), "items": len(taus[tid])}
        for tid in sorted(names, key=lambda t: names[t])
    }


# -- for `hitl-desktop stats --json` ---------------------------------------------------------


def agreement_stats(store: Store, *, items: Sequence[JudgedItem] | None = None) -> dict[str, Any]:
    """The ``"agreement"`` object of ``stats --json`` (over ``items`` when the caller has read
    the store's judged items already).

    Keys: those of ``agreement`` (``krippendorff_alpha``, ``kendall_tau``: float or null;
    ``units``, ``prompts``, ``pairs``: int), ``by_domain``: domain -> the same keys, and
    ``gold``: tutor name -> ``{"kendall_tau": float or null, "items": int}``.
    """
    items = list(store.judged_items()) if items is None else items
    gold = gold_agreement(items)
    return {
        **agreement(items),
        "by_domain": agreement_by_domain(items),
        "gold": {
            g["tutor"]: {"kendall_tau": g["kendall_tau"], "items": g["items"]}
            for g in gold.values()
        },
    }
