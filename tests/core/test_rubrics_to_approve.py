"""The prompts whose rubric waits for a lead ("rubrics to approve", core.operations /
RubricStore.to_approve): proposals and no lab rubric, versions newer than the lab rubric; a
prompt whose newest version is approved is not listed; newest first, by domain, limited."""

from __future__ import annotations

import pytest

from hitl_desktop.core import operations
from hitl_desktop.core.rubrics import Criterion
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Prompt


def crit(text: str, points: float = 5) -> list[Criterion]:
    return [Criterion(text, points)]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "lab.db"
    with Store.open(path) as store:
        ids = {}
        for name, domain in (("a", "medicine"), ("b", "law"), ("c", "medicine"), ("d", "law")):
            ids[name] = store.add_prompt(Prompt(text=f"Prompt {name} " + "x" * 400, domain=domain)).id
        r = store.rubrics
        # a: two proposals, no lab rubric
        r.save_rubric(ids["a"], crit("a1"), author="ann", created_at="2026-01-01T10:00:00Z")
        r.save_rubric(ids["a"], crit("a2"), author="ben", created_at="2026-01-03T10:00:00Z")
        # b: the newest version approved
        r.save_rubric(ids["b"], crit("b1"), author="ann", created_at="2026-01-01T11:00:00Z")
        b2 = r.save_rubric(ids["b"], crit("b2"), author="cat", created_at="2026-01-02T11:00:00Z")
        r.approve(b2.id, lead="Dr. Lead")
        # c: approved, then a newer version
        c1 = r.save_rubric(ids["c"], crit("c1"), author="ann", created_at="2026-01-01T12:00:00Z")
        r.approve(c1.id, lead="Dr. Lead")
        r.save_rubric(ids["c"], crit("c2"), author="ann", created_at="2026-01-04T12:00:00Z")
        # d: no rubric at all
    return path, ids


def test_proposals_and_newer_versions_are_listed_newest_first_and_an_approved_newest_is_not(db):
    path, ids = db
    rows = operations.rubrics_to_approve(path)
    assert [r["prompt_id"] for r in rows] == [ids["c"], ids["a"]]
    c, a = rows
    assert (c["versions"], c["authors"], c["newest"], c["lab_version"]) == (2, ["ann"], 2, 1)
    assert (a["versions"], a["authors"], a["newest"], a["lab_version"]) == (2, ["ann", "ben"], 2, None)
    assert a["newest_at"] == "2026-01-03T10:00:00Z" and c["newest_at"] == "2026-01-04T12:00:00Z"
    assert a["domain"] == "medicine" and a["text"].startswith("Prompt a ") and len(a["text"]) == 200


def test_approving_the_newest_takes_a_prompt_off_and_a_newer_version_brings_it_back(db):
    path, ids = db
    with Store.open(path) as store:
        newest = store.rubrics.versions(ids["a"])[-1]
    operations.approve_rubric(path, rubric_id=newest.id, lead="Dr. Lead")
    assert [r["prompt_id"] for r in operations.rubrics_to_approve(path)] == [ids["c"]]
    with Store.open(path) as store:
        store.rubrics.save_rubric(ids["b"], crit("b3"), author="dan", created_at="2026-01-05T00:00:00Z")
        older = store.rubrics.versions(ids["c"])[0]
    rows = operations.rubrics_to_approve(path)
    assert [r["prompt_id"] for r in rows] == [ids["b"], ids["c"]]
    assert rows[0]["lab_version"] == 2 and rows[0]["authors"] == ["ann", "cat", "dan"]
    # approving an older version than the newest leaves the prompt listed (the newest waits)
    operations.approve_rubric(path, rubric_id=older.id, lead="Dr. Lead")
    assert ids["c"] in [r["prompt_id"] for r in operations.rubrics_to_approve(path)]


def test_the_domain_filter_and_the_limit(db):
    path, ids = db
    assert [r["prompt_id"] for r in operations.rubrics_to_approve(path, domain="medicine")] == [ids["c"], ids["a"]]
    assert operations.rubrics_to_approve(path, domain="law") == []
    assert [r["prompt_id"] for r in operations.rubrics_to_approve(path, limit=1)] == [ids["c"]]
    with Store.open(path) as store:
        assert [r["prompt_id"] for r in operations.rubrics_to_approve_in(store, domain="medicine", limit=5)] == [
            ids["c"], ids["a"]]


def test_an_empty_database_has_nothing_to_approve(tmp_path):
    with Store.open(tmp_path / "empty.db") as store:
        assert operations.rubrics_to_approve_in(store) == []
