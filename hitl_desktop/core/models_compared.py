"""Checkpoints compared: how the models behind a prompt's candidates fare against each other.

* A **comparison** is two candidates of *different* models ranked in one judgment: the better
  ranked one wins, equal ranks are a tie. K candidates from several models give one comparison
  per cross-model pair of candidates (e.g. A, B, A, B gives four A-vs-B comparisons).
  Candidates with no model name, or unranked, take no part, and so does an "all bad"
  judgment that ranked nothing (it is no tie: it abstains, as in agreement and consensus). Imported candidates with a
  ``model`` field count the same way as generated ones.
* Per model: ``comparisons``, ``wins``, ``losses``, ``ties``, ``win_rate`` = wins / (wins +
  losses) (None without any), ``bradley_terry``: the Bradley-Terry strength on the Elo scale,
  fitted by maximum likelihood with a tie counted as half a win and half a loss, P(a beats b)
  = 1 / (1 + 10 ** ((R_b - R_a) / 400)), ratings centred on a mean of 1000; ``ci95``: the
  2.5 and 97.5 percentiles of that strength over ``rounds`` bootstrap resamples of the
  comparisons (multinomial over the comparisons, seeded, so the figures are reproducible).
  This is how Chatbot Arena reports model strength (lm-sys/FastChat
  ``fastchat/serve/monitor/elo_analysis.py``: ``fit_bt``, the bootstrap of
  ``get_bootstrap_result_elo_mle_with_tie``).
* The fit is Newton's method, batched over the bootstrap resamples (FastChat runs L-BFGS once
  per resample; the optimum is the same). A model that won (or lost) every comparison has no
  finite maximum-likelihood strength: strengths are clamped to 1000 +- 1600.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from hitl_desktop.core.ranking import ranked_nothing
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import JudgedItem

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
BOOTSTRAP_ROUNDS = 1000

#: One comparison: (model a, model b, a's score: 1 win, 0.5 tie, 0 loss), a < b by name.
Comparison = tuple[str, str, float]


def comparisons_of(items: Iterable[JudgedItem]) -> list[Comparison]:
    """Every comparison in these judgments (see the module docstring)."""
    out: list[Comparison] = []
    for item in items:
        if ranked_nothing(item.judgment):  # all bad, unranked: it abstains, as in agreement
            continue
        ranks = item.judgment.ranks
        ranked = [(c.model, ranks[c.id]) for c in item.candidates if c.model and ranks.get(c.id) is not None]
        for (ma, ra), (mb, rb) in combinations(ranked, 2):
            if ma == mb:
                continue
            score = 1.0 if ra < rb else 0.0 if ra > rb else 0.5
            out.append((ma, mb, score) if ma < mb else (mb, ma, 1.0 - score))
    return out


#: Natural-scale strengths are kept within +-MAX_NATURAL of the mean (+-1600 on the Elo
#: scale): a model that won every comparison has no finite maximum-likelihood strength.
MAX_NATURAL = 4.0


def _fit(matchups, outcomes, weights):  # noqa: ANN001, ANN202 - numpy arrays
    """Bradley-Terry maximum likelihood on the natural scale, for R weightings at once.

    ``matchups`` (m, n) is +1 for model a and -1 for model b of each distinct
    (a, b, outcome); ``weights`` (R, m) how often each occurs (one row per resample). Newton's
    method, batched over the rows (the models are few, so each Hessian is small), steps of at
    most 1 (400 Elo), strengths centred on 0 and clamped to +-MAX_NATURAL.
    """
    import numpy as np
    from scipy.special import expit

    alpha = np.log(BASE)
    rounds, n = weights.shape[0], matchups.shape[1]
    r = np.zeros((rounds, n))
    fix = np.full((n, n), 1.0 / n) + 1e-9 * np.eye(n)  # pins the mean; no model is left singular
    for _ in range(100):
        p = expit(alpha * (r @ matchups.T))  # (R, m)
        grad = -alpha * ((outcomes - p) * weights) @ matchups  # (R, n)
        curvature = alpha * alpha * p * (1 - p) * weights  # (R, m)
        hessian = np.einsum("rk,ki,kj->rij", curvature, matchups, matchups) + fix
        step = np.clip(np.linalg.solve(hessian, grad[..., None])[..., 0], -1.0, 1.0)
        r = r - step
        r = np.clip(r - r.mean(axis=1, keepdims=True), -MAX_NATURAL, MAX_NATURAL)
        if np.abs(step).max() < 1e-10:
            break
    return r


def bradley_terry(
    comps: list[Comparison], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """``{model: (strength, (ci low, ci high))}`` on the Elo scale (see the module docstring)."""
    return bradley_terry_counts(Counter(comps), rounds=rounds, seed=seed)


def bradley_terry_counts(
    tally: Mapping[Comparison, int], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """``bradley_terry`` of comparisons given as comparison -> how many times it occurred."""
    import numpy as np

    tally = {c: n for c, n in tally.items() if n}
    if not tally:
        return {}
    models = sorted({m for a, b, _ in tally for m in (a, b)})
    index = {m: i for i, m in enumerate(models)}
    counts: dict[tuple[int, int, float], int] = defaultdict(int)
    for (a, b, s), k in tally.items():
        counts[(index[a], index[b], s)] += k
    keys = sorted(counts)
    matchups = np.zeros((len(keys), len(models)))
    for row, (a, b, _) in enumerate(keys):
        matchups[row, a], matchups[row, b] = 1.0, -1.0
    outcomes = np.array([s for _, _, s in keys], dtype=np.float64)
    weights = np.array([counts[k] for k in keys], dtype=np.float64)
    n = sum(tally.values())
    strength = _fit(matchups, outcomes, weights[None, :] / n)[0] * SCALE + INIT_RATING
    ci: list[tuple[float, float] | None] = [None] * len(models)
    if rounds > 0:
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(n, weights / n, size=rounds).astype(np.float64) / n
        boot = _fit(matchups, outcomes, resampled) * SCALE + INIT_RATING
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        ci = [(float(lo), float(hi)) for lo, hi in zip(low, high)]
    return {m: (float(strength[i]), ci[i]) for i, m in enumerate(models)}


def model_figures(
    items: Iterable[JudgedItem], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """``{model: {comparisons, wins, losses, ties, win_rate, bradley_terry, ci95}}``."""
    return figures_from_counts(Counter(comparisons_of(items)), rounds=rounds, seed=seed)


def figures_from_counts(
    comps: Mapping[Comparison, int], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """``model_figures`` of comparisons counted (comparison -> how many): memory stays flat."""
    tally: dict[str, dict[str, int]] = defaultdict(lambda: {"wins": 0, "losses": 0, "ties": 0})
    for (a, b, s), k in comps.items():
        if s == 0.5:
            tally[a]["ties"] += k
            tally[b]["ties"] += k
        else:
            winner, loser = (a, b) if s == 1.0 else (b, a)
            tally[winner]["wins"] += k
            tally[loser]["losses"] += k
    bt = bradley_terry_counts(comps, rounds=rounds, seed=seed)
    out: dict[str, dict[str, Any]] = {}
    for model in sorted(tally, key=lambda m: (-bt[m][0], m)):
        t = tally[model]
        decided = t["wins"] + t["losses"]
        strength, ci = bt[model]
        out[model] = {
            "comparisons": decided + t["ties"],
            **t,
            "win_rate": round(t["wins"] / decided, 4) if decided else None,
            "bradley_terry": round(strength, 1),
            "ci95": [round(ci[0], 1), round(ci[1], 1)] if ci else None,
        }
    return out


class ModelsTally:
    """Comparisons counted overall and per domain, fed judged items a batch at a time."""

    def __init__(self) -> None:
        self.all: Counter[Comparison] = Counter()
        self.domains: dict[str, Counter[Comparison]] = defaultdict(Counter)

    def add(self, items: Iterable[JudgedItem]) -> None:
        for item in items:
            for c in comparisons_of((item,)):
                self.all[c] += 1
                self.domains[item.domain][c] += 1

    def figures(self, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict[str, Any]:
        per_domain = {d: figures_from_counts(c, rounds=rounds, seed=seed) for d, c in sorted(self.domains.items())}
        return {
            "models": figures_from_counts(self.all, rounds=rounds, seed=seed),
            "models_by_domain": {d: f for d, f in per_domain.items() if f},
        }


def models_stats(
    store: Store, *, items: Sequence[JudgedItem] | None = None, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> dict[str, Any]:
    """``{"models": figures over every judgment, "models_by_domain": {domain: figures}}``;
    domains with no comparison are left out. ``items``: the store's judged items, when read
    already (else they are read from the store a batch at a time)."""
    tally = ModelsTally()
    if items is not None:
        tally.add(items)
    else:
        from hitl_desktop.core.judged_reader import JudgedReader

        for batch in JudgedReader(store).batches():
            tally.add(batch)
    return tally.figures(rounds=rounds, seed=seed)
