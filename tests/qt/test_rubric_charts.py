"""The dashboard's rubric charts take stats' plain "rubrics" dict: criteria least agreed first,
bars as long as their share, each grader's macro-F1 per axis as tall as its value."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor

from hitl_desktop.qt import theme
from hitl_desktop.qt.rubric_charts import CriterionAgreementChart, GraderF1Chart, RubricCharts

STATS = {
    "criteria": 12, "graded_completions": 9,
    "tutor_agreement": {"pairwise_raw": 0.8, "krippendorff_alpha": 0.45, "units": 90,
                        "by_axis": {"accuracy": {"pairwise_raw": 0.9, "units": 50}, "completeness": 0.6}},
    "graders": {"grader-a": {"macro_f1": 0.7, "n": 80, "by_axis": {"accuracy": {"macro_f1": 0.8, "n": 50},
                                                                   "completeness": {"macro_f1": 0.4, "n": 30}}},
                "grader-b": {"macro_f1": 0.5, "n": 80, "by_axis": {"accuracy": 0.25}}},
}
CRITERIA = [{"criterion": "Checks kidney function", "pairwise_raw": 0.9, "units": 10, "points": 6},
            {"criterion": "Invents a trial", "pairwise_raw": 0.4, "units": 10, "points": -8},
            {"criterion": "Plain language", "pairwise_raw": None, "units": 0, "points": 2}]


def close(a: QColor, b: QColor) -> bool:
    return abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) < 40


def shown(qtbot, widget, w=700, h=320):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    image = widget.grab().toImage()
    return image, image.width() / widget.width()


def test_criteria_least_agreed_first_with_bars_as_long_as_their_share(qtbot):
    chart = CriterionAgreementChart()
    chart.set_agreement(STATS["tutor_agreement"], CRITERIA)
    assert [b[0] for b in chart.bars] == ["Invents a trial", "Checks kidney function", "Plain language"]
    assert chart.bars[0][3] is True  # a penalty, drawn in the danger colour
    assert chart.title() == "Tutors' agreement by criterion · raw 80 % · α 0.45 · 90 units"
    assert "Invents a trial: 40 % agreement over 10 units" in chart.toolTip()
    image, ratio = shown(qtbot, chart)
    t = theme.current()
    # the lowest bar (40 %, under two thirds: the warning colour) is filled to 40 % of its track
    # and no further; the 90 % bar in the accent colour
    slot = chart.bar_rect(0)
    y = int(slot.center().y() * ratio)
    fills = [x for x in range(image.width()) if close(QColor(image.pixel(x, y)), QColor(t["warning"]))]
    slot1 = chart.bar_rect(1)
    y1 = int(slot1.center().y() * ratio)
    accents = [x for x in range(image.width()) if close(QColor(image.pixel(x, y1)), QColor(t["accent"]))]
    assert fills and accents
    assert (max(fills) - min(fills)) / (max(accents) - min(accents)) == pytest.approx(0.4 / 0.9, abs=0.03)


def test_without_criteria_rows_the_bars_are_the_axes(qtbot):
    chart = CriterionAgreementChart()
    chart.set_agreement(STATS["tutor_agreement"])
    assert chart.by == "axis"
    assert [(b[0], b[1], b[2]) for b in chart.bars] == [("completeness", 0.6, None), ("accuracy", 0.9, 50)]
    empty = CriterionAgreementChart()
    empty.set_agreement(None)
    assert empty.bars == []
    shown(qtbot, empty)  # paints its "nothing yet" line without failing


def test_each_graders_macro_f1_per_axis_as_tall_as_its_value(qtbot):
    chart = GraderF1Chart()
    chart.set_graders(STATS["graders"])
    assert chart.axes() == ["all", "accuracy", "completeness"]
    assert chart.value("grader-b", "accuracy") == (0.25, None)
    assert chart.value("grader-b", "completeness") == (None, None)
    assert chart.value("grader-a", "completeness") == (0.4, 30)
    assert "grader-a: macro-F1 0.70 over 80" in chart.toolTip()
    image, ratio = shown(qtbot, chart)
    t = theme.current()
    plot = chart.plot_rect()

    def height_of(group, series, colour):
        bar = chart.bar_rect(group, series)
        x = int(bar.center().x() * ratio)
        ys = [y for y in range(int(plot.top() * ratio), int(plot.bottom() * ratio) + 1)
              if close(QColor(image.pixel(x, y)), QColor(t[colour]))]
        return (max(ys) - min(ys) + 1) / ratio if ys else 0.0

    assert height_of(1, 0, "accent") / plot.height() == pytest.approx(0.8, abs=0.03)
    assert height_of(1, 1, "success") / plot.height() == pytest.approx(0.25, abs=0.03)
    assert height_of(0, 0, "accent") / plot.height() == pytest.approx(0.7, abs=0.03)
    assert height_of(2, 1, "success") == 0.0  # grader-b has no completeness figure: no bar


def test_the_pair_takes_the_whole_rubrics_dict(qtbot):
    charts = RubricCharts()
    charts.set_stats(STATS, by_criterion=CRITERIA)
    assert charts.agreement.by == "criterion" and list(charts.graders.graders) == ["grader-a", "grader-b"]
    charts.set_stats({})
    assert charts.agreement.bars == [] and charts.graders.graders == {}
    shown(qtbot, charts, 1000, 300)


def test_the_charts_show_the_cores_figures_from_a_database(qtbot, store):
    """Two tutors and a model grade the same candidates: the charts show rubric_stats' and
    disagreed_criteria's figures, worked out here by hand."""
    from hitl_desktop.core.rubric_agreement import disagreed_criteria, rubric_stats
    from hitl_desktop.core.rubrics import MODEL, Criterion, Grade
    from hitl_desktop.core.types import Candidate, Prompt

    p = store.add_prompt(Prompt(text="eGFR 28 and metformin?", domain="medicine"))
    cands = [Candidate(prompt_id=p.id, text=f"answer {i}", index=i) for i in range(4)]
    store.add_candidates(cands)
    rubric = store.rubrics.save_rubric(p.id, [
        Criterion("Stops metformin", 8, ["axis:accuracy"]),
        Criterion("Explains why", 3, ["axis:communication_quality"])], author="ann")
    stop, why = rubric.criteria
    ann = {stop.id: [1, 1, 0, 0], why.id: [1, 0, 1, 0]}
    bob = {stop.id: [1, 1, 0, 0], why.id: [0, 1, 0, 1]}  # agrees on "stops", never on "why"
    model = {stop.id: [1, 0, 0, 0], why.id: [1, 1, 1, 1]}
    grades = [Grade(candidate_id=c.id, criterion_id=k, rubric_id=rubric.id, met=bool(v[i]), grader=name,
                    grader_kind=MODEL if name == "judge-7b" else "tutor")
              for name, marks in (("ann", ann), ("bob", bob), ("judge-7b", model))
              for k, v in marks.items() for i, c in enumerate(cands)]
    store.rubrics.save_grades(grades)
    stats = rubric_stats(store)
    worst = disagreed_criteria(store)
    charts = RubricCharts()
    charts.set_stats(stats, by_criterion=worst)
    shown(qtbot, charts, 1000, 300)
    bars = charts.agreement.bars
    assert [(b[0], b[1], b[2]) for b in bars] == [("Explains why", 0.0, 4), ("Stops metformin", 1.0, 4)]
    assert charts.agreement.title().startswith("Tutors' agreement by criterion · raw 50 % ·")
    assert "8 units" in charts.agreement.title()
    # the model against the tutors' majority: "why" is a tie everywhere (left out); on "stops"
    # it says met for answer 0 (tutors: met), not met for 1 (met), 2 and 3 (not met):
    # met F1 = 2/3, not met F1 = 4/5, macro 11/15
    assert charts.graders.value("judge-7b", "all") == (pytest.approx(11 / 15), 4)
    assert charts.graders.value("judge-7b", "accuracy")[0] == pytest.approx(11 / 15)
    assert charts.graders.axes() == ["all", "accuracy"]
