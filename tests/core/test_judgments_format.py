"""``export --format judgments``: everything a judgment holds; import -> export is the identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitl_desktop.core.export import ExportError, export_dataset
from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.judgment_records import FIELDS
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Message, Prompt


def _lab(store: Store) -> None:
    ann, bob = store.ensure_tutor("ann"), store.ensure_tutor("bob")
    session = store.start_session(tutor_id=ann.id, domain="medicine", guideline_version="g-3")
    p = store.add_prompt(
        Prompt(text="Dose?", domain="general", external_id="med-1", source="set.jsonl",
               messages=[Message("system", "Be brief."), Message("user", "hi"), Message("assistant", "hello")])
    )  # fmt: skip
    cands = [
        Candidate(prompt_id=p.id, text=f"answer {i}", model="gemma", model_revision="sha:ab",
                  dtype="bfloat16", params={"temperature": 0.8, "top_p": 0.95}, seed=10 + i,
                  tokens=20 + i, seconds=0.5 + i, index=i)
        for i in range(3)
    ]  # fmt: skip
    store.add_candidates(cands)
    store.save_judgment(
        Judgment(
            prompt_id=p.id, tutor_id=ann.id, session_id=session.id,
            ranks={cands[0].id: 2, cands[1].id: 1, cands[2].id: 2},
            flags={cands[2].id: ["unsafe", "incorrect"]},
            ratings={cands[1].id: {"helpfulness": 5, "correctness": 4}},
            rationale="b is right", strength=3, seconds_spent=42.5,
            display_order=[cands[2].id, cands[0].id, cands[1].id], guideline_version="g-3",
            correction=Correction(text="answer 1, with the dose", candidate_id=cands[1].id),
        )
    )  # fmt: skip
    store.save_judgment(Judgment(prompt_id=p.id, tutor_id=bob.id, ranks={cands[0].id: 1, cands[1].id: 1}, all_bad=True))
    q = store.add_prompt(Prompt(text="Other?", parent_judgment_id=None))
    qc = [Candidate(prompt_id=q.id, text=t, index=i) for i, t in enumerate(("x", "y"))]
    store.add_candidates(qc, origin="pack")
    extra = Candidate(prompt_id=q.id, text="z", index=2, seed=7)
    store.add_candidates([extra], origin="generated", set_id="set-2")  # a further set
    first = store.save_judgment(Judgment(prompt_id=q.id, tutor_id=bob.id, ranks={qc[0].id: 2, qc[1].id: 1, extra.id: 3}))
    # bob re-judges it: the export holds the new version, which names the one it supersedes
    store.save_judgment(Judgment(prompt_id=q.id, tutor_id=bob.id, ranks={qc[0].id: 1, qc[1].id: 2, extra.id: 3},
                                 supersedes=first.id))  # fmt: skip


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_row_holds_everything(store, tmp_path):
    _lab(store)
    export_dataset(store, fmt="judgments", out=tmp_path / "j.jsonl", keep_tutor_names=True)
    rows = _rows(tmp_path / "j.jsonl")
    assert len(rows) == 3 and all(list(r) == list(FIELDS) for r in rows)
    r = rows[0]
    assert r["id"] == "med-1" and r["prompt_source"] == "set.jsonl" and r["domain"] == "general"
    assert r["judgment_domain"] == "medicine" and r["session"]["guideline_version"] == "g-3"
    assert r["messages"][0] == {"role": "system", "content": "Be brief."}
    c = r["candidates"][0]
    assert (c["model_revision"], c["dtype"], c["params"], c["seed"], c["tokens"], c["seconds"]) == (
        "sha:ab", "bfloat16", {"temperature": 0.8, "top_p": 0.95}, 10, 20, 0.5
    )  # fmt: skip
    assert r["ranking"] == [2, 1, 2] and r["flags"][2] == ["unsafe", "incorrect"]
    assert r["ratings"][1] == {"helpfulness": 5, "correctness": 4}
    assert (r["strength"], r["seconds_spent"], r["rationale"]) == (3, 42.5, "b is right")
    assert r["corrected_index"] == 1 and r["correction"] == "answer 1, with the dose"
    assert [r["candidates"][i]["id"] for i in (2, 0, 1)] == r["display_order"]
    assert rows[1]["all_bad"] is True and rows[1]["session"] is None
    assert [(c["origin"], c["set_id"]) for c in rows[2]["candidates"]] == [("pack", None), ("pack", None), ("generated", "set-2")]
    assert {c["origin"] for c in r["candidates"]} == {"generated"}  # add_candidates' default
    assert not any(row["tutor_pseudonymised"] for row in rows) and r["source_values"] == {}
    assert [row["supersedes"] for row in rows] == [None, None, rows[2]["supersedes"]] and rows[2]["supersedes"]


def test_import_then_export_is_the_identity(store, tmp_path):
    _lab(store)
    first = tmp_path / "a.jsonl"
    export_dataset(store, fmt="judgments", out=first, keep_tutor_names=True)
    with Store.memory() as empty:
        s = import_file(empty, first)
        assert (s.layout, s.judgments, s.prompts, s.candidates) == ("judgments", 3, 2, 6)
        export_dataset(empty, fmt="judgments", out=tmp_path / "b.jsonl", keep_tutor_names=True)
        assert _rows(tmp_path / "b.jsonl") == _rows(first)
        assert import_file(empty, first).judgments_skipped == 3  # twice adds nothing


def test_judgments_are_jsonl_and_never_a_consensus(store, tmp_path):
    with pytest.raises(ExportError, match="jsonl"):
        export_dataset(store, fmt="judgments", out=tmp_path / "j.parquet")
    with pytest.raises(ExportError, match="consensus"):
        export_dataset(store, fmt="judgments", out=tmp_path / "j.jsonl", consensus=True)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.update(ranking=[1, 2, 3, 4]), ":1: ranking: has 4 ranks for 3 candidates"),
        (lambda r: r["display_order"].append("not-a-candidate"), ":1: display_order[3]: names candidate 'not-a-candidate'"),
        (lambda r: r["candidates"][0].pop("id"), ":1: candidates[0].id: is missing"),
        (lambda r: r["candidates"][1].update(origin="stolen"), ":1: candidates[1].origin: must be one of imported, pack, generated"),
        (lambda r: r.update(source_values={"margin": "x"}), ":1: source_values.margin: must be a finite number"),
        (lambda r: r.update(source_values={"scores": {"nope": 1}}), ":1: source_values.scores.nope: names a candidate"),
        (lambda r: r.update(tutor_pseudonymised="yes"), ":1: tutor_pseudonymised: must be true or false"),
    ],
)  # fmt: skip
def test_a_bad_row_names_line_and_field_and_changes_nothing(store, tmp_path, change, where):
    _lab(store)
    export_dataset(store, fmt="judgments", out=tmp_path / "a.jsonl", keep_tutor_names=True)
    rows = _rows(tmp_path / "a.jsonl")
    change(rows[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Store.memory() as empty:
        with pytest.raises(ImportFileError) as e:
            import_file(empty, bad)
        assert f"bad.jsonl{where}" in str(e.value)
        assert empty.table_counts()["judgments"] == 0 and empty.table_counts()["prompts"] == 0


def test_the_default_pseudonymised_round_trip_is_the_identity_too(store, tmp_path):
    """Without --keep-tutor-names: the names become pseudonyms, the rows say so, and importing
    them keeps each pseudonym as it is (never pseudonymised twice), also when exported with
    tutor names, and on a second import or a merge of such databases."""
    _lab(store)
    first = tmp_path / "a.jsonl"
    export_dataset(store, fmt="judgments", out=first)
    rows = _rows(first)
    assert {r["tutor"] for r in rows} == {store.pseudonym("ann"), store.pseudonym("bob")}
    assert all(r["tutor_pseudonymised"] for r in rows) and "ann" not in first.read_text()
    with Store.memory() as empty:
        import_file(empty, first)
        assert empty.pseudonymised_tutors() == {r["tutor"] for r in rows}
        for keep, out in ((False, "b.jsonl"), (True, "c.jsonl")):
            export_dataset(empty, fmt="judgments", out=tmp_path / out, keep_tutor_names=keep)
            assert _rows(tmp_path / out) == rows
        # the pair formats name the same pseudonyms
        export_dataset(empty, fmt="trl-preference", out=tmp_path / "p.jsonl")
        assert {r["tutor"] for r in _rows(tmp_path / "p.jsonl")} <= {r["tutor"] for r in rows}
    with Store.memory() as again:
        import_file(again, tmp_path / "b.jsonl")
        export_dataset(again, fmt="judgments", out=tmp_path / "d.jsonl")
        assert _rows(tmp_path / "d.jsonl") == rows


def test_an_imported_pairs_margin_and_scores_survive_the_judgments_format(tmp_path):
    conv = [{"role": "user", "content": "q"}]
    pair, uf = tmp_path / "pair.jsonl", tmp_path / "uf.jsonl"
    pair.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "margin": 0.7}) + "\n")
    uf.write_text(json.dumps(
        {"chosen": [*conv, {"role": "assistant", "content": "a"}], "rejected": [*conv, {"role": "assistant", "content": "b"}],
         "score_chosen": 8.25, "score_rejected": 3.5}) + "\n")  # fmt: skip
    with Store.memory() as first:
        import_file(first, pair)
        import_file(first, uf)
        export_dataset(first, fmt="judgments", out=tmp_path / "a.jsonl")
    rows = _rows(tmp_path / "a.jsonl")
    assert [r["source_values"].get("margin") for r in rows] == [0.7, None]
    assert sorted(rows[1]["source_values"]["scores"].values()) == [3.5, 8.25]
    with Store.memory() as second:
        import_file(second, tmp_path / "a.jsonl")
        export_dataset(second, fmt="judgments", out=tmp_path / "b.jsonl")
        assert _rows(tmp_path / "b.jsonl") == rows
        export_dataset(second, fmt="trl-preference", out=tmp_path / "t.jsonl")
        assert [r["margin"] for r in _rows(tmp_path / "t.jsonl")] == [0.7, 1.0]
        export_dataset(second, fmt="ultrafeedback", out=tmp_path / "u.jsonl")
        assert [(r["score_chosen"], r["score_rejected"]) for r in _rows(tmp_path / "u.jsonl")][1] == (8.25, 3.5)
