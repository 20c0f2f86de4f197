"""Export: every format's exact fields, the pair rules, the three outputs, splits, safety."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core import export as export_mod
from hitl_desktop.core.export import FORMATS, ExportError, build_rows, export_dataset
from hitl_desktop.core.judgment_records import FIELDS as JUDGMENT_FIELDS
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import (
    Candidate,
    Correction,
    JudgedItem,
    Judgment,
    Message,
    Prompt,
)

ALICE = "Dr. Ἀλεξάνδρα Quixotic"  # a name that appears nowhere else in the data
BOB = "Bob Okafor-Zzyzx"

GREEK = "Ποια είναι η δόση παρακεταμόλης;"
CJK = "日本語の質問：利息はどう計算しますか？"
EMOJI = "🙂🧪👩🏽‍⚕️"
RTL = "مرحبا بالعالم — שלום עולם"
HTML = '<script>alert("x")</script> <b>bold</b> &amp; <a href="#">link</a>'


@dataclass
class Case:
    """What one judgment in the fixture is, to check the export against."""

    name: str
    domain: str
    tutor: str
    texts: list[str]
    ranks: list[int]
    all_bad: bool = False
    correction: str | None = None
    corrected: int | None = None  # index of the corrected candidate
    strength: int = 2
    messages: list[Message] = field(default_factory=list)
    prompt: str = ""
    month: int = 1
    ids: list[str] = field(default_factory=list)
    judgment_id: str = ""
    prompt_id: str = ""
    seeds: list[int] = field(default_factory=list)


def _cases() -> list[Case]:
    return [
        Case(
            "plain",
            "medicine",
            ALICE,
            ["a1", "a2", "a3", "a4"],
            [1, 2, 3, 4],
            strength=3,
            prompt="What is the usual adult dose?",
            month=1,
        ),
        Case(
            "ties", "medicine", ALICE, ["t1", "t2", "t3", "t4"], [1, 2, 2, 3], prompt=GREEK, month=2
        ),
        Case(
            "allbad",
            "finance",
            BOB,
            ["b1", "b2", "b3"],
            [1, 2, 3],
            all_bad=True,
            prompt=CJK,
            month=3,
        ),
        Case(
            "allbad-corr",
            "finance",
            BOB,
            ["c1", "c2", "c3"],
            [1, 1, 2],
            all_bad=True,
            correction="The corrected answer " + EMOJI,
            corrected=0,
            prompt="Compound interest?",
            month=4,
        ),
        Case(
            "corr",
            "law",
            ALICE,
            ["d1", "d2"],
            [1, 2],
            correction="Better: " + HTML,
            corrected=0,
            strength=1,
            prompt="Is this contract valid? " + HTML,
            month=5,
        ),
        Case(
            "multiturn",
            "stem",
            BOB,
            ["m1 " + RTL, "m2 " + EMOJI],
            [2, 1],
            messages=[
                Message("system", "You are a careful tutor."),
                Message("user", "Earlier question " + CJK),
                Message("assistant", "Earlier answer " + RTL),
            ],
            prompt="Follow-up: " + GREEK + " " + EMOJI,
            month=6,
        ),
        Case(
            "alltied", "stem", ALICE, ["same", "same", "other"], [1, 1, 1], prompt="Tied?", month=7
        ),
    ]


def _build_store(cases: list[Case]) -> Store:
    store = Store.memory()
    tutors = {name: store.ensure_tutor(name) for name in (ALICE, BOB)}
    for case in cases:
        prompt = store.add_prompt(
            Prompt(text=case.prompt, domain=case.domain, messages=case.messages)
        )
        cands = [
            Candidate(prompt_id=prompt.id, text=t, model=f"model-{i % 2}", seed=100 + i, index=i)
            for i, t in enumerate(case.texts)
        ]
        store.add_candidates(cands)
        correction = None
        if case.correction is not None:
            cid = cands[case.corrected].id if case.corrected is not None else None
            correction = Correction(text=case.correction, candidate_id=cid)
        j = Judgment(
            prompt_id=prompt.id,
            tutor_id=tutors[case.tutor].id,
            ranks={c.id: r for c, r in zip(cands, case.ranks, strict=True)},
            all_bad=case.all_bad,
            correction=correction,
            strength=case.strength,
            created_at=f"2024-{case.month:02d}-15T12:00:00.000000+00:00",
        )
        store.save_judgment(j)
        case.ids = [c.id for c in cands]
        case.seeds = [c.seed for c in cands]
        case.judgment_id = j.id
        case.prompt_id = prompt.id
    return store


@pytest.fixture
def cases() -> list[Case]:
    return _cases()


@pytest.fixture
def bench(cases):
    store = _build_store(cases)
    yield store
    store.close()


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _by_case(
    rows: list[dict], cases: list[Case], key: str = "judgment_id"
) -> dict[str, list[dict]]:
    names = {c.judgment_id: c.name for c in cases}
    out: dict[str, list[dict]] = {c.name: [] for c in cases}
    for r in rows:
        out[names[r[key]]].append(r)
    return out


PAIR_META = {
    "judgment_id",
    "prompt_id",
    "domain",
    "tutor",
    "chosen_model",
    "rejected_model",
    "chosen_seed",
    "rejected_seed",
    "source",
    "created_at",
    "chosen_flags",
    "rejected_flags",
    "chosen_ratings",
    "rejected_ratings",
    "rationale",
}
UNPAIRED_META = {
    "judgment_id",
    "prompt_id",
    "domain",
    "tutor",
    "model",
    "seed",
    "source",
    "created_at",
}
EXPECTED_FIELDS = {
    "trl-preference": {"prompt", "chosen", "rejected", "margin"} | PAIR_META,
    "trl-preference-chat": {"prompt", "chosen", "rejected", "margin"} | PAIR_META,
    "hh-rlhf": {"chosen", "rejected"} | PAIR_META,
    "ultrafeedback": (
        {
            "prompt",
            "prompt_id",
            "chosen",
            "rejected",
            "messages",
            "score_chosen",
            "score_rejected",
            "hitl_prompt_id",
        }
        | (PAIR_META - {"prompt_id"})
    ),
    "nectar": {
        "prompt",
        "answers",
        "num_responses",
        "turns",
        "all_bad",
        "judgment_id",
        "prompt_id",
        "domain",
        "tutor",
        "source",
        "created_at",
    },
    "kto": {"prompt", "completion", "label"} | UNPAIRED_META,
    "sft": {"prompt", "completion", "messages"} | UNPAIRED_META,
    "judgments": set(JUDGMENT_FIELDS),
}


def _expected_pairs(case: Case) -> set[tuple[str, str, float, str]]:
    """(chosen, rejected, margin, source) by DESIGN.md section 4, worked out independently."""
    levels = sorted(set(case.ranks))
    dense = [levels.index(r) + 1 for r in case.ranks]
    out = set()
    if not case.all_bad:
        for i, k in combinations(range(len(case.texts)), 2):
            if case.ranks[i] == case.ranks[k] or case.texts[i] == case.texts[k]:
                continue
            hi, lo = (i, k) if case.ranks[i] < case.ranks[k] else (k, i)
            out.add(
                (
                    case.texts[hi],
                    case.texts[lo],
                    (dense[lo] - dense[hi]) * case.strength / 2,
                    "ranking",
                )
            )
    if case.correction is not None:
        for i, t in enumerate(case.texts):
            out.add((case.correction, t, dense[i] * case.strength / 2, "correction"))
    return out


# -- field names -----------------------------------------------------------------------------


def test_every_format_has_exactly_the_contract_fields(bench, cases, tmp_path):
    for fmt in FORMATS:
        summary = export_dataset(bench, fmt=fmt, out=tmp_path / f"{fmt}.jsonl")
        rows = _read_jsonl(tmp_path / f"{fmt}.jsonl")
        assert rows, fmt
        assert summary.rows == len(rows)
        for row in rows:
            assert set(row) == EXPECTED_FIELDS[fmt], fmt
        if fmt in ("trl-preference-chat",):
            for row in rows:
                assert all(set(m) == {"role", "content"} for m in row["prompt"])
                assert row["prompt"][-1]["role"] == "user"
                assert [set(m) for m in row["chosen"]] == [{"role", "content"}]
                assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        if fmt == "nectar":
            for row in rows:
                assert all(set(a) == {"answer", "model", "rank"} for a in row["answers"])
                assert row["num_responses"] == len(row["answers"])
        if fmt == "kto":
            assert all(isinstance(r["label"], bool) for r in rows)


def test_unknown_format_lists_the_formats(bench, tmp_path):
    with pytest.raises(ExportError) as e:
        export_dataset(bench, fmt="dpo-magic", out=tmp_path / "x.jsonl")
    msg = str(e.value)
    assert "dpo-magic" in msg and "\n" not in msg
    for fmt in FORMATS:
        assert fmt in msg
    with pytest.raises(ExportError):
        build_rows("nope", [])
    assert list(tmp_path.iterdir()) == []


# -- the pair rules --------------------------------------------------------------------------


def test_trl_preference_pairs_follow_the_rules(bench, cases, tmp_path):
    summary = export_dataset(bench, fmt="trl-preference", out=tmp_path / "p.jsonl")
    rows = _read_jsonl(tmp_path / "p.jsonl")
    by = _by_case(rows, cases)
    for case in cases:
        got = {(r["chosen"], r["rejected"], r["margin"], r["source"]) for r in by[case.name]}
        assert len(got) == len(by[case.name]), f"{case.name}: duplicate rows"
        assert got == _expected_pairs(case), case.name
    # Counts, spelled out.
    assert len(by["plain"]) == 4 * 3 // 2  # K(K-1)/2 without ties
    assert len(by["ties"]) == 5  # 6 minus the tied pair
    assert not any({r["chosen"], r["rejected"]} == {"t2", "t3"} for r in by["ties"])
    assert by["allbad"] == []  # all bad, no correction: nothing
    assert len(by["allbad-corr"]) == 3 and all(
        r["source"] == "correction" for r in by["allbad-corr"]
    )
    assert by["alltied"] == []
    # The correction is chosen over every candidate, the one it rewrote included.
    corr = [r for r in by["corr"] if r["source"] == "correction"]
    assert {r["rejected"] for r in corr} == {"d1", "d2"}
    assert all(r["chosen"] == "Better: " + HTML for r in corr)
    # Margins: strength 3 in "plain" scales the rank distance by 1.5.
    assert {r["margin"] for r in by["plain"]} == {1.5, 3.0, 4.5}
    assert all(r["margin"] > 0 for r in rows)
    assert summary.pairs == len(rows) == sum(len(_expected_pairs(c)) for c in cases)
    assert summary.judgments == len(cases) and summary.prompts == len(cases)


def test_pair_metadata(bench, cases, tmp_path):
    export_dataset(bench, fmt="trl-preference", out=tmp_path / "p.jsonl")
    rows = _read_jsonl(tmp_path / "p.jsonl")
    by = _by_case(rows, cases)
    plain = next(c for c in cases if c.name == "plain")
    for r in by["plain"]:
        assert r["prompt_id"] == plain.prompt_id
        assert r["domain"] == "medicine"
        assert r["source"] == "ranking"
        assert r["created_at"].startswith("2024-01-15")
        i, k = plain.texts.index(r["chosen"]), plain.texts.index(r["rejected"])
        assert (r["chosen_seed"], r["rejected_seed"]) == (plain.seeds[i], plain.seeds[k])
        assert (r["chosen_model"], r["rejected_model"]) == (f"model-{i % 2}", f"model-{k % 2}")
    pseudo = bench.pseudonym(BOB)
    for r in by["allbad-corr"]:
        assert r["chosen_seed"] is None and isinstance(r["rejected_seed"], int)
        assert r["chosen_model"] == f"tutor:{pseudo}"
        assert r["tutor"] == pseudo


def test_prompt_rendering(bench, cases, tmp_path):
    for fmt in ("trl-preference", "hh-rlhf", "trl-preference-chat", "nectar"):
        export_dataset(bench, fmt=fmt, out=tmp_path / f"{fmt}.jsonl")
    pref = _by_case(_read_jsonl(tmp_path / "trl-preference.jsonl"), cases)
    assert pref["plain"][0]["prompt"] == "What is the usual adult dose?"  # single turn: as is
    mt = next(c for c in cases if c.name == "multiturn")
    assert pref["multiturn"][0]["prompt"] == (
        "System: You are a careful tutor.\n\nUser: Earlier question "
        + CJK
        + "\n\nAssistant: Earlier answer "
        + RTL
        + "\n\nUser: "
        + mt.prompt
    )
    hh = _by_case(_read_jsonl(tmp_path / "hh-rlhf.jsonl"), cases)
    assert hh["plain"][0]["chosen"] == "\n\nHuman: What is the usual adult dose?\n\nAssistant: a1"
    assert hh["multiturn"][0]["chosen"] == (
        "You are a careful tutor.\n\nHuman: Earlier question "
        + CJK
        + "\n\nAssistant: Earlier answer "
        + RTL
        + "\n\nHuman: "
        + mt.prompt
        + "\n\nAssistant: m2 "
        + EMOJI
    )
    assert hh["multiturn"][0]["rejected"].endswith("\n\nAssistant: m1 " + RTL)
    chat = _by_case(_read_jsonl(tmp_path / "trl-preference-chat.jsonl"), cases)
    assert chat["multiturn"][0]["prompt"] == [
        {"role": "system", "content": "You are a careful tutor."},
        {"role": "user", "content": "Earlier question " + CJK},
        {"role": "assistant", "content": "Earlier answer " + RTL},
        {"role": "user", "content": mt.prompt},
    ]
    assert chat["multiturn"][0]["chosen"] == [{"role": "assistant", "content": "m2 " + EMOJI}]
    nectar = _by_case(_read_jsonl(tmp_path / "nectar.jsonl"), cases)
    assert nectar["plain"][0]["prompt"] == "\n\nHuman: What is the usual adult dose?\n\nAssistant:"
    assert nectar["multiturn"][0]["turns"] == 2


def test_unicode_and_html_survive_verbatim(bench, tmp_path):
    out = tmp_path / "u.jsonl"
    export_dataset(bench, fmt="hh-rlhf", out=out)
    raw = out.read_bytes().decode("utf-8")
    for s in (GREEK, CJK, EMOJI, RTL):
        assert s in raw  # ensure_ascii=False: written as UTF-8, not \u escapes
    assert json.dumps(HTML)[1:-1] in raw  # HTML is not escaped beyond JSON's own rules
    assert raw.count("\n") == len(raw.splitlines())  # one object a line, no stray newlines


def test_ultrafeedback_rows(bench, cases, tmp_path):
    export_dataset(bench, fmt="ultrafeedback", out=tmp_path / "uf.jsonl")
    by = _by_case(_read_jsonl(tmp_path / "uf.jsonl"), cases)
    plain = next(c for c in cases if c.name == "plain")
    for r in by["plain"]:
        assert r["prompt_id"] == hashlib.sha256(r["prompt"].encode()).hexdigest()
        assert r["hitl_prompt_id"] == plain.prompt_id
        assert r["messages"] == r["chosen"]
        assert r["chosen"][:-1] == r["rejected"][:-1] == [{"role": "user", "content": plain.prompt}]
        assert r["chosen"][-1] == {"role": "assistant", "content": r["chosen"][-1]["content"]}
        # 4 levels: scores 4, 3, 2, 1 for ranks 1..4
        i, k = (
            plain.texts.index(r["chosen"][-1]["content"]),
            plain.texts.index(r["rejected"][-1]["content"]),
        )
        assert (r["score_chosen"], r["score_rejected"]) == (4.0 - i, 4.0 - k)
    for r in by["corr"]:
        if r["source"] == "correction":
            assert r["score_chosen"] == 3.0  # 2 levels + 1
    for r in by["ties"]:
        assert r["score_chosen"] > r["score_rejected"]
    mt = by["multiturn"][0]
    assert [m["role"] for m in mt["chosen"]] == ["system", "user", "assistant", "user", "assistant"]


def test_nectar_rows(bench, cases, tmp_path):
    export_dataset(bench, fmt="nectar", out=tmp_path / "n.jsonl")
    rows = _read_jsonl(tmp_path / "n.jsonl")
    assert len(rows) == len(cases)  # one row per judgment, all-bad ones included
    by = _by_case(rows, cases)
    (ties,) = by["ties"]
    assert [(a["answer"], a["rank"]) for a in ties["answers"]] == [
        ("t1", 1),
        ("t2", 2),
        ("t3", 2),
        ("t4", 3),
    ]
    assert ties["all_bad"] is False and ties["source"] == "ranking"
    (ab,) = by["allbad"]
    assert ab["all_bad"] is True and [a["rank"] for a in ab["answers"]] == [1, 2, 3]
    (abc,) = by["allbad-corr"]
    assert abc["all_bad"] is True and abc["source"] == "correction"
    assert [(a["answer"], a["rank"]) for a in abc["answers"]] == [
        ("The corrected answer " + EMOJI, 1),
        ("c1", 2),
        ("c2", 2),
        ("c3", 3),
    ]
    assert abc["answers"][0]["model"] == "tutor:" + bench.pseudonym(BOB)
    assert abc["num_responses"] == 4


def test_kto_labels(bench, cases, tmp_path):
    export_dataset(bench, fmt="kto", out=tmp_path / "k.jsonl")
    by = _by_case(_read_jsonl(tmp_path / "k.jsonl"), cases)

    def labels(name):
        return [(r["completion"], r["label"], r["source"]) for r in by[name]]

    assert labels("plain") == [
        ("a1", True, "ranking"),
        ("a2", False, "ranking"),
        ("a3", False, "ranking"),
        ("a4", False, "ranking"),
    ]
    assert labels("ties") == [
        ("t1", True, "ranking"),
        ("t2", False, "ranking"),
        ("t3", False, "ranking"),
        ("t4", False, "ranking"),
    ]
    assert labels("allbad") == [
        ("b1", False, "ranking"),
        ("b2", False, "ranking"),
        ("b3", False, "ranking"),
    ]
    assert labels("allbad-corr")[0] == ("The corrected answer " + EMOJI, True, "correction")
    assert all(not lab for _, lab, _ in labels("allbad-corr")[1:])
    # the correction rewrote the top candidate d1: d1 is no longer desirable
    assert labels("corr") == [
        ("Better: " + HTML, True, "correction"),
        ("d1", False, "ranking"),
        ("d2", False, "ranking"),
    ]
    # all tied and not all bad: all desirable; the duplicate text is written once
    assert labels("alltied") == [("same", True, "ranking"), ("other", True, "ranking")]
    for r in by["plain"]:
        assert r["seed"] in (100, 101, 102, 103) and r["model"].startswith("model-")
    assert by["corr"][0]["seed"] is None


def test_sft_rows(bench, cases, tmp_path):
    export_dataset(bench, fmt="sft", out=tmp_path / "s.jsonl")
    rows = _read_jsonl(tmp_path / "s.jsonl")
    assert sorted(r["completion"] for r in rows) == sorted(
        ["The corrected answer " + EMOJI, "Better: " + HTML]
    )
    assert all(r["source"] == "correction" for r in rows)
    mt_case = next(c for c in cases if c.name == "multiturn")
    export_dataset(bench, fmt="sft", out=tmp_path / "s2.jsonl", include_top_ranked=True)
    by = _by_case(_read_jsonl(tmp_path / "s2.jsonl"), cases)
    assert {k: [r["completion"] for r in v] for k, v in by.items()} == {
        "plain": ["a1"],
        "ties": ["t1"],
        "allbad": [],
        "allbad-corr": ["The corrected answer " + EMOJI],
        "corr": ["Better: " + HTML],
        "multiturn": ["m2 " + EMOJI],
        "alltied": ["same", "other"],
    }
    (mt,) = by["multiturn"]
    assert mt["messages"] == [
        *[m.to_dict() for m in mt_case.messages],
        {"role": "user", "content": mt_case.prompt},
        {"role": "assistant", "content": "m2 " + EMOJI},
    ]


@settings(max_examples=60, deadline=None)
@given(
    ranks=st.lists(st.integers(1, 4), min_size=1, max_size=6),
    all_bad=st.booleans(),
    corrected=st.one_of(st.none(), st.integers(0, 5)),
    strength=st.sampled_from([1, 2, 3]),
)
def test_build_rows_one_row_per_pair(ranks, all_bad, corrected, strength):
    prompt = Prompt(text="q")
    cands = [
        Candidate(prompt_id=prompt.id, text=f"c{i}", index=i, model="m") for i in range(len(ranks))
    ]
    correction = None
    if corrected is not None:
        correction = Correction(text="fixed", candidate_id=cands[corrected % len(cands)].id)
    j = Judgment(
        prompt_id=prompt.id,
        tutor_id="t",
        ranks={c.id: r for c, r in zip(cands, ranks, strict=True)},
        all_bad=all_bad,
        correction=correction,
        strength=strength,
    )
    item = JudgedItem(judgment=j, prompt=prompt, candidates=cands, tutor_name="T", domain="general")
    rows = build_rows("trl-preference", [item])
    k = len(ranks)
    ties = sum(1 for a, b in combinations(ranks, 2) if a == b)
    expected = (0 if all_bad else k * (k - 1) // 2 - ties) + (k if correction else 0)
    assert len(rows) == expected
    rank_of = {f"c{i}": r for i, r in enumerate(ranks)}
    for r in rows:
        if r["source"] == "ranking":
            assert rank_of[r["chosen"]] < rank_of[r["rejected"]]
        else:
            assert r["chosen"] == "fixed" and r["chosen_model"] == "tutor:T"
        assert r["margin"] > 0
    kto = build_rows("kto", [item])
    assert sum(1 for r in kto if r["source"] == "ranking") == k
    if all_bad:
        assert not any(r["label"] for r in kto if r["source"] == "ranking")


# -- the three outputs -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "judgments"])  # judgments: JSONL only
def test_parquet_and_folder_hold_the_jsonl_rows(bench, tmp_path, fmt):
    import datasets

    export_dataset(bench, fmt=fmt, out=tmp_path / "x.jsonl")
    export_dataset(bench, fmt=fmt, out=tmp_path / "x.parquet")
    summary = export_dataset(bench, fmt=fmt, out=tmp_path / "folder")
    expected = _read_jsonl(tmp_path / "x.jsonl")
    assert pq.read_table(tmp_path / "x.parquet").to_pylist() == expected
    ds = datasets.load_from_disk(str(tmp_path / "folder"))
    assert isinstance(ds, datasets.Dataset)
    assert ds.to_list() == expected
    assert summary.files == [tmp_path / "folder"]
    # consistent column types even where a column holds nulls
    schema = pq.read_schema(tmp_path / "x.parquet")
    seed_cols = [n for n in schema.names if n.endswith("seed")]
    assert fmt == "nectar" or seed_cols
    assert all(str(schema.field(n).type) == "int64" for n in seed_cols)


def test_dataset_card(bench, tmp_path):
    out = tmp_path / "card-ds"
    summary = export_dataset(bench, fmt="trl-preference", out=out, test_fraction=0.3, seed=3)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "other"
    assert header["annotations_creators"] == ["expert-generated"]
    assert header["task_categories"] == ["text-classification", "reinforcement-learning"]
    assert header["size_categories"] == ["n<1K"]
    assert header["domains"] == ["finance", "law", "medicine", "stem"]
    assert header["format"] == "trl-preference"
    body = card.split("---\n", 2)[2]
    assert f"rows: {summary.rows}" in body
    assert f"train: {summary.train_rows} rows, test: {summary.test_rows} rows" in body
    assert "margin = (dense_rank(rejected) - dense_rank(chosen)) * strength / 2" in body
    for col in ("prompt", "chosen", "rejected", "margin", "chosen_seed", "created_at"):
        assert f"| `{col}` |" in body
    assert "license" in body.lower() and "model" in body
    assert ALICE not in card and BOB not in card


def test_card_size_categories():
    sizes = {
        0: "n<1K",
        999: "n<1K",
        1000: "1K<n<10K",
        54_321: "10K<n<100K",
        100_000: "100K<n<1M",
        2_000_000: "1M<n<10M",
    }
    for n, label in sizes.items():
        assert export_mod._size_category(n) == label


def test_load_dataset_json_reads_the_export(bench, tmp_path):
    import datasets

    out = tmp_path / "pref.jsonl"
    summary = export_dataset(bench, fmt="trl-preference", out=out)
    ds = datasets.load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert ds.num_rows == summary.rows
    assert {"prompt", "chosen", "rejected", "margin"} <= set(ds.column_names)
    chat = tmp_path / "chat.jsonl"
    export_dataset(bench, fmt="trl-preference-chat", out=chat)
    ds2 = datasets.load_dataset(
        "json", data_files=str(chat), split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert ds2[0]["chosen"][0]["role"] == "assistant"


# -- splits ----------------------------------------------------------------------------------


def _many_prompts_store(n: int = 40) -> Store:
    store = Store.memory()
    t = store.ensure_tutor("T")
    prompts, cands, judgments = [], [], []
    for i in range(n):
        p = Prompt(text=f"prompt {i}", domain="general")
        cs = [Candidate(prompt_id=p.id, text=f"answer {i}.{k}", index=k) for k in range(3)]
        prompts.append(p)
        cands.extend(cs)
        judgments.append(
            Judgment(prompt_id=p.id, tutor_id=t.id, ranks={c.id: k + 1 for k, c in enumerate(cs)})
        )
        if i % 4 == 0:  # a second judgment of the same prompt
            judgments.append(
                Judgment(
                    prompt_id=p.id, tutor_id=t.id, ranks={c.id: 3 - k for k, c in enumerate(cs)}
                )
            )
    store.bulk_insert(prompts=prompts, candidates=cands, judgments=judgments)
    return store


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_split_by_prompt_files(tmp_path, suffix):
    store = _many_prompts_store()
    read = _read_jsonl if suffix == ".jsonl" else (lambda p: pq.read_table(p).to_pylist())
    whole = export_dataset(store, fmt="trl-preference", out=tmp_path / f"all{suffix}")
    s = export_dataset(
        store, fmt="trl-preference", out=tmp_path / f"d{suffix}", test_fraction=0.25, seed=7
    )
    train_f, test_f = tmp_path / f"d-train{suffix}", tmp_path / f"d-test{suffix}"
    assert s.files == [train_f, test_f]
    assert not (tmp_path / f"d{suffix}").exists()
    train, test = read(train_f), read(test_f)
    assert (s.train_rows, s.test_rows) == (len(train), len(test)) and s.rows == whole.rows
    train_p, test_p = {r["prompt_id"] for r in train}, {r["prompt_id"] for r in test}
    assert train_p and test_p and not (train_p & test_p)
    assert len(test_p) == 10  # 25 % of 40 prompts
    key = lambda r: (r["judgment_id"], r["chosen"], r["rejected"])  # noqa: E731
    assert sorted(map(key, train + test)) == sorted(map(key, read(tmp_path / f"all{suffix}")))
    # deterministic for a seed; another seed gives another split
    export_dataset(
        store, fmt="trl-preference", out=tmp_path / f"e{suffix}", test_fraction=0.25, seed=7
    )
    assert read(tmp_path / f"e-test{suffix}") == test
    export_dataset(
        store, fmt="trl-preference", out=tmp_path / f"f{suffix}", test_fraction=0.25, seed=8
    )
    assert {r["prompt_id"] for r in read(tmp_path / f"f-test{suffix}")} != test_p


def test_split_folder_is_a_datasetdict(tmp_path):
    import datasets

    store = _many_prompts_store()
    s = export_dataset(store, fmt="ultrafeedback", out=tmp_path / "dd", test_fraction=0.2, seed=1)
    dd = datasets.load_from_disk(str(tmp_path / "dd"))
    assert isinstance(dd, datasets.DatasetDict) and set(dd) == {"train", "test"}
    assert (dd["train"].num_rows, dd["test"].num_rows) == (s.train_rows, s.test_rows)
    assert not set(dd["train"]["hitl_prompt_id"]) & set(dd["test"]["hitl_prompt_id"])
    assert (tmp_path / "dd" / "README.md").exists()


def test_bad_test_fraction(bench, tmp_path):
    for bad in (1.0, -0.1, "x"):
        with pytest.raises(ExportError, match="test fraction"):
            export_dataset(bench, fmt="kto", out=tmp_path / "k.jsonl", test_fraction=bad)
    assert list(tmp_path.iterdir()) == []


# -- tutors and filters ----------------------------------------------------------------------


def test_tutors_pseudonymised_unless_kept(bench, tmp_path):
    for fmt in FORMATS:
        export_dataset(bench, fmt=fmt, out=tmp_path / f"{fmt}.jsonl")
        raw = (tmp_path / f"{fmt}.jsonl").read_text(encoding="utf-8")
        assert ALICE not in raw and BOB not in raw, fmt
        tutors = {r["tutor"] for r in _read_jsonl(tmp_path / f"{fmt}.jsonl")}
        assert tutors <= {bench.pseudonym(ALICE), bench.pseudonym(BOB)}
        assert all(t.startswith("tutor-") for t in tutors)
    export_dataset(bench, fmt="trl-preference", out=tmp_path / "named.jsonl", keep_tutor_names=True)
    rows = _read_jsonl(tmp_path / "named.jsonl")
    assert {r["tutor"] for r in rows} == {ALICE, BOB}
    assert f"tutor:{BOB}" in {r["chosen_model"] for r in rows}
    # stable: the same pseudonym on every export of this database
    export_dataset(bench, fmt="trl-preference", out=tmp_path / "again.jsonl")
    assert _read_jsonl(tmp_path / "again.jsonl") == _read_jsonl(tmp_path / "trl-preference.jsonl")


def test_filters(bench, cases, tmp_path):
    def judgments(**kw):
        out = tmp_path / "f.jsonl"
        s = export_dataset(bench, fmt="nectar", out=out, **kw)
        names = {c.judgment_id: c.name for c in cases}
        got = sorted(names[r["judgment_id"]] for r in _read_jsonl(out))
        assert s.judgments == len(got)
        return got

    assert judgments(domain="medicine") == ["plain", "ties"]
    assert judgments(tutor=BOB) == ["allbad", "allbad-corr", "multiturn"]
    assert judgments(since="2024-05-01") == ["alltied", "corr", "multiturn"]
    assert judgments(since="2024-03-01", until="2024-05-01") == ["allbad", "allbad-corr"]
    assert judgments(domain="stem", tutor=ALICE) == ["alltied"]
    assert judgments(domain="nowhere") == []
    from datetime import date

    assert judgments(since=date(2024, 7, 1)) == ["alltied"]


def test_preselected_items_and_progress(bench, cases, tmp_path):
    items = [it for it in bench.judged_items() if it.domain == "finance"]
    calls = []
    s = export_dataset(
        bench,
        fmt="trl-preference",
        out=tmp_path / "i.jsonl",
        items=items,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    rows = _read_jsonl(tmp_path / "i.jsonl")
    assert {r["domain"] for r in rows} == {"finance"} and s.judgments == 2 and s.rows == 3
    assert calls[-1] == (3, 3)  # two judgments plus writing
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_empty_export_writes_empty_outputs(tmp_path):
    import datasets

    store = Store.memory()
    s = export_dataset(store, fmt="trl-preference", out=tmp_path / "e.jsonl")
    assert s.rows == 0 and (tmp_path / "e.jsonl").read_bytes() == b""
    export_dataset(store, fmt="trl-preference", out=tmp_path / "e.parquet")
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    export_dataset(store, fmt="kto", out=tmp_path / "e-folder")
    assert (tmp_path / "e-folder" / "README.md").exists()
    ds = datasets.load_from_disk(str(tmp_path / "e-folder"))
    assert ds.num_rows == 0 and "label" in ds.column_names


def test_split_folder_with_an_empty_test_split_loads(tmp_path):
    import datasets

    store = _many_prompts_store(1)  # one prompt: nothing can go to test
    s = export_dataset(store, fmt="trl-preference-chat", out=tmp_path / "one", test_fraction=0.5)
    assert s.test_rows == 0 and s.train_rows > 0
    dd = datasets.load_from_disk(str(tmp_path / "one"))
    assert (dd["train"].num_rows, dd["test"].num_rows) == (s.train_rows, 0)


# -- safety: destinations, atomic replacement ------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("name", ["x.jsonl", "x.parquet", "x-folder"])
def test_unwritable_destination(bench, tmp_path, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / name
    with pytest.raises(ExportError) as e:
        export_dataset(bench, fmt="trl-preference", out=out)
    assert str(out) in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert blocker.read_text() == "not a folder"


def test_refused_suffix_and_wrong_kinds(bench, tmp_path):
    with pytest.raises(ExportError, match=r"\.jsonl or \.parquet"):
        export_dataset(bench, fmt="sft", out=tmp_path / "x.json")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        export_dataset(bench, fmt="sft", out=tmp_path / "dir.jsonl")
    (tmp_path / "plainfile").write_text("keep me")
    with pytest.raises(ExportError, match="is a file"):
        export_dataset(bench, fmt="sft", out=tmp_path / "plainfile")
    home = tmp_path / "my-documents"
    home.mkdir()
    (home / "thesis.docx").write_text("precious")
    with pytest.raises(ExportError, match="not a dataset export"):
        export_dataset(bench, fmt="sft", out=home)
    assert (home / "thesis.docx").read_text() == "precious"
    assert (tmp_path / "plainfile").read_text() == "keep me"
    assert _leftovers(tmp_path) == []


def test_existing_file_replaced_atomically(bench, tmp_path, monkeypatch):
    out = tmp_path / "p.jsonl"
    out.write_text("old content\n")
    export_dataset(bench, fmt="trl-preference", out=out)
    new = out.read_bytes()
    assert new != b"old content\n" and _read_jsonl(out)

    real = export_mod._write_jsonl

    def broken(path, rows):
        real(path, rows[:1])  # half a file on disk ...
        raise OSError(28, "No space left on device")  # ... then the disk fills up

    monkeypatch.setattr(export_mod, "_write_jsonl", broken)
    with pytest.raises(ExportError, match="No space left") as e:
        export_dataset(bench, fmt="kto", out=out)
    assert str(out) in str(e.value)
    assert out.read_bytes() == new  # untouched
    assert _leftovers(tmp_path) == []


def test_parquet_failure_leaves_nothing(bench, tmp_path, monkeypatch):
    def broken(path, fmt, rows):
        Path(path).write_bytes(b"PAR1 partial")
        raise RuntimeError("arrow exploded\nsecond line")

    monkeypatch.setattr(export_mod, "_write_parquet", broken)
    with pytest.raises(ExportError) as e:
        export_dataset(bench, fmt="kto", out=tmp_path / "k.parquet", test_fraction=0.5)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_replaced_atomically(bench, tmp_path, monkeypatch):
    import datasets

    out = tmp_path / "ds"
    export_dataset(bench, fmt="kto", out=out)
    first = datasets.load_from_disk(str(out)).to_list()
    export_dataset(bench, fmt="sft", out=out)  # a previous export is replaced
    assert set(datasets.load_from_disk(str(out)).column_names) >= {
        "prompt",
        "completion",
        "messages",
    }
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_mod, "_write_folder", broken)
    with pytest.raises(ExportError, match=str(out)):
        export_dataset(bench, fmt="kto", out=out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert _leftovers(tmp_path) == []
    assert first  # sanity: the first export had rows


def test_jsonl_lone_surrogate_is_escaped_not_fatal(tmp_path):
    # SQLite refuses lone surrogates, but pre-selected items (e.g. from an import) may carry one.
    prompt = Prompt(text="bad \ud800 text")
    cs = [Candidate(prompt_id=prompt.id, text=x, index=i) for i, x in enumerate(["x", "y"])]
    j = Judgment(prompt_id=prompt.id, tutor_id="t", ranks={cs[0].id: 1, cs[1].id: 2})
    item = JudgedItem(judgment=j, prompt=prompt, candidates=cs, tutor_name="T", domain="general")
    out = tmp_path / "s.jsonl"
    s = export_dataset(None, fmt="trl-preference", out=out, items=[item], keep_tutor_names=True)
    assert s.rows == 1
    assert _read_jsonl(out)[0]["prompt"] == "bad \ud800 text"
    assert os.path.getsize(out) > 0
    with pytest.raises(ExportError, match="store"):
        export_dataset(None, fmt="trl-preference", out=tmp_path / "t.jsonl", items=[item])
