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
    StatsAgreement,
    gold_agreement,
    latest_by_tutor,
    tau_b,
)
from hitl_desktop.core.judged_reader import Filters, JudgedReader
from hitl_desktop.core.models_compared import ModelsTally
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import JudgedItem, Tutor
from hitl_desktop.core.wording import count

ALL_DOMAINS = None


def position_figures(items: Iterable[JudgedItem]) -> dict[str, Any]:
    """How often the candidate shown first was ranked best, against chance (module docstring)."""
    tally = _PositionTally()
    for item in items:
        tally.add(item)
    return _position_result(tally.hits, tally.n, tally.expected)


def _position_result(hits: int, n: int, expected: float) -> dict[str, Any]:
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


class _PositionTally:
    """``position_figures`` accumulated an item at a time."""

    def __init__(self) -> None:
        self.hits = self.n = 0
        self.expected = 0.0

    def add(self, item: JudgedItem) -> None:
        j = item.judgment
        if not j.display_order or len(j.ranks) < 2 or j.display_order[0] not in j.ranks:
            return
        best = min(j.ranks.values())
        self.n += 1
        self.hits += j.ranks[j.display_order[0]] == best
        self.expected += sum(1 for r in j.ranks.values() if r == best) / len(j.ranks)


class QualityTally:
    """``quality_summary``'s figures accumulated a batch of whole prompts at a time: per tutor
    sums and counts (the median time is read from SQL, ordered), so memory does not grow."""

    def __init__(self, tutors: Sequence[Tutor] = ()) -> None:
        self.judgments = 0
        self.gold_prompts = 0
        self.names: dict[str, str] = {}
        self.domains: dict[str, set[str]] = defaultdict(set)
        self.counts: dict[str, int] = defaultdict(int)
        self.corrections: dict[str, int] = defaultdict(int)
        self.tau_sum: dict[str, float] = defaultdict(float)
        self.tau_n: dict[str, int] = defaultdict(int)
        self.positions: dict[str, _PositionTally] = defaultdict(_PositionTally)
        self.agreement = StatsAgreement()
        self.models = ModelsTally()
        for t in tutors:
            self.names[t.id] = t.name
            self.domains[t.id].update(t.domains)

    def add(self, batch: Sequence[JudgedItem]) -> None:
        self.judgments += len(batch)
        self.gold_prompts += len({i.prompt.id for i in batch if i.prompt.gold_ranking is not None})
        self.agreement.add(batch)
        self.models.add(batch)
        items = [i for i in batch if i.tutor_name != CONSENSUS_TUTOR]
        for item in items:
            tid = item.judgment.tutor_id
            self.names.setdefault(tid, item.tutor_name)
            self.domains[tid].add(item.domain)
            self.counts[tid] += 1
            self.corrections[tid] += item.judgment.correction is not None
            self.positions[tid].add(item)
        for judged in latest_by_tutor(items).values():
            for t1, t2 in combinations(sorted(judged), 2):
                tau = tau_b(judged[t1].judgment.ranks, judged[t2].judgment.ranks)
                if tau is not None:
                    for t in (t1, t2):
                        self.tau_sum[t] += tau
                        self.tau_n[t] += 1

    def tutors(self, medians: dict[str, float]) -> list[dict[str, Any]]:
        gold = self.agreement.gold.figures()
        out = []
        for tid in sorted(self.names, key=lambda t: (self.names[t], t)):
            median = medians.get(tid)
            g = gold.get(tid, {"kendall_tau": None, "items": 0})
            pos = self.positions.get(tid, _PositionTally())
            n = self.tau_n.get(tid, 0)
            out.append(
                {
                    "tutor": self.names[tid],
                    "domains": sorted(self.domains[tid]),
                    "judgments": self.counts.get(tid, 0),
                    "median_seconds": median,
                    "items_per_hour": 3600.0 / median if median else None,
                    "agreement_with_others": self.tau_sum[tid] / n if n else None,
                    "comparisons": n,
                    "agreement_with_gold": g["kendall_tau"],
                    "gold_items": g["items"],
                    **_position_result(pos.hits, pos.n, pos.expected),
                    "corrections": self.corrections.get(tid, 0),
                }
            )
        return out


def _medians(reader: JudgedReader) -> dict[str, float]:
    """tutor id -> median seconds spent over the selected judgments with a time, read in order
    from SQL (two middle values kept, never the list)."""
    ex = reader.store.db.conn.execute
    counts = dict(
        ex(
            f"select j.tutor_id, count(*) {reader.base} and j.seconds_spent is not null "
            "and t.name != ? group by j.tutor_id",
            [*reader.args, CONSENSUS_TUTOR],
        ).fetchall()
    )
    out: dict[str, float] = {}
    tid, i, lo = None, 0, 0.0
    for t, secs in ex(
        f"select j.tutor_id, j.seconds_spent {reader.base} and j.seconds_spent is not null and t.name != ? "
        "order by j.tutor_id, j.seconds_spent",
        [*reader.args, CONSENSUS_TUTOR],
    ):
        if t != tid:
            tid, i = t, 0
        n = counts[t]
        if i == (n - 1) // 2:
            lo = secs
        if i == n // 2:
            out[t] = float(statistics.median([lo, secs]))
        i += 1
    return out


def quality_summary(store: Store, *, domain: str | None = ALL_DOMAINS) -> dict[str, Any]:
    """Everything the dashboard and the report show, for one domain or all of them::

    {"database", "generated_at", "domain", "judgments", "gold_prompts",
     "agreement": {...}, "by_domain": {domain: {...}}, "tutors": [figures...],
     "models": {model: {...}}}  (checkpoints compared: core.models_compared.model_figures)

    Read from the store a prompt at a time (core/judged_reader.py): memory stays flat.
    """
    reader = JudgedReader(store, Filters(domain=domain))
    tally = QualityTally(store.tutors() if domain is None else ())
    for batch in reader.batches(by_prompt=True):
        tally.add(batch)
    agreement = tally.agreement.figures()
    return {
        "database": str(store.path) if store.path else ":memory:",
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "domain": domain,
        "judgments": tally.judgments,
        "gold_prompts": tally.gold_prompts,
        "agreement": {k: v for k, v in agreement.items() if k not in ("by_domain", "gold")},
        "by_domain": agreement["by_domain"],
        "tutors": tally.tutors(_medians(reader)),
        "models": tally.models.figures()["models"],
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
