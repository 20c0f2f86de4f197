"""The rules that moved out of the window into core/workflow.py, tested without Qt: identity per
database, which generation result is current, an empty correction refused, re-judging only
one's own judgments, undo across a restart, a finished pack, what each mutation announces."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core.events import Change
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.store import Store, StoreError
from hitl_desktop.core.types import Candidate, Prompt
from hitl_desktop.core.workflow import (
    LAST_TUTOR_KEY,
    PACK_TUTOR_KEY,
    GenerationBook,
    GenerationPlan,
    TutorWorkflow,
    WorkflowError,
    correction_of,
    import_prompts,
    opening_of,
)


@pytest.fixture
def library(tmp_path):
    return GuidelineLibrary(user_dir=tmp_path / "guidelines")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def make_db(path, tmp_path, *, pack_tutor=None, n=3, domain="medicine"):
    with Store.open(path) as s:
        import_prompts(s, write_jsonl(tmp_path / f"{path.stem}.jsonl", [
            {"id": f"{path.stem}-{i}", "prompt": f"Q{i} of {path.stem}?", "domain": domain,
             "candidates": ["a", "b", "c"]} for i in range(n)
        ]))  # fmt: skip
        if pack_tutor:
            s.set_setting(PACK_TUTOR_KEY, pack_tutor)
    return path


def judge(wf):
    item = wf.open_next()
    state = JudgingState(display_order=[c.id for c in item.candidates])
    state.set_levels_from_ranks({c.id: i + 1 for i, c in enumerate(item.candidates)})
    return wf.submit(state, seconds_spent=1.0)


# -- identity is per database ------------------------------------------------------------------


def test_a_packs_tutor_stays_with_the_pack(tmp_path, library):
    default = make_db(tmp_path / "default.db", tmp_path)
    pack = make_db(tmp_path / "ann.db", tmp_path, pack_tutor="ann")
    with Store.open(default) as s:  # the lead worked here before
        w = TutorWorkflow(s, guidelines=library, own_name="lead")
        assert w.begin().reason == "own"
        w.end_session()
    store = Store.open(default)
    w = TutorWorkflow(store, guidelines=library, own_name="lead")
    assert w.open_database(pack).reason == "pack" and w.tutor.name == "ann"
    assert w.own_name == "lead"  # a pack never changes who sits at this machine
    opening = w.open_database(default)
    assert opening.reason == "last" and w.tutor.name == "lead" != "ann"
    judgment = judge(w)
    (saved,) = [i for i in w.store.judged_items() if i.judgment.id == judgment.id]
    assert saved.tutor_name == "lead"
    w.close_database()
    store.close()


def test_a_new_database_never_takes_the_previous_databases_tutor(tmp_path, library):
    pack = make_db(tmp_path / "ann.db", tmp_path, pack_tutor="ann")
    fresh = make_db(tmp_path / "fresh.db", tmp_path)
    store = Store.memory()
    w = TutorWorkflow(store, guidelines=library)  # nobody known at this machine yet
    w.open_database(pack)
    assert w.tutor.name == "ann"
    opening = w.open_database(fresh)
    assert opening.reason == "ask" and opening.tutor is None
    assert w.tutor is None and w.session is None  # no silent session as "ann"
    w.close_database()


def test_the_database_records_its_last_tutor_and_domain(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path, domain="law")
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library, own_name="someone")
        w.start_session(tutor_name="cem", domain="law")
        assert s.setting(LAST_TUTOR_KEY) == "cem"
    with Store.open(db) as s:
        o = opening_of(s, own_name="someone else", own_domain="medicine")
        assert (o.tutor, o.domain, o.reason) == ("cem", "law", "last")


def test_a_failed_open_changes_nothing(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 20)
    store = Store.open(db)
    w = TutorWorkflow(store, guidelines=library, own_name="lead")
    w.begin()
    session = w.session
    with pytest.raises(StoreError):
        w.open_database(bad)
    assert w.store is store and w.session is session
    store.close()


def test_opening_a_database_announces_it_once(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    store = Store.memory()
    w = TutorWorkflow(store, guidelines=library, own_name="lead")
    seen = []
    w.subscribe(seen.append)
    w.open_database(db)
    assert len(seen) == 1 and Change.DATABASE in seen[0] and Change.SESSION in seen[0]
    w.close_database()


# -- re-judging, corrections, undo ---------------------------------------------------------------


def test_another_tutors_judgment_cannot_be_rejudged(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library)
        w.start_session(tutor_name="ann", domain="medicine")
        anns = judge(w)
        w.start_session(tutor_name="lead", domain="medicine")
        assert not w.can_rejudge("ann") and w.can_rejudge("lead")
        with pytest.raises(WorkflowError, match="only your own"):
            w.reopen(anns.id)
        assert w.item is None  # nothing went on the bench
        w.start_session(tutor_name="ann", domain="medicine")
        assert w.reopen(anns.id).editing.id == anns.id


def test_reopen_needs_a_session(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library)
        w.start_session(tutor_name="ann", domain="medicine")
        j = judge(w)
        w.end_session()
        with pytest.raises(WorkflowError, match="session"):
            w.reopen(j.id)


@given(st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=12))
@settings(max_examples=40, deadline=None)
def test_an_empty_correction_is_refused(blank):
    with pytest.raises(WorkflowError, match="cannot be empty"):
        correction_of("c1", blank)


@given(st.text(min_size=1).filter(lambda t: t.strip()))
@settings(max_examples=40, deadline=None)
def test_a_correction_keeps_its_text(text):
    c = correction_of("c1", text)
    assert c.text == text and c.candidate_id == "c1"


def test_undo_reaches_the_previous_sessions_last_judgment_after_a_restart(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library)
        w.start_session(tutor_name="ann", domain="medicine")
        first, last = judge(w), judge(w)
    with Store.open(db) as s:  # the app restarted
        w = TutorWorkflow(s, guidelines=library, own_name="ann")
        w.begin()
        assert w.can_undo()
        item = w.undo()
        assert item.prompt.id == last.prompt_id and item.state.ranks() == last.ranks
        assert s.judgments_for(last.prompt_id) == []
        assert w.undo().prompt.id == first.prompt_id
        assert not w.can_undo()
        # another tutor's judgments are never on one's undo stack
        w.start_session(tutor_name="bob", domain="medicine")
        judge(w)
        w.start_session(tutor_name="ann", domain="medicine")
        assert not w.can_undo()


def test_a_finished_pack_names_its_file(tmp_path, library):
    pack = make_db(tmp_path / "ann.db", tmp_path, pack_tutor="ann", n=2)
    store = Store.memory()
    w = TutorWorkflow(store, guidelines=library)
    w.open_database(pack)
    assert w.finished_pack() is None
    judge(w)
    judge(w)
    assert w.finished_pack() == pack
    w.close_database()


def test_one_announcement_per_submit(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library)
        w.start_session(tutor_name="ann", domain="medicine")
        item = w.open_next()
        seen = []
        w.subscribe(seen.append)
        state = JudgingState(display_order=[c.id for c in item.candidates])
        state.set_levels_from_ranks({c.id: 1 + i for i, c in enumerate(item.candidates)})
        w.submit(state)
        assert len(seen) == 1
        assert {Change.HISTORY, Change.QUEUE} <= set(seen[0].parts) and Change.SESSION not in seen[0].parts


# -- which generation result is current ----------------------------------------------------------


def plan_for(prompt, *, replaces=None):
    return GenerationPlan(prompt=prompt, k=1 if replaces else 2, seeds=[1, 2], replaces=replaces)


def test_a_stale_generation_result_is_ignored():
    p, q = Prompt(text="P", domain="d"), Prompt(text="Q", domain="d")
    book = GenerationBook()
    book.started(1, plan_for(p))
    book.started(2, plan_for(p))  # regenerate all again before the first came back
    book.started(3, plan_for(p, replaces="c1"))
    assert book.finished(1, p) is None  # a newer generation for this prompt is on its way
    assert book.finished(3, p).replaces == "c1"  # one card's result is its own
    assert book.finished(2, p) is not None
    book.started(4, plan_for(p))
    assert book.finished(4, q) is None  # the tutor moved on
    assert book.finished(99, p) is None  # unknown
    book.started(5, plan_for(p))
    assert book.streaming_for(5, p) and not book.streaming_for(5, q)
    assert book.failed(5, p) is not None and book.failed(5, p) is None


@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_only_the_newest_full_set_of_the_prompt_on_the_bench_is_kept(requests):
    prompts = [Prompt(text=f"P{i}", domain="d") for i in range(3)]
    book = GenerationBook()
    for rid, (which, one) in enumerate(requests):
        book.started(rid, plan_for(prompts[which], replaces="c" if one else None))
    bench = prompts[0]
    kept = []
    for rid in range(len(requests)):  # results come back in order
        plan = book.finished(rid, bench)
        if plan is not None:
            kept.append(rid)
    for rid in kept:
        which, one = requests[rid]
        assert which == 0
        if not one:  # no later full set of the same prompt was still pending
            assert not any(w == 0 and not o for w, o in requests[rid + 1 :])


def test_accept_candidates_of_a_stale_plan_announces_nothing_for_the_bench(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path, n=1)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library)
        w.start_session(tutor_name="ann", domain="medicine")
        typed = w.add_prompt("A typed prompt")
        plan = w.plan_generation(k=2)
        w.generation_started(7, plan)
        w.open_next()  # the tutor moved on to another prompt
        assert w.generation_finished(7) is None
        assert w.store.current_candidates(typed.id) == []
        cands = [Candidate(prompt_id=typed.id, text=t, model="m", seed=1, index=i) for i, t in enumerate("xy")]
        assert len(w.accept_candidates(plan, cands)) == 2  # stored if asked, but not on the bench
        assert w.item.prompt.id != typed.id


def test_the_rebuilt_undo_stack_keeps_the_limit(tmp_path, library):
    db = make_db(tmp_path / "a.db", tmp_path, n=4)
    with Store.open(db) as s:
        w = TutorWorkflow(s, guidelines=library, undo_limit=3)
        w.start_session(tutor_name="ann", domain="medicine")
        done = [judge(w) for _ in range(3)]
        w.start_session(tutor_name="ann", domain="medicine")  # a new session: the stack from the database
        assert w.history == [] and w.can_undo()
        judge(w)  # one more in this session: the oldest of the database's falls off the limit
        undone = []
        while (item := w.undo()) is not None:
            undone.append(item.prompt.id)
        assert len(undone) == 3 and undone[1:] == [done[2].prompt_id, done[1].prompt_id]
        assert s.judgments_for(done[0].prompt_id) != []  # beyond the limit: kept
