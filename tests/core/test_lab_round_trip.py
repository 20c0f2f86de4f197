"""The lab's round trip through the CLI: import, assign, judge in each pack, merge, stats.

Figures are computed here independently (scipy's Kendall tau-b, the ``krippendorff``
package), from the rankings the test itself gave.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import stat

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import kendalltau

from hitl_desktop.cli import cli
from hitl_desktop.core.guidelines import GuidelineLibrary
from hitl_desktop.core.judging import JudgingState
from hitl_desktop.core.store import Store
from hitl_desktop.core.workflow import TutorWorkflow

TUTORS = ["ann", "bob", "cy"]
N_PROMPTS = 6
GOLD = {"g1": [1, 2, 3], "g2": [2, 1, 3]}


def records():
    out = [
        {"id": f"p{i}", "prompt": f"Question {i}?", "domain": "medicine",
         "candidates": [f"p{i}-a", f"p{i}-b", f"p{i}-c"]}
        for i in range(N_PROMPTS)
    ]
    out += [
        {"id": gid, "prompt": f"Question {gid}?", "domain": "medicine",
         "candidates": [f"{gid}-a", f"{gid}-b", f"{gid}-c"], "gold_ranking": ranks}
        for gid, ranks in GOLD.items()
    ]
    return out


def tutor_ranks(tutor: str, texts: list[str]) -> list[int]:
    """Each tutor's ranking of a prompt's candidates (texts in idx order): varied, fixed."""
    h = int(hashlib.sha256(f"{tutor}:{texts[0]}".encode()).hexdigest(), 16)
    perms = list(itertools.permutations([1, 2, 3]))
    return list(perms[h % len(perms)])


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def lab(tmp_path):
    src = tmp_path / "lab.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records()))
    db = tmp_path / "lab.db"
    run("import", src, "--db", db)
    return db


def pack_rows(path, sql):
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def judge_pack(path, library):
    """The tutor judges every item of their pack through the core workflow."""
    store = Store.open(path)
    wf = TutorWorkflow(store, guidelines=library)
    tutor = wf.pack_tutor()
    wf.start_session(tutor_name=tutor, domain=wf.busiest_domain(tutor))
    n = 0
    while (item := wf.open_next()) is not None:
        assert item.protected and not item.needs_generation
        ranks = tutor_ranks(tutor, [c.text for c in item.candidates])
        state = JudgingState(display_order=[c.id for c in item.candidates])
        state.set_levels_from_ranks({c.id: r for c, r in zip(item.candidates, ranks, strict=True)})
        wf.submit(state, seconds_spent=2.0)
        n += 1
    wf.end_session()
    store.close()
    return n


def test_lab_round_trip(lab, tmp_path):
    packs = tmp_path / "packs"
    out = json.loads(run("assign", "--db", lab, "--tutors", ",".join(TUTORS), "--overlap", 2, "--out", packs, "--json"))
    assert [p["tutor"] for p in out["packs"]] == TUTORS

    # each pack: its share (every ordinary prompt in exactly two packs, loads 4/4/4), every
    # gold prompt, the lab's candidates, no answer key, the guidelines, its tutor
    lab_cands = dict(pack_rows(lab, "select id, text from candidates"))
    holders: dict[str, list[str]] = {}
    for tutor in TUTORS:
        path = packs / f"{tutor}.db"
        ext = [r[0] for r in pack_rows(path, "select external_id from prompts")]
        for e in ext:
            holders.setdefault(e, []).append(tutor)
        assert sum(not e.startswith("g") for e in ext) == N_PROMPTS * 2 // len(TUTORS)
        assert pack_rows(path, "select count(*) from prompts where gold_ranking is not null") == [(0,)]
        tables = {r[0] for r in pack_rows(path, "select name from sqlite_master where type = 'table'")}
        if "gold_rankings" in tables:
            assert pack_rows(path, "select count(*) from gold_rankings") == [(0,)]
        assert {r[0] for r in pack_rows(path, "select distinct source from prompts")} == {"pack"}
        cands = pack_rows(path, "select id, text, origin from candidates")
        assert len(cands) == 3 * len(ext) and all(lab_cands[cid] == text for cid, text, _ in cands)
        assert {o for _, _, o in cands} == {"pack"}
        assert pack_rows(path, "select value from settings where key = 'pack_tutor'") == [(tutor,)]
        assert pack_rows(path, "select count(*) from guidelines where domain = 'medicine'") == [(1,)]
        # freed pages: the file never held the key (it was written fresh and vacuumed)
        assert pack_rows(path, "pragma freelist_count") == [(0,)]
    assert all(len(holders[f"p{i}"]) == 2 for i in range(N_PROMPTS))
    assert all(sorted(holders[g]) == TUTORS for g in GOLD)

    # assigning twice gives the same packs
    first = {t: pack_rows(packs / f"{t}.db", "select id from prompts order by rowid") for t in TUTORS}
    run("assign", "--db", lab, "--tutors", ",".join(TUTORS), "--out", packs)
    assert {t: pack_rows(packs / f"{t}.db", "select id from prompts order by rowid") for t in TUTORS} == first

    # the tutors judge, the lead merges back
    library = GuidelineLibrary(user_dir=tmp_path / "guidelines")
    judged = {t: judge_pack(packs / f"{t}.db", library) for t in TUTORS}
    assert judged == dict.fromkeys(TUTORS, N_PROMPTS * 2 // len(TUTORS) + len(GOLD))
    run("merge", *(packs / f"{t}.db" for t in TUTORS), "--db", lab)
    stats = json.loads(run("stats", "--db", lab, "--json"))
    assert stats["judgments"] == sum(judged.values())
    assert stats["candidates"] == 3 * (N_PROMPTS + len(GOLD))  # the lab's, shared: nothing new

    # independent figures: who ranked what
    given = {}  # (prompt ext id, tutor) -> ranks in idx order
    for ext, tutors in holders.items():
        texts = [f"{ext}-{x}" for x in "abc"]
        for t in tutors:
            given[(ext, t)] = tutor_ranks(t, texts)
    taus = []
    units = []
    for ext, tutors in holders.items():
        for t1, t2 in itertools.combinations(sorted(tutors), 2):
            taus.append(kendalltau(given[(ext, t1)], given[(ext, t2)]).statistic)
        for i in range(3):
            units.append([given[(ext, t)][i] if (ext, t) in given else np.nan for t in TUTORS])
    agreement = stats["agreement"]
    assert agreement["kendall_tau"] == pytest.approx(float(np.mean(taus)))
    expected_alpha = krippendorff.alpha(reliability_data=np.array(units).T, level_of_measurement="ordinal")
    assert agreement["krippendorff_alpha"] == pytest.approx(expected_alpha)
    gold = agreement["gold"]  # tutor name -> figures
    for t in TUTORS:
        expected = np.mean([kendalltau(given[(g, t)], ranks).statistic for g, ranks in GOLD.items()])
        assert gold[t]["items"] == len(GOLD)
        assert gold[t]["kendall_tau"] == pytest.approx(float(expected))

    # re-assigning after the packs came back: only the work that remains
    again = json.loads(run("assign", "--db", lab, "--tutors", ",".join(TUTORS), "--out", tmp_path / "again", "--json"))
    assert all(p["prompts"] == 0 and p["gold"] == 0 for p in again["packs"])


def test_reassign_gives_the_remaining_work_only(lab, tmp_path):
    packs = tmp_path / "packs"
    run("assign", "--db", lab, "--tutors", "ann,bob,cy", "--out", packs)
    library = GuidelineLibrary(user_dir=tmp_path / "guidelines")
    judge_pack(packs / "ann.db", library)
    run("merge", packs / "ann.db", "--db", lab)
    ann_had = {r[0] for r in pack_rows(packs / "ann.db", "select external_id from prompts")}
    out = json.loads(run("assign", "--db", lab, "--tutors", "ann,bob,cy", "--out", tmp_path / "next", "--json"))
    by_tutor = {p["tutor"]: p for p in out["packs"]}
    assert by_tutor["ann"]["gold"] == 0  # she judged every gold prompt
    # every ordinary prompt still needs 2 judges, minus ann's: 12 - 4 = 8 assignments
    assert sum(p["prompts"] for p in out["packs"]) == N_PROMPTS * 2 - len(ann_had - set(GOLD))
    ann_next = {r[0] for r in pack_rows(tmp_path / "next" / "ann.db", "select external_id from prompts")}
    assert not ann_next & ann_had


def test_assign_refuses_prompts_without_candidates(tmp_path):
    src = tmp_path / "bare.jsonl"
    src.write_text(json.dumps({"id": "x1", "prompt": "No answers yet"}) + "\n")
    db = tmp_path / "lab.db"
    run("import", src, "--db", db)
    result = CliRunner().invoke(cli, ["assign", "--db", str(db), "--tutors", "a,b", "--out", str(tmp_path / "p")])
    assert result.exit_code != 0
    assert "generate" in result.output and "x1" in result.output
    assert not (tmp_path / "p" / "a.db").exists()


def test_assign_refuses_bad_tutor_lists(lab, tmp_path):
    for tutors, overlap, message in (("a,a", 1, "twice"), ("a,b", 3, "more than"), ("../x", 1, "cannot name")):
        result = CliRunner().invoke(
            cli, ["assign", "--db", str(lab), "--tutors", tutors, "--overlap", str(overlap), "--out", str(tmp_path / "p")]
        )
        assert result.exit_code != 0 and message in result.output


def test_stats_and_export_on_a_read_only_database_write_nothing(lab, tmp_path):
    folder = lab.parent
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    os.chmod(lab, 0o444)
    os.chmod(folder, 0o555)
    try:
        stats = json.loads(run("stats", "--db", lab, "--json"))
        assert stats["prompts"] == N_PROMPTS + len(GOLD)
        out = tmp_path.parent / f"{tmp_path.name}-export.jsonl"
        run("export", "--db", lab, "--format", "trl-preference", "--out", out)
        assert out.exists()
        out.unlink()
    finally:
        os.chmod(folder, 0o755)
        os.chmod(lab, 0o644)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before
    assert not (folder / "backups").exists()
    assert stat.S_IMODE(lab.stat().st_mode) == 0o644


def test_readme_documents_every_assign_option():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    lab = readme[readme.index("## The lab"):]
    lab = lab[: lab.index("\n## ", 5)]
    options = [o for p in cli.commands["assign"].params for o in p.opts if o not in ("--json",)]
    usage = next(line for line in readme.splitlines() if line.startswith("hitl-desktop assign"))
    assert all(o in usage for o in options), options
    for rule in ("--overlap", "--domain", "--limit", "generate", "Re-assigning", "supersedes", "origin"):
        assert rule in lab
