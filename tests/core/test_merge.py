"""Merging tutors' databases into one: remapping, idempotence, refusals, all-or-nothing."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sqlite_utils import Database

from hitl_desktop.core.agreement import agreement_stats
from hitl_desktop.core.merging import MergeError, merge_databases
from hitl_desktop.core.migrations import MIGRATION_SET, migrations
from hitl_desktop.core.store import NotAHitlDatabase, Store, StoreError
from hitl_desktop.core.types import Candidate, Correction, Judgment, Prompt

# external id, domain, text, candidate texts (in generated order)
PROMPTS = [
    ("med-1", "medicine", "Is ibuprofen safe in pregnancy?", ["A1", "A2", "A3"]),
    ("med-2", "medicine", "Amoxicillin dose for a child of 20 kg?", ["B1", "B2", "B3", "B4"]),
    ("fin-1", "finance", "What is an index fund?", ["C1", "C2", "C3"]),
]
# tutor -> external id -> ranks aligned with the candidate texts above
RANKS = {
    "ann": {"med-1": [1, 2, 3], "med-2": [1, 2, 3, 4], "fin-1": [1, 2, 3]},
    "bob": {"med-1": [1, 3, 2], "med-2": [2, 1, 3, 4], "fin-1": [3, 2, 1]},
    "cem": {"med-1": [2, 1, 3], "med-2": [1, 2, 4, 3]},
}
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def stamp(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat(timespec="microseconds")


def add_prompts(
    store: Store, *, reverse: bool = False
) -> dict[str, tuple[Prompt, list[Candidate]]]:
    """The shared prompt set, imported afresh (new UUIDs); ``reverse`` inserts in another order."""
    out = {}
    for ext, domain, text, texts in reversed(PROMPTS) if reverse else PROMPTS:
        p = store.add_prompt(Prompt(text=text, domain=domain, external_id=ext))
        cands = [
            Candidate(prompt_id=p.id, text=t, index=i, model="gemma") for i, t in enumerate(texts)
        ]
        store.add_candidates(list(reversed(cands)) if reverse else cands)
        out[ext] = (p, cands)
    return out


def make_tutor_db(path: Path, tutor: str, *, offset: float) -> Path:
    """One tutor's workstation database: the shared prompts, their rankings, a solo prompt."""
    s = Store.open(path)
    t = s.ensure_tutor(tutor, ["medicine", "finance"])
    prompts = add_prompts(s, reverse=tutor == "cem")
    for n, (ext, ranks) in enumerate(RANKS[tutor].items()):
        p, cands = prompts[ext]
        session = s.start_session(tutor_id=t.id, domain=p.domain)
        shown = cands[n % len(cands) :] + cands[: n % len(cands)]
        correction = None
        if tutor == "bob" and ext == "fin-1":
            correction = Correction(
                text="An index fund tracks a market index.", candidate_id=cands[0].id
            )
        s.save_judgment(
            Judgment(
                prompt_id=p.id,
                tutor_id=t.id,
                session_id=session.id,
                ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
                display_order=[c.id for c in shown],
                seconds_spent=30.0 + n,
                correction=correction,
                created_at=stamp(offset + n),
            )
        )
    if tutor == "ann":  # a prompt nobody else has (no external id): added as it is
        p = s.add_prompt(Prompt(text="Solo question", domain="general"))
        cands = [Candidate(prompt_id=p.id, text=f"S{i}", index=i) for i in range(2)]
        s.add_candidates(cands)
        s.save_judgment(
            Judgment(
                prompt_id=p.id,
                tutor_id=t.id,
                ranks={cands[0].id: 1, cands[1].id: 2},
                created_at=stamp(offset + 9),
            )
        )
    s.close()
    return path


def dump(store: Store) -> dict[str, list[tuple]]:
    """Every row of every merged table, order-independent."""
    return {
        t: sorted((tuple(r) for r in store.db.execute(f"select * from [{t}]").fetchall()), key=repr)
        for t in Store.MERGE_TABLES
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backups(folder: Path) -> list[Path]:
    """The merge backups of the database(s) in ``folder``."""
    return sorted((folder / "backups").glob("*-merge.db"))


@pytest.fixture
def sources(tmp_path) -> list[Path]:
    folder = tmp_path / "sources"
    folder.mkdir()
    return [
        make_tutor_db(folder / f"{name}.db", name, offset=100 * i)
        for i, name in enumerate(["ann", "bob", "cem"])
    ]


@pytest.fixture
def target(tmp_path):
    """The lead's database: the same prompt set imported, and ann already known (another id)."""
    s = Store.open(tmp_path / "lead.db")
    add_prompts(s)
    s.ensure_tutor("ann")
    yield s
    s.close()


def ranks_by_text(store: Store) -> dict[tuple[str, str], list[int]]:
    """(tutor, external id) -> ranks aligned with the candidate texts of PROMPTS."""
    texts = {ext: t for ext, _, _, t in PROMPTS}
    out = {}
    for item in store.judged_items():
        ext = item.prompt.external_id
        if ext is None:
            continue
        by_text = {c.text: item.judgment.ranks[c.id] for c in item.candidates}
        out[(item.tutor_name, ext)] = [by_text[t] for t in texts[ext]]
    return out


# -- merging -------------------------------------------------------------------------------


def test_three_tutors_merge_onto_one_prompt_set(target, sources):
    before = {p: digest(p) for p in sources}
    progress = []
    summary = merge_databases(target, sources, on_progress=lambda f, m: progress.append((f, m)))

    counts = target.table_counts()
    n_judgments = sum(len(r) for r in RANKS.values()) + 1
    assert counts == {
        "tutors": 3,
        "sessions": n_judgments - 1,
        "prompts": 4,  # 3 shared (matched by external id) + ann's solo prompt
        "candidates": 10 + 2,  # 10 shared (matched by text) + the solo prompt's 2
        "judgments": n_judgments,
        "rankings": sum(len(r) for ranks in RANKS.values() for r in ranks.values()) + 2,
        "corrections": 1,
        "gold_rankings": 0,
        "guidelines": 0,
        "adjudications": 0,
        **dict.fromkeys(("rubrics", "criteria", "grader_runs", "grades"), 0),  # none graded here
    }
    assert summary.added["tutors"] == 2 and summary.matched["tutors"] == 1  # ann by name
    assert summary.matched["prompts"] == 3 * 3  # each source's 3 shared prompts
    assert summary.matched["candidates"] == 3 * 10
    assert summary.added["prompts"] == 1 and summary.added["candidates"] == 2
    assert summary.added["judgments"] == n_judgments
    assert summary.total_added == sum(counts.values()) - 3 - 10 - 1  # minus what the lead had

    # every tutor's ranking sits on the lead's prompt and candidates, by text
    assert ranks_by_text(target) == {
        (t, ext): r for t, rr in RANKS.items() for ext, r in rr.items()
    }
    lead_prompt_ids = {p.id for p in target.queued_prompts()} | {
        i.prompt.id for i in target.judged_items()
    }
    assert len(lead_prompt_ids) == 4
    for item in target.judged_items():
        assert set(item.judgment.display_order) in (set(), set(item.judgment.ranks))
        assert {c.id for c in item.candidates} == set(item.judgment.ranks)
    (fix,) = [i for i in target.judged_items() if i.judgment.correction is not None]
    corrected = {c.id: c.text for c in fix.candidates}[fix.judgment.correction.candidate_id]
    assert corrected == "C1" and fix.tutor_name == "bob"

    # sources untouched, backup taken, progress reported to the end
    assert {p: digest(p) for p in sources} == before
    assert len(backups(target.path.parent)) == 1
    assert summary.backup == str(backups(target.path.parent)[0])
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_merging_again_changes_nothing(target, sources):
    merge_databases(target, sources)
    first = dump(target)
    again = merge_databases(target, sources)
    assert dump(target) == first
    assert again.total_added == 0
    assert again.skipped["judgments"] == sum(len(r) for r in RANKS.values()) + 1
    # the merged database merged into a third one, twice: same content
    again = merge_databases(target, [sources[1]])
    assert again.total_added == 0 and dump(target) == first


def test_backup_holds_the_database_as_it_was(target, sources):
    before = dump(target)
    summary = merge_databases(target, sources)
    with Store.open_readonly(summary.backup) as copy:
        assert dump(copy) == before
    assert dump(target) != before


def test_backup_to_copies_a_live_database_and_never_overwrites(target, sources, tmp_path):
    merge_databases(target, sources[:1])
    copy_path = target.backup_to(tmp_path / "copies" / "lead-copy.db")
    with Store.open_readonly(copy_path) as copy:
        assert dump(copy) == dump(target)
    with pytest.raises(StoreError, match="never overwrites"):
        target.backup_to(copy_path)


def test_agreement_after_merge_matches_hand_computed_values(target, sources):
    merge_databases(target, sources)
    stats = agreement_stats(target)
    json.dumps(stats)  # ready for stats --json

    # Kendall tau-b, counted by hand: (concordant - discordant) / 3 or / 6 (no ties here)
    # med-1: ann/bob 1/3, ann/cem 1/3, bob/cem -1/3; med-2: 2/3, 2/3, 1/3; fin-1: ann/bob -1
    assert stats["kendall_tau"] == pytest.approx(1 / 7)
    assert stats["by_domain"]["medicine"]["kendall_tau"] == pytest.approx(1 / 3)
    assert stats["by_domain"]["finance"]["kendall_tau"] == pytest.approx(-1.0)
    assert stats["prompts"] == 3 and stats["units"] == 10 and stats["pairs"] == 7

    nan = np.nan
    matrix = [  # tutors x (prompt, candidate): med-1 A1..A3, med-2 B1..B4, fin-1 C1..C3
        [1, 2, 3, 1, 2, 3, 4, 1, 2, 3],
        [1, 3, 2, 2, 1, 3, 4, 3, 2, 1],
        [2, 1, 3, 1, 2, 4, 3, nan, nan, nan],
    ]
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert stats["krippendorff_alpha"] == pytest.approx(expected)
    finance = krippendorff.alpha(
        reliability_data=[[1, 2, 3], [3, 2, 1]], level_of_measurement="ordinal"
    )
    assert stats["by_domain"]["finance"]["krippendorff_alpha"] == pytest.approx(finance)
    assert stats["by_domain"]["general"] == {
        "krippendorff_alpha": None,
        "kendall_tau": None,
        "units": 0,
        "prompts": 0,
        "pairs": 0,
    }


def test_identical_candidate_texts_pair_up_in_order(tmp_path):
    def db(name: str, ranks: list[int]) -> Path:
        path = tmp_path / f"{name}.db"
        with Store.open(path) as s:
            t = s.ensure_tutor(name)
            p = s.add_prompt(Prompt(text="q", external_id="dup"))
            cands = [
                Candidate(prompt_id=p.id, text=x, index=i)
                for i, x in enumerate(["same", "same", "other"])
            ]
            s.add_candidates(cands)
            s.save_judgment(
                Judgment(
                    prompt_id=p.id,
                    tutor_id=t.id,
                    ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
                )
            )
        return path

    with Store.open(tmp_path / "t.db") as target:
        merge_databases(target, [db("ann", [1, 2, 3]), db("bob", [2, 1, 3])])
        assert target.table_counts()["candidates"] == 3
        cands = target.candidates_for(target.prompt_ids_by_external_id(["dup"])["dup"])
        got = {i.tutor_name: [i.judgment.ranks[c.id] for c in cands] for i in target.judged_items()}
        assert got == {"ann": [1, 2, 3], "bob": [2, 1, 3]}


def test_a_new_candidate_of_a_known_prompt_gets_the_next_index(tmp_path):
    paths = []
    for name, texts in [("ann", ["x", "y"]), ("bob", ["x", "z"])]:
        path = tmp_path / f"{name}.db"
        with Store.open(path) as s:
            p = s.add_prompt(Prompt(text="q", external_id="p"))
            s.add_candidates(
                [Candidate(prompt_id=p.id, text=t, index=i) for i, t in enumerate(texts)]
            )
        paths.append(path)
    with Store.open(tmp_path / "t.db") as target:
        merge_databases(target, paths)
        cands = target.candidates_for(target.prompt_ids_by_external_id(["p"])["p"])
        assert [(c.index, c.text) for c in cands] == [(0, "x"), (1, "y"), (2, "z")]


def test_an_older_schema_source_merges_and_is_not_migrated(tmp_path, target):
    old = tmp_path / "old.db"
    db = Database(sqlite3.connect(old))
    migrations.apply(db, stop_before=migrations._migrations[1].name)
    db["tutors"].insert({"id": "t-old", "name": "dora", "created_at": stamp(0)})
    db["prompts"].insert(
        {
            "id": "p-old",
            "text": "old prompt",
            "domain": "law",
            "external_id": "law-1",
            "created_at": stamp(0),
        }
    )
    db["candidates"].insert(
        {
            "id": "c-old",
            "prompt_id": "p-old",
            "idx": 0,
            "text": "old answer",
            "created_at": stamp(0),
        }
    )
    db["judgments"].insert(
        {"id": "j-old", "prompt_id": "p-old", "tutor_id": "t-old", "created_at": stamp(1)}
    )
    db["rankings"].insert({"judgment_id": "j-old", "candidate_id": "c-old", "rank": 1})
    db.conn.close()
    before = digest(old)
    summary = merge_databases(target, [old])
    assert summary.added["judgments"] == 1 and summary.added["prompts"] == 1
    assert digest(old) == before
    (item,) = [i for i in target.judged_items() if i.tutor_name == "dora"]
    assert item.judgment.ranks == {"c-old": 1} and item.judgment.strength == 2


def test_a_source_still_open_elsewhere_merges(tmp_path, target):
    """A tutor's app still running: its first pages may be in the WAL only, not in the file."""
    path = tmp_path / "busy.db"
    busy = Store.open(path)
    t = busy.ensure_tutor("eve")
    p = busy.add_prompt(Prompt(text="busy", external_id="med-1"))
    c = Candidate(prompt_id=p.id, text="A1")
    busy.add_candidates([c])
    busy.save_judgment(Judgment(prompt_id=p.id, tutor_id=t.id, ranks={c.id: 1}))
    try:
        summary = merge_databases(target, [path])
    finally:
        busy.close()
    assert summary.added["judgments"] == 1 and summary.matched["prompts"] == 1
    assert summary.matched["candidates"] == 1


def test_no_sources_no_backup(target):
    assert merge_databases(target, []).total_added == 0
    assert backups(target.path.parent) == []


def test_merging_into_a_memory_store_takes_no_backup(sources):
    s = Store.memory()
    summary = merge_databases(s, sources)
    assert summary.backup is None and s.table_counts()["judgments"] == 9
    assert "judgments: +9" in str(summary)
    s.close()


# -- refusals and failures leave everything as it was ----------------------------------------


def garbage(tmp_path: Path) -> Path:
    p = tmp_path / "garbage.db"
    p.write_bytes(b"this is not a database\n" * 100)
    return p


def other_app(tmp_path: Path) -> Path:
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("create table notes (id integer primary key, body text)")
    conn.execute("insert into notes (body) values ('hello')")
    conn.commit()
    conn.close()
    return p


def newer(tmp_path: Path) -> Path:
    p = make_tutor_db(tmp_path / "newer.db", "bob", offset=0)
    conn = sqlite3.connect(p)
    conn.execute(
        "insert into _sqlite_migrations (migration_set, name, applied_at) values (?, ?, ?)",
        [MIGRATION_SET, "m9999_from_the_future", stamp(0)],
    )
    conn.commit()
    conn.close()
    return p


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (garbage, "not an SQLite database"),
        (other_app, "another application"),
        (newer, "newer hitl-desktop"),
        (lambda tmp: tmp / "missing.db", "no hitl-desktop database"),
    ],
)
def test_a_foreign_or_newer_source_is_refused_and_nothing_changes(
    tmp_path, target, sources, make, message
):
    bad = make(tmp_path)
    bad_before = digest(bad) if bad.exists() else None
    good_before = digest(sources[0])
    before = dump(target)
    with pytest.raises(NotAHitlDatabase, match=message) as err:
        merge_databases(target, [sources[0], bad])
    assert str(bad) in str(err.value)
    assert dump(target) == before
    assert backups(target.path.parent) == []
    assert (digest(bad) if bad.exists() else None) == bad_before
    assert digest(sources[0]) == good_before


def test_the_target_itself_is_refused(target):
    with pytest.raises(NotAHitlDatabase, match="target database itself"):
        merge_databases(target, [target.path])


def test_a_merge_failing_midway_leaves_the_target_unchanged(target, sources, monkeypatch):
    before = dump(target)
    real = Store.insert_raw_rows
    calls = []

    def flaky(self, table, rows, *columns):
        calls.append(table)
        if len(calls) == 12:  # well into the second source
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, table, rows, *columns)

    monkeypatch.setattr(Store, "insert_raw_rows", flaky)
    with pytest.raises(MergeError, match="nothing merged.*disk I/O error"):
        merge_databases(target, sources)
    assert dump(target) == before
    assert not target.db.conn.in_transaction
    monkeypatch.setattr(Store, "insert_raw_rows", real)
    # and it goes through afterwards
    merge_databases(target, sources)
    assert target.table_counts()["judgments"] == 9


def test_taus_by_hand_are_what_the_test_claims():
    """The hand-counted taus above, checked by brute force (no scipy)."""

    def tau(x, y):  # no ties in these rankings: tau-b = tau-a
        pairs = list(combinations(range(len(x)), 2))
        return sum(math.copysign(1, (x[i] - x[j]) * (y[i] - y[j])) for i, j in pairs) / len(pairs)

    r = RANKS
    values = [
        tau(r[a][ext], r[b][ext])
        for ext in ("med-1", "med-2", "fin-1")
        for a, b in combinations(sorted(r), 2)
        if ext in r[a] and ext in r[b]
    ]
    assert sum(values) / len(values) == pytest.approx(1 / 7)


def test_two_workstations_importing_the_same_file_merge_into_one_copy(tmp_path):
    """Importing a file twice adds nothing; importing it on two workstations and merging their
    databases must not either: the same tutor's judgment (and correction) once, not twice."""
    from hitl_desktop.core.importing import import_file
    from hitl_desktop.core.ranking import pairs_for_items

    records = [
        {"id": "q1", "prompt": "Q1", "candidates": ["a", "b", "c"], "ranking": [1, 2, 3], "tutor": "dr-a",
         "correction": "better a", "corrected_index": 0},
        {"id": "q1", "prompt": "Q1", "candidates": ["a", "b", "c"], "ranking": [2, 1, 3], "tutor": "dr-b"},
        {"prompt": "no id", "candidates": ["x", "y"], "ranking": [1, 2]},
    ]
    f = tmp_path / "set.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for name in ("a.db", "b.db"):
        with Store.open(tmp_path / name) as s:
            import_file(s, f)
    with Store.open(tmp_path / "a.db") as target:
        pairs_before = len(pairs_for_items(target.judged_items()))
        summary = merge_databases(target, [tmp_path / "b.db"], backup=False)
        counts = target.table_counts()
        assert (counts["judgments"], counts["rankings"], counts["corrections"]) == (3, 8, 1), summary
        assert len(pairs_for_items(target.judged_items())) == pairs_before


def test_a_judgment_already_in_the_target_gets_no_correction_from_a_source(tmp_path):
    """Existing target rows are never modified: when the source's version of a judgment the
    target already has carries a correction the target's lacks, the correction stays out."""
    from hitl_desktop.core.importing import import_file

    record = {"id": "q1", "prompt": "Q1", "candidates": ["a", "b"], "ranking": [1, 2], "tutor": "dr-a"}
    plain, corrected = tmp_path / "plain.jsonl", tmp_path / "corrected.jsonl"
    plain.write_text(json.dumps(record) + "\n")
    corrected.write_text(json.dumps({**record, "correction": "better", "corrected_index": 1}) + "\n")
    with Store.open(tmp_path / "a.db") as s:
        import_file(s, plain)
    with Store.open(tmp_path / "b.db") as s:
        import_file(s, corrected)
    with Store.open(tmp_path / "a.db") as target:
        summary = merge_databases(target, [tmp_path / "b.db"], backup=False)
        assert target.table_counts()["corrections"] == 0, summary
        assert summary.skipped["corrections"] == 1
        (item,) = target.judged_items()
        assert item.judgment.correction is None


def test_raw_rows_with_other_columns_are_refused_whole(target):
    """insert_raw_rows goes straight to executemany: rows that do not all carry the same
    columns are refused before anything is inserted, never written with a column lost."""
    before = dump(target)
    rows = [{"id": "t-x", "name": "x", "domains": "[]", "created_at": stamp(0)},
            {"id": "t-y", "name": "y", "created_at": stamp(1)}]  # fmt: skip
    with pytest.raises(StoreError, match="same columns"):
        target.insert_raw_rows("tutors", rows)
    rows[1] = {"id": "t-y", "name": "y", "created_at": stamp(1), "pseudonym": 1}
    with pytest.raises(KeyError):
        target.insert_raw_rows("tutors", rows)
    assert dump(target) == before
