"""Gold ranks are stored against candidate ids (table gold_rankings, migration m0003)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlite_utils import Database

from hitl_desktop.core.agreement import agreement_stats
from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.merging import merge_databases
from hitl_desktop.core.migrations import migrations
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Judgment


def _v01_database(path, gold):
    """A database as version 0.1 left it (schema up to m0002), gold by position."""
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m0003_gold_rankings")
    db["tutors"].insert({"id": "t1", "name": "ann", "created_at": "2026-01-01"})
    db["prompts"].insert(
        {"id": "p1", "text": "q", "domain": "law", "external_id": "g-1",
         "gold_ranking": json.dumps(gold), "created_at": "2026-01-01"}
    )  # fmt: skip
    # idx order differs from insertion order: gold follows idx
    for cid, idx in (("c-b", 1), ("c-a", 0), ("c-c", 2)):
        db["candidates"].insert(
            {"id": cid, "prompt_id": "p1", "idx": idx, "text": f"answer {cid}", "created_at": "2026-01-01"}
        )
    db.conn.close()


def test_migration_moves_gold_to_candidate_ids(tmp_path):
    path = tmp_path / "old.db"
    _v01_database(path, [3, 1, 2])
    store = Store.open(path)
    try:
        assert store.gold_rankings() == {"p1": {"c-a": 3, "c-b": 1, "c-c": 2}}
        assert store.db.execute("select gold_ranking from prompts").fetchone() == (None,)
        assert store.get_prompt("p1").gold_ranking == {"c-a": 3, "c-b": 1, "c-c": 2}
        fks = {(fk.column, fk.other_table) for fk in store.db["gold_rankings"].foreign_keys}
        assert fks == {("prompt_id", "prompts"), ("candidate_id", "candidates")}
        assert store.db["gold_rankings"].pks == ["prompt_id", "candidate_id"]
    finally:
        store.close()


def test_import_writes_gold_by_candidate_and_figures_read_it(store, tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text(
        json.dumps({"id": "g", "prompt": "q", "candidates": ["a", "b", "c"], "gold_ranking": [2, 1, 3]})
        + "\n"
    )
    import_file(store, f)
    (p,) = store.prompts_by_external_id(["g"]).values()
    by_text = {c.text: c.id for c in store.candidates_for(p.id)}
    assert store.gold_rankings() == {p.id: {by_text["a"]: 2, by_text["b"]: 1, by_text["c"]: 3}}
    # the same record again is fine; another gold ranking for the id is refused
    import_file(store, f)
    f.write_text(
        json.dumps({"id": "g", "prompt": "q", "candidates": ["a", "b", "c"], "gold_ranking": [1, 2, 3]})
        + "\n"
    )
    with pytest.raises(ImportFileError, match="gold_ranking"):
        import_file(store, f)
    # a regenerated slot (new candidate at idx 0) does not take over a gold rank
    store.add_candidates([Candidate(prompt_id=p.id, text="new", index=0)])
    t = store.ensure_tutor("ann")
    cands = store.candidates_for(p.id)
    ranks = {c.id: {"b": 1, "a": 2, "c": 3, "new": 4}[c.text] for c in cands}
    store.save_judgment(Judgment(prompt_id=p.id, tutor_id=t.id, ranks=ranks))
    gold = agreement_stats(store)["gold"]
    assert gold["ann"]["kendall_tau"] == 1.0 and gold["ann"]["items"] == 1


def test_merge_carries_gold_matching_candidates_by_text(tmp_path):
    src_path, dst_path = tmp_path / "src.db", tmp_path / "dst.db"
    _v01_database(src_path, [3, 1, 2])  # a 0.1 source: gold by position
    new_src = tmp_path / "new.db"
    with Store.open(new_src) as s:
        f = tmp_path / "g.jsonl"
        f.write_text(json.dumps({"id": "g-2", "prompt": "r", "candidates": ["x", "y"], "gold_ranking": [2, 1]}) + "\n")
        import_file(s, f)
    with Store.open(dst_path) as dst:
        # the target already has prompt g-2 with the same candidate texts under other ids
        f.write_text(json.dumps({"id": "g-2", "prompt": "r", "candidates": ["y", "x"]}) + "\n")
        import_file(dst, f)
        summary = merge_databases(dst, [src_path, new_src], backup=False)
        gold = dst.gold_rankings()
        g2 = dst.prompts_by_external_id(["g-2"])["g-2"]
        texts = {c.id: c.text for c in dst.candidates_for(g2.id)}
        assert {texts[c]: r for c, r in gold[g2.id].items()} == {"x": 2, "y": 1}
        assert gold["p1"] == {"c-a": 3, "c-b": 1, "c-c": 2}
        assert summary.added["gold_rankings"] == 5
        again = merge_databases(dst, [src_path, new_src], backup=False)
        assert again.added["gold_rankings"] == 0 and dst.gold_rankings() == gold


def test_reading_commands_work_on_a_v01_database_and_leave_it_unchanged(tmp_path):
    """stats, export (--adjudicated too) and review open read-only: no migration, so gold is
    read by position as the migration would move it, and a table 0.1 lacks reads as empty."""
    import hashlib

    from hitl_desktop.cli import main as cli_main

    path = tmp_path / "old.db"
    _v01_database(path, [3, 1, 2])
    db = Database(sqlite3.connect(path))
    db["judgments"].insert({"id": "j1", "prompt_id": "p1", "tutor_id": "t1", "created_at": "2026-01-02"})
    for cid, rank in (("c-a", 3), ("c-b", 1), ("c-c", 2)):
        db["rankings"].insert({"judgment_id": "j1", "candidate_id": cid, "rank": rank})
    db.conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    out = tmp_path / "pairs.jsonl"
    assert cli_main(["stats", "--db", str(path), "--json"]) == 0
    assert cli_main(["export", "--db", str(path), "--format", "trl-preference", "--out", str(out), "--adjudicated"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert cli_main(["review", "--db", str(path)]) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "backups").exists()
    store = Store.open(path, read_only=True)
    try:
        assert store.gold_rankings() == {"p1": {"c-a": 3, "c-b": 1, "c-c": 2}}
        (item,) = store.judged_items()
        assert item.prompt.gold_ranking == {"c-a": 3, "c-b": 1, "c-c": 2}
        assert agreement_stats(store)["gold"]["ann"] == {"kendall_tau": 1.0, "items": 1}
        assert store.adjudications() == []
    finally:
        store.close()
