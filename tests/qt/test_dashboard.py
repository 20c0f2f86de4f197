"""The quality dashboard: tables and charts filled, domain filter, report export, worker."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QThread

from hitl_desktop.core.quality import quality_summary
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt
from hitl_desktop.qt import dashboard as dashboard_module
from hitl_desktop.qt.dashboard import QualityDashboard

# tutor -> (domain, [(prompt number, ranks of c0..c2, first shown candidate)])
WORK = {
    "ann": ("medicine", [(0, [1, 2, 3], 0), (1, [1, 2, 3], 0), (2, [2, 1, 3], 1)]),
    "bob": ("medicine", [(0, [1, 3, 2], 2), (1, [2, 1, 3], 0), (2, [2, 1, 3], 1)]),
    "cem": ("finance", [(3, [1, 2, 3], 0), (4, [3, 2, 1], 1)]),
    "dan": ("finance", [(3, [1, 2, 3], 2), (4, [1, 2, 3], 1)]),
}


def populate(store: Store) -> Store:
    prompts = {}
    for n in range(5):
        domain = "medicine" if n < 3 else "finance"
        p = store.add_prompt(Prompt(text=f"question {n}", domain=domain))
        cands = [Candidate(prompt_id=p.id, text=f"q{n} answer {i}", index=i) for i in range(3)]
        store.add_candidates(cands)
        if n == 0:
            store.set_gold_ranking(p.id, {c.id: r for c, r in zip(cands, [1, 2, 3])})
        prompts[n] = cands
    clock = 0
    for name, (domain, work) in WORK.items():
        tutor = store.ensure_tutor(name, [domain])
        for n, ranks, first in work:
            cands = prompts[n]
            clock += 1
            order = [cands[first]] + [c for c in cands if c is not cands[first]]
            store.save_judgment(
                Judgment(
                    prompt_id=cands[0].prompt_id,
                    tutor_id=tutor.id,
                    ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
                    display_order=[c.id for c in order],
                    seconds_spent=20.0 * clock,
                    correction=Correction(text="better", candidate_id=cands[2].id)
                    if clock == 2
                    else None,
                    created_at=f"2026-03-01T10:00:{clock:02d}+00:00",
                )
            )
    return store


@pytest.fixture
def filled(tmp_path):
    s = populate(Store.open(tmp_path / "quality.db"))
    yield s
    s.close()


@pytest.fixture
def dash(qtbot, filled):
    d = QualityDashboard(filled)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    yield d
    d.close()


def cell(view, row: int, column: int) -> str:
    return view.model().index(row, column).data()


def test_shows_the_figures(dash, filled, qtmodeltester):
    assert dash.windowTitle() == "Quality dashboard"
    assert dash.tutor_model.rowCount() == 4 and dash.domain_model.rowCount() == 2
    assert [cell(dash.tutor_view, r, 0) for r in range(4)] == ["ann", "bob", "cem", "dan"]
    expected = quality_summary(filled)
    assert dash.tiles["judgments"].text() == "10"
    assert dash.tiles["prompts"].text() == "5"
    assert dash.tiles["kendall_tau"].text() == f"{expected['agreement']['kendall_tau']:.3f}"
    assert dash.tutor_model.rows() == expected["tutors"]
    # ann: gold agreement on question 0, judged in 20 s steps
    assert cell(dash.tutor_view, 0, 3) == "40.0"  # median of 20, 40, 60
    assert cell(dash.tutor_view, 0, 6) == "1.00  (1)"
    assert cell(dash.tutor_view, 0, 7) == "100%  (chance 33%)"
    assert cell(dash.domain_view, 0, 0) == "finance"
    assert dash.agreement_chart.categories == ["finance", "medicine"]
    assert dash.throughput_chart.categories == ["ann", "bob", "cem", "dan"]
    assert dash.position_chart.markers == pytest.approx([1 / 3] * 4)
    qtmodeltester.check(dash.tutor_model)
    qtmodeltester.check(dash.domain_model)


def test_tables_sort_by_value(dash):
    view = dash.tutor_view
    view.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # items per hour
    rates = [float(cell(view, r, 4)) for r in range(4)]
    assert rates == sorted(rates, reverse=True)


def test_one_domain_at_a_time(qtbot, dash):
    i = dash.domain_box.findData("finance")
    assert i > 0
    with qtbot.waitSignal(dash.refreshed, timeout=5000):
        dash.domain_box.setCurrentIndex(i)
    assert [cell(dash.tutor_view, r, 0) for r in range(dash.tutor_model.rowCount())] == [
        "cem",
        "dan",
    ]
    assert dash.tiles["judgments"].text() == "4"
    assert dash.summary["domain"] == "finance"
    dash.refresh()  # keeps the domain chosen
    assert dash.current_domain() == "finance"


def test_refresh_shows_new_judgments(dash, filled):
    tutor = filled.ensure_tutor("eve", ["medicine"])
    prompt = filled.judged_items().__next__().prompt
    cands = filled.candidates_for(prompt.id)
    filled.save_judgment(
        Judgment(
            prompt_id=prompt.id, tutor_id=tutor.id, ranks={c.id: i + 1 for i, c in enumerate(cands)}
        )
    )
    dash.refresh()
    assert dash.tiles["judgments"].text() == "11" and dash.tutor_model.rowCount() == 5


@pytest.mark.parametrize(
    ("name", "selected", "suffix"),
    [("report.md", "Markdown (*.md)", ".md"), ("report", "HTML (*.html)", ".html")],
)
def test_export_report_writes_the_file(qtbot, dash, tmp_path, monkeypatch, name, selected, suffix):
    target = tmp_path / name
    monkeypatch.setattr(
        dashboard_module.QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a, **k: (str(target), selected)),
    )
    with qtbot.waitSignal(dash.report_written, timeout=5000) as sig:
        qtbot.mouseClick(dash.export_button, Qt.MouseButton.LeftButton)
    written = tmp_path / f"report{suffix}"
    assert sig.args == [str(written)] and written.exists()
    text = written.read_text(encoding="utf-8")
    assert "Quality report" in text and "ann" in text
    if suffix == ".html":
        assert "<table>" in text


def test_export_cancelled_writes_nothing(dash, tmp_path, monkeypatch):
    monkeypatch.setattr(
        dashboard_module.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", ""))
    )
    assert dash.export_report() is None
    assert list(tmp_path.glob("*.md")) == []


def test_large_stores_are_computed_in_a_worker(qtbot, filled, monkeypatch):
    monkeypatch.setattr(dashboard_module, "WORKER_THRESHOLD", 0)
    d = QualityDashboard(filled)
    qtbot.addWidget(d)
    assert d.use_worker()
    with qtbot.waitSignal(d.refreshed, timeout=10000):
        pass  # the constructor's refresh is running in its thread
    assert d.tutor_model.rowCount() == 4
    assert d.tutor_model.rows() == quality_summary(filled)["tutors"]
    with qtbot.waitSignal(d.refreshed, timeout=10000):
        d.refresh()
    assert d.wait_for_workers(5000)
    qtbot.waitUntil(lambda: not d._threads, timeout=5000)  # finished threads are reaped
    d.close()


@pytest.mark.parametrize("refresh_at_once", [False, True])
def test_a_lab_database_gets_its_charts_and_tables_in_a_later_turn(qtbot, filled, monkeypatch, refresh_at_once):
    """With a worker (a lab database), the constructor builds the top row and the tiles only:
    the charts and tables come in a later turn of the event loop (opening the dialog is then
    two short slices of the GUI thread); a refresh asked before that builds them first."""
    monkeypatch.setattr(dashboard_module, "WORKER_THRESHOLD", 0)
    d = QualityDashboard(filled)
    qtbot.addWidget(d)
    assert not d._body_built and not hasattr(d, "tutor_view") and d.tiles["judgments"].text() == "–"
    if refresh_at_once:
        d.refresh()  # (the window's Quality… again, in the same turn)
        assert d._body_built
    else:
        d.show()
        qtbot.waitUntil(lambda: d._body_built, timeout=5000)
        assert d.tutor_view.isVisible() and d.agreement_chart.isVisible()
    with qtbot.waitSignal(d.refreshed, timeout=10000):
        pass
    assert d.tutor_model.rows() == quality_summary(filled)["tutors"]
    assert d.tiles["judgments"].text() == str(quality_summary(filled)["judgments"])
    assert d.wait_for_workers(5000)
    d.close()


def test_a_worker_failure_is_reported(qtbot, filled, monkeypatch):
    monkeypatch.setattr(dashboard_module, "WORKER_THRESHOLD", 0)

    def boom(store, *, domain=None):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(dashboard_module, "quality_summary", boom)
    d = QualityDashboard(filled)
    qtbot.addWidget(d)
    with qtbot.waitSignal(d.failed, timeout=10000) as sig:
        pass  # the constructor's refresh fails in its thread
    assert "no figures today" in sig.args[0]
    assert d.status.text() == "Could not compute the figures"
    d.wait_for_workers(5000)
    d.close()


def test_an_empty_store(qtbot, tmp_path):
    with Store.memory() as s:
        d = QualityDashboard(s)
        qtbot.addWidget(d)
        d.show()
        assert d.tutor_model.rowCount() == 0 and d.tiles["kendall_tau"].text() == "–"
        assert not d.grab().isNull()
        d.close()


def test_screenshot(qtbot, dash, tmp_path):
    dash.resize(1180, 820)
    path = tmp_path / "dashboard.png"
    assert dash.grab().save(str(path)) and path.stat().st_size > 10_000
    assert not [t for t in dash.findChildren(QThread) if t.isRunning()]


def test_chart_legends_fit_their_charts(dash):
    from PySide6.QtGui import QFont

    for chart in (dash.agreement_chart, dash.position_chart):
        chart.resize(chart.minimumWidth(), chart.height())  # four side by side in a narrow window
        small = QFont(chart.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        assert 0 < chart.legend_width(small) <= chart.width() - 24, chart.title
