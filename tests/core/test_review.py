"""The lead's review (core/review.py): history search, prompts by disagreement, adjudication
rules, export --adjudicated, and adjudications carried by a merge. No Qt."""

from __future__ import annotations

import dataclasses
import json
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.cli import main as cli_main
from hitl_desktop.core import review
from hitl_desktop.core.importing import import_file
from hitl_desktop.core.merging import merge_databases
from hitl_desktop.core.ranking import pairs_for_item
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import (
    Adjudication,
    Candidate,
    Correction,
    JudgedItem,
    Judgment,
    Prompt,
)

TEXTS = ["alpha answer", "beta answer", "gamma answer", "delta answer"]

# three prompts judged by tutors a and b (p3 also by c), one prompt by a only
RANKINGS = {
    "p1": {"a": [1, 2, 3, 4], "b": [1, 2, 3, 4]},  # full agreement
    "p2": {"a": [1, 2, 3, 4], "b": [4, 3, 2, 1]},  # reversed
    "p3": {"a": [1, 2, 3, 4], "b": [2, 1, 3, 4], "c": [1, 3, 2, 4]},  # one swap each
    "p4": {"a": [2, 1, 3, 4]},  # one tutor: nothing to review
}


def write_lab_file(path: Path, *, corrections: dict[tuple[str, str], str] | None = None) -> Path:
    lines = []
    for pid, by_tutor in RANKINGS.items():
        for tutor, ranking in by_tutor.items():
            rec = {
                "id": pid,
                "prompt": f"Question {pid}: is warfarin safe with ibuprofen?",
                "domain": "medicine" if pid != "p4" else "law",
                "candidates": TEXTS,
                "ranking": ranking,
                "tutor": tutor,
            }
            if corrections and (pid, tutor) in corrections:
                rec["correction"] = corrections[(pid, tutor)]
                rec["corrected_index"] = ranking.index(1)
            if pid == "p2" and tutor == "b":
                rec["flags"] = [["unsafe"], [], [], []]
            lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def lab(tmp_path):
    store = Store.open(tmp_path / "lab.db")
    import_file(store, write_lab_file(tmp_path / "lab.jsonl", corrections={("p2", "b"): "A careful answer."}))
    yield store
    store.close()


def pid_of(store: Store, ext: str) -> str:
    return store.prompt_ids_by_external_id([ext])[ext]


def cand_ids(store: Store, ext: str) -> list[str]:
    return [c.id for c in store.candidates_for(pid_of(store, ext))]


def tau_no_ties(x: list[int], y: list[int]) -> float:
    """Kendall's tau for rankings without ties, counted by hand."""
    conc = disc = 0
    for i, j in combinations(range(len(x)), 2):
        s = (x[i] - x[j]) * (y[i] - y[j])
        conc += s > 0
        disc += s < 0
    return (conc - disc) / (len(x) * (len(x) - 1) / 2)


# -- disagreement ------------------------------------------------------------------------------


def test_prompts_are_listed_most_disagreement_first(lab):
    found = review.disagreements(lab)
    assert [d.prompt.external_id for d in found] == ["p2", "p3", "p1"]  # p4: one tutor only
    for d in found:
        rankings = RANKINGS[d.prompt.external_id]
        taus = [tau_no_ties(rankings[t1], rankings[t2]) for t1, t2 in combinations(sorted(rankings), 2)]
        assert d.mean_tau == pytest.approx(sum(taus) / len(taus))
        assert d.min_tau == pytest.approx(min(taus))
        assert d.tutors == tuple(sorted(rankings))
        assert not d.adjudicated
    assert found[0].mean_tau == pytest.approx(-1.0)
    assert [d.prompt.external_id for d in review.disagreements(lab, domain="law")] == []


def test_review_item_shows_every_tutors_latest_ranking(lab):
    item = review.review_item(lab, pid_of(lab, "p3"))
    assert [i.tutor_name for i in item.judged] == ["a", "b", "c"]
    ids = [c.id for c in item.candidates]
    for judged in item.judged:
        assert [judged.judgment.ranks[c] for c in ids] == RANKINGS["p3"][judged.tutor_name]
    assert item.adjudication is None and item.history == []


# -- adjudication rules ------------------------------------------------------------------------


def test_adjudication_is_recorded_and_a_new_one_supersedes_it(lab):
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    first = review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [2, 1, 3, 4], strict=True)), rationale="b is right on B", adjudicator="lead"
    )
    second = review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [1, 1, 2, 3], strict=True)), rationale="A and B tie", adjudicator="lead2"
    )
    item = review.review_item(lab, pid)
    assert item.adjudication == second
    assert [a.id for a in item.history] == [first.id, second.id]  # the audit trail keeps both
    assert lab.adjudications() == [second]
    assert lab.adjudications(current_only=False) == [first, second]
    assert [d.adjudicated for d in review.disagreements(lab) if d.prompt.id == pid] == [True]


@pytest.mark.parametrize(
    ("ranks", "rationale", "adjudicator", "message"),
    [
        ("unknown", "why", "lead", "1 ranked candidate does not belong to this prompt"),
        ([0, 1, 2, 3], "why", "lead", "not a positive integer"),
        ([True, 1, 2, 3], "why", "lead", "not a positive integer"),
        ([1, 2, 3, 4], "   ", "lead", "rationale"),
        ([1, 2, 3, 4], "why", " ", "adjudicator"),
        ("one", "why", "lead", "two or more"),
    ],
)
def test_a_bad_adjudication_is_refused_and_nothing_is_stored(lab, ranks, rationale, adjudicator, message):
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    if ranks == "unknown":
        ranks = {**dict(zip(ids, [1, 2, 3, 4], strict=True)), cand_ids(lab, "p1")[0]: 5}
    elif ranks == "one":
        ranks = {ids[0]: 1}
    else:
        ranks = dict(zip(ids, ranks, strict=True))
    with pytest.raises(review.ReviewError, match=message):
        review.adjudicate(lab, prompt_id=pid, ranks=ranks, rationale=rationale, adjudicator=adjudicator)
    assert lab.adjudications(current_only=False) == []


# -- export --adjudicated ----------------------------------------------------------------------


def export_rows(db: Path, out: Path, *extra: str) -> list[dict]:
    rc = cli_main(["export", "--db", str(db), "--format", "trl-preference", "--out", str(out), "--keep-tutor-names", *extra])
    assert rc == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_export_adjudicated_uses_the_ruling_and_keeps_corrections(lab, tmp_path):
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    adj = review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [2, 1, 3, 3], strict=True)), rationale="B is best", adjudicator="lead"
    )
    rows = export_rows(lab.path, tmp_path / "adj.jsonl", "--adjudicated")
    p2 = [r for r in rows if r["prompt_id"] == pid]
    ranking_rows = [r for r in p2 if r["source"] == "adjudication"]  # issue 19: the ruling's provenance
    assert {r["judgment_id"] for r in ranking_rows} == {adj.id}
    assert {r["tutor"] for r in ranking_rows} == {"lead"}
    expected = {(TEXTS[i], TEXTS[j]) for i, j in [(1, 0), (1, 2), (1, 3), (0, 2), (0, 3)]}
    assert {(r["chosen"], r["rejected"]) for r in ranking_rows} == expected
    # tutor b's correction still counts: chosen against every candidate, as b's own judgment
    corr = [r for r in p2 if r["source"] == "correction"]
    assert {r["tutor"] for r in corr} == {"b"} and len(corr) == 4
    assert {r["chosen"] for r in corr} == {"A careful answer."}
    # the other prompts: each tutor's own pairs, as a plain export
    plain = export_rows(lab.path, tmp_path / "plain.jsonl")
    key = ("prompt_id", "judgment_id", "chosen", "rejected")
    assert sorted(tuple(r[k] for k in key) for r in rows if r["prompt_id"] != pid) == sorted(
        tuple(r[k] for k in key) for r in plain if r["prompt_id"] != pid
    )


def test_export_adjudicated_with_consensus_elsewhere(lab, tmp_path):
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    adj = review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [1, 2, 3, 4], strict=True)), rationale="a is right", adjudicator="lead"
    )
    rows = export_rows(lab.path, tmp_path / "both.jsonl", "--adjudicated", "--consensus")
    tutors = {r["prompt_id"]: set() for r in rows}
    for r in rows:
        if r["source"] in ("ranking", "consensus", "adjudication"):  # consensus rows are majority pairs
            tutors[r["prompt_id"]].add(r["tutor"])
    assert tutors[pid] == {"lead"}
    assert tutors[pid_of(lab, "p1")] == {"consensus"} and tutors[pid_of(lab, "p3")] == {"consensus"}
    assert tutors[pid_of(lab, "p4")] == {"a"}  # one tutor: passes through
    assert {r["judgment_id"] for r in rows if r["prompt_id"] == pid and r["source"] == "adjudication"} == {adj.id}


def test_export_adjudicated_kto_corrections_write_no_rows_the_tutor_never_said(lab, tmp_path):
    """A tutor's correction of a ruled prompt yields its own rows only: no candidate is labelled
    undesirable on that tutor's behalf, and no completion gets both labels (issue 9)."""
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [2, 1, 3, 3], strict=True)), rationale="B is best", adjudicator="lead"
    )
    out = tmp_path / "adj-kto.jsonl"
    args = ["export", "--db", str(lab.path), "--format", "kto", "--out", str(out), "--keep-tutor-names", "--adjudicated"]
    assert cli_main(args) == 0
    p2 = [r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines()) if r["prompt_id"] == pid]
    assert {r["tutor"] for r in p2 if r["completion"] in TEXTS} == {"lead"}
    assert [(r["tutor"], r["label"]) for r in p2 if r["completion"] == "A careful answer."] == [("b", True)]
    labels: dict[str, set[bool]] = {}
    for r in p2:
        labels.setdefault(r["completion"], set()).add(r["label"])
    assert all(len(v) == 1 for v in labels.values())


def test_adjudicated_items_ignore_an_unchanged_correction():
    prompt = Prompt(text="q", external_id="q")
    cands = [Candidate(prompt_id=prompt.id, text=f"answer {i}", index=i) for i in range(3)]
    j = Judgment(prompt_id=prompt.id, tutor_id="t", ranks={c.id: i + 1 for i, c in enumerate(cands)},
                 correction=Correction(text="answer 0 ", candidate_id=cands[0].id))  # fmt: skip
    item = JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name="t", domain="general")
    adj = Adjudication(prompt_id=prompt.id, ranks={cands[0].id: 2, cands[1].id: 1}, rationale="r", adjudicator="lead")
    out = review.adjudicated_items([item], [adj], {prompt.id: cands})
    assert [i.tutor_name for i in out] == ["lead"]


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(2, 5),
    data=st.data(),
)
def test_adjudicated_pairs_are_exactly_the_rulings_pairs(k, data):
    """Whatever the tutors said, a ruled prompt's ranking pairs are the ruling's."""
    prompt = Prompt(text="q", external_id="q")
    cands = [Candidate(prompt_id=prompt.id, text=f"answer {i}", index=i) for i in range(k)]
    rank = st.lists(st.integers(1, k), min_size=k, max_size=k)
    items = []
    for t, ranks in enumerate(data.draw(st.lists(rank, min_size=1, max_size=4))):
        j = Judgment(prompt_id=prompt.id, tutor_id=f"t{t}", ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
                     strength=data.draw(st.sampled_from([1, 2, 3])), created_at=f"2026-01-01T00:00:0{t}")  # fmt: skip
        items.append(JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name=f"t{t}", domain="general"))
    ruling = data.draw(rank)
    adj = Adjudication(prompt_id=prompt.id, ranks={c.id: r for c, r in zip(cands, ruling, strict=True)},
                       rationale="r", adjudicator="lead")  # fmt: skip
    out = review.adjudicated_items(items, [adj], {prompt.id: cands})
    assert len(out) == 1 and out[0].tutor_name == "lead" and out[0].judgment.id == adj.id
    got = {(p.chosen_id, p.rejected_id) for p in pairs_for_item(out[0])}
    want = {(a.id, b.id) for a in cands for b in cands if adj.ranks[a.id] < adj.ranks[b.id]}
    assert got == want
    assert out[0].judgment.strength in {i.judgment.strength for i in items}


# -- merge ---------------------------------------------------------------------------------------


def test_merge_carries_adjudications_onto_the_targets_candidates(lab, tmp_path):
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    adj = review.adjudicate(
        lab, prompt_id=pid, ranks=dict(zip(ids, [2, 1, 3, 4], strict=True)), rationale="B", adjudicator="lead"
    )
    # another workstation imported the same prompts: other prompt and candidate ids
    with Store.open(tmp_path / "other.db") as other:
        import_file(other, write_lab_file(tmp_path / "other.jsonl"))
        other_pid = pid_of(other, "p2")
        assert other_pid != pid
        merge_databases(other, [lab.path])
        (merged,) = other.adjudications()
        assert merged.id == adj.id and merged.prompt_id == other_pid
        by_text = {c.text: c.id for c in other.candidates_for(other_pid)}
        assert merged.ranks == {by_text[t]: r for t, r in zip(TEXTS, [2, 1, 3, 4], strict=True)}
        merge_databases(other, [lab.path])  # again: nothing new
        assert len(other.adjudications(current_only=False)) == 1


# -- history -------------------------------------------------------------------------------------


def test_history_search_by_text_tutor_domain_and_flag(lab):
    everything = review.history(lab)
    assert len(everything) == 8
    assert [e.created_at for e in everything] == sorted((e.created_at for e in everything), reverse=True)
    assert {e.tutor for e in review.history(lab, tutor="c")} == {"c"}
    assert len(review.history(lab, tutor="c")) == 1
    assert {e.domain for e in review.history(lab, domain="law")} == {"law"}
    flagged = review.history(lab, flag="unsafe")
    assert [(lab.get_prompt(e.prompt_id).external_id, e.tutor, e.flags) for e in flagged] == [("p2", "b", ("unsafe",))]
    assert flagged[0].corrected
    assert {lab.get_prompt(e.prompt_id).external_id for e in review.history(lab, text="question P3")} == {"p3"}
    assert review.history(lab, text="100%_") == []  # LIKE wildcards are plain text
    with pytest.raises(review.ReviewError):
        review.history(lab, flag="boring")


def test_history_of_one_session(lab):
    tutor = lab.ensure_tutor("d")
    session = lab.start_session(tutor_id=tutor.id, domain="medicine")
    pid, ids = pid_of(lab, "p4"), cand_ids(lab, "p4")
    lab.save_judgment(Judgment(prompt_id=pid, tutor_id=tutor.id, session_id=session.id, ranks=dict(zip(ids, [1, 2, 3, 4], strict=True))))
    (entry,) = review.history(lab, session_id=session.id)
    assert entry.tutor == "d" and entry.domain == "medicine" and entry.candidates == 4 and not entry.flags


# -- the command line --------------------------------------------------------------------------


def test_cli_review_lists_by_disagreement(lab, capsys):
    lab.close()
    assert cli_main(["review", "--db", str(lab.path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["p2", "p3", "p1"]
    assert rows[0]["mean_tau"] == pytest.approx(-1.0) and rows[0]["tutors"] == ["a", "b"]
    assert cli_main(["review", "--db", str(lab.path), "--limit", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("-1.00  p2  [medicine, 2 tutors]")


def test_cli_adjudicate_records_and_refuses_bad_input(lab, capsys):
    path = lab.path
    lab.close()
    args = ["adjudicate", "p2", "--db", str(path), "--rationale", "B is right", "--adjudicator", "lead"]
    assert cli_main([*args, "--ranking", "2,1,3"]) == 1
    assert "p2: ranking: has 3 ranks for 4 candidates" in capsys.readouterr().err
    assert cli_main([*args[:1], "nope", *args[2:], "--ranking", "1,2,3,4"]) == 1
    assert "no prompt 'nope'" in capsys.readouterr().err
    assert cli_main([*args, "--ranking", "2,x"]) != 0
    with Store.open(path) as store:
        assert store.adjudications(current_only=False) == []
    assert cli_main([*args, "--ranking", "2,1,3,3"]) == 0
    assert cli_main(["review", "--db", str(path), "--json"]) == 0
    assert [json.loads(line)["adjudicated"] for line in capsys.readouterr().out.splitlines() if '"p2"' in line] == [True]
    with Store.open(path) as store:
        (a,) = store.adjudications()
        ids = cand_ids(store, "p2")
        assert a.ranks == dict(zip(ids, [2, 1, 3, 3], strict=True)) and a.adjudicator == "lead"


def test_judgments_format_refuses_adjudicated_as_it_refuses_consensus(lab, tmp_path, capsys):
    """The judgments format is each tutor's own judgments: no adjudicated or consensus
    pseudo-judgments slip into it through --adjudicated (with or without --consensus)."""
    pid, ids = pid_of(lab, "p2"), cand_ids(lab, "p2")
    review.adjudicate(lab, prompt_id=pid, ranks=dict(zip(ids, [2, 1, 3, 4], strict=True)), rationale="r", adjudicator="lead")
    for extra in (["--consensus"], ["--adjudicated"], ["--adjudicated", "--consensus"]):
        out = tmp_path / f"j{len(extra)}.jsonl"
        assert cli_main(["export", "--db", str(lab.path), "--format", "judgments", "--out", str(out), *extra]) == 1
        assert "the judgments format holds each tutor's own judgments" in capsys.readouterr().err
        assert not out.exists()


def test_consensus_start_is_ranked_pairs_and_an_unranked_all_bad_abstains():
    prompt = Prompt(text="q", external_id="q")
    cands = [Candidate(prompt_id=prompt.id, text=f"answer {i}", index=i) for i in range(3)]

    def judged(tutor, ranks, all_bad=False):
        j = Judgment(prompt_id=prompt.id, tutor_id=tutor, ranks={c.id: r for c, r in zip(cands, ranks, strict=True)}, all_bad=all_bad)
        return JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name=tutor, domain="general")

    a, b, c = (x.id for x in cands)
    two = [judged("t1", [1, 2, 3]), judged("t2", [2, 1, 3])]
    item = review.ReviewItem(prompt=prompt, candidates=cands, judged=two, adjudication=None, history=[])
    assert review.consensus_ranks(item) == {a: 1, b: 1, c: 2}  # A-B split 1-1: unseparated
    item = dataclasses.replace(item, judged=[*two, judged("t3", [1, 1, 1], all_bad=True)])
    assert review.consensus_ranks(item) == {a: 1, b: 1, c: 2}  # the unranked all-bad abstains
    partial = [dataclasses.replace(j, judgment=dataclasses.replace(j.judgment, ranks={a: r, b: 3 - r}))
               for j, r in zip(two, (1, 2), strict=True)]  # fmt: skip
    item = dataclasses.replace(item, judged=[*partial, judged("t3", [1, 1, 1], all_bad=True)])
    assert review.consensus_ranks(item) == {a: 1, b: 1}  # it puts no candidate in the ranking
    item = dataclasses.replace(item, judged=[*two, judged("t3", [1, 3, 2])])
    assert review.consensus_ranks(item) == {a: 1, b: 2, c: 3}


def test_adjudicated_consensus_summary_counts_every_drop(tmp_path):
    """``--adjudicated --consensus``: the summary counts what the rulings and the consensus
    left out (abstaining all-bad judgments, unchanged corrections), as computed here from the
    records themselves; the rows are those of the rulings and the majorities."""
    import sqlite3

    from hitl_desktop.core import ranking
    from hitl_desktop.core.workflow import export_judgments

    path = write_lab_file(tmp_path / "lab.jsonl", corrections={("p2", "b"): "A careful answer.", ("p3", "c"): "Fixed."})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    extra = [  # d says all bad on p1 and p3 without ranking anything; e on p2 (ruled)
        {"id": pid, "prompt": f"Question {pid}: is warfarin safe with ibuprofen?", "domain": "medicine",
         "candidates": TEXTS, "ranking": [1, 1, 1, 1], "all_bad": True, "tutor": t}
        for pid, t in (("p1", "d"), ("p3", "d"), ("p2", "e"))
    ]  # fmt: skip
    records += extra
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    store = Store.open(tmp_path / "lab.db")
    import_file(store, path)
    # as a version that stored them would have: both corrections equal the text they correct
    store.close()
    with sqlite3.connect(tmp_path / "lab.db") as con:
        for pid, tutor in (("p2", "b"), ("p3", "c")):
            rec = next(r for r in records if r["id"] == pid and r["tutor"] == tutor)
            con.execute("update corrections set text = ? where text = ?", [rec["candidates"][rec["corrected_index"]], rec["correction"]])
    store = Store.open(tmp_path / "lab.db")
    review.adjudicate(store, prompt_id=pid_of(store, "p2"), ranks=dict(zip(cand_ids(store, "p2"), [1, 2, 3, 4], strict=True)),
                      rationale="a is right", adjudicator="lead")  # fmt: skip
    ruled = {"p2"}
    tutors_of: dict[str, set[str]] = {}
    for r in records:
        tutors_of.setdefault(r["id"], set()).add(r["tutor"])
    several = {pid for pid, ts in tutors_of.items() if len(ts) >= 2}
    want_abstained = sum(1 for r in records if r["id"] in several - ruled and r.get("all_bad") and len(set(r["ranking"])) == 1)
    want_unchanged = sum(1 for r in records if r["id"] in several and "correction" in r)  # both made unchanged above
    assert (want_abstained, want_unchanged) == (2, 2)

    summary = export_judgments(store, fmt="trl-preference", out=tmp_path / "o.jsonl", keep_tutor_names=True,
                               adjudicated=True, consensus=True)  # fmt: skip
    assert summary.dropped == {ranking.ABSTAINED: want_abstained, ranking.UNCHANGED_CORRECTION: want_unchanged}
    assert summary.consensus_prompts == len(several - ruled) and not summary.notes
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} == {"ranking", "consensus", "adjudication"}  # no correction rows: both unchanged
    # the plain consensus counts the same drops where nothing is ruled
    plain = export_judgments(store, fmt="trl-preference", out=tmp_path / "k.jsonl", consensus=True)
    assert plain.dropped == {ranking.ABSTAINED: want_abstained + 1, ranking.UNCHANGED_CORRECTION: want_unchanged}
    store.close()
