"""No secrets: nothing stored or exported holds an API key or token from the environment, and
tutor names are pseudonymised on export by default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core import export
from hitl_desktop.core.backup import backup_database
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Judgment

SECRETS = {
    "HF_TOKEN": "hf_secretvalue123XYZabcdef",
    "HUGGING_FACE_HUB_TOKEN": "hf_hubsecret456QRSTuvwxyz",
    "OPENAI_API_KEY": "sk-testsecret789LMNOPqrstu",
    "HITL_API_KEY": "plainsecret-0b7e4c1d9a",
}
TOKEN_RE = re.compile(rb"(hf_[A-Za-z0-9]{10,}|sk-[A-Za-z0-9]{10,})")
TUTOR = "Dr Alice Realname"


@pytest.fixture
def secret_env(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)


def write_set(path: Path) -> Path:
    recs = [
        {"id": f"m{i}", "prompt": f"What is the maximum dose of drug {i}?", "domain": "medicine",
         "messages": [{"role": "system", "content": "You are careful."}],
         "candidates": [{"text": f"{i} g/day", "model": "gemma-3-270m"}, f"{i + 5} g/day", f"{i + 9} g/day"],
         "ranking": [1, 3, 2], "tutor": TUTOR, "correction": f"{i} g/day; less with liver disease",
         "corrected_index": 0, "rationale": "the second is dangerous"}
        for i in range(6)
    ] + [{"id": "q1", "prompt": "Queued question", "domain": "law"}]
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def texts_of(path: Path) -> list[bytes]:
    """What a file holds, decoded where it is compressed (parquet, arrow)."""
    out = [path.read_bytes()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        out.append(json.dumps(pq.read_table(path).to_pylist(), default=str).encode())
    if path.suffix == ".arrow":
        import pyarrow as pa

        try:
            with pa.memory_map(str(path)) as src:
                table = pa.ipc.open_stream(src).read_all()
        except pa.ArrowInvalid:
            with pa.memory_map(str(path)) as src:
                table = pa.ipc.open_file(src).read_all()
        out.append(json.dumps(table.to_pylist(), default=str).encode())
    return out


def scan(paths: list[Path], needles: list[str]) -> list[str]:
    found = []
    for p in paths:
        for blob in texts_of(p):
            for n in needles:
                if n.encode() in blob:
                    found.append(f"{n!r} in {p.name}")
            for m in TOKEN_RE.findall(blob):
                found.append(f"token-like {m[:6]!r}... in {p.name}")
    return found


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_secret_from_the_environment_is_stored_or_exported(tmp_path, secret_env):
    db = tmp_path / "db" / "hitl.db"
    runner = CliRunner()
    r = runner.invoke(cli, ["import", str(write_set(tmp_path / "set.jsonl")), "--db", str(db)])
    assert r.exit_code == 0, r.output
    with Store.open(db) as s:  # a judgment saved the way the bench saves one
        tutor = s.ensure_tutor("Dr Bob Otherreal", ["medicine"])
        session = s.start_session(tutor_id=tutor.id, domain="medicine", guideline_version="v1")
        prompt = s.get_prompt(s.prompt_ids_by_external_id(["m0"])["m0"])
        ids = [c.id for c in s.candidates_for(prompt.id)]
        s.save_judgment(Judgment(prompt_id=prompt.id, tutor_id=tutor.id, session_id=session.id,
                                 ranks=dict(zip(ids, [2, 1, 3])), display_order=ids, seconds_spent=12.5))
        s.end_session(session.id)
        s.set_setting("last_export_folder", str(tmp_path / "out"))
        backup_database(s, reason="manual")

    out = tmp_path / "out"
    for fmt in export.FORMATS:
        r = runner.invoke(cli, ["export", "--db", str(db), "--format", fmt, "--out", str(out / f"{fmt}.jsonl")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export", "--db", str(db), "--format", "ultrafeedback", "--out", str(out / "uf.parquet"),
                            "--test-fraction", "0.3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export", "--db", str(db), "--format", "trl-preference-chat", "--out", str(out / "ds")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["stats", "--db", str(db), "--json"])
    assert r.exit_code == 0

    stored = all_files(db.parent)  # the database, its WAL if any, and the backups
    exported = all_files(out)
    assert len(exported) >= len(export.FORMATS) + 3
    assert any(p.name == "README.md" for p in exported)
    assert scan(stored + exported, list(SECRETS.values())) == []
    assert all(v not in r.output for v in SECRETS.values())

    # tutor names: in the database (it is theirs), never in a default export
    assert scan(exported, [TUTOR, "Realname", "Otherreal"]) == []
    assert scan(stored, [TUTOR]) != [], "the scan finds what is there (sanity check)"
    rows = [json.loads(line) for line in (out / "trl-preference.jsonl").read_text().splitlines()]
    assert rows and all(row["tutor"].startswith("tutor-") for row in rows)
    named = out / "named.jsonl"
    runner.invoke(cli, ["export", "--db", str(db), "--format", "kto", "--out", str(named), "--keep-tutor-names"])
    assert TUTOR in named.read_text(), "names only when asked for"


def test_pseudonyms_are_stable_per_database_and_not_guessable_across_databases(tmp_path):
    a, b = Store.memory(), Store.memory()
    try:
        assert a.pseudonym(TUTOR) == a.pseudonym(TUTOR)
        assert a.pseudonym(TUTOR) != b.pseudonym(TUTOR), "a per-database salt, not a bare hash"
        assert TUTOR.split()[1] not in a.pseudonym(TUTOR)
    finally:
        a.close()
        b.close()


def test_a_served_models_api_key_is_sent_but_never_stored_logged_or_exported(tmp_path, secret_env, caplog):
    """The key goes to the server (HITL_API_KEY first) and nowhere else: not in the candidates'
    provenance, the database, its backups, the CLI's output or the logs (debug level)."""
    import logging
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
    from openai_stub import StubServer

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "db" / "hitl.db"
    runner = CliRunner()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(2)))
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    with StubServer() as server:
        r = runner.invoke(cli, ["generate", "--db", str(db), "--model", server.url, "-k", "2", "--json"])
        assert r.exit_code == 0, r.output
        auth = {v for _, _, h, _ in server.requests for k, v in h.items() if k.lower() == "authorization"}
    assert auth == {f"Bearer {SECRETS['HITL_API_KEY']}"}
    with Store.open(db) as s:
        assert s.db["candidates"].count == 4
        backup_database(s, reason="manual")
    assert scan(all_files(db.parent), list(SECRETS.values())) == []
    assert all(v not in r.output + caplog.text for v in SECRETS.values())
    assert "httpcore" in caplog.text, "the client's debug log was captured (sanity check)"
