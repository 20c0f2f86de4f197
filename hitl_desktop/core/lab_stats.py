"""``stats --json`` in flat memory: counts from SQL aggregates, then ONE pass over the judged
items a prompt at a time (core/judged_reader.py) for what needs the items (pairs per domain,
what the pair rules left out, agreement, checkpoints compared).

The keys and figures are those of ``Store.stats()`` with ``"agreement"``
(``agreement.agreement_stats``) and ``"models"``/``"models_by_domain"``
(``models_compared.models_stats``) added, as the CLI printed them before.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hitl_desktop.core import collector
from hitl_desktop.core.agreement import StatsAgreement
from hitl_desktop.core.judged_reader import CURRENT_JUDGMENT, JudgedReader
from hitl_desktop.core.models_compared import BOOTSTRAP_ROUNDS, ModelsTally
from hitl_desktop.core.ranking import pair_specs
from hitl_desktop.core.store import Store

_FIGURES = ("prompts", "candidates", "judgments", "pairs", "corrections", "tutors")


def lab_stats(store: Store, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict[str, Any]:
    """Everything ``stats --json`` prints (module docstring); the cycle collector runs less
    often meanwhile (:func:`.collector.sparse`: one pass over every judgment)."""
    with collector.sparse():
        return _lab_stats(store, rounds=rounds, seed=seed)


def _lab_stats(store: Store, *, rounds: int, seed: int) -> dict[str, Any]:
    ex = store.db.conn.execute

    def count(sql: str) -> int:
        return ex(sql).fetchone()[0]

    has_supersedes = "supersedes" in {r[1] for r in ex("pragma table_info(judgments)")}
    current = CURRENT_JUDGMENT if has_supersedes else "1=1"
    per_domain: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_FIGURES, 0))
    for dom, n in ex("select domain, count(*) from prompts group by domain"):
        per_domain[dom]["prompts"] = n
    for dom, n in ex(
        "select p.domain, count(*) from candidates c join prompts p on p.id = c.prompt_id group by p.domain"
    ):
        per_domain[dom]["candidates"] = n

    tutors_by_domain: dict[str, set[str]] = defaultdict(set)
    total_pairs = 0
    dropped: Counter[str] = Counter()  # what the pair rules left out, by reason
    agreement = StatsAgreement()
    models = ModelsTally()
    for batch in JudgedReader(store).batches(by_prompt=True):
        for item in batch:
            d = per_domain[item.domain]
            d["judgments"] += 1
            n = len(pair_specs(item, dropped, bare=True))
            d["pairs"] += n
            total_pairs += n
            if item.judgment.correction is not None:
                d["corrections"] += 1
            tutors_by_domain[item.domain].add(item.judgment.tutor_id)
        agreement.add(batch)
        models.add(batch)
    for dom, ids in tutors_by_domain.items():
        per_domain[dom]["tutors"] = len(ids)
    return {
        "prompts": count("select count(*) from prompts"),
        "candidates": count("select count(*) from candidates"),
        "judgments": count(f"select count(*) from judgments j where {current}"),
        "corrections": count(
            f"select count(*) from corrections c join judgments j on j.id = c.judgment_id where {current}"
        ),
        "pairs": total_pairs,
        "tutors": count("select count(*) from tutors"),
        "queued": count(
            "select count(*) from prompts p where not exists (select 1 from judgments j where j.prompt_id = p.id)"
        ),
        "domains": {k: per_domain[k] for k in sorted(per_domain)},
        "dropped": dict(sorted(dropped.items())),
        "agreement": agreement.figures(),
        **models.figures(rounds=rounds, seed=seed),
    }
