"""The review view's second list, "Rubrics to approve": prompts whose newest rubric version is
not the lab rubric, also those no two tutors ranked (not in the disagreement list); selecting one
opens its proposals in the Rubrics tab, approving the newest takes it off the list, and the
store's lab rubric is that version with the lead's name."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from rubric_data import build

from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.rubrics import Criterion
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Prompt
from hitl_desktop.core.workflow import TutorWorkflow
from hitl_desktop.qt.review import ReviewView


@pytest.fixture
def lab(qtbot, tmp_path):
    db = tmp_path / "lab.db"
    hb = build(db, tmp_path)
    with Store.open(db) as store:
        solo = store.add_prompt(Prompt(text="What is adverse possession?\nExplain briefly.", domain="law")).id
        store.rubrics.save_rubric(solo, [Criterion("Names the statutory period", 6)], author="cat",
                                  created_at="2099-01-01T00:00:00Z")  # the newest proposal: listed first
    store = Store.open(db)
    wf = TutorWorkflow(store, guidelines=GuidelineLibrary(user_dir=tmp_path / "g"))
    v = ReviewView(None, workflow=wf, adjudicator="Dr. Lead")
    qtbot.addWidget(v)
    v.show()
    with qtbot.waitSignal(v.queue.listed, timeout=10000):
        v.refresh()
    yield v, db, hb, solo
    v.rubric_review.close_runner()
    store.close()


def ids(queue):
    return [r["prompt_id"] for r in queue.rows.rows]


def cells(queue, row):
    return [queue.rows.data(queue.rows.index(row, c)) for c in range(queue.rows.columnCount())]


def test_the_lead_lists_the_rubrics_to_approve_selects_one_and_approving_it_takes_it_off(qtbot, lab):
    view, db, hb, solo = lab
    assert solo not in [view.list_model.row(i).prompt.id for i in range(view.list_model.rowCount())]
    assert ids(view.queue) == [solo, hb]  # newest version first
    assert view.lists.tabText(1) == "Rubrics to &approve (2)"
    row = cells(view.queue, 0)
    assert row == ["What is adverse possession? Explain briefly.", "2099-01-01", "v1 · no lab", "cat", "law"]
    assert cells(view.queue, 1)[2:4] == ["v3 · lab v1", "ann +2"]
    assert view.queue.rows.rows[1]["authors"] == ["ann", "ben", "imported"]

    # keyboard: Alt+A shows the list, the first prompt is selected and its proposals open
    view.list_view.setFocus()
    with qtbot.waitSignal(view.rubric_review.loaded, timeout=10000):
        qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    assert view.showing_rubrics() and view.queue.view.hasFocus()
    rr = view.rubric_review
    assert view.item.prompt.id == solo and rr.prompt_id == solo
    assert view.detail_tabs.currentWidget() is rr
    assert [(r.version, r.author) for r in rr.proposals.rows] == [(1, "cat")] and rr.approve_button.isEnabled()
    assert view.prompt_label.text().startswith("What is adverse possession?")

    with qtbot.waitSignal(rr.approved, timeout=10000), qtbot.waitSignal(view.queue.listed, timeout=10000):
        rr.approve_button.click()
    assert ids(view.queue) == [hb] and view.lists.tabText(1) == "Rubrics to &approve (1)"
    assert view.item.prompt.id == solo  # the approved prompt stays on show
    with Store.open(db) as store:
        lab_rubric = store.rubrics.lab_rubric(solo)
        assert (lab_rubric.version, lab_rubric.author, lab_rubric.approved_by) == (1, "cat", "Dr. Lead")

    # Down selects the next prompt; approving its newest version empties the list
    with qtbot.waitSignal(rr.loaded, timeout=10000):
        qtbot.keyClick(view.queue.view, Qt.Key.Key_Down)
    assert rr.prompt_id == hb and view.item.prompt.id == hb
    assert rr.proposals.rowCount() == 3 and rr.selected().version == 3  # the newest version, to approve
    with qtbot.waitSignal(view.queue.listed, timeout=10000):
        assert rr.approve_selected()
    assert ids(view.queue) == [] and view.lists.tabText(1) == "Rubrics to &approve"
    assert view.queue.empty.text().startswith("No rubric waits for approval")
    with Store.open(db) as store:
        assert store.rubrics.lab_rubric(hb).version == 3

    # back to the disagreements: the list and the prompt on show are the disagreement list's
    view.lists.setCurrentIndex(0)
    assert not view.showing_rubrics() and view.item.prompt.id == hb


def test_the_domain_filter_applies_to_the_rubrics_to_approve(qtbot, lab):
    view, _db, hb, solo = lab
    with qtbot.waitSignal(view.queue.listed, timeout=10000):
        view.domain_box.setCurrentIndex(view.domain_box.findData("law"))
    assert ids(view.queue) == [solo]
    with qtbot.waitSignal(view.queue.listed, timeout=10000):
        view.domain_box.setCurrentIndex(view.domain_box.findData("medicine"))
    assert ids(view.queue) == [hb]


def test_opening_the_list_on_the_prompt_already_on_show_selects_its_newest_version(qtbot, lab):
    view, _db, hb, _solo = lab
    rr = view.rubric_review
    assert view.item.prompt.id == hb and rr.selected().version == 1  # the disagreement list: the lab rubric
    with qtbot.waitSignal(view.queue.listed, timeout=10000):
        view.domain_box.setCurrentIndex(view.domain_box.findData("medicine"))
    qtbot.waitUntil(lambda: not rr.runner.is_running(), timeout=10000)
    view.lists.setCurrentIndex(1)
    qtbot.waitUntil(lambda: rr.selected() is not None and rr.selected().version == 3, timeout=10000)
    assert view.item.prompt.id == hb and rr.approve_button.isEnabled()
