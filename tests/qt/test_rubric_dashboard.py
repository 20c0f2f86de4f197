"""The Quality dashboard's rubric charts, fed from rubric_stats and disagreed_criteria off the GUI
thread: a database with two tutors' grades (and a model grader's) shows the per-criterion
agreement and the grader's macro-F1 computed here, independently."""

from __future__ import annotations

import threading

import pytest
from rubric_data import CRITERIA, GRADES, MODEL_GRADES, build

from hitl_desktop.core.store import Store
from hitl_desktop.qt import dashboard as dashboard_module
from hitl_desktop.qt.dashboard import QualityDashboard


def agreement(k: int) -> float:
    return sum(GRADES["ann"][a][k] == GRADES["ben"][a][k] for a in range(3)) / 3


def macro_f1(model: list[list[int]]) -> tuple[float, int]:
    """The model against the tutors' majority where they agree (ties left out), both classes."""
    pairs = [(GRADES["ann"][a][k], model[a][k]) for a in range(3) for k in range(3)
             if GRADES["ann"][a][k] == GRADES["ben"][a][k]]
    f1s = []
    for cls in (1, 0):
        tp = sum(t == cls and m == cls for t, m in pairs)
        fp = sum(t != cls and m == cls for t, m in pairs)
        fn = sum(t == cls and m != cls for t, m in pairs)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(f1s) / 2, len(pairs)


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "lab.db"
    build(db, tmp_path, proposals=False, model=True)
    s = Store.open(db)
    yield s
    s.close()


def test_the_rubric_charts_show_the_databases_figures_computed_off_the_gui_thread(qtbot, store, monkeypatch):
    monkeypatch.setattr(dashboard_module, "WORKER_THRESHOLD", 0)  # the worker path, as for a large database
    threads = []
    real = dashboard_module.figures
    monkeypatch.setattr(dashboard_module, "figures",
                        lambda *a, **k: threads.append(threading.current_thread()) or real(*a, **k))
    d = QualityDashboard(store)
    qtbot.addWidget(d)
    with qtbot.waitSignal(d.refreshed, timeout=10000):
        d.show()
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert d.rubric_panel.isVisible()
    chart = d.rubric_charts.agreement
    assert chart.by == "criterion"
    expected = sorted(((c[0], agreement(k)) for k, c in enumerate(CRITERIA)), key=lambda x: (x[1], x[0]))
    assert [(label, share) for label, share, _n, _neg in chart.bars] == [(t, pytest.approx(v)) for t, v in expected]
    assert [n for *_x, n, _neg in chart.bars] == [3, 3, 3]
    assert [neg for *_x, neg in chart.bars] == [c[1] < 0 for t, _ in expected for c in CRITERIA if c[0] == t]
    raw = sum(agreement(k) for k in range(3)) / 3  # every unit has one pair of tutors
    assert f"raw {round(100 * raw)} %" in chart.title() and "9 units" in chart.title()
    f1, n = macro_f1(MODEL_GRADES["grader-x"])
    g = d.rubric_charts.graders
    assert list(g.graders) == ["grader-x"]
    assert g.value("grader-x", "all") == (pytest.approx(f1), n)
    d.close()


def test_no_rubric_panel_without_grades(qtbot, tmp_path):
    s = Store.open(tmp_path / "empty.db")
    d = QualityDashboard(s)
    qtbot.addWidget(d)
    d.show()
    assert not d.rubric_panel.isVisible()
    d.close()
    s.close()
