"""Import: JSONL and CSV, all or nothing, with the file, line and field of every refusal."""

from __future__ import annotations

import json

import pytest

from hitl_desktop.core.importing import ImportFileError, import_file
from hitl_desktop.core.ranking import pairs_for_items

SPECIALIST_RECORDS = [
    {
        "id": "med-001",
        "prompt": "A 68-year-old on warfarin asks about <b>ibuprofen</b> — safe?",
        "domain": "medicine",
        "candidates": [
            {"text": "Avoid NSAIDs; they raise bleeding risk with warfarin.", "model": "m-a"},
            {"text": "Ibuprofen is fine.", "model": "m-b"},
            {"text": "Paracetamol is preferred; check INR.", "model": "m-c"},
        ],
        "ranking": [1, 3, 1],
        "tutor": "Dr. Σοφία",
        "correction": "Avoid NSAIDs with warfarin (bleeding risk); paracetamol ≤3 g/day, monitor INR.",
        "corrected_index": 0,
        "flags": [[], ["incorrect", "unsafe"], []],
        "strength": 3,
        "rationale": "B is dangerous",
    },
    {
        "id": "med-001",
        "prompt": "A 68-year-old on warfarin asks about <b>ibuprofen</b> — safe?",
        "domain": "medicine",
        "candidates": ["Ibuprofen is fine.", "Avoid NSAIDs; they raise bleeding risk with warfarin."],
        "ranking": [2, 1],
        "tutor": "Dr. 王",
    },
    {
        "id": "fin-7",
        "prompt": "And the duration of that bond?",
        "domain": "finance",
        "messages": [
            {"role": "user", "content": "Price a 5y 4% bond at 5% yield."},
            {"role": "assistant", "content": "About 95.67."},
        ],
        "candidates": ["≈4.6 years", "5 years exactly"],
        "ranking": [1, 2],
        "tutor": "quant-1",
    },
    {"id": "stem-1", "prompt": "Prove √2 is irrational. 🙂", "domain": "stem"},
    {"prompt": "Write a SQL query <script>alert(1)</script>", "domain": "coding", "candidates": ["a", "b"], "ranking": [1, 1], "all_bad": True},
]


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def counts(store):
    return {t: store.db[t].count for t in ("prompts", "candidates", "judgments", "rankings", "corrections", "tutors")}


def test_specialist_records_import_as_prompts_candidates_and_judgments(store, tmp_path):
    path = write_jsonl(tmp_path / "set.jsonl", SPECIALIST_RECORDS)
    summary = import_file(store, path)
    assert (summary.records, summary.prompts, summary.judgments, summary.corrections, summary.queued) == (5, 4, 4, 1, 1)
    assert summary.candidates == 3 + 2 + 2  # the second tutor's candidates are matched by text
    c = counts(store)
    assert c == {"prompts": 4, "candidates": 7, "judgments": 4, "rankings": 9, "corrections": 1, "tutors": 4}
    items = {(i.prompt.external_id, i.tutor_name): i for i in store.judged_items()}
    med = items[("med-001", "Dr. Σοφία")]
    assert med.prompt.text.startswith("A 68-year-old") and "<b>" in med.prompt.text
    assert sorted(med.judgment.ranks.values()) == [1, 1, 3]
    assert med.judgment.strength == 3 and med.judgment.rationale == "B is dangerous"
    assert [f for f in med.judgment.flags.values()] == [["incorrect", "unsafe"]]
    assert med.judgment.correction.candidate_id == med.candidates[0].id
    second = items[("med-001", "Dr. 王")]
    assert second.prompt.id == med.prompt.id
    assert set(second.judgment.ranks) <= {c.id for c in med.candidates}
    fin = items[("fin-7", "quant-1")]
    assert [m.role for m in fin.prompt.messages] == ["user", "assistant"]
    coding = [i for i in store.judged_items(domain="coding")]
    assert coding[0].judgment.all_bad and coding[0].tutor_name == "imported"
    # Pairs: med Σοφία: ranks 1,3,1 -> 2 pairs + correction over 3 = 5 (correction == no candidate text)
    # med 王: 1 pair; fin: 1 pair; coding all-bad: none.
    assert len(pairs_for_items(store.judged_items())) == 5 + 1 + 1


def test_importing_the_same_file_twice_adds_nothing(store, tmp_path):
    path = write_jsonl(tmp_path / "set.jsonl", SPECIALIST_RECORDS)
    import_file(store, path)
    before = counts(store)
    again = import_file(store, path)
    assert counts(store) == before
    assert again.prompts == 0 and again.judgments == 0 and again.judgments_skipped == 4


def test_a_second_file_adds_another_tutors_judgment_to_the_same_prompt(store, tmp_path):
    import_file(store, write_jsonl(tmp_path / "a.jsonl", SPECIALIST_RECORDS[:1]))
    rec = dict(SPECIALIST_RECORDS[0], tutor="Dr. B", ranking=[2, 1, 3])
    rec.pop("correction"), rec.pop("corrected_index")
    summary = import_file(store, write_jsonl(tmp_path / "b.jsonl", [rec]))
    assert (summary.prompts, summary.prompts_reused, summary.candidates, summary.judgments) == (0, 1, 0, 1)
    assert {i.tutor_name for i in store.judged_items()} == {"Dr. Σοφία", "Dr. B"}


def test_csv_with_prompt_and_domain_columns(store, tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text('prompt,domain\n"Explain, briefly, IRR",finance\n"Multi\nline prompt",\n', encoding="utf-8")
    summary = import_file(store, path, default_domain="law")
    assert summary.queued == 2
    assert sorted((p.domain, p.text) for p in store.queued_prompts()) == [("finance", "Explain, briefly, IRR"), ("law", "Multi\nline prompt")]


BAD_LINES = [
    ('{"prompt": "ok"}\n{"prompt": "broken"', 2, "", "bad JSON"),
    ('{"domain": "medicine"}', 1, "prompt", "missing"),
    ('{"prompt": "   "}', 1, "prompt", "missing or empty"),
    ('{"prompt": 5}', 1, "prompt", "must be a string"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1]}', 1, "ranking", "has 1 ranks for 2"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 0]}', 1, "ranking[1]", "not a positive integer"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2.5]}', 1, "ranking[1]", "not a positive integer"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": "1,2"}', 1, "ranking", "must be a list"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "correction": "c", "corrected_index": 2}', 1, "corrected_index", "out of range"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "correction": "c", "corrected_index": -1}', 1, "corrected_index", "out of range"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "correction": "c", "corrected_index": "0"}', 1, "corrected_index", "must be an integer"),
    ('{"prompt": "p", "ranking": [1]}', 1, "ranking", "without candidates"),
    ('{"prompt": "p", "candidates": "a"}', 1, "candidates", "must be a list"),
    ('{"prompt": "p", "candidates": [{"model": "x"}]}', 1, "candidates[0].text", "missing"),
    ('{"prompt": "p", "messages": [{"role": "robot", "content": "x"}]}', 1, "messages[0].role", "must be one of"),
    ('{"prompt": "p", "domain": 3}', 1, "domain", "must be a string"),
    ('{"prompt": "p", "tutor": ["x"]}', 1, "tutor", "must be a string"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "all_bad": "yes"}', 1, "all_bad", "true or false"),
    ('{"prompt": "p", "candidates": ["a", "b"], "ranking": [1, 2], "strength": 9}', 1, "strength", "not one of"),
    ('["not", "an", "object"]', 1, "", "JSON object"),
    ('{"prompt": "p", "candidates": ["ok", "bad \\ud800 half"]}', 1, "candidates[1]", "lone surrogate"),
    ('{"id": "x", "prompt": "one"}\n{"id": "x", "prompt": "two"}', 2, "prompt", "another prompt text"),
]


@pytest.mark.parametrize("content, line, field, message", BAD_LINES)
def test_bad_line_refuses_the_whole_file_naming_file_line_and_field(store, tmp_path, content, line, field, message):
    import_file(store, write_jsonl(tmp_path / "first.jsonl", SPECIALIST_RECORDS))
    before = counts(store)
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        import_file(store, path)
    err = info.value
    assert err.errors[0].line == line and err.errors[0].field == field
    assert message in err.errors[0].message
    assert f"bad.jsonl:{line}" in str(err) and "nothing was imported" in str(err)
    assert counts(store) == before


def test_every_bad_line_is_listed_and_good_lines_are_not_imported(store, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"prompt": "good"}\n{"prompt": ""}\n{"prompt": "good too"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        import_file(store, path)
    assert [(e.line, e.field) for e in info.value.errors] == [(2, "prompt"), (4, "")]
    assert store.db["prompts"].count == 0


def test_invalid_utf8_and_empty_and_missing_files(store, tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ImportFileError, match="latin1.jsonl:2.*UTF-8"):
        import_file(store, bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ImportFileError, match="no records"):
        import_file(store, empty)
    with pytest.raises(ImportFileError, match="cannot be read"):
        import_file(store, tmp_path / "missing.jsonl")
    with pytest.raises(ImportFileError, match="folder"):
        import_file(store, tmp_path)


def test_bad_csv(store, tmp_path):
    no_prompt = tmp_path / "a.csv"
    no_prompt.write_text("question,domain\nx,law\n")
    with pytest.raises(ImportFileError, match="a.csv:1: prompt: the header has no 'prompt' column"):
        import_file(store, no_prompt)
    unterminated = tmp_path / "b.csv"
    unterminated.write_text('prompt,domain\nfine,law\n"never closed,law\n')
    with pytest.raises(ImportFileError, match="b.csv:3"):
        import_file(store, unterminated)
    assert store.db["prompts"].count == 0


def test_twenty_thousand_records_import_in_one_go(store, tmp_path):
    records = [
        {"id": f"r{i}", "prompt": f"question {i}", "domain": ["medicine", "finance", "stem"][i % 3],
         "candidates": [f"a{i}", f"b{i}", f"c{i}"], "ranking": [1, 2, 3], "tutor": f"t{i % 5}"}
        for i in range(20_000)
    ]
    summary = import_file(store, write_jsonl(tmp_path / "big.jsonl", records))
    assert (summary.prompts, summary.candidates, summary.judgments) == (20_000, 60_000, 20_000)
    assert store.db["rankings"].count == 60_000


def test_reimport_reads_the_database_in_a_few_queries_not_per_existing_id(tmp_path):
    """A second file naming 300 prompts already in the database looks them up in batches,
    and still matches their candidates by text and skips judgments a tutor already gave."""
    from hitl_desktop.core.store import Store

    store = Store.memory()
    records = [
        {"id": f"q{i}", "prompt": f"Question {i}", "candidates": [f"a{i}", f"b{i}"], "ranking": [1, 2], "tutor": "t1"}
        for i in range(300)
    ]
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    import_file(store, first)
    again = [{**r, "tutor": "t2", "candidates": [f"b{i}", f"a{i}"], "ranking": [2, 1]} for i, r in enumerate(records)]
    again += records[:5]  # t1 again: skipped
    second = tmp_path / "second.jsonl"
    second.write_text("\n".join(json.dumps(r) for r in again) + "\n")

    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    summary = import_file(store, second)
    store.db.conn.set_trace_callback(None)

    reads = [s for s in statements if s.lstrip().lower().startswith("select")]
    assert len(reads) < 20, f"{len(reads)} queries for 300 existing ids"
    assert (summary.prompts, summary.prompts_reused, summary.candidates) == (0, 300, 0)
    assert (summary.judgments, summary.judgments_skipped) == (300, 5)
    assert store.db.execute("select count(*) from candidates").fetchone()[0] == 600


def test_a_new_candidate_of_a_known_prompt_gets_a_free_idx(tmp_path):
    """The database's prompt has two candidates with the same text (idx 0 and 1): a candidate
    the file adds must not take idx 1 again (gold rankings and merges go by idx order)."""
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Candidate, Prompt

    store = Store.memory()
    prompt = store.add_prompt(Prompt(text="Q", domain="general", external_id="q"))
    store.add_candidates([Candidate(prompt_id=prompt.id, text="same", index=i) for i in range(2)])
    f = tmp_path / "more.jsonl"
    f.write_text(json.dumps({"id": "q", "prompt": "Q", "candidates": ["same", "new"], "ranking": [1, 2]}) + "\n")
    import_file(store, f)
    assert sorted(c.index for c in store.candidates_for(prompt.id)) == [0, 1, 2]
