"""Agreement on criteria: tutors among themselves, and each model grader against the tutors.

``rubric_stats(store)`` is the ``"rubrics"`` object of ``stats --json`` (README "Rubrics"):

- ``criteria``: criteria of the prompts' current rubrics (lab, else newest version);
  ``graded_completions``: candidates with a tutor's grade.
- ``tutor_agreement``: over units = (candidate, criterion) two or more tutors graded (a
  criterion belongs to one rubric version, so both graded the same version); each tutor's
  newest grade of a unit counts, re-judged versions left out.
  ``pairwise_raw``: over every unit and every two tutors who graded it, the share that agree;
  ``krippendorff_alpha``: nominal, from the ``krippendorff`` package (unit value counts);
  ``units``; ``by_axis``: the same per criterion axis (``none`` for criteria without one).
- ``graders``: ``{name: {"macro_f1", "n", "by_axis"}}``: a model grader's grades against the
  tutors' majority on each unit (units where the tutors tie are left out; one tutor is a
  majority), macro-F1 over the two classes met / not met (the mean of each class's F1, as
  HealthBench's meta-evaluation balances them); ``n``: units compared.

Everything is computed by SQL aggregates streamed row by row; only the per-unit value counts
(two integers a unit) are held for the alpha. A figure with nothing to compare is ``None``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

from hitl_desktop.core.rubric_store import CURRENT_GRADE

_AXIS = ("coalesce((select substr(j.value, 6) from json_each(k.tags) j where j.value like 'axis:%' limit 1), 'none')")

#: each tutor's newest grade of each unit, with the criterion's axis
_TUTOR_UNITS = f"""
with tg as (
  select g.candidate_id c, g.criterion_id k, g.met met,
         row_number() over (partition by g.candidate_id, g.criterion_id, g.grader order by g.rowid desc) rn
  from grades g where g.grader_kind = 'tutor' and {CURRENT_GRADE}
)
select t.c, t.k, {_AXIS} axis, sum(t.met) n1, count(*) - sum(t.met) n0
from tg t join criteria k on k.id = t.k where t.rn = 1 group by t.c, t.k
"""


def nominal_alpha(value_counts: list[tuple[int, int]]) -> float | None:
    """Krippendorff's nominal alpha of units given as (not met, met) counts (``krippendorff``)."""
    units = [u for u in value_counts if sum(u) >= 2]
    if not units or not any(u[0] for u in units) or not any(u[1] for u in units):
        return None  # one value only: agreement undefined (no expected disagreement)
    import krippendorff
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alpha = krippendorff.alpha(value_counts=np.array(units, dtype=float), level_of_measurement="nominal")
    return float(alpha)


class _Agree:
    def __init__(self) -> None:
        self.agree = 0
        self.pairs = 0
        self.counts: list[tuple[int, int]] = []

    def add(self, n0: int, n1: int) -> None:
        n = n0 + n1
        self.agree += n0 * (n0 - 1) // 2 + n1 * (n1 - 1) // 2
        self.pairs += n * (n - 1) // 2
        self.counts.append((n0, n1))

    def result(self) -> dict[str, Any]:
        return {
            "pairwise_raw": self.agree / self.pairs if self.pairs else None,
            "krippendorff_alpha": nominal_alpha(self.counts),
            "units": len(self.counts),
        }


def tutor_agreement(store: Any) -> dict[str, Any]:
    total, by_axis = _Agree(), defaultdict(_Agree)
    for _c, _k, axis, n1, n0 in store.db.execute(_TUTOR_UNITS):
        if n0 + n1 < 2:
            continue
        total.add(n0, n1)
        by_axis[axis].add(n0, n1)
    return {**total.result(), "by_axis": {a: by_axis[a].result() for a in sorted(by_axis)}}


def macro_f1(tp: int, fp: int, fn: int, tn: int) -> float | None:
    """The mean of the F1 of "met" (tp, fp, fn) and of "not met" (tn, fn, fp); a class with
    no true and no predicted case is left out of the mean; None when nothing was compared."""
    scores = []
    for t, f_pos, f_neg in ((tp, fp, fn), (tn, fn, fp)):
        if t + f_pos + f_neg == 0:
            continue
        scores.append(2 * t / (2 * t + f_pos + f_neg))
    return sum(scores) / len(scores) if scores else None


def grader_agreement(store: Any) -> dict[str, dict[str, Any]]:
    """Each model grader against the tutors' majority (module docstring)."""
    sql = f"""
    with u as ({_TUTOR_UNITS}), m as (
      select g.grader, g.candidate_id c, g.criterion_id k, g.met,
             row_number() over (partition by g.grader, g.candidate_id, g.criterion_id order by g.rowid desc) rn
      from grades g where g.grader_kind = 'model'
    )
    select m.grader, u.axis, (u.n1 > u.n0) gold, m.met, count(*)
    from m join u on u.c = m.c and u.k = m.k
    where m.rn = 1 and u.n1 != u.n0
    group by m.grader, u.axis, gold, m.met
    """
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    for grader, axis, gold, met, n in store.db.execute(sql):
        i = {(1, 1): 0, (0, 1): 1, (1, 0): 2, (0, 0): 3}[(int(gold), int(met))]  # tp, fp, fn, tn
        cells[grader][axis][i] += n
    out = {}
    for grader in sorted(cells):
        axes = cells[grader]
        total = [sum(v[i] for v in axes.values()) for i in range(4)]
        out[grader] = {
            "macro_f1": macro_f1(*total),
            "n": sum(total),
            "by_axis": {a: {"macro_f1": macro_f1(*axes[a]), "n": sum(axes[a])} for a in sorted(axes)},
        }
    # graders with grades but no unit to compare still show, with nothing compared
    for (name,) in store.db.execute("select distinct grader from grades where grader_kind = 'model'"):
        out.setdefault(name, {"macro_f1": None, "n": 0, "by_axis": {}})
    return dict(sorted(out.items()))


def rubric_stats(store: Any) -> dict[str, Any]:
    """The ``"rubrics"`` object of ``stats --json``; empty figures for a database without rubrics."""
    if not store.rubrics.available():
        return {"criteria": 0, "graded_completions": 0,
                "tutor_agreement": {"pairwise_raw": None, "krippendorff_alpha": None, "units": 0, "by_axis": {}},
                "graders": {}}
    criteria = store.db.execute(
        "select count(*) from criteria k where k.rubric_id in (select (select r.id from rubrics r "
        "where r.prompt_id = p.prompt_id order by (r.status = 'approved') desc, "
        "case when r.status = 'approved' then r.approved_at end desc, r.version desc limit 1) "
        "from (select distinct prompt_id from rubrics) p)").fetchone()[0]
    graded = store.db.execute(
        f"select count(distinct g.candidate_id) from grades g where g.grader_kind = 'tutor' and {CURRENT_GRADE}"
    ).fetchone()[0]
    return {
        "criteria": criteria,
        "graded_completions": graded,
        "tutor_agreement": tutor_agreement(store),
        "graders": grader_agreement(store),
    }


def disagreed_criteria(store: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """The criteria tutors disagree on most (the review view): per criterion, over its units
    two or more tutors graded, the pairwise agreement; lowest first, then most units."""
    per: dict[str, _Agree] = defaultdict(_Agree)
    for _c, k, _axis, n1, n0 in store.db.execute(_TUTOR_UNITS):
        if n0 + n1 >= 2:
            per[k].add(n0, n1)
    if not per:
        return []
    ranked = sorted(per.items(), key=lambda kv: (kv[1].agree / kv[1].pairs, -len(kv[1].counts), kv[0]))[:limit]
    out = []
    for k, agg in ranked:
        text, points, rid, pid, ext, axis = store.db.execute(
            f"select k.text, k.points, k.rubric_id, r.prompt_id, p.external_id, {_AXIS} from criteria k "
            "join rubrics r on r.id = k.rubric_id join prompts p on p.id = r.prompt_id where k.id = ?", [k]).fetchone()
        out.append({
            "criterion_id": k, "criterion": text, "points": points, "axis": axis, "rubric_id": rid,
            "prompt_id": pid, "external_id": ext, "units": len(agg.counts),
            "pairwise_raw": agg.agree / agg.pairs, "disagreeing_pairs": agg.pairs - agg.agree,
        })
    return out


def rubric_stats_text(r: dict[str, Any]) -> list[str]:
    """The ``stats`` command's lines on rubrics (none when no criterion is graded)."""
    if not r or not r.get("graded_completions"):
        return []

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    ta = r["tutor_agreement"]
    lines = ["", f"  rubrics     {r['criteria']} criteria, {r['graded_completions']} graded completions; tutors agree "
             f"{num(ta['pairwise_raw'])} (alpha {num(ta['krippendorff_alpha'])}, {ta['units']} units)"]
    for name, g in r.get("graders", {}).items():
        lines.append(f"  grader      {name}: macro-F1 {num(g['macro_f1'])} against the tutors ({g['n']} units)")
    return lines
