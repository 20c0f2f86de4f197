"""The store: pragmas, migrations, transactions, refusing foreign files, judged items."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from sqlite_utils import Database

from hitl_desktop.core import migrations as migrations_module
from hitl_desktop.core.migrations import APPLICATION_ID, migrations
from hitl_desktop.core.ranking import RankingError
from hitl_desktop.core.store import NotAHitlDatabase, Store, StoreError
from hitl_desktop.core.types import Candidate, Correction, Judgment, Message, Prompt


def fill(store: Store, *, k: int = 3, domain: str = "medicine"):
    tutor = store.ensure_tutor("dr-a", ["medicine"])
    session = store.start_session(tutor_id=tutor.id, domain=domain, guideline_version="v1-abc")
    prompt = store.add_prompt(Prompt(text="Is ibuprofen safe in pregnancy?", domain=domain, messages=[Message("user", "hi"), Message("assistant", "hello")]))
    cands = [Candidate(prompt_id=prompt.id, text=f"answer {i}", index=i, seed=100 + i, model="gemma", params={"temperature": 0.8}) for i in range(k)]
    store.add_candidates(cands)
    return tutor, session, prompt, cands


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pragmas_and_application_id(db_path):
    s = Store.open(db_path)
    ex = s.db.execute
    assert ex("pragma journal_mode").fetchone()[0] == "wal"
    assert ex("pragma synchronous").fetchone()[0] == 2  # FULL
    assert ex("pragma foreign_keys").fetchone()[0] == 1
    assert ex("pragma busy_timeout").fetchone()[0] >= 5000
    assert ex("pragma application_id").fetchone()[0] == APPLICATION_ID
    s.close()


def test_migrations_apply_in_order_and_only_once(db_path):
    s = Store.open(db_path)
    names = [m.name for m in migrations._migrations]
    assert s.schema_version() == names
    assert names == sorted(names), "schema steps are numbered in order"
    s.close()
    s = Store.open(db_path)
    assert s.schema_version() == names
    assert s.db.execute("select count(*) from _sqlite_migrations").fetchone()[0] == len(names)
    s.close()


def test_every_migration_step_from_the_first_version(db_path):
    """A database made by the first schema step opens and is carried to the latest one."""
    db = Database(sqlite3.connect(db_path))
    migrations.apply(db, stop_before=migrations._migrations[1].name)
    db["prompts"].insert({"id": "p1", "text": "old prompt", "domain": "law", "created_at": "2026-01-01T00:00:00+00:00"})
    db.conn.close()
    s = Store.open(db_path)
    assert s.schema_version() == [m.name for m in migrations._migrations]
    assert s.get_prompt("p1").text == "old prompt"
    assert s.pseudonym("x").startswith("tutor-")
    s.close()


def test_newer_schema_is_refused_and_untouched(db_path):
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "insert into _sqlite_migrations (migration_set, name, applied_at) values (?, 'm9999_future', '2030-01-01')",
        [migrations_module.MIGRATION_SET],
    )
    conn.commit()
    conn.close()
    before = digest(db_path)
    with pytest.raises(NotAHitlDatabase, match="newer hitl-desktop"):
        Store.open(db_path)
    assert digest(db_path) == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a database at all\n" * 10, "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 20, "truncated"),
    ],
)
def test_garbage_files_are_refused_and_untouched(tmp_path, content, message):
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(NotAHitlDatabase, match=message):
        Store.open(path)
    assert path.read_bytes() == content
    assert not (tmp_path / "x.db-wal").exists()


def test_another_apps_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("create table notes (id integer primary key, body text)")
    conn.execute("insert into notes (body) values ('keep me')")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(NotAHitlDatabase, match="another application"):
        Store.open(path)
    assert digest(path) == before


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(NotAHitlDatabase, match="folder"):
        Store.open(tmp_path)


def test_missing_database_without_create(tmp_path):
    with pytest.raises(StoreError, match="no such database"):
        Store.open(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()


def test_judgment_round_trip_with_everything(store):
    tutor, session, prompt, cands = fill(store)
    j = Judgment(
        prompt_id=prompt.id,
        tutor_id=tutor.id,
        session_id=session.id,
        ranks={cands[0].id: 2, cands[1].id: 1, cands[2].id: 2},
        flags={cands[2].id: ["hallucination", "unsafe"]},
        ratings={cands[1].id: {"helpfulness": 5, "correctness": 4}},
        rationale="B cites the guideline",
        strength=3,
        seconds_spent=42.5,
        display_order=[cands[2].id, cands[0].id, cands[1].id],
        guideline_version="v1-abc",
        correction=Correction(text="Avoid after 20 weeks.", candidate_id=cands[1].id),
    )
    store.save_judgment(j)
    (item,) = store.judged_items()
    got = item.judgment
    assert got.ranks == j.ranks
    assert got.flags == j.flags and got.ratings == j.ratings
    assert (got.rationale, got.strength, got.seconds_spent) == ("B cites the guideline", 3, 42.5)
    assert got.display_order == j.display_order
    assert got.correction.text == "Avoid after 20 weeks." and got.correction.candidate_id == cands[1].id
    assert item.domain == "medicine" and item.tutor_name == "dr-a"
    assert item.prompt.messages == [Message("user", "hi"), Message("assistant", "hello")]
    assert [c.seed for c in item.candidates] == [100, 101, 102]
    assert item.candidates[0].params == {"temperature": 0.8}


def test_invalid_judgment_writes_nothing(store):
    tutor, _, prompt, cands = fill(store)
    bad = Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={cands[0].id: 1, "stranger": 2})
    with pytest.raises(RankingError):
        store.save_judgment(bad)
    assert store.db["judgments"].count == 0 and store.db["rankings"].count == 0


def test_failed_write_rolls_back_the_whole_judgment(store):
    tutor, _, prompt, cands = fill(store)
    j = Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={c.id: 1 for c in cands}, session_id="no-such-session")
    with pytest.raises(StoreError):
        store.save_judgment(j)  # foreign key on session fails after the judgment row
    assert store.db["judgments"].count == 0 and store.db["rankings"].count == 0


def test_undo_removes_judgment_ranks_and_correction(store):
    tutor, _, prompt, cands = fill(store)
    j = Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={c.id: i + 1 for i, c in enumerate(cands)}, correction=Correction("better", cands[0].id))
    store.save_judgment(j)
    assert store.queued_prompts(tutor_id=tutor.id) == []
    store.delete_judgment(j.id)
    for table in ("judgments", "rankings", "corrections"):
        assert store.db[table].count == 0
    assert [p.id for p in store.queued_prompts(tutor_id=tutor.id)] == [prompt.id]


def test_queue_per_tutor_and_without_candidates(store):
    tutor, _, prompt, cands = fill(store)
    other = store.ensure_tutor("dr-b")
    empty = store.add_prompt(Prompt(text="no candidates yet", domain="law"))
    store.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={c.id: 1 for c in cands}))
    assert [p.id for p in store.queued_prompts(tutor_id=tutor.id)] == [empty.id]
    assert {p.id for p in store.queued_prompts(tutor_id=other.id)} == {prompt.id, empty.id}
    assert [p.id for p in store.queued_prompts(without_candidates=True)] == [empty.id]
    assert [p.id for p in store.queued_prompts(domain="law")] == [empty.id]


def test_replace_candidate_only_when_unjudged(store):
    tutor, _, prompt, cands = fill(store)
    new = Candidate(prompt_id=prompt.id, text="regenerated", index=0)
    store.replace_candidate(cands[0].id, new)
    assert [c.text for c in store.candidates_for(prompt.id)] == ["regenerated", "answer 1", "answer 2"]
    store.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={new.id: 1, cands[1].id: 2}))
    with pytest.raises(StoreError, match="judged"):
        store.replace_candidate(new.id, Candidate(prompt_id=prompt.id, text="again"))
    assert store.delete_unjudged_candidates(prompt.id) == 1  # answer 2 only


def test_tutors_are_unique_by_name(store):
    a = store.ensure_tutor("Dr. Ω", ["medicine"])
    b = store.ensure_tutor("Dr. Ω", ["medicine", "law"])
    assert a.id == b.id and store.tutor_by_name("Dr. Ω").domains == ["medicine", "law"]
    with pytest.raises(StoreError):
        store.ensure_tutor("   ")


def test_judged_items_filters(store):
    tutor, session, prompt, cands = fill(store)
    other = store.ensure_tutor("dr-b")
    p2 = store.add_prompt(Prompt(text="bond duration?", domain="finance"))
    c2 = [Candidate(prompt_id=p2.id, text=t) for t in ("a", "b")]
    store.add_candidates(c2)
    j1 = store.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, session_id=session.id, ranks={c.id: 1 for c in cands}, created_at="2026-01-01T00:00:00+00:00"))
    j2 = store.save_judgment(Judgment(prompt_id=p2.id, tutor_id=other.id, ranks={c2[0].id: 1, c2[1].id: 2}, created_at="2026-06-01T00:00:00+00:00"))
    ids = lambda **kw: [i.judgment.id for i in store.judged_items(**kw)]  # noqa: E731
    assert ids() == [j1.id, j2.id]
    assert ids(domain="finance") == [j2.id]
    assert ids(tutor="dr-a") == [j1.id]
    assert ids(since="2026-03-01") == [j2.id]
    assert ids(until="2026-03-01") == [j1.id]
    assert ids(session_id=session.id) == [j1.id]


def test_stats_and_session_summary(store):
    tutor, session, prompt, cands = fill(store)
    store.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, session_id=session.id, ranks={cands[0].id: 1, cands[1].id: 2, cands[2].id: 2}, seconds_spent=30.0, correction=Correction("fix", cands[0].id)))
    stats = store.stats()
    assert (stats["prompts"], stats["candidates"], stats["judgments"], stats["tutors"]) == (1, 3, 1, 1)
    assert stats["pairs"] == 2 + 3
    assert stats["domains"]["medicine"]["pairs"] == 5
    summary = store.session_summary(session.id)
    assert summary == {"session_id": session.id, "items": 1, "seconds_per_item": 30.0, "pairs": 5, "corrections": 1}


def test_pseudonyms_are_stable_per_database(tmp_path):
    a = Store.open(tmp_path / "a.db")
    b = Store.open(tmp_path / "b.db")
    assert a.pseudonym("dr-a") == a.pseudonym("dr-a") != a.pseudonym("dr-b")
    assert a.pseudonym("dr-a") != b.pseudonym("dr-a")
    a.close()
    b.close()


def test_acknowledged_write_is_on_disk_for_another_connection(db_path):
    s = Store.open(db_path)
    tutor, _, prompt, cands = fill(s)
    s.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, ranks={c.id: 1 for c in cands}))
    other = sqlite3.connect(db_path)
    assert other.execute("select count(*) from judgments").fetchone()[0] == 1
    other.close()
    s.close()


def test_database_whose_header_is_still_in_the_wal_opens(tmp_path):
    """After a crash the first pages may live only in the -wal file: it is still ours."""
    import shutil

    src = tmp_path / "live.db"
    live = Store.open(src)
    live.db.execute("pragma wal_autocheckpoint = 0")
    live.ensure_tutor("dr-a")
    crashed = tmp_path / "crashed.db"
    shutil.copy(src, crashed)
    shutil.copy(tmp_path / "live.db-wal", tmp_path / "crashed.db-wal")
    live.close()
    s = Store.open(crashed)
    assert s.tutor_by_name("dr-a") is not None
    s.close()


# -- the store's shape: one row mapping per record, one judged-items query ----------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hitl_desktop.core.store import JudgedItemsQuery  # noqa: E402
from hitl_desktop.core.store.rows import JUDGMENT_COLUMNS, judgment_rows, row_to_judgment  # noqa: E402


def test_a_judgment_row_maps_back_to_the_same_judgment():
    j = Judgment(
        prompt_id="p", tutor_id="t", session_id="s", ranks={"a": 1, "b": 2, "c": 2}, all_bad=False,
        flags={"b": ["incorrect"]}, ratings={"a": {"helpful": 5}}, rationale="why", strength=3,
        seconds_spent=12.5, display_order=["c", "a", "b"], guideline_version="v1",
        correction=Correction(text="better", candidate_id="b"), supersedes="old",
        source_values={"margin": 0.5},
    )  # fmt: skip
    jrow, rrows, crow = judgment_rows(j)
    assert set(jrow) == set(JUDGMENT_COLUMNS)
    rankings = [(r["judgment_id"], r["candidate_id"], r["rank"], r["flags"], r["ratings"]) for r in rrows]
    assert row_to_judgment(jrow, rankings, j.correction) == j
    assert crow is not None and crow["judgment_id"] == j.id


def test_the_judgment_columns_are_the_judgments_table():
    """A new judgment column (a migration step) fails here until the row mapping carries it."""
    s = Store.memory()
    assert {c.name for c in s.db["judgments"].columns} == set(JUDGMENT_COLUMNS)
    s.close()


TUTORS = ("ann", "bob")
DOMAINS = ("law", "medicine")
TEXTS = ("Is aspirin safe?", "What is a TRUST?", "tax law_100%")
FLAGS = ("incorrect", "unsafe")


@pytest.fixture(scope="module")
def judged_store():
    """Judgments across tutors, sessions of two domains, prompt texts, flags, times and one
    re-judged version, to query every way."""
    s = Store.memory()
    tutors = {n: s.ensure_tutor(n) for n in TUTORS}
    sessions = {(n, d): s.start_session(tutor_id=t.id, domain=d) for n, t in tutors.items() for d in DOMAINS}
    made = []
    for i in range(12):
        p = s.add_prompt(Prompt(text=TEXTS[i % 3], domain=DOMAINS[i % 2]))
        cands = [Candidate(prompt_id=p.id, text=f"{i}-{k}", index=k) for k in range(2)]
        s.add_candidates(cands)
        name = TUTORS[i % 2]
        session = sessions[(name, DOMAINS[(i // 2) % 2])] if i % 4 else None
        j = Judgment(
            prompt_id=p.id, tutor_id=tutors[name].id, session_id=session.id if session else None,
            ranks={cands[0].id: 1, cands[1].id: 2}, flags={cands[1].id: [FLAGS[i % 2]]} if i % 3 else {},
            created_at=f"2026-03-{1 + i:02d}T10:00:00.000000+00:00",
        )  # fmt: skip
        s.save_judgment(j)
        made.append(j)
    again = made[0]
    s.save_judgment(Judgment(prompt_id=again.prompt_id, tutor_id=again.tutor_id, ranks=dict(again.ranks),
                             supersedes=again.id, created_at="2026-03-20T10:00:00.000000+00:00"))  # fmt: skip
    yield s
    s.close()


queries = st.builds(
    JudgedItemsQuery,
    domain=st.sampled_from((None, *DOMAINS)),
    tutor=st.sampled_from((None, *TUTORS, "nobody")),
    since=st.sampled_from((None, "2026-03-04", "2026-03-09T10:00:00.000000+00:00")),
    until=st.sampled_from((None, "2026-03-07", "2026-03-21")),
    text=st.sampled_from((None, "trust", "ASPIRIN", "_100%", "law_")),
    flag=st.sampled_from((None, *FLAGS)),
    include_superseded=st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_one_query_for_judged_items_history_and_items_in_memory(judged_store, q):
    """judged_items (SQL), judgment_history (the same SQL) and ``matches`` (items already read,
    as an export handed its items filters them) select the same judgments."""
    s = judged_store
    by_sql = [it.judgment.id for it in s.judged_items(query=q)]
    every = s.judged_items(include_superseded=q.include_superseded)
    in_memory = [it.judgment.id for it in every if q.matches(it)]
    assert by_sql == in_memory
    assert [row["id"] for row in s.judgment_history(query=q)] == by_sql[::-1]
    # the keyword filters are the same query
    kw = {k: getattr(q, k) for k in ("domain", "tutor", "since", "until", "include_superseded")}
    assert [it.judgment.id for it in s.judged_items(**kw)] == [
        it.judgment.id for it in s.judged_items(query=JudgedItemsQuery(**kw))
    ]
    hkw = {k: getattr(q, k) for k in ("domain", "tutor", "text", "flag", "include_superseded")}
    assert s.judgment_history(**hkw) == s.judgment_history(query=JudgedItemsQuery(**hkw))


def test_the_query_filters_really_select(judged_store):
    """Not vacuous: each filter keeps some judgments and drops others."""
    everything = {it.judgment.id for it in judged_store.judged_items()}
    assert len(everything) == 12  # the re-judged one is replaced by its new version
    for q in (JudgedItemsQuery(domain="law"), JudgedItemsQuery(tutor="ann"), JudgedItemsQuery(text="trust"),
              JudgedItemsQuery(flag="unsafe"), JudgedItemsQuery(since="2026-03-05", until="2026-03-09")):  # fmt: skip
        some = {it.judgment.id for it in judged_store.judged_items(query=q)}
        assert some and some < everything, q
    assert len(list(judged_store.judged_items(include_superseded=True))) == 13


def test_a_tutors_queue_looks_judgments_up_by_prompt_not_by_tutor():
    """The queue's "not judged by this tutor" must probe each prompt's judgments through the
    prompt index: through the tutor index it scans every judgment of the tutor per prompt."""
    s = Store.memory()
    tutor = s.ensure_tutor("ann")
    s.queued_prompts(tutor_id=tutor.id)  # the query runs
    sql_seen = []
    s.db.conn.set_trace_callback(sql_seen.append)
    s.queued_prompts(tutor_id=tutor.id)
    s.db.conn.set_trace_callback(None)
    query = next(q for q in sql_seen if "from prompts p" in q)
    plan = " ".join(str(r[-1]) for r in s.db.execute("explain query plan " + query.replace("?", "'x'")).fetchall())
    assert "idx_judgments_prompt_id" in plan, plan
    assert "idx_judgments_tutor_id" not in plan, plan
    s.close()
