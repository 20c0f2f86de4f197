"""Issue 9's dataset rules: consensus majority pairs, no degenerate rows, flags and ratings,
splits by conversation (README "Dataset rules", docs/data-rules.md)."""

from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from test_agreement import Bench  # hand-built judged items: prompt q, candidates q-c0..

from hitl_desktop.core import ranking
from hitl_desktop.core.consensus import consensus_items
from hitl_desktop.core.export import build_rows, export_dataset
from hitl_desktop.core.ranking import conversation_groups, pairs_for_item, split_conversations
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment, Message, Prompt


def consensus_pairs(items):
    return {
        (p.chosen_id, p.rejected_id)
        for it in consensus_items(items)
        for p in pairs_for_item(it)
        if p.source != "correction"
    }


# -- consensus: the examples -----------------------------------------------------------


def test_a_one_one_vote_is_no_pair():
    b = Bench()
    # A>B>C and C>A>B: A>B 2:0; C>A? 1:1; B>C? 1:1 -> only A>B
    items = [b.judge("ann", "q", [1, 2, 3]), b.judge("bob", "q", [2, 3, 1])]
    assert consensus_pairs(items) == {("q-c0", "q-c1")}


def test_every_majority_of_a_cycle_is_exported():
    b = Bench()
    items = [
        b.judge("ann", "q", [1, 2, 3]),  # A B C
        b.judge("bob", "q", [3, 1, 2]),  # B C A
        b.judge("cem", "q", [2, 3, 1]),  # C A B
    ]
    assert consensus_pairs(items) == {("q-c0", "q-c1"), ("q-c1", "q-c2"), ("q-c2", "q-c0")}


def test_no_pair_between_candidates_no_one_ranked_together():
    b = Bench()
    # ann saw c0, c1; bob saw c2, c3: no one ranked c0 with c2
    items = [b.judge("ann", "q", [1, 2, None, None]), b.judge("bob", "q", [None, None, 1, 2])]
    assert consensus_pairs(items) == {("q-c0", "q-c1"), ("q-c2", "q-c3")}
    (cons,) = consensus_items(items)
    assert cons.judgment.ranks == {"q-c0": 1, "q-c1": 2, "q-c2": 1, "q-c3": 2}


def test_all_bad_without_ranks_abstains_and_is_counted():
    b = Bench()
    items = [
        b.judge("ann", "q", [1, 2]),
        b.judge("bob", "q", [1, 1], all_bad=True),
        b.judge("cem", "q", [2, 1]),
    ]
    dropped = Counter()
    out = consensus_items(items, dropped)
    assert dropped == {ranking.ABSTAINED: 1}
    assert [p for it in out for p in pairs_for_item(it)] == []  # 1:1 without bob


def test_margin_is_the_vote_difference():
    b = Bench()
    items = [b.judge(t, "q", [1, 2]) for t in ("a", "b", "c")] + [b.judge("d", "q", [2, 1])]
    (cons,) = consensus_items(items)
    (p,) = pairs_for_item(cons)
    assert (p.chosen_id, p.margin) == ("q-c0", 2.0)


def test_corrections_are_their_own_and_never_an_all_bad_copy():
    b = Bench()
    fix = Correction(text="the right answer", candidate_id="q-c1")
    items = [b.judge("ann", "q", [1, 2], correction=fix), b.judge("bob", "q", [2, 1])]
    out = consensus_items(items)
    assert [it.tutor_name for it in out] == ["consensus", "ann"]
    assert not out[1].judgment.all_bad and out[1].correction_only
    kto = build_rows("kto", out[1:])
    assert [(r["completion"], r["label"]) for r in kto] == [("the right answer", True)]
    (nectar,) = build_rows("nectar", out[1:])
    assert [(a["answer"], a["rank"]) for a in nectar["answers"]] == [
        ("the right answer", 1), ("q answer 0", 2), ("q answer 1", 2)
    ]  # fmt: skip


def test_kto_under_consensus_never_gives_both_labels(tmp_path):
    b = Bench()
    # the consensus finds c1 worse (2:1), but cem's correction is c1's text with a space fixed
    fix = Correction(text="q answer 1", candidate_id="q-c0")
    items = [
        b.judge("ann", "q", [1, 2]),
        b.judge("bob", "q", [1, 2]),
        b.judge("cem", "q", [2, 1], correction=fix),
    ]
    summary = export_dataset(
        None, fmt="kto", out=tmp_path / "k.jsonl", items=items, keep_tutor_names=True, consensus=True
    )

    rows = [json.loads(line) for line in (tmp_path / "k.jsonl").read_text().splitlines()]
    labels: dict[str, set[bool]] = {}
    for r in rows:
        labels.setdefault(r["completion"], set()).add(r["label"])
    assert all(len(v) == 1 for v in labels.values())
    assert "q answer 1" not in labels
    assert summary.dropped == {ranking.KTO_CONFLICT: 2}


@st.composite
def judgments_of_one_prompt(draw):
    k = draw(st.integers(2, 5))
    tutors = draw(st.integers(1, 5))
    ballots = []
    for _ in range(tutors):
        ranks = draw(st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=k, max_size=k))
        if sum(r is not None for r in ranks) < 1:
            ranks[0] = 1
        all_bad = draw(st.booleans()) and len({r for r in ranks if r is not None}) == 1
        ballots.append((ranks, all_bad))
    return k, ballots


@settings(max_examples=300, deadline=None)
@given(judgments_of_one_prompt())
def test_consensus_pairs_are_exactly_the_majority_pairs(case):
    k, ballots = case
    b = Bench()
    items = [b.judge(f"t{i}", "q", ranks, all_bad=bad) for i, (ranks, bad) in enumerate(ballots)]
    voters = [it.judgment.ranks for it in items if not ranking.ranked_nothing(it.judgment)]
    want = set()
    for x in range(k):
        for y in range(k):
            a, c = f"q-c{x}", f"q-c{y}"
            both = [r for r in voters if a in r and c in r]
            above = sum(r[a] < r[c] for r in both)
            below = sum(r[a] > r[c] for r in both)
            if above > below:
                want.add((a, c))
    got = consensus_pairs(items)
    if len(items) >= 2:
        assert got == want
    else:  # one tutor: that tutor's own pairs, a subset of the majorities
        assert got <= want
    for it in consensus_items(items):
        if it.majorities is not None:  # the ranking agrees with every majority it could lock
            r = it.judgment.ranks
            locked = [m for m in it.majorities if r[m.winner] < r[m.loser]]
            assert all(r[m.winner] != r[m.loser] or m not in locked for m in it.majorities)
            assert all(m.votes_for > m.votes_against for m in it.majorities)


# -- flags and ratings ----------------------------------------------------------------------


def test_a_flagged_top_answer_is_not_desirable():
    b = Bench()
    item = b.judge("ann", "q", [1, 2], flags={"q-c0": ["unsafe"]})
    dropped = Counter()
    kto = build_rows("kto", [item], dropped=dropped)
    assert [(r["completion"], r["label"]) for r in kto] == [("q answer 0", False), ("q answer 1", False)]
    assert build_rows("sft", [item], include_top_ranked=True) == []
    assert dropped == {ranking.FLAGGED_TOP: 1}
    # a style flag does not disqualify
    ok = b.judge("bob", "q", [1, 2], flags={"q-c0": ["style"]})
    assert [r["completion"] for r in build_rows("sft", [ok], include_top_ranked=True)] == ["q answer 0"]


def test_pairs_carry_flags_ratings_and_rationale():
    b = Bench()
    item = b.judge(
        "ann", "q", [1, 2], flags={"q-c1": ["incorrect"]},
        ratings={"q-c0": {"helpfulness": 5, "correctness": 4}, "q-c1": {"helpfulness": 2}},
        rationale="c1 gets the dose wrong",
    )  # fmt: skip
    for fmt in ("trl-preference", "trl-preference-chat", "hh-rlhf", "ultrafeedback"):
        (row,) = build_rows(fmt, [item])
        assert row["chosen_flags"] == [] and row["rejected_flags"] == ["incorrect"]
        assert row["chosen_ratings"] == {"correctness": 4, "helpfulness": 5}
        assert row["rejected_ratings"] == {"helpfulness": 2}
        assert row["rationale"] == "c1 gets the dose wrong"
    (uf,) = build_rows("ultrafeedback", [item])
    assert (uf["score_chosen"], uf["score_rejected"]) == (4.5, 2.0)  # mean of the ratings
    (plain,) = build_rows("ultrafeedback", [b.judge("bob", "q", [1, 2])])
    assert (plain["score_chosen"], plain["score_rejected"]) == (2.0, 1.0)  # from the ranks


# -- splits by conversation -----------------------------------------------------------------


def _conv_item(pid: str, text: str, earlier: list[str], parent: str | None = None, jid=None):
    msgs = []
    for i, t in enumerate(earlier):
        msgs.append(Message("user" if i % 2 == 0 else "assistant", t))
    p = Prompt(text=text, id=pid, messages=msgs, parent_judgment_id=parent)
    cands = [Candidate(prompt_id=pid, text=f"{pid} {i}", id=f"{pid}-{i}", index=i) for i in range(2)]
    j = Judgment(prompt_id=pid, tutor_id="t", ranks={cands[0].id: 1, cands[1].id: 2}, id=jid or f"j-{pid}")
    return JudgedItem(j, p, cands, "ann", "general")


def test_continued_turns_share_their_conversation():
    items = [
        _conv_item("a", "first question", []),
        _conv_item("b", "follow-up", ["first question", "an answer"], parent="j-a"),
        _conv_item("c", "imported turn", ["first question", "other answer"]),  # same first turn
        _conv_item("d", "x", ["renamed root", "y"], parent="j-b"),  # by the parent chain
        _conv_item("e", "another question", []),
    ]
    groups = conversation_groups(items)
    assert len({groups[p] for p in "abcd"}) == 1 and groups["e"] != groups["a"]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.floats(0.05, 0.95), st.integers(0, 1000))
def test_split_keeps_conversations_whole(n, fraction, seed):
    items = []
    for i in range(n):
        items.append(_conv_item(f"r{i}", f"root {i}", []))
        items.append(_conv_item(f"f{i}", "more", [f"root {i}", "ans"], parent=f"j-r{i}"))
    test = split_conversations(items, test_fraction=fraction, seed=seed)
    assert test == split_conversations(list(reversed(items)), test_fraction=fraction, seed=seed)
    for i in range(n):
        assert (f"r{i}" in test) == (f"f{i}" in test)
    pids = {it.prompt.id for it in items}
    assert test and pids - test  # both splits hold at least one conversation


# -- unchanged corrections are not stored; agreement skips "all bad" without ranks ----------------


def test_an_unchanged_correction_is_not_saved(store):
    t = store.ensure_tutor("ann")
    p = store.add_prompt(Prompt(text="q"))
    cands = [Candidate(prompt_id=p.id, text=f"answer {i}", index=i) for i in range(2)]
    store.add_candidates(cands)
    j = Judgment(
        prompt_id=p.id, tutor_id=t.id, ranks={cands[0].id: 1, cands[1].id: 2},
        correction=Correction(text="  answer 0\n", candidate_id=cands[0].id),
    )  # fmt: skip
    saved = store.save_judgment(j)
    assert saved.correction is None and store.db["corrections"].count == 0
    (item,) = store.judged_items()
    assert [p.source for p in pairs_for_item(item)] == ["ranking"]


def test_an_unchanged_correction_is_not_imported(store, tmp_path):
    from hitl_desktop.core.importing import import_file

    f = tmp_path / "in.jsonl"
    rec = {"prompt": "q", "candidates": ["a", "b"], "ranking": [1, 2], "correction": " a ", "corrected_index": 0}
    f.write_text(json.dumps(rec) + "\n")
    summary = import_file(store, f)
    assert (summary.judgments, summary.corrections, summary.corrections_ignored) == (1, 0, 1)
    assert store.db["corrections"].count == 0


def test_agreement_ignores_all_bad_without_ranks():
    from hitl_desktop.core.agreement import agreement

    b = Bench()
    items = [b.judge("ann", "q", [1, 2, 3]), b.judge("bob", "q", [1, 1, 1], all_bad=True)]
    assert agreement(items)["units"] == 0 and agreement(items)["prompts"] == 0
    items.append(b.judge("cem", "q", [1, 2, 3]))
    assert agreement(items)["units"] == 3 and agreement(items)["kendall_tau"] == 1.0
    # an "all bad" judgment that does rank the bad answers still counts
    items.append(b.judge("dan", "q", [3, 2, 1], all_bad=True))
    assert agreement(items)["kendall_tau"] < 1.0


# -- the summaries say what each rule left out -----------------------------------------------


def test_stats_and_export_summary_count_what_was_left_out(tmp_path, db_path):
    from click.testing import CliRunner

    from hitl_desktop.cli import cli

    f = tmp_path / "in.jsonl"
    recs = [
        # the correction rewrites "a" into "b", another candidate's text: one same-text pair,
        # and the correction's pair over "c" repeats the ranking's b > c
        {"id": "1", "prompt": "q", "candidates": ["a", "b", "c"], "ranking": [1, 2, 3],
         "correction": "b", "corrected_index": 0, "tutor": "ann"},
        {"id": "2", "prompt": "r", "candidates": ["x", "y"], "ranking": [1, 2],
         "correction": "x", "corrected_index": 0, "tutor": "ann"},
    ]  # fmt: skip
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(f), "--db", str(db_path)])
    assert result.exit_code == 0 and "1 unchanged correction ignored" in result.output and "(s)" not in result.output
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db_path), "--json"]).output)
    assert stats["dropped"] == {ranking.REPEATED_PAIR: 1, ranking.SAME_TEXT_PAIR: 1}
    text = runner.invoke(cli, ["stats", "--db", str(db_path)]).output
    assert "left out: 1 repeated pair of one judgment dropped" in text
    out = tmp_path / "o.jsonl"
    result = runner.invoke(
        cli, ["export", "--db", str(db_path), "--format", "trl-preference", "--out", str(out), "--consensus"]
    )
    assert result.exit_code == 0, result.output
    assert "1 pair with chosen equal to rejected dropped" in result.output
    assert "No prompt was judged by two or more tutors" in result.output
