"""core.operations' rubric review: a prompt's versions and lab rubric, the criteria tutors
disagree on most, and a lead's approval (its own connection; a nameless lead changes nothing)."""

from __future__ import annotations

import pytest

from hitl_desktop.core import operations
from hitl_desktop.core.rubrics import Criterion, RubricError
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Prompt


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "lab.db"
    with Store.open(path) as store:
        p = store.add_prompt(Prompt(text="Metformin at eGFR 27?", domain="medicine"))
        a = store.rubrics.save_rubric(p.id, [Criterion("Stops metformin", 8)], author="ann")
        b = store.rubrics.save_rubric(p.id, [Criterion("Stops metformin", 6), Criterion("Says why", 2)], author="ben")
    return path, p.id, a.id, b.id


def test_the_review_lists_the_versions_and_the_lead_approves_one(db):
    path, pid, a, b = db
    seen = operations.rubric_review(path, prompt_id=pid)
    assert [(r.version, r.author, len(r.criteria)) for r in seen["versions"]] == [(1, "ann", 1), (2, "ben", 2)]
    assert seen["lab"] is None and seen["disagreed"] == []  # nobody graded yet
    approved = operations.approve_rubric(path, rubric_id=b, lead="Dr. Lead")
    assert approved.approved_by == "Dr. Lead" and approved.id == b
    assert operations.rubric_review(path, prompt_id=pid)["lab"] == b
    with Store.open(path) as store:
        assert store.rubrics.lab_rubric(pid).id == b
    operations.approve_rubric(path, rubric_id=a, lead="Dr. Lead")  # the latest approval wins
    assert operations.rubric_review(path, prompt_id=pid)["lab"] == a


@pytest.mark.parametrize("lead", ["", "   "])
def test_a_lead_without_a_name_is_refused_and_nothing_changes(db, lead):
    path, pid, _a, b = db
    with pytest.raises(RubricError, match="lead's name is required"):
        operations.approve_rubric(path, rubric_id=b, lead=lead)
    assert operations.rubric_review(path, prompt_id=pid)["lab"] is None


def test_no_prompt_chosen_lists_no_versions(db):
    path, *_ = db
    assert operations.rubric_review(path, prompt_id=None)["versions"] == []
