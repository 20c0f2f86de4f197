"""Import as a pipeline in bounded batches (issues 16 and 18): layout detection -> one parser
per layout -> one plan that writes, batch by batch, inside one transaction."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_import import LAYOUT_ROWS  # a valid row of each layout (tests/core is on sys.path)

from hitl_desktop.core.importing import ImportFileError, import_file, registry
from hitl_desktop.core.layouts import LAYOUTS
from hitl_desktop.core.store import Store


def test_the_registry_holds_every_layout_and_detects_each():
    names = registry.names()
    assert names[: len(LAYOUTS)] == list(LAYOUTS)  # the built-in ones in README's order, then any added
    assert sorted(names) == sorted(layout.name for layout in registry.LAYOUTS)
    for name, row in LAYOUT_ROWS.items():
        assert registry.detect(row).name == name


def table_contents(store: Store) -> dict:
    """What an import wrote, without the ids it draws at random (prompts', candidates')."""
    q = store.db.execute
    return {
        "prompts": sorted(q("select external_id, text, domain, messages, source from prompts").fetchall()),
        "candidates": sorted(q("select p.external_id, c.text, c.model, c.idx, c.seed from candidates c "
                               "join prompts p on p.id = c.prompt_id").fetchall()),
        "judgments": sorted(q("select id, strength, all_bad from judgments").fetchall()),
        "rankings": sorted(q("select judgment_id, rank from rankings").fetchall()),
        "gold": sorted(q("select p.external_id, g.rank from gold_rankings g join prompts p on p.id = g.prompt_id").fetchall()),
        "tutors": sorted(r[0] for r in q("select name from tutors")),
    }  # fmt: skip


record = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "d"]), "prompt": st.sampled_from(["p", "q"])},
    optional={
        "candidates": st.lists(st.sampled_from(["x", "y", "z", "w"]), min_size=2, max_size=4, unique=True),
        "tutor": st.sampled_from(["t1", "t2", "t3"]),
        "domain": st.sampled_from(["law", "med"]),
    },
)


@st.composite
def record_file(draw) -> list[dict]:
    rows = draw(st.lists(record, min_size=1, max_size=12))
    for r in rows:
        if "candidates" in r and draw(st.booleans()):
            r["ranking"] = draw(st.lists(st.integers(1, len(r["candidates"])), min_size=len(r["candidates"]),
                                         max_size=len(r["candidates"])))  # fmt: skip
            if draw(st.booleans()):
                r["gold_ranking"] = list(range(1, len(r["candidates"]) + 1))
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=record_file(), layout_rows=st.lists(st.sampled_from(sorted(LAYOUT_ROWS)), max_size=0), batch=st.integers(1, 4))
def test_batches_of_any_size_import_what_one_batch_does(tmp_path, rows, layout_rows, batch):
    """Records sharing ids across batch boundaries: the same prompts, candidates, judgments,
    gold rankings and summary, or the same refusal, whatever the batch size."""
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    outcomes = []
    for size in (10_000, batch):
        with Store.memory() as s:
            try:
                summary = import_file(s, path, batch_size=size)
            except ImportFileError as e:
                outcomes.append(("refused", [(x.line, x.field) for x in e.errors], s.db.execute("select count(*) from prompts").fetchone()))
            else:
                outcomes.append(("imported", summary.__dict__, table_contents(s)))
    assert outcomes[0][0] == outcomes[1][0]
    if outcomes[0][0] == "imported":
        assert outcomes[0] == outcomes[1]
    else:
        assert outcomes[0][2] == outcomes[1][2] == (0,)


@pytest.mark.parametrize("layout", sorted(LAYOUT_ROWS))
def test_a_bad_line_after_many_batches_leaves_the_database_byte_identical(tmp_path, layout):
    db = tmp_path / "hitl.db"
    with Store.open(db) as s:
        seed = tmp_path / "seed.jsonl"
        seed.write_text(json.dumps({"prompt": "already here", "candidates": ["a", "b"], "ranking": [1, 2]}) + "\n")
        import_file(s, seed)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    good = [_variant(LAYOUT_ROWS[layout], i) for i in range(30)]
    bad = tmp_path / "late.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in good) + "\n{\"prompt\": \"cut short\"\n")
    with Store.open(db) as s:
        with pytest.raises(ImportFileError) as e:
            import_file(s, bad, batch_size=4)  # seven batches written, then line 31
        assert e.value.errors[0].line == 31
        assert s.db.execute("select count(*) from prompts").fetchone() == (1,)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with Store.open(db) as s:  # and the good lines alone go in, batched as they were
        ok = tmp_path / "ok.jsonl"
        ok.write_text("\n".join(json.dumps(r) for r in good) + "\n")
        assert import_file(s, ok, batch_size=4).judgments == 30


def _variant(row: dict, i: int) -> dict:
    """The layout's row made distinct (its own prompt), so that 30 of them are 30 judgments."""
    row = json.loads(json.dumps(row))
    if "judgment_id" in row:
        row.update(judgment_id=f"j{i}", prompt_id=f"p{i}", id=f"x{i}", correction_id=f"k{i}", session=None)
        for c in row["candidates"]:
            c["id"] = f"{c['id']}-{i}"
        row["display_order"] = [c["id"] for c in row["candidates"]]
        row["source_values"] = {"margin": 1.0}
        row["prompt"] = f"q{i}"
    elif "answers" in row:
        row["prompt"] = f"\n\nHuman: q{i}\n\nAssistant:"
    elif isinstance(row.get("chosen"), str) and "prompt" not in row:
        row["chosen"] = row["chosen"].replace("q", f"q{i}")
        row["rejected"] = row["rejected"].replace("q", f"q{i}")
    elif isinstance(row.get("prompt"), list):
        row["prompt"] = [{"role": "user", "content": f"q{i}"}]
    elif "chosen" in row and isinstance(row["chosen"], list):
        for key in ("chosen", "rejected", "messages"):
            row[key][0]["content"] = f"q{i}"
        row["prompt"] = f"q{i}"
    else:
        row["prompt"] = f"q{i}"
        row.pop("id", None)
    return row


def _lines(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_batch_names_the_line_an_earlier_batch_first_saw_an_id_on(tmp_path):
    """What a later batch knows of an earlier one (the line each id was first seen on) comes
    from the import's first-lines table, not from memory: the message names that line."""
    path = tmp_path / "ids.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"Question {i}"} for i in range(6)]
    rows.append({"id": "q1", "prompt": "Another text"})  # line 7, two batches after line 2
    _lines(path, rows)
    with Store.memory() as s:
        with pytest.raises(ImportFileError) as e:
            import_file(s, path, batch_size=2)
        [err] = e.value.errors
        assert (err.line, err.field) == (7, "prompt") and "another prompt text in line 2" in err.message
        assert s.db.execute("select count(*) from prompts").fetchone()[0] == 0  # all or nothing
        # the same connection imports again: nothing of the refused file's table is left
        assert not s.db.execute("select name from sqlite_temp_master").fetchall()
        _lines(path, rows[:6] + [{"id": "q1", "prompt": "Question 1", "candidates": ["a", "b"], "ranking": [1, 2]}])
        summary = import_file(s, path, batch_size=2)
        assert (summary.prompts, summary.prompts_reused, summary.judgments) == (6, 0, 1)
        assert not s.db.execute("select name from sqlite_temp_master").fetchall()


def test_a_prompt_of_the_database_named_in_several_batches_is_reused_once(tmp_path):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    _lines(first, [{"id": "q1", "prompt": "Question 1"}, {"id": "q2", "prompt": "Question 2"}])
    rows = [{"id": "q1", "prompt": "Question 1", "candidates": ["a", "b"], "ranking": [1, 2], "tutor": f"t{i}"}
            for i in range(5)]  # fmt: skip
    rows.insert(3, {"id": "q2", "prompt": "Other text"})  # line 4: the database's q2 differs
    _lines(second, rows)
    with Store.memory() as s:
        import_file(s, first)
        with pytest.raises(ImportFileError) as e:
            import_file(s, second, batch_size=2)
        assert "another prompt text in the database" in e.value.errors[0].message
        del rows[3]
        _lines(second, rows)
        summary = import_file(s, second, batch_size=2)
        assert (summary.prompts, summary.prompts_reused, summary.judgments) == (0, 1, 5)


@pytest.mark.parametrize("refused", [False, True])
@pytest.mark.parametrize("layout", ["records", "judgments"])
def test_the_plan_is_closed_once_after_the_transaction_ends(tmp_path, monkeypatch, layout, refused):
    """``Plan.close`` (where a plan drops its temp table) runs once per import, after the
    transaction has committed or rolled back, for a good file and a refused one alike."""
    from hitl_desktop.core.importing.full import FullPlan
    from hitl_desktop.core.importing.plan import RecordPlan

    closed: list[bool] = []
    for cls in (RecordPlan, FullPlan):
        original = cls.close
        monkeypatch.setattr(cls, "close", lambda self, o=original: (closed.append(self.store.db.conn.in_transaction), o(self)))
    rows = [LAYOUT_ROWS[layout]]
    if refused:  # a second batch, refused after the first was written
        rows.append({**rows[0], "candidates": "not a list"})
    path = tmp_path / "file.jsonl"
    _lines(path, rows)
    with Store.memory() as s:
        if refused:
            with pytest.raises(ImportFileError):
                import_file(s, path, batch_size=1)
        else:
            assert import_file(s, path, batch_size=1).judgments == 1
        assert closed == [False]
        assert not s.db.execute("select name from sqlite_temp_master").fetchall()
