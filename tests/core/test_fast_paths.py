"""The export's fast paths (issue 18, export speed) against the straightforward code they
replaced, kept here as the reference: ``ranking.pair_specs`` (its fast path for distinct
texts, dense ranks from the sorted walk), ``consensus.majorities`` and
``ranking_from_majorities`` (no closures, sorted tuples), ``consensus_id`` (uuid5 without the
UUID object) and the median. Hypothesis draws judgments with ties, repeated texts,
corrections (fresh, of a candidate, unchanged), imported margins, rubric scores, all-bad and
strengths; and ballots with cycles."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, defaultdict
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core import consensus
from hitl_desktop.core.ranking import (
    REPEATED_PAIR,
    SAME_TEXT_PAIR,
    UNCHANGED_CORRECTION,
    consensus_margin,
    dense_ranks,
    effective_correction,
    margin,
    pair_specs,
)
from hitl_desktop.core.types import Candidate, Correction, JudgedItem, Judgment, Majority, Prompt

# -- the reference: the code before the speed work ------------------------------------------


def ref_pair_specs(item, dropped=None, *, bare=False):
    def count(key):
        if dropped is not None:
            dropped[key] += 1

    j = item.judgment
    flags, ratings = ({}, {}) if bare else (j.flags, j.ratings)
    by_id = {c.id: c for c in item.candidates}
    side = {}
    for cid, c in by_id.items():
        r = ratings.get(cid)
        side[cid] = (c.text, cid, c.model, c.seed, tuple(flags.get(cid, ())), tuple(sorted(r.items())) if r else ())
    ranks = {cid: r for cid, r in j.ranks.items() if cid in by_id}
    out, seen = [], set()

    def add(chosen, rejected, value, source):
        key = (chosen[0], rejected[0])
        if key[0] == key[1]:
            count(SAME_TEXT_PAIR)
        elif key in seen:
            count(REPEATED_PAIR)
        else:
            seen.add(key)
            out.append((chosen, rejected, value, source))

    dense = None
    if item.correction_only:
        pass
    elif item.majorities is not None:
        for m in item.majorities:
            if m.winner in by_id and m.loser in by_id:
                add(side[m.winner], side[m.loser], consensus_margin(m.votes_for, m.votes_against), "consensus")
    elif not j.all_bad:
        dense = dense_ranks(ranks)
        ordered = sorted(ranks, key=lambda cid: (ranks[cid], by_id[cid].index))
        kept = j.source_values.get("margin")
        graded = item.rubric_scores
        for a, b in combinations(ordered, 2):
            if ranks[a] == ranks[b]:
                continue
            value = margin(dense[b] - dense[a], j.strength) if kept is None else float(kept)
            if graded and a in graded and b in graded:
                value = graded[a] - graded[b]
            add(side[a], side[b], value, "ranking")
    corr = effective_correction(item)
    if corr is None and j.correction is not None:
        count(UNCHANGED_CORRECTION)
    if corr is not None:
        if dense is None:
            dense = dense_ranks(ranks)
        r = j.ratings.get(corr.id)
        mine = (corr.text, corr.id, f"tutor:{item.tutor_name}", None, tuple(flags.get(corr.id, ())),
                () if bare or not r else tuple(sorted(r.items())))  # fmt: skip
        for cid in sorted(ranks, key=lambda c: (ranks[c], by_id[c].index)):
            add(mine, side[cid], margin(dense[cid], j.strength), "correction")
    return out


def ref_majorities(ballots, order):
    pos = {c: i for i, c in enumerate(order)}
    wins = defaultdict(int)
    for ballot in ballots:
        for a, b in combinations([c for c in order if c in ballot], 2):
            if ballot[a] < ballot[b]:
                wins[(a, b)] += 1
            elif ballot[b] < ballot[a]:
                wins[(b, a)] += 1
    out = []
    for a, b in combinations(order, 2):
        ab, ba = wins[(a, b)], wins[(b, a)]
        if ab > ba:
            out.append(Majority(a, b, ab, ba))
        elif ba > ab:
            out.append(Majority(b, a, ba, ab))
    out.sort(key=lambda m: (-(m.votes_for - m.votes_against), -m.votes_for, pos[m.winner], pos[m.loser]))
    return out


def ref_ranking_from_majorities(strongest_first, order):
    beats = defaultdict(set)

    def reaches(start, goal):
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(beats[node])
        return False

    for m in strongest_first:
        if not reaches(m.loser, m.winner):
            beats[m.winner].add(m.loser)
    above = defaultdict(set)
    for w, losers in beats.items():
        for lo in losers:
            above[lo].add(w)
    ranks = {}

    def rank(c):
        if c not in ranks:
            ranks[c] = 1 + max((rank(w) for w in above[c]), default=0)
        return ranks[c]

    return {c: rank(c) for c in order}


# -- what hypothesis draws ---------------------------------------------------------------------

TEXTS = ["a", "b", "c", "d", "e", " a ", "é"]


@st.composite
def judged_items(draw):
    k = draw(st.integers(1, 6))
    cands = [
        Candidate(prompt_id="p", text=draw(st.sampled_from(TEXTS)), index=draw(st.integers(0, 3)), id=f"c{i}",
                  seed=draw(st.none() | st.integers(0, 3)), model=f"m{i % 2}", created_at="t")
        for i in range(k)
    ]  # fmt: skip
    ranked = draw(st.lists(st.sampled_from([c.id for c in cands]), unique=True, min_size=0, max_size=k))
    ranks = {cid: draw(st.integers(1, 4)) for cid in ranked}
    if draw(st.booleans()):
        ranks["ghost"] = 1  # ranked, not among the item's candidates
    flags = {cid: draw(st.lists(st.sampled_from(["incorrect", "unsafe"]), max_size=2)) for cid in ranks
             if draw(st.booleans())}  # fmt: skip
    ratings = {cid: {"helpfulness": draw(st.integers(1, 5))} for cid in ranks if draw(st.booleans())}
    corr = None
    kind = draw(st.sampled_from(["none", "fresh", "of", "unchanged"]))
    if kind != "none":
        target = draw(st.sampled_from(cands))
        text = target.text if kind == "unchanged" else draw(st.sampled_from(TEXTS + ["rewrite"]))
        corr = Correction(text=text, candidate_id=None if kind == "fresh" else target.id, id="x", created_at="t")
        if draw(st.booleans()):
            flags["x"] = ["unsafe"]
            ratings["x"] = {"helpfulness": 5}
    judgment = Judgment(
        prompt_id="p", tutor_id="t", ranks=ranks, all_bad=draw(st.booleans()), flags=flags, ratings=ratings,
        strength=draw(st.sampled_from([1, 2, 3])), correction=corr, id="j", created_at="t",
        source_values={"margin": draw(st.floats(-3, 3))} if draw(st.integers(0, 5)) == 0 else {},
    )  # fmt: skip
    graded = None
    if draw(st.integers(0, 4)) == 0:
        graded = {c.id: draw(st.floats(0, 1)) for c in cands if draw(st.booleans())}
    majorities = None
    if draw(st.integers(0, 4)) == 0:
        ids = [c.id for c in cands] + ["ghost"]
        majorities = tuple(
            Majority(a, b, draw(st.integers(1, 3)), 0) for a, b in combinations(ids, 2) if draw(st.booleans())
        )
    return JudgedItem(judgment=judgment, prompt=Prompt(text="q", id="p"), candidates=cands, tutor_name="ann",
                      domain="d", majorities=majorities, correction_only=draw(st.integers(0, 6)) == 0,
                      rubric_scores=graded)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(judged_items(), st.booleans())
def test_pair_specs_is_the_reference(item, bare):
    got, want = Counter(), Counter()
    assert pair_specs(item, got, bare=bare) == ref_pair_specs(item, want, bare=bare)
    assert got == want
    assert list(got) == list(want)  # counted in the same order (the summary lists them so)


ballots = st.lists(
    st.dictionaries(st.sampled_from("ABCDE"), st.integers(1, 4), max_size=5), max_size=5
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(ballots, st.permutations("ABCDE") | st.lists(st.sampled_from("ABCDE"), min_size=2, max_size=6),
       st.integers(2, 6))  # fmt: skip
def test_majorities_and_ranked_pairs_are_the_reference(votes, order, n):
    """Distinct candidates (as a consensus has them) and, for the public functions, a list
    that names one twice."""
    order = list(order[:n])
    found = consensus.majorities(votes, order)
    assert found == ref_majorities(votes, order)
    assert consensus.ranking_from_majorities(found, order) == ref_ranking_from_majorities(found, order)
    # any order of majorities, not only strongest first: the same locking
    shuffled = found[::-1]
    assert consensus.ranking_from_majorities(shuffled, order) == ref_ranking_from_majorities(shuffled, order)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_consensus_id_is_uuid5(name):
    try:
        want = str(uuid.uuid5(consensus.CONSENSUS_NAMESPACE, name))
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        return
    assert consensus.consensus_id(name) == want


@given(st.lists(st.integers(1, 5), min_size=1, max_size=9))
def test_median_low(values):
    assert consensus._median_low(values) == statistics.median_low(sorted(values))


# -- JSON lines from pieces (export/lines.py) against the rows' dicts encoded whole ----------

odd_texts = st.text(alphabet=st.characters(codec=None, categories=None), max_size=6) | st.sampled_from(
    ["\ud800 lone", "quote \" and \\", "\u2028\x00\x1f", "日本語", "{\"prompt\":1}"]
)  # fmt: skip


@st.composite
def odd_items(draw):
    """Items whose every exported text and number may be what json and orjson write
    differently: lone surrogates, control characters, floats below 1e-4 or not finite,
    seeds beyond 64 bits."""
    item = draw(judged_items())
    for c in item.candidates:
        c.text = draw(odd_texts)
        c.model = draw(odd_texts)
        c.seed = draw(st.none() | st.integers(-(2**70), 2**70))
    item.prompt.text = draw(odd_texts)
    item.judgment.rationale = draw(odd_texts)
    item.judgment.created_at = draw(odd_texts)
    if draw(st.booleans()):
        item.judgment.source_values = {"margin": draw(st.floats(allow_nan=True, allow_infinity=True))}
    return item


@settings(max_examples=500, deadline=None)
@given(st.lists(odd_items(), max_size=3), odd_texts)
def test_lines_are_the_rows_encoded(items, tutor):
    from hitl_desktop.core.export import build_rows
    from hitl_desktop.core.export.files import jsonl_encoder
    from hitl_desktop.core.export.lines import lines_builder

    got_dropped, want_dropped = Counter(), Counter()
    encode = jsonl_encoder()
    want = [encode(r) + b"\n" for r in build_rows("trl-preference", items, tutor_name=lambda _: tutor,
                                                   dropped=want_dropped)]  # fmt: skip
    got = lines_builder("trl-preference")("trl-preference", items, tutor_name=lambda _: tutor, dropped=got_dropped)
    assert got == want
    assert got_dropped == want_dropped


def test_an_export_puts_the_collector_thresholds_back():
    import gc

    from hitl_desktop.core.collector import sparse as _fewer_collections

    before = gc.get_threshold()
    with _fewer_collections():
        assert gc.get_threshold()[0] >= 50_000
        with _fewer_collections():  # a second export, as two threads' exports overlap
            assert gc.get_threshold()[0] >= 50_000
        assert gc.get_threshold()[0] >= 50_000  # the first still runs
    assert gc.get_threshold() == before


def test_a_writer_given_a_slice_of_lines_or_values_writes_them(tmp_path):
    """The writers' seam (tests replace them, writing ``rows[:n]``): a slice of JSON lines or
    of value tuples, a plain list, is written as such."""
    import json

    import pyarrow.parquet as pq

    from hitl_desktop.core.export import ExportOptions, _Export
    from hitl_desktop.core.export.files import write_jsonl, write_parquet
    from hitl_desktop.core.store import Store

    store = Store.open(tmp_path / "lab.db")
    p = Prompt(text="Q?", id="p1")
    cs = [Candidate(prompt_id="p1", text=f"A{i}", index=i, id=f"c{i}") for i in range(3)]
    store.bulk_insert(prompts=[p], candidates=cs)
    tutor = store.ensure_tutor("ann")
    store.save_judgment(Judgment(prompt_id="p1", tutor_id=tutor.id, ranks={"c0": 1, "c1": 2, "c2": 3}))
    ex = _Export(store, ExportOptions(fmt="trl-preference", out=tmp_path / "x.jsonl", keep_tutor_names=True),
                 None, None, None, None)  # fmt: skip
    ex.test_ids = set()
    write_jsonl(tmp_path / "half.jsonl", ex.jsonl_rows("train")[:2])
    lines = (tmp_path / "half.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["chosen"] for line in lines] == ["A0", "A0"]
    write_parquet(tmp_path / "half.parquet", "trl-preference", ex.arrow_rows("train")[:2])
    assert pq.read_table(tmp_path / "half.parquet").column("rejected").to_pylist() == ["A1", "A2"]
    store.close()
