"""Pair formats and Nectar import as finished judgments: our files round-trip, public layouts
(HH-RLHF, UltraFeedback binarized, Nectar) import, bad rows are refused by line and field."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.export import export_dataset
from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Candidate, Correction, Judgment, Message, Prompt

PAIR_FORMATS = ("trl-preference", "trl-preference-chat", "hh-rlhf", "ultrafeedback")
#: The fields a trainer reads, per format: what a round trip must keep row for row.
TRAINER_FIELDS = {
    "trl-preference": ("prompt", "chosen", "rejected"),
    "trl-preference-chat": ("prompt", "chosen", "rejected"),
    "hh-rlhf": ("chosen", "rejected"),
    "ultrafeedback": ("prompt", "prompt_id", "chosen", "rejected", "messages"),
    "nectar": ("prompt", "answers"),
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _counts(store: Store) -> dict[str, int]:
    return store.table_counts()


# -- round trip: export F -> import into an empty database -> export F ----------------------

words = st.text(alphabet="abcdefgh XYZ.é", min_size=1, max_size=12).filter(lambda t: t.strip())


@st.composite
def databases(draw):
    """Prompts (some with earlier turns) judged by one or two tutors: ranks with ties,
    corrections, strengths, flags, all-bad."""
    specs = []
    for n in range(draw(st.integers(1, 4))):
        k = draw(st.integers(2, 4))
        texts = draw(st.lists(words, min_size=k, max_size=k, unique=True))
        earlier = draw(st.sampled_from([[], [("user", "hi"), ("assistant", "hello")]]))
        judgments = []
        for tutor in draw(st.sampled_from([["ann"], ["ann", "bob"]])):
            ranks = draw(st.lists(st.integers(1, k), min_size=k, max_size=k))
            corr = draw(st.one_of(st.none(), words.map(lambda w: "fixed " + w)))
            judgments.append(
                dict(
                    tutor=tutor,
                    ranks=ranks,
                    all_bad=draw(st.booleans()),
                    strength=draw(st.sampled_from([1, 2, 3])),
                    correction=corr,
                    corrected=draw(st.integers(0, k - 1)),
                    flag=draw(st.sampled_from([None, "unsafe", "style"])),
                )
            )
        specs.append((f"question {n} " + draw(words), earlier, texts, judgments))
    return specs


def _build(store: Store, specs) -> None:
    clock = 0
    for text, earlier, texts, judgments in specs:
        p = store.add_prompt(Prompt(text=text, messages=[Message(r, c) for r, c in earlier]))
        cands = [Candidate(prompt_id=p.id, text=t, model="m", seed=i, index=i) for i, t in enumerate(texts)]
        store.add_candidates(cands)
        for spec in judgments:
            clock += 1
            tutor = store.ensure_tutor(spec["tutor"])
            ranks = {c.id: r for c, r in zip(cands, spec["ranks"], strict=True)}
            corr = None
            if spec["correction"]:
                corr = Correction(text=spec["correction"], candidate_id=cands[spec["corrected"]].id)
            store.save_judgment(
                Judgment(
                    prompt_id=p.id, tutor_id=tutor.id, ranks=ranks, all_bad=spec["all_bad"],
                    strength=spec["strength"], correction=corr,
                    flags={cands[0].id: [spec["flag"]]} if spec["flag"] else {},
                    created_at=f"2026-01-01T00:00:{clock:02d}+00:00",
                )
            )  # fmt: skip


@pytest.mark.parametrize("fmt", [*PAIR_FORMATS, "nectar"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=databases())
def test_export_import_export_keeps_the_trainer_fields(fmt, specs):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Store.memory() as first:
            _build(first, specs)
            export_dataset(first, fmt=fmt, out=tmp / "a.jsonl", keep_tutor_names=True)
        a = _rows(tmp / "a.jsonl")
        with Store.memory() as second:
            if a:
                summary = import_file(second, tmp / "a.jsonl")
                assert summary.layout == fmt
                assert summary.judgments == len(a)
            export_dataset(second, fmt=fmt, out=tmp / "b.jsonl", keep_tutor_names=True)
        b = _rows(tmp / "b.jsonl")
    fields = TRAINER_FIELDS[fmt]

    def trainer(r):  # answers in the row's order, ties included
        return [r[f] for f in fields]

    assert [trainer(r) for r in b] == [trainer(r) for r in a]
    # and our metadata comes back too
    keep = ("tutor", "chosen_model", "rejected_model", "chosen_flags", "rejected_flags", "margin",
            "score_chosen", "score_rejected")  # fmt: skip
    for ra, rb in zip(a, b, strict=True):
        for f in keep:
            if f in ra:
                assert rb[f] == ra[f], f


def test_import_twice_adds_nothing(store, tmp_path):
    rows = [{"prompt": "q", "chosen": "good", "rejected": "bad"}, {"prompt": "q", "chosen": "good", "rejected": "worse"}]
    f = _write(tmp_path / "p.jsonl", rows)
    s = import_file(store, f)
    assert (s.layout, s.prompts, s.candidates, s.judgments) == ("trl-preference", 1, 3, 2)
    before = _counts(store)
    s = import_file(store, f)
    assert s.judgments == 0 and s.judgments_skipped == 2 and _counts(store) == before


# -- public layouts ----------------------------------------------------------------------------


def test_anthropic_hh_rlhf(store, tmp_path):
    row = {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 5\n\nHuman: Really?\n\nAssistant: Sorry, 4.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5\n\nHuman: Really?\n\nAssistant: Yes, 5.",
    }
    s = import_file(store, _write(tmp_path / "hh.jsonl", [row]))
    assert s.layout == "hh-rlhf" and s.fields_not_kept == {}
    (item,) = store.judged_items()
    assert item.prompt.text == "Really?"
    assert [m.to_dict() for m in item.prompt.messages] == [
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "5"}
    ]  # fmt: skip
    best = min(item.judgment.ranks, key=item.judgment.ranks.get)
    assert {c.id: c.text for c in item.candidates}[best] == "Sorry, 4."
    export_dataset(store, fmt="hh-rlhf", out=tmp_path / "out.jsonl", keep_tutor_names=True)
    (out,) = _rows(tmp_path / "out.jsonl")
    assert (out["chosen"], out["rejected"]) == (row["chosen"], row["rejected"])


def test_ultrafeedback_binarized(store, tmp_path):
    conv = [{"role": "user", "content": "Name a prime."}]
    row = {
        "prompt": "Name a prime.", "prompt_id": "abc",
        "chosen": [*conv, {"role": "assistant", "content": "7"}],
        "rejected": [*conv, {"role": "assistant", "content": "9"}],
        "messages": [*conv, {"role": "assistant", "content": "7"}],
        "score_chosen": 9.0, "score_rejected": 2.5,
    }  # fmt: skip
    s = import_file(store, _write(tmp_path / "uf.jsonl", [row]))
    assert s.layout == "ultrafeedback" and s.judgments == 1
    assert s.fields_not_kept == {}  # the scores are kept with the judgment
    export_dataset(store, fmt="ultrafeedback", out=tmp_path / "o.jsonl", keep_tutor_names=True)
    (out,) = _rows(tmp_path / "o.jsonl")
    fields = ("prompt", "chosen", "rejected", "messages", "score_chosen", "score_rejected")
    assert [out[f] for f in fields] == [row[f] for f in fields]


def test_nectar(store, tmp_path):
    row = {
        "prompt": "\n\nHuman: Best pet?\n\nAssistant:",
        "answers": [
            {"answer": "a cat", "model": "gpt-4", "rank": 1},
            {"answer": "a dog", "model": "llama", "rank": 2},
            {"answer": "a rock", "model": "alpaca", "rank": 3},
        ],
        "num_responses": 3, "turns": 1, "source": ["lmsys"], "good_natured": True,
    }  # fmt: skip
    s = import_file(store, _write(tmp_path / "n.jsonl", [row]))
    assert s.layout == "nectar" and s.fields_not_kept == {"good_natured": 1, "source": 1}
    (item,) = store.judged_items()
    ranks = {c.text: item.judgment.ranks[c.id] for c in item.candidates}
    assert ranks == {"a cat": 1, "a dog": 2, "a rock": 3}
    assert {c.text: c.model for c in item.candidates}["a dog"] == "llama"


def test_format_option_and_unknown_fields(store, tmp_path):
    f = _write(tmp_path / "x.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ImportFileError, match=r"x.jsonl:1: its fields fit no import layout \(fields found: answer, question"):
        import_file(store, f)
    f = _write(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ImportFileError, match="chosen: is missing or not a non-empty list"):
        import_file(store, f, layout="ultrafeedback")
    assert _counts(store)["prompts"] == 0


def test_a_large_public_file_imports_with_progress(store, tmp_path):
    rows = [
        {"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad {i}"}
        for i in range(5000)
    ]
    seen = []
    s = import_file(store, _write(tmp_path / "big.jsonl", rows), on_progress=lambda d, t: seen.append((d, t)))
    assert s.judgments == 5000 and s.prompts == 5000 and seen[-1][0] == seen[-1][1]


# -- bad input: line and field named, database unchanged --------------------------------------


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ([{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "rejected": "b"}], ":2: chosen: is missing"),
        ([{"chosen": "\n\nHuman: q\n\nAssistant: a"}], ":1: rejected: is missing"),
        ([{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: other\n\nAssistant: b"}],
         ":1: rejected: its conversation before the answer differs"),
        ([{"prompt": "q", "chosen": "same", "rejected": "same"}], ":1: rejected: is the same text as chosen"),
        ([{"prompt": "\n\nHuman: q\n\nAssistant:", "answers": [{"answer": "a", "rank": 1}, {"answer": "b", "rank": 5}]}],
         ":1: answers[1].rank: 5 does not fit the row's 2 answers"),
        ([{"prompt": "\n\nHuman: q\n\nAssistant:", "answers": [{"answer": "a", "rank": 1}], "num_responses": 3}],
         ":1: num_responses: says 3 but the row has 1 answers"),
    ],
)  # fmt: skip
def test_bad_rows_are_refused_by_line_and_field(store, tmp_path, rows, where):
    ok = _write(tmp_path / "ok.jsonl", [{"prompt": "already here", "chosen": "x", "rejected": "y"}])
    import_file(store, ok)
    before = _counts(store)
    f = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ImportFileError) as e:
        import_file(store, f)
    assert f"bad.jsonl{where}" in str(e.value) and "nothing was imported" in str(e.value)
    assert _counts(store) == before


def test_a_parquet_file_imports_like_its_jsonl(store, tmp_path):
    with Store.memory() as first:
        _build(first, [("q one", [], ["a", "b", "c"], [dict(tutor="ann", ranks=[1, 2, 3], all_bad=False, strength=2,
                                                        correction=None, corrected=0, flag="unsafe")])])  # fmt: skip
        export_dataset(first, fmt="ultrafeedback", out=tmp_path / "a.parquet", keep_tutor_names=True)
        export_dataset(first, fmt="ultrafeedback", out=tmp_path / "a.jsonl", keep_tutor_names=True)
    s = import_file(store, tmp_path / "a.parquet")
    assert (s.layout, s.judgments) == ("ultrafeedback", 3)
    export_dataset(store, fmt="ultrafeedback", out=tmp_path / "b.jsonl", keep_tutor_names=True)
    fields = TRAINER_FIELDS["ultrafeedback"] + ("rejected_flags",)
    assert [[r[f] for f in fields] for r in _rows(tmp_path / "b.jsonl")] == [
        [r[f] for f in fields] for r in _rows(tmp_path / "a.jsonl")
    ]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ImportFileError, match="bad.parquet: cannot be read as Parquet"):
        import_file(store, bad)


def test_nectar_ties_come_back_in_the_rows_order(store, tmp_path):
    """Answers that share a rank keep the source row's order through import -> export, even
    when an earlier row of the same prompt listed them the other way round."""
    prompt = "\n\nHuman: Best pet?\n\nAssistant:"
    rows = [
        {"prompt": prompt, "answers": [{"answer": "a dog", "model": "m", "rank": 1},
                                       {"answer": "a cat", "model": "m", "rank": 2},
                                       {"answer": "a rock", "model": "m", "rank": 3}]},
        {"prompt": prompt, "answers": [{"answer": "a rock", "model": "m", "rank": 1},
                                       {"answer": "a cat", "model": "m", "rank": 2},
                                       {"answer": "a dog", "model": "m", "rank": 2}]},
        {"prompt": prompt, "answers": [{"answer": "a cat", "model": "m", "rank": 1},
                                       {"answer": "a rock", "model": "m", "rank": 1},
                                       {"answer": "a dog", "model": "m", "rank": 1}]},
    ]  # fmt: skip
    s = import_file(store, _write(tmp_path / "n.jsonl", rows))
    assert (s.prompts, s.candidates, s.judgments) == (1, 3, 3)
    export_dataset(store, fmt="nectar", out=tmp_path / "o.jsonl", keep_tutor_names=True)
    out = _rows(tmp_path / "o.jsonl")
    assert sorted(json.dumps(r["answers"]) for r in out) == sorted(json.dumps(r["answers"]) for r in rows)


# -- what two ranks cannot say is kept: any margin, fine-grained scores ------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(words, words, words, st.one_of(st.none(), finite), finite, finite),
        min_size=1, max_size=6, unique_by=lambda t: t[:3],
    ).filter(lambda ps: all(c != r for _, c, r, *_ in ps))
)
def test_public_pairs_round_trip_with_their_margins_and_scores(pairs):
    """trl-preference with arbitrary float margins and ultrafeedback with fine-grained scores:
    import -> export gives the same rows (trainer fields, margin, scores), row for row."""
    trl = [
        {"prompt": "q " + p, "chosen": c, "rejected": r, **({} if m is None else {"margin": m})}
        for p, c, r, m, _, _ in pairs
    ]
    uf = []
    for p, c, r, _, sc, sr in pairs:
        conv = [{"role": "user", "content": "q " + p}]
        uf.append({"prompt": "q " + p, "chosen": [*conv, {"role": "assistant", "content": c}],
                   "rejected": [*conv, {"role": "assistant", "content": r}], "score_chosen": sc, "score_rejected": sr})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt, rows, fields in (
            ("trl-preference", trl, ("prompt", "chosen", "rejected", "margin")),
            ("ultrafeedback", uf, ("prompt", "chosen", "rejected", "score_chosen", "score_rejected")),
        ):
            with Store.memory() as store:
                s = import_file(store, _write(tmp / f"{fmt}.jsonl", rows))
                assert s.layout == fmt and s.fields_not_kept == {}
                export_dataset(store, fmt=fmt, out=tmp / f"{fmt}-out.jsonl", keep_tutor_names=True)
            out = _rows(tmp / f"{fmt}-out.jsonl")
            got = [[r[f] for f in fields] for r in out]
            want = [[r.get(f, 1.0) for f in fields] for r in rows]  # no margin: strength 2, so 1.0
            assert got == want


def test_a_margin_or_score_that_is_no_number_is_refused_by_line_and_field(store, tmp_path):
    conv = [{"role": "user", "content": "q"}]
    for rows, where in (
        ([{"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}], ":1: margin: must be a number"),
        ([{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "c", "margin": float("nan")}],
         ":2: margin: must be a finite number"),
        ([{"prompt": "q", "chosen": [*conv, {"role": "assistant", "content": "a"}],
           "rejected": [*conv, {"role": "assistant", "content": "b"}], "score_chosen": 8, "score_rejected": [1]}],
         ":1: score_rejected: must be a number"),
    ):  # fmt: skip
        before = _counts(store)
        with pytest.raises(ImportFileError, match=where):
            import_file(store, _write(tmp_path / "bad.jsonl", rows))
        assert _counts(store) == before


def test_one_score_without_the_other_is_reported(store, tmp_path):
    conv = [{"role": "user", "content": "q"}]
    row = {"chosen": [*conv, {"role": "assistant", "content": "a"}], "rejected": [*conv, {"role": "assistant", "content": "b"}],
           "score_chosen": 8.5}  # fmt: skip
    s = import_file(store, _write(tmp_path / "one.jsonl", [row]))
    assert s.fields_not_kept == {"score_chosen/score_rejected": 1}
    (item,) = store.judged_items()
    assert item.judgment.source_values == {}
