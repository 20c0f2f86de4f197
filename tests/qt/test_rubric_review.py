"""The lead's review view, rubric tab: the selected prompt's rubric proposals (versions, author,
criteria count), approving one as the lab rubric with the lead's own name (off the GUI thread,
through core.operations), and the criteria tutors disagree on most."""

from __future__ import annotations

import threading

import pytest
from rubric_data import CRITERIA, GRADES, build

from hitl_desktop.core import operations
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.store import Store
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.review import ReviewView
from hitl_desktop.qt.review_rubrics import LAB_MARK
from hitl_desktop.qt.rubric_common import axis_label


@pytest.fixture
def lab_db(tmp_path):
    db = tmp_path / "lab.db"
    return db, build(db, tmp_path)


@pytest.fixture
def view(qtbot, lab_db, tmp_path):
    db, _pid = lab_db
    store = Store.open(db)
    wf = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=tmp_path / "g"))
    v = ReviewView(None, workflow=wf, adjudicator="Dr. Lead")
    qtbot.addWidget(v)
    v.show()
    with qtbot.waitSignal(v.rubric_review.loaded, timeout=10000):
        v.refresh()
    yield v
    v.rubric_review.close_runner()
    store.close()


def texts(model):
    return [[model.data(model.index(r, c)) for c in range(model.columnCount())] for r in range(model.rowCount())]


def test_the_prompts_proposals_are_listed_and_the_lead_approves_one_off_the_gui_thread(qtbot, view, lab_db, monkeypatch):
    db, pid = lab_db
    rr = view.rubric_review
    assert view.item.prompt.id == pid and rr.prompt_id == pid
    rows = texts(rr.proposals)
    assert [r[:3] for r in rows] == [["v1", "imported", "3"], ["v2", "ann", "2"], ["v3", "ben", "1"]]
    assert rows[0][4].startswith(LAB_MARK) and rows[1][4] == rows[2][4] == "proposed"
    assert view.detail_tabs.tabText(1) == "Rubrics (3 versions)"
    assert rr.selected().version == 1 and not rr.approve_button.isEnabled()  # the lab rubric already

    threads = []
    real = operations.approve_rubric
    monkeypatch.setattr(operations, "approve_rubric",
                        lambda *a, **k: threads.append(threading.current_thread()) or real(*a, **k))
    rr.proposal_view.selectRow(1)
    assert "Stops metformin below eGFR 30" in rr.criteria_view.toPlainText() and rr.approve_button.isEnabled()
    with qtbot.waitSignal(rr.approved, timeout=10000) as approved, qtbot.waitSignal(rr.loaded, timeout=10000):
        rr.approve_button.click()
    assert threads and threads[0] is not threading.main_thread()
    assert approved.args[0].author == "ann" and approved.args[0].approved_by == "Dr. Lead"
    with Store.open(db) as store:
        lab = store.rubrics.lab_rubric(pid)
        assert lab.version == 2 and lab.approved_by == "Dr. Lead"
    rows = texts(rr.proposals)
    assert rows[1][4] == f"{LAB_MARK} (Dr. Lead)" and rows[0][4] == "approved earlier"
    assert rr.status.text() == "Lab rubric: v2 by ann, approved by Dr. Lead."


def test_a_lead_without_a_name_is_refused_and_nothing_changes(qtbot, view, lab_db):
    db, pid = lab_db
    rr = view.rubric_review
    view.adjudicator_edit.setText("  ")
    rr.proposal_view.selectRow(2)
    rr.approve_selected()
    qtbot.waitUntil(lambda: rr.status.text().startswith("Not approved"), timeout=10000)
    assert "lead's name is required" in rr.status.text()
    with Store.open(db) as store:
        assert store.rubrics.lab_rubric(pid).version == 1


def test_the_criteria_tutors_disagree_on_most_come_first(view):
    rows = texts(view.rubric_review.disagreed)
    # computed here: over the three answers, the share of (ann, ben) that agree per criterion
    agree = [sum(GRADES["ann"][a][k] == GRADES["ben"][a][k] for a in range(3)) / 3 for k in range(3)]
    expected = sorted(range(3), key=lambda k: agree[k])
    assert [r[4] for r in rows] == [CRITERIA[k][0] for k in expected]
    assert [r[0] for r in rows] == [f"{agree[k]:.0%}" for k in expected]
    assert rows[0][0] == "33%" and rows[0][1] == "3" and rows[0][3] == axis_label("completeness") and rows[0][5] == "hb-1"
