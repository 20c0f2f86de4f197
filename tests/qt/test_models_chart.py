"""The Quality dashboard's "models compared" chart: shown when candidates of different models
were ranked, one whisker per model at the core's figures."""

from __future__ import annotations

from PySide6.QtGui import QColor

from hitl_desktop.core.models_compared import model_figures
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Judgment, Prompt
from hitl_desktop.qt import theme
from hitl_desktop.qt.dashboard import QualityDashboard
from hitl_desktop.qt.models_chart import ModelStrengthChart

# per prompt: the models of its three candidates and a tutor's ranks
WORK = [
    (["ckpt-1000", "ckpt-2000", "ckpt-3000"], [3, 2, 1]),
    (["ckpt-1000", "ckpt-2000", "ckpt-3000"], [2, 3, 1]),
    (["ckpt-1000", "ckpt-2000", "ckpt-3000"], [3, 1, 2]),
    (["ckpt-2000", "ckpt-3000", "ckpt-1000"], [1, 1, 2]),
    (["ckpt-3000", "ckpt-1000", "ckpt-2000"], [1, 2, 3]),
    (["ckpt-3000", "ckpt-1000", "ckpt-2000"], [2, 1, 3]),
]


def populate(store: Store, *, with_models: bool = True) -> Store:
    tutor = store.ensure_tutor("ann", ["stem"])
    for n, (models, ranks) in enumerate(WORK):
        p = store.add_prompt(Prompt(text=f"question {n}", domain="stem"))
        cands = [Candidate(prompt_id=p.id, text=f"answer {n}.{i}", model=m if with_models else "", index=i)
                 for i, m in enumerate(models)]
        store.add_candidates(cands)
        store.save_judgment(Judgment(prompt_id=p.id, tutor_id=tutor.id,
                                     ranks={c.id: r for c, r in zip(cands, ranks)},
                                     display_order=[c.id for c in cands], seconds_spent=30.0))
    return store


def test_the_dashboard_plots_each_models_strength_with_its_interval(qtbot, tmp_path):
    store = populate(Store.open(tmp_path / "lab.db"))
    try:
        dash = QualityDashboard(store)
        qtbot.addWidget(dash)
        dash.resize(1400, 800)
        dash.show()
        qtbot.waitExposed(dash)
        chart = dash.models_chart
        expected = model_figures(store.judged_items())
        assert chart.isVisible() and chart.models == expected
        assert list(chart.models) == ["ckpt-3000", "ckpt-2000", "ckpt-1000"]  # strongest first
        assert "ckpt-3000: strength" in chart.toolTip()
        dash.grab().save(str(tmp_path / "dashboard.png"))
        image = chart.grab().toImage()
        ratio = image.width() / chart.width()  # device pixels per logical pixel
        accent = QColor(theme.current()["accent"])

        def accent_at(point) -> bool:
            c = QColor(image.pixel(int(point.x() * ratio), int(point.y() * ratio)))
            return abs(c.red() - accent.red()) + abs(c.green() - accent.green()) + abs(c.blue() - accent.blue()) < 40

        for i, m in enumerate(chart.models.values()):
            # the dot at its strength, the whisker across its interval, nothing beyond it
            assert accent_at(chart.point_of(i, m["bradley_terry"])), i
            low, high = m["ci95"]
            assert accent_at(chart.point_of(i, (low + m["bradley_terry"]) / 2)), i
            assert accent_at(chart.point_of(i, (high + m["bradley_terry"]) / 2)), i
            below = chart.point_of(i, low)
            below.setY(below.y() + 6)
            assert not accent_at(below), i
    finally:
        store.close()


def test_hidden_without_models_compared(qtbot, tmp_path):
    store = populate(Store.open(tmp_path / "lab.db"), with_models=False)
    try:
        dash = QualityDashboard(store)
        qtbot.addWidget(dash)
        dash.show()
        qtbot.waitExposed(dash)
        assert not dash.models_chart.isVisible() and dash.models_chart.models == {}
    finally:
        store.close()


def test_empty_chart_says_so(qtbot):
    chart = ModelStrengthChart()
    qtbot.addWidget(chart)
    chart.set_models({})
    chart.resize(300, 200)
    assert not chart.grab().isNull()


def test_chart_title_fits_its_width_and_the_tooltip_says_what_is_drawn(qtbot):
    from PySide6.QtGui import QFontMetrics

    chart = ModelStrengthChart()
    qtbot.addWidget(chart)
    chart.resize(260, 240)  # its minimum width: the default title fits whole
    assert chart.shown_title() == chart.title
    chart.title = "Models compared across every checkpoint (Bradley–Terry, 95% CI)"
    shown = chart.shown_title()
    assert shown != chart.title and shown.endswith("…")  # elided, never cut mid-letter
    assert QFontMetrics(chart._fonts()[2]).horizontalAdvance(shown) <= chart.width() - 24
    assert "95%" in chart.toolTip() and "Bradley–Terry" in chart.toolTip()
