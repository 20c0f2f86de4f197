"""The tutor's workflow (core/workflow.py) without Qt: every rule the window delegates."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core import review
from hitl_desktop.core.engine import seeds_for
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.merging import merge_databases
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import Candidate
from hitl_desktop.core.workflow import (
    PACK_TUTOR_KEY,
    TutorWorkflow,
    WorkflowError,
    export_judgments,
    generation_seeds,
    import_prompts,
)


@pytest.fixture
def library(tmp_path):
    return GuidelineLibrary(user_dir=tmp_path / "guidelines")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def wf(store, library, tmp_path):
    records = [
        {"id": "q1", "prompt": "First question?", "domain": "medicine"},
        {"id": "q2", "prompt": "Second question?", "domain": "medicine"},
        {"id": "q3", "prompt": "Third question?", "domain": "medicine"},
        {"id": "imp", "prompt": "Came with answers", "domain": "medicine", "candidates": ["A", "B", "C"]},
    ]
    import_prompts(store, write_jsonl(tmp_path / "set.jsonl", records))
    w = TutorWorkflow(store, guidelines=library)
    w.start_session(tutor_name="ann", domain="medicine")
    return w


def generated(prompt, plan, texts):
    return [
        Candidate(prompt_id=prompt.id, text=t, model="m", seed=s, index=plan.first_index + i)
        for i, (t, s) in enumerate(zip(texts, plan.seeds, strict=False))
    ]


def fill(wf, prompt_ext, texts=("x", "y", "z")):
    """Open the prompt with that external id and give it generated candidates."""
    prompt = next(p for p in wf.queue if p.external_id == prompt_ext)
    wf.open_item(prompt)
    plan = wf.plan_generation(k=len(texts))
    wf.accept_candidates(plan, generated(prompt, plan, texts))
    return wf.item


def judge(wf, ranks_by_text, **extra):
    item = wf.item
    state = JudgingState(display_order=[c.id for c in item.candidates])
    state.set_levels_from_ranks({c.id: ranks_by_text[c.text] for c in item.candidates})
    for k, v in extra.items():
        setattr(state, k, v)
    return wf.submit(state, seconds_spent=1.5)


# -- sessions, queue, samples --------------------------------------------------------------


def test_session_records_guideline_version_in_the_database(wf, store):
    assert wf.session.guideline_version == wf.guideline.version
    assert store.guideline_text("medicine", wf.guideline.version)[1] == wf.guideline.text
    assert [p.external_id for p in wf.queue] == ["q1", "q2", "q3", "imp"]


def test_skip_moves_the_item_last_and_opens_the_next(wf):
    wf.open_item(wf.queue[0])
    item = wf.skip()
    assert item.prompt.external_id == "q2"
    assert [p.external_id for p in wf.queue][-1] == "q1"
    assert wf.next_prompt().external_id == "q3"


def test_samples_go_through_the_validated_importer(wf, store):
    n = wf.load_samples()
    assert n > 0
    assert wf.load_samples() == 0  # the same ids: nothing new
    assert all(p.domain == "medicine" for p in wf.queue)
    assert len(wf.queue) == 4 + n


def test_typed_prompt_goes_first(wf):
    p = wf.add_prompt("  my own question ")
    assert wf.queue[0].id == p.id and p.text == "my own question" and p.source == "typed"
    with pytest.raises(WorkflowError):
        wf.add_prompt("   ")


# -- shared candidates ---------------------------------------------------------------------


def test_prompt_with_external_id_gets_seeds_from_it(wf, store, library, tmp_path):
    item = wf.open_item(wf.queue[0])
    plan = wf.plan_generation(k=4)
    assert plan.seeds == seeds_for(item.prompt, base_seed=0, k=4)
    # another workstation: another database, same prompt file -> same seeds
    other = Store.memory()
    import_prompts(other, tmp_path / "set.jsonl")
    w2 = TutorWorkflow(other, guidelines=library)
    w2.start_session(tutor_name="bob", domain="medicine")
    w2.open_item(w2.queue[0])
    assert w2.plan_generation(k=4).seeds == plan.seeds
    assert wf.plan_generation(k=4).seeds == plan.seeds  # and again
    typed = wf.add_prompt("typed")
    assert generation_seeds(typed, k=4, base_seed=None) != generation_seeds(typed, k=4, base_seed=None)
    assert generation_seeds(typed, k=2, base_seed=7) == seeds_for(typed, base_seed=7, k=2)


# -- protected candidates ------------------------------------------------------------------


def test_imported_candidates_are_never_replaced(wf, store):
    prompt = next(p for p in wf.queue if p.external_id == "imp")
    item = wf.open_item(prompt)
    assert item.protected and [c.text for c in item.candidates] == ["A", "B", "C"]
    with pytest.raises(WorkflowError, match="came with the prompt"):
        wf.plan_regenerate_all(k=3)
    with pytest.raises(WorkflowError, match="came with the prompt"):
        wf.plan_regenerate_one(item.candidates[0].id)
    # the store refuses it too, whoever asks
    with pytest.raises(StoreError):
        store.replace_candidate(item.candidates[0].id, Candidate(prompt_id=prompt.id, text="new"))
    assert store.delete_unjudged_candidates(prompt.id) == 0
    # the explicit action writes a new, separately recorded set
    plan = wf.plan_regenerate_all(k=2, new_set=True)
    assert plan.set_id is not None
    wf.accept_candidates(plan, generated(prompt, plan, ["N1", "N2"]))
    assert [c.text for c in wf.item.candidates] == ["N1", "N2"]
    origins = store.candidate_origins(prompt.id)
    assert sorted(o for o, _ in origins.values()) == ["generated", "generated", "imported", "imported", "imported"]
    assert {s for o, s in origins.values() if o == "generated"} == {plan.set_id}
    assert {s for o, s in origins.values() if o == "imported"} == {None}
    assert len(store.candidates_for(prompt.id)) == 5


def test_gold_prompt_candidates_are_protected_even_when_generated(wf, store):
    item = fill(wf, "q1")
    assert not item.protected
    store.set_gold_ranking(item.prompt.id, {c.id: r for r, c in enumerate(item.candidates, start=1)})
    item = wf.open_item(store.queued_prompts()[0])  # a queue's prompt: gold read from the store
    assert item.protected
    with pytest.raises(WorkflowError):
        wf.plan_regenerate_all(k=3)


def test_generated_candidates_are_regenerated(wf, store):
    item = fill(wf, "q1")
    old = [c.id for c in item.candidates]
    plan = wf.plan_regenerate_one(old[1])
    assert plan.replaces == old[1] and plan.first_index == 1
    wf.accept_candidates(plan, generated(item.prompt, plan, ["y2"]))
    assert [c.text for c in wf.item.candidates] == ["x", "y2", "z"]
    plan = wf.plan_regenerate_all(k=2)
    assert plan.set_id is None and store.current_candidates(item.prompt.id) == []
    wf.accept_candidates(plan, generated(item.prompt, plan, ["p", "q"]))
    assert [c.text for c in wf.item.candidates] == ["p", "q"]


def test_fewer_than_two_written_stores_nothing(wf, store):
    prompt = wf.queue[0]
    wf.open_item(prompt)
    plan = wf.plan_generation(k=2)
    cands = generated(prompt, plan, ["only", ""])
    cands[1].params = {"finish_reason": "stopped"}  # stopped before it wrote anything
    assert wf.accept_candidates(plan, cands) == []
    assert store.candidates_for(prompt.id) == []


# -- submit, undo, re-judge ----------------------------------------------------------------


def test_undo_takes_back_submissions_newest_first(wf, store):
    done = []
    for ext in ("q1", "q2", "q3"):
        fill(wf, ext)
        done.append(judge(wf, {"x": 1, "y": 2, "z": 3}))
    assert [p.external_id for p in wf.queue] == ["imp"]
    for j in reversed(done):
        item = wf.undo()
        assert item.prompt.id == j.prompt_id
        assert item.state.ranks() == j.ranks and item.order == j.display_order
        assert store.judgments_for(j.prompt_id) == []
    assert wf.undo() is None and not wf.can_undo()
    assert sorted(p.external_id for p in wf.queue) == ["imp", "q1", "q2", "q3"]


def test_undo_limit(store, library, tmp_path):
    import_prompts(store, write_jsonl(tmp_path / "s.jsonl", [{"id": f"p{i}", "prompt": f"P{i}?"} for i in range(3)]))
    w = TutorWorkflow(store, guidelines=library, undo_limit=2)
    w.start_session(tutor_name="ann", domain="general")
    for ext in ("p0", "p1", "p2"):
        fill(w, ext)
        judge(w, {"x": 1, "y": 1, "z": 2})
    assert w.undo() and w.undo() and w.undo() is None


def test_an_undo_limit_of_0_keeps_no_undo(store, library, tmp_path):
    # -0 as a slice end kept the whole history: undo worked though the limit is 0
    import_prompts(store, write_jsonl(tmp_path / "s.jsonl", [{"id": "p0", "prompt": "P0?"}]))
    w = TutorWorkflow(store, guidelines=library, undo_limit=0)
    w.start_session(tutor_name="ann", domain="general")
    fill(w, "p0")
    judge(w, {"x": 1, "y": 1, "z": 2})
    assert not w.can_undo() and w.undo() is None
    assert store.stats()["judgments"] == 1  # the judgment stays


def test_reopen_and_rejudge_supersedes_the_old_version(wf, store, tmp_path):
    fill(wf, "q1")
    old = judge(wf, {"x": 1, "y": 2, "z": 3}, rationale="first")
    item = wf.reopen(old.id)
    assert item.editing.id == old.id and item.state.ranks() == old.ranks and item.state.rationale == "first"
    new = judge(wf, {"x": 3, "y": 2, "z": 1})
    assert new.supersedes == old.id and new.tutor_id == old.tutor_id
    current = list(store.judged_items())
    assert [i.judgment.id for i in current] == [new.id]
    assert {i.judgment.id for i in store.judged_items(include_superseded=True)} == {old.id, new.id}
    assert store.stats()["judgments"] == 1
    # the history lists the newest version only; the audit view keeps both
    assert [e.id for e in review.history(store)] == [new.id]
    assert {e.id for e in review.history(store, include_superseded=True)} == {old.id, new.id}
    out = tmp_path / "pairs.jsonl"
    export_judgments(store, fmt="trl-preference", out=out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("z", "y"), ("z", "x"), ("y", "x")}
    with pytest.raises(WorkflowError, match="re-judged already"):
        wf.reopen(old.id)
    # undoing the re-judgment makes the old one current again, and puts it back to edit
    item = wf.undo()
    assert item.editing.id == old.id
    assert [i.judgment.id for i in store.judged_items()] == [old.id]


def test_rejudged_versions_survive_a_merge(tmp_path, library):
    src_path = tmp_path / "a.db"
    src = Store.open(src_path)
    import_prompts(src, write_jsonl(tmp_path / "s.jsonl", [{"id": "q1", "prompt": "Q?"}]))
    w = TutorWorkflow(src, guidelines=library)
    w.start_session(tutor_name="ann", domain="general")
    fill(w, "q1")
    old = judge(w, {"x": 1, "y": 2, "z": 3})
    w.reopen(old.id)
    new = judge(w, {"x": 2, "y": 1, "z": 3})
    src.close()
    target = Store.open(tmp_path / "lab.db")
    merge_databases(target, [src_path], backup=False)
    assert [i.judgment.id for i in target.judged_items()] == [new.id]
    assert len(list(target.judged_items(include_superseded=True))) == 2
    assert target.superseding_judgment(old.id) == new.id
    assert target.guideline_text("general", w.guideline.version) is not None  # carried
    target.close()


def test_continue_conversation_carries_the_best_answer(wf, store):
    fill(wf, "q1")
    j = judge(wf, {"x": 2, "y": 1, "z": 3})
    assert wf.carried_answer() == ("y", False) and wf.can_continue()
    new = wf.continue_conversation("And then?")
    assert [m.content for m in new.messages] == ["First question?", "y"]
    assert new.parent_judgment_id == j.id and wf.item.prompt.id == new.id
    with pytest.raises(StoreError, match="continued conversation"):
        wf.undo()


def test_nothing_to_carry_when_all_bad_without_correction(wf):
    fill(wf, "q1")
    judge(wf, {"x": 1, "y": 1, "z": 1}, all_bad=True)
    assert wf.carried_answer() is None
    with pytest.raises(WorkflowError, match="nothing to carry"):
        wf.continue_conversation("next")


def test_pack_guidelines_and_tutor(store, library):
    store.set_setting(PACK_TUTOR_KEY, "cara")
    store.save_guideline_version(domain="law", version="lab-v7", text="Cite the statute.")
    w = TutorWorkflow(store, guidelines=library)
    assert w.pack_tutor() == "cara"
    w.start_session(tutor_name=w.pack_tutor(), domain="law")
    assert w.guideline.version == "lab-v7" and w.guideline.text == "Cite the statute."
    assert w.session.guideline_version == "lab-v7"


def test_import_refuses_a_bad_file_whole(wf, store, tmp_path):
    from hitl_desktop.core.importing import ImportFileError

    before = store.table_counts()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"prompt": "x", "candidates": ["a"], "ranking": [1, 2]}])
    with pytest.raises(ImportFileError, match="bad.jsonl:2"):
        wf.import_file(bad)
    assert store.table_counts() == before
    wf.import_file(write_jsonl(tmp_path / "ok.jsonl", [{"prompt": "new one", "domain": "medicine"}]))
    assert any(p.text == "new one" for p in wf.queue)


def test_reopen_shows_the_set_it_was_judged_on(wf, store):
    prompt = next(p for p in wf.queue if p.external_id == "imp")
    wf.open_item(prompt)
    old = judge(wf, {"A": 1, "B": 2, "C": 3})
    wf.open_item(prompt)
    plan = wf.plan_regenerate_all(k=2, new_set=True)
    wf.accept_candidates(plan, generated(prompt, plan, ["N1", "N2"]))
    assert [c.text for c in store.current_candidates(prompt.id)] == ["N1", "N2"]
    item = wf.reopen(old.id)
    assert sorted(c.text for c in item.candidates) == ["A", "B", "C"]
    assert item.order == old.display_order


def test_starting_a_session_is_one_transaction(wf, store, monkeypatch):
    first = wf.session

    def fail(**_kw):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "start_session", fail)
    with pytest.raises(StoreError):
        wf.start_session(tutor_name="newcomer", domain="law")
    assert store.tutor_by_name("newcomer") is None  # nothing of it was kept
    assert wf.session is first
    row = store.db.execute("select ended_at from sessions where id = ?", [first.id]).fetchone()
    assert row[0] is None  # the running session was not ended either
