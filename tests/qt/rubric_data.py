"""A lab database with a HealthBench-layout prompt, two tutors' grades of three answers (they
differ on some criteria), optionally a model grader's, and tutors' rubric proposals."""

from __future__ import annotations

import json

from hitl_desktop.core.importing import import_file
from hitl_desktop.core.rubrics import Criterion
from hitl_desktop.core.store import Store

CRITERIA = [("Advises stopping metformin when eGFR < 30", 8, "axis:accuracy"),
            ("Mentions lactic acidosis risk", 4, "axis:completeness"),
            ("Recommends increasing the dose", -9, "axis:accuracy")]
ANSWERS = ["Stop it; lactic acidosis risk.", "Stop it.", "Double the dose."]
#: ann and ben on each answer, criterion by criterion: they differ on criterion 2 twice, criterion 1 once
GRADES = {"ann": [[1, 1, 0], [1, 0, 0], [0, 0, 1]],
          "ben": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
#: a model grader's grades of the same answers
MODEL_GRADES = {"grader-x": [[1, 1, 1], [1, 0, 0], [0, 1, 1]]}


def _rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def grade_rows(grades: dict, kind: str) -> list[dict]:
    return [{"prompt_id": "hb-1", "completion": a, "grader": who, "grader_kind": kind,
             "grades": [{"criterion": c[0], "criteria_met": bool(m)} for c, m in zip(CRITERIA, mets, strict=True)]}
            for who, per in grades.items() for a, mets in zip(ANSWERS, per, strict=True)]


def build(db, folder, *, proposals: bool = True, model: bool = False) -> str:
    """Fill the database file ``db``; the prompt's id."""
    with Store.open(db) as store:
        hb = {"prompt": [{"role": "user", "content": "I take metformin; my eGFR is 25. Keep taking it?"}],
              "prompt_id": "hb-1", "rubrics": [{"criterion": c, "points": p, "tags": [t]} for c, p, t in CRITERIA]}
        import_file(store, _rows(folder / "hb.jsonl", [hb]), default_domain="medicine")
        rows = grade_rows(GRADES, "tutor") + (grade_rows(MODEL_GRADES, "model") if model else [])
        import_file(store, _rows(folder / "g.jsonl", rows))
        pid = store.prompts_by_external_id(["hb-1"])["hb-1"].id
        if proposals:
            store.rubrics.save_rubric(pid, [Criterion("Stops metformin below eGFR 30", 8),
                                            Criterion("Explains why", 2)], author="ann")  # fmt: skip
            store.rubrics.save_rubric(pid, [Criterion("Stops metformin", 6)], author="ben")
    return pid
