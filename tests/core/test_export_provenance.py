"""Provenance of ``export --adjudicated`` (issue 19 item 5): the rows a lead's ruling ranked
say so (``source: "adjudication"``) and name the adjudicator as their tutor, pseudonymised
like tutors unless the export keeps tutor names. No Qt."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core import review
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt
from hitl_desktop.core.workflow import export_judgments

TEXTS = ["first answer", "second answer", "third answer"]


@pytest.fixture
def db(tmp_path):
    store = Store.open(tmp_path / "lab.db")
    ruled, free = Prompt(text="ruled question"), Prompt(text="free question")
    cands = {
        p.id: [Candidate(prompt_id=p.id, text=f"{p.text}: {t}", index=i, model="m") for i, t in enumerate(TEXTS)]
        for p in (ruled, free)
    }
    ann, bob = store.ensure_tutor("ann"), store.ensure_tutor("bob")
    judgments = []
    for p in (ruled, free):
        c = cands[p.id]
        judgments.append(Judgment(prompt_id=p.id, tutor_id=ann.id, ranks={c[0].id: 1, c[1].id: 2, c[2].id: 3},
                                  created_at="2026-01-01T00:00:00"))  # fmt: skip
        judgments.append(
            Judgment(
                prompt_id=p.id, tutor_id=bob.id, ranks={c[0].id: 3, c[1].id: 2, c[2].id: 1},
                correction=Correction(text="bob's own rewrite", candidate_id=c[2].id),
                created_at="2026-01-01T00:00:01",
            )
        )  # fmt: skip
    store.bulk_insert(prompts=[ruled, free], candidates=[*cands[ruled.id], *cands[free.id]], judgments=judgments)
    c = cands[ruled.id]
    adj = review.adjudicate(
        store, prompt_id=ruled.id, ranks={c[1].id: 1, c[0].id: 2, c[2].id: 3}, rationale="B is right", adjudicator="lead"
    )
    yield store, ruled, free, adj
    store.close()


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["trl-preference", "nectar", "kto", "sft"])
@pytest.mark.parametrize("keep", [True, False])
def test_adjudicated_rows_carry_adjudication_and_the_adjudicator(db, tmp_path, fmt, keep):
    store, ruled, free, adj = db
    out = tmp_path / f"{fmt}.jsonl"
    export_judgments(store, fmt=fmt, out=out, adjudicated=True, keep_tutor_names=keep, include_top_ranked=True)
    rows = _rows(out)
    name = (lambda n: n) if keep else store.pseudonym
    ruling = [r for r in rows if r["judgment_id"] == adj.id]
    assert ruling, "the ruling is exported"
    assert {r["source"] for r in ruling} == {"adjudication"}
    assert {r["tutor"] for r in ruling} == {name("lead")}
    if not keep:
        assert name("lead") != "lead"
    # nothing else is called an adjudication: bob's correction of the ruled prompt stays his
    others = [r for r in rows if r["judgment_id"] != adj.id]
    assert "adjudication" not in {r["source"] for r in others}
    assert {r["tutor"] for r in others if r["source"] == "correction"} == {name("bob")}
    assert {r["source"] for r in others if r["prompt_id"] == free.id} <= {"ranking", "correction"}
    assert {r["prompt_id"] for r in others if r["source"] == "ranking"} <= {free.id}


def test_without_adjudicated_the_ruling_is_not_used(db, tmp_path):
    store, ruled, _free, adj = db
    out = tmp_path / "plain.jsonl"
    export_judgments(store, fmt="trl-preference", out=out, keep_tutor_names=True)
    rows = _rows(out)
    assert adj.id not in {r["judgment_id"] for r in rows}
    assert {r["source"] for r in rows} == {"ranking", "correction"}
    assert {r["tutor"] for r in rows if r["prompt_id"] == ruled.id} == {"ann", "bob"}
