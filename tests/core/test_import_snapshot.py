"""The database an import writes, table by table, is the one recorded before the import's
write path was made faster (issue 18): the same rows, columns and values, for a fixed input.

Ids and times are made deterministic for the comparison (``new_id`` and ``now_iso`` read a
fake clock and a fake random source), so every generated id and time is compared too. The
snapshot ``data/import_snapshot.json`` was written by the import as it was before the change
(``python tests/core/test_import_snapshot.py --write``); if the input below changes, it must be
written again from a checkout before the change.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SNAPSHOT = Path(__file__).parent / "data" / "import_snapshot.json"
#: our own ``judgments`` export of the records below (pseudonymised tutors), a session added
#: to every third row: the input of the ``judgments`` layout (written with the snapshot)
JUDGMENTS = Path(__file__).parent / "data" / "import_snapshot_judgments.jsonl"


def write_judgments_input(db: Path) -> None:
    from hitl_desktop.core.export import export_dataset
    from hitl_desktop.core.store import Store

    store = Store.open(db)
    out = db.with_suffix(".judgments.jsonl")
    export_dataset(store, fmt="judgments", out=out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["session"] = {"id": f"s{i % 2}", "domain": "stem", "started_at": "2025-01-01T00:00:00+00:00"}
    JUDGMENTS.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_input(path: Path, n: int = 240) -> None:
    """Records of every kind the records layout takes: plain and object candidates (models,
    seeds), ties, flags, ratings, corrections (one unchanged), gold rankings, earlier turns,
    queued prompts, prompts shared by tutors and by batches, and preference-pair rows."""
    rnd = random.Random(18)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            q = rnd.randrange(n // 3)
            k = 2 + q % 3
            rec: dict = {"id": f"q{q}" if i % 5 else q, "prompt": f"Question {q} é\u2028?", "domain": ("Medicine", "stem", None)[q % 3]}
            if rec["domain"] is None:
                del rec["domain"]
            if q % 4 == 0:
                rec["messages"] = [{"role": "user", "content": f"hi {q}"}, {"role": "assistant", "content": "hello"}]
            cands = [f"answer {j} to {q}" for j in range(k)]
            if q % 2:
                rec["candidates"] = [{"text": t, "model": f"m{j % 2}", "seed": j * 7 if j else None} for j, t in enumerate(cands)]
            else:
                rec["candidates"] = cands
            if i % 9 == 0:
                rec["gold_ranking"] = list(range(1, k + 1))
            if i % 11 != 3:
                ranks = list(range(1, k + 1))
                rnd.shuffle(ranks)
                if k > 2 and i % 3 == 0:
                    ranks = [min(r, k - 1) for r in ranks]
                rec["ranking"] = ranks
                rec["tutor"] = ("ann", "bob", " cy ")[i % 3]
                if i % 4 == 0:
                    rec["flags"] = [["incorrect"] if j == 0 else [] for j in range(k)]
                if i % 6 == 0:
                    rec["ratings"] = [{"helpfulness": 1 + j % 5} if j else None for j in range(k)]
                if i % 7 == 0:
                    rec["correction"] = cands[0] if i % 14 == 0 else f"better answer {i}"
                    rec["corrected_index"] = 0
                if i % 8 == 0:
                    rec["strength"] = 3
                    rec["rationale"] = f"because {i}"
                    rec["all_bad"] = i % 16 == 0
                if i % 10 == 0:
                    rec["created_at"] = "2025-01-02T03:04:05+00:00"
            f.write(json.dumps(rec, ensure_ascii=i % 2 == 0) + "\n")


def write_pairs(path: Path, n: int = 60) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"Pair prompt {i % 25}", "chosen": f"good {i}", "rejected": f"bad {i % 4}"}) + "\n")


class _Clock:
    def __init__(self) -> None:
        self.ns = itertools.count(1_767_225_600_000_000_000, 1_234_567)

    def time_ns(self) -> int:
        return next(self.ns)


class _Random:
    def __init__(self) -> None:
        self.n = itertools.count(1)

    def getrandbits(self, k: int) -> int:
        """The bits the recorded database was made with (``os.urandom(8)`` counting 1, 2,
        ... and shifted right by 2, as ``new_id`` took its 62 bits then)."""
        assert k == 62
        return next(self.n) >> 2


def deterministic(monkeypatch) -> None:  # noqa: ANN001
    from hitl_desktop.core import types

    monkeypatch.setattr(types, "time", _Clock())
    monkeypatch.setattr(types, "_ID_BITS", _Random())
    monkeypatch.setattr(types, "_second", (-1, ""))


def dump(db: Path) -> dict[str, list]:
    import sqlite3

    con = sqlite3.connect(db)
    tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")]
    out = {}
    for t in tables:
        if t in ("_sqlite_migrations", "settings"):  # when the database was made, its salt
            continue
        cols = [r[1] for r in con.execute(f"pragma table_info([{t}])")]
        rows = con.execute(f"select * from [{t}] order by {', '.join(f'[{c}]' for c in cols)}").fetchall()
        out[t] = [cols] + [list(r) for r in rows]
    con.close()
    return out


def build(tmp: Path, write: bool = False) -> dict[str, dict[str, list]]:
    from hitl_desktop.core.importing import import_file
    from hitl_desktop.core.store import Store

    src, pairs = tmp / "records.jsonl", tmp / "pairs.jsonl"
    write_input(src)
    write_pairs(pairs)
    out = {}
    for name, batch in (("batch7", 7), ("batch5000", 5000)):
        db = tmp / f"{name}.db"
        store = Store.open(db)
        s1 = import_file(store, src, batch_size=batch, default_domain="general")
        s2 = import_file(store, pairs, batch_size=batch, default_tutor="lead")
        s3 = import_file(store, src, batch_size=batch)  # again: adds nothing
        store.close() if hasattr(store, "close") else None
        d = dump(db)
        d["summaries"] = [[k, v] for s in (s1, s2, s3) for k, v in sorted(vars(s).items()) if k != "path"]
        out[name] = d
        if write and name == "batch7":
            write_judgments_input(db)
    for name, batch in (("judgments7", 7), ("judgments5000", 5000)):
        db = tmp / f"{name}.db"
        store = Store.open(db)
        s1 = import_file(store, JUDGMENTS, batch_size=batch)
        s2 = import_file(store, JUDGMENTS, batch_size=batch)  # again: adds nothing
        d = dump(db)
        d["summaries"] = [[k, v] for s in (s1, s2) for k, v in sorted(vars(s).items()) if k != "path"]
        out[name] = d
    return out


def test_import_writes_the_recorded_database(tmp_path, monkeypatch):
    deterministic(monkeypatch)
    got = json.loads(json.dumps(build(tmp_path), default=str))
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    for name in want:
        for table in want[name]:
            assert got[name].get(table) == want[name][table], f"{name}: table {table} differs"
    assert got.keys() == want.keys()
    assert all(got[n].keys() == want[n].keys() for n in want)


@settings(max_examples=500)
@given(st.text())
def test_imported_ids_are_uuid5_of_their_names(name):
    import uuid

    from hitl_desktop.core.importing.plan import IMPORT_NAMESPACE, _uuid5

    try:
        want = str(uuid.uuid5(IMPORT_NAMESPACE, name))
    except UnicodeEncodeError:  # a lone surrogate: refused the same way
        with pytest.raises(UnicodeEncodeError):
            _uuid5(name)
        return
    assert _uuid5(name) == want


@settings(max_examples=1000)
@given(st.lists(st.one_of(st.uuids().map(str), st.text(), st.text(alphabet='ab"\\\x00\x1f\x7f\u2028\ud800'), st.integers(), st.none())))
def test_display_order_json_is_the_encoders(ids):
    from hitl_desktop.core.store.bulk import ids_json
    from hitl_desktop.core.store.rows import dumps

    assert ids_json(ids) == dumps(ids)


@settings(max_examples=1000)
@given(st.one_of(st.text(), st.text(alphabet='ab"\\\x00\x1f\x7f\u2028\ud800')), st.text(alphabet='ab"\\ \x01\xe9'))
def test_imported_judgment_ids_hash_the_json_of_id_and_tutor(external_id, tutor):
    import uuid

    from hitl_desktop.core.importing.plan import IMPORT_NAMESPACE, _to_json, imported_judgment_id

    try:
        want = str(uuid.uuid5(IMPORT_NAMESPACE, _to_json([external_id, tutor])))
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            imported_judgment_id(external_id, tutor)
        return
    assert imported_judgment_id(external_id, tutor) == want


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    mp = pytest.MonkeyPatch()
    deterministic(mp)
    with tempfile.TemporaryDirectory() as d:
        SNAPSHOT.write_text(json.dumps(build(Path(d), write=True), default=str, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    mp.undo()
