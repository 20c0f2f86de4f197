"""Per-tutor quality figures and the quality report.

``tutor_figures(store)`` gives one dict per tutor:

=========================  ==========================================================================
``tutor``                  the tutor's name
``domains``                declared domains and the domains of their judgments, sorted
``judgments``              judgments made (every one, repeats included)
``median_seconds``         median time spent per judgment (judgments with a time), else None
``items_per_hour``         3600 / ``median_seconds``, else None
``agreement_with_others``  mean Kendall tau-b against every other tutor, over the prompts both
                           judged (each by their latest judgment); None if nothing shared
``comparisons``            how many (prompt, other tutor) taus went into that mean
``agreement_with_gold``    mean tau-b against the gold ranking of gold items they judged, else None
``gold_items``             how many gold taus went into that mean
``first_shown_best``       share of judgments where the candidate shown first
                           (``display_order[0]``) got the best rank (rank == the lowest rank given)
``first_shown_expected``   what that share would be with no position effect: the mean over the
                           same judgments of (candidates sharing the best rank) / K, i.e. 1/K
                           without ties
``position_bias``          ``first_shown_best / first_shown_expected`` (1 = no bias), else None
``position_bias_p``        one-sided binomial test p-value of "first shown is preferred more often
                           than expected" (``scipy.stats.binomtest`` with p = the mean expected
                           share; approximate when K varies)
``position_items``         judgments with a display order and two or more ranked candidates
``corrections``            judgments with a correction
=========================  ==========================================================================

``quality_summary(store)`` bundles the tutors' figures with agreement overall and per domain;
``quality_report(store)`` renders it as Markdown; ``write_report(store, path)`` writes Markdown
(``.md``), or HTML for ``.html``/``.htm``.
"""

from __future__ import annotations

import html
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any

from hitl_desktop.core.agreement import (
    CONSENSUS_TUTOR,
    agreement,
    agreement_by_domain,
    gold_agreement,
    latest_by_tutor,
    tau_b,
)
from hitl_desktop.core.models_compared import model_figures
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import JudgedItem, Tutor
from hitl_desktop.core.wording import count

ALL_DOMAINS = None


def position_figures(items: Iterable[JudgedItem]) -> dict[str, Any]:
    """How often the candidate shown first was ranked best, against chance (module docstring)."""
    hits, n, expected = 0, 0, 0.0
    for item in items:
        j = item.judgment
        if not j.display_order or len(j.ranks) < 2 or j.display_order[0] not in j.ranks:
            continue
        best = min(j.ranks.values())
        n += 1
        hits += j.ranks[j.display_order[0]] == best
        expected += sum(1 for r in j.ranks.values() if r == best) / len(j.ranks)
    if n == 0:
        return {
            "first_shown_best": None,
            "first_shown_expected": None,
            "position_bias": None,
            "position_bias_p": None,
            "position_items": 0,
        }
    exp = expected / n
    p = None
    if 0 < exp < 1:
        from scipy.stats import binomtest  # imported when needed: scipy takes ~1 s to load

        p = float(binomtest(hits, n, exp, alternative="greater").pvalue)
    return {
        "first_shown_best": hits / n,
        "first_shown_expected": exp,
        "position_bias": (hits / n) / exp if exp > 0 else None,
        "position_bias_p": p,
        "position_items": n,
    }


def figures_from_items(
    items: Sequence[JudgedItem],
    *,
    tutors: Sequence[Tutor] = (),
) -> list[dict[str, Any]]:
    """Per-tutor figures from judged items (see the module docstring), sorted by tutor name.

    ``tutors`` adds declared domains (and tutors without judgments, when no domain filter is
    meant: pass them only then). Gold agreement uses each gold prompt's ``gold_ranking``.
    """
    items = [i for i in items if i.tutor_name != CONSENSUS_TUTOR]
    by_tutor: dict[str, list[JudgedItem]] = defaultdict(list)
    names: dict[str, str] = {}
    domains: dict[str, set[str]] = defaultdict(set)
    for t in tutors:
        names[t.id] = t.name
        domains[t.id].update(t.domains)
    for item in items:
        tid = item.judgment.tutor_id
        by_tutor[tid].append(item)
        names.setdefault(tid, item.tutor_name)
        domains[tid].add(item.domain)

    pair_taus: dict[str, list[float]] = defaultdict(list)
    for judged in latest_by_tutor(items).values():
        for t1, t2 in combinations(sorted(judged), 2):
            tau = tau_b(judged[t1].judgment.ranks, judged[t2].judgment.ranks)
            if tau is not None:
                pair_taus[t1].append(tau)
                pair_taus[t2].append(tau)
    gold = gold_agreement(items)

    out = []
    for tid in sorted(names, key=lambda t: (names[t], t)):
        mine = by_tutor.get(tid, [])
        secs = [i.judgment.seconds_spent for i in mine if i.judgment.seconds_spent is not None]
        median = float(statistics.median(secs)) if secs else None
        taus = pair_taus.get(tid, [])
        g = gold.get(tid, {"kendall_tau": None, "items": 0})
        out.append(
            {
                "tutor": names[tid],
                "domains": sorted(domains[tid]),
                "judgments": len(mine),
                "median_seconds": median,
                "items_per_hour": 3600.0 / median if median else None,
                "agreement_with_others": sum(taus) / len(taus) if taus else None,
                "comparisons": len(taus),
                "agreement_with_gold": g["kendall_tau"],
                "gold_items": g["items"],
                **position_figures(mine),
                "corrections": sum(1 for i in mine if i.judgment.correction is not None),
            }
        )
    return out


def quality_summary(store: Store, *, domain: str | None = ALL_DOMAINS) -> dict[str, Any]:
    """Everything the dashboard and the report show, for one domain or all of them::

    {"database", "generated_at", "domain", "judgments", "gold_prompts",
     "agreement": {...}, "by_domain": {domain: {...}}, "tutors": [figures...],
     "models": {model: {...}}}  (checkpoints compared: core.models_compared.model_figures)
    """
    items = list(store.judged_items(domain=domain))
    gold_pids = sorted({i.prompt.id for i in items if i.prompt.gold_ranking is not None})
    tutors = store.tutors() if domain is None else ()
    return {
        "database": str(store.path) if store.path else ":memory:",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "domain": domain,
        "judgments": len(items),
        "gold_prompts": len(gold_pids),
        "agreement": agreement(items),
        "by_domain": agreement_by_domain(items),
        "tutors": figures_from_items(items, tutors=tutors),
        "models": model_figures(items),
    }


def tutor_figures(store: Store, *, domain: str | None = ALL_DOMAINS) -> list[dict[str, Any]]:
    """One dict of figures per tutor (module docstring); with ``domain``, that domain only."""
    return quality_summary(store, domain=domain)["tutors"]


# -- the report ------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _agreement_row(scope: str, a: dict[str, Any]) -> str:
    return _row(
        [scope, a["prompts"], a["units"], fmt(a["krippendorff_alpha"], 3), fmt(a["kendall_tau"], 3)]
    )


def report_markdown(summary: dict[str, Any]) -> str:
    """The Markdown report of a ``quality_summary``."""
    scope = summary["domain"] or "all domains"
    lines = [
        "# Quality report",
        "",
        f"Database `{summary['database']}`, {scope}, generated {summary['generated_at']}: "
        f"{count(summary['judgments'], 'judgment')}, {count(len(summary['tutors']), 'tutor')}, "
        f"{count(summary['gold_prompts'], 'gold item')} judged.",
        "",
        "## Agreement between tutors",
        "",
        "Over the prompts ranked by two or more tutors (each tutor's latest judgment).",
        "",
        _row(["scope", "prompts", "units", "Krippendorff's α (ordinal)", "mean Kendall τ-b"]),
        _row(["---", "---:", "---:", "---:", "---:"]),
        _agreement_row("**all**", summary["agreement"]),
    ]
    lines += [_agreement_row(d, a) for d, a in summary["by_domain"].items()]
    lines += [
        "",
        "## Tutors",
        "",
        _row(
            [
                "tutor",
                "domains",
                "judgments",
                "median s/item",
                "items/hour",
                "τ-b vs others (n)",
                "τ-b vs gold (n)",
                "first shown ranked best",
                "expected",
                "bias p",
                "corrections",
            ]
        ),
        _row(
            ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]
        ),
    ]
    for t in summary["tutors"]:
        lines.append(
            _row(
                [
                    t["tutor"],
                    ", ".join(t["domains"]) or "–",
                    t["judgments"],
                    fmt(t["median_seconds"], 1),
                    fmt(t["items_per_hour"], 1),
                    f"{fmt(t['agreement_with_others'])} ({t['comparisons']})",
                    f"{fmt(t['agreement_with_gold'])} ({t['gold_items']})",
                    f"{pct(t['first_shown_best'])} of {t['position_items']}"
                    if t["position_items"]
                    else "–",
                    pct(t["first_shown_expected"]),
                    fmt(t["position_bias_p"], 3),
                    t["corrections"],
                ]
            )
        )
    lines += _models_markdown(summary.get("models") or {})
    lines += [
        "",
        "## How to read it",
        "",
        "- **Krippendorff's α** (ordinal): a unit is one candidate of a prompt, a tutor's value "
        "the rank they gave it. 1 = perfect agreement, 0 = no better than chance; "
        "α ≥ 0.667 is the usual floor for tentative conclusions, ≥ 0.8 for firm ones.",
        "- **Kendall τ-b**: agreement of two rankings of the same prompt, from −1 (reversed) "
        "to 1 (identical), ties accounted for; the mean over every two tutors and prompt.",
        "- **τ-b vs gold**: agreement with the reference ranking of gold items, which are mixed "
        "into the queues unannounced.",
        "- **First shown ranked best**: how often the candidate shown first got the best rank, "
        "against the share expected by chance (1/K for K candidates, more with ties at the top). "
        "A share well above the expected one, with a small p, hints at position bias.",
        "- A dash means there was nothing to compare.",
        "",
    ]
    return "\n".join(lines)


def _models_markdown(models: dict[str, dict[str, Any]]) -> list[str]:
    """Checkpoints compared: one row per model, strongest first (none when no two were ranked)."""
    if not models:
        return []
    lines = ["", "## Models compared", "",
             _row(["Model", "Comparisons", "Won", "Lost", "Tied", "Win rate", "Bradley–Terry", "95% interval"]),
             _row(["---"] * 8)]
    for name, m in models.items():
        ci = f"{m['ci95'][0]:.0f}–{m['ci95'][1]:.0f}" if m["ci95"] else "–"
        lines.append(_row([name, m["comparisons"], m["wins"], m["losses"], m["ties"], pct(m["win_rate"]),
                           f"{m['bradley_terry']:.0f}", ci]))
    return lines


def quality_report(store: Store, *, domain: str | None = ALL_DOMAINS) -> str:
    """The quality report as Markdown."""
    return report_markdown(quality_summary(store, domain=domain))


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f2f2f2; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def report_html(markdown: str, *, title: str = "Quality report") -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    )


def write_report(
    store: Store | None,
    path: str | os.PathLike[str],
    *,
    domain: str | None = ALL_DOMAINS,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write the report to ``path``: HTML for ``.html``/``.htm``, else Markdown. Returns it.

    ``summary``: an already computed ``quality_summary`` (the dashboard's); else it is computed
    from ``store``.
    """
    p = Path(path)
    if summary is None:
        if store is None:
            raise ValueError("write_report needs a store or a summary")
        summary = quality_summary(store, domain=domain)
    text = report_markdown(summary)
    if p.suffix.lower() in (".html", ".htm"):
        text = report_html(text)
    p.write_text(text, encoding="utf-8")
    return p
