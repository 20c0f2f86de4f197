"""`hitl-desktop generate`: fills queued prompts with K candidates and their provenance."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.store import Store


def queue(tmp_path, db_path, n=3):
    f = tmp_path / "prompts.jsonl"
    f.write_text("\n".join(json.dumps({"id": f"q{i}", "prompt": f"Explain item {i}.", "domain": "stem"}) for i in range(n)))
    assert CliRunner().invoke(cli, ["import", str(f), "--db", str(db_path)]).exit_code == 0


def test_generate_fills_the_queue_and_ends_with_json(tmp_path, db_path, tiny_model_dir):
    queue(tmp_path, db_path)
    args = ["generate", "--db", str(db_path), "--model", str(tiny_model_dir), "-k", "3", "--limit", "2", "--max-new-tokens", "8", "--seed", "7", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["candidates"] == 6 and last["prompts"] == 2
    assert 0 < last["tokens"] <= 6 * 8 and last["seconds"] > 0
    with Store.open(db_path) as s:
        filled = [p for p in s.queued_prompts() if s.candidates_for(p.id)]
        assert len(filled) == 2
        cands = s.candidates_for(filled[0].id)
        assert [c.index for c in cands] == [0, 1, 2]
        assert len({c.seed for c in cands}) == 3
        c = cands[0]
        assert c.model == "tiny-gemma3" and len(c.model_revision) == 64 and c.dtype == "bfloat16"
        assert c.params["max_new_tokens"] == 8 and c.tokens is not None and c.seconds is not None
        assert s.queued_prompts(without_candidates=True)[0].external_id == "q2"
    # The same base seed writes the same candidates for the same prompt set on another
    # workstation (another database: other UUIDs, same external ids).
    db2 = tmp_path / "again.db"
    queue(tmp_path, db2)
    result2 = CliRunner().invoke(cli, [*args[:2], str(db2), *args[3:]])
    assert result2.exit_code == 0, result2.output

    def texts(path):
        with Store.open(path) as s:
            return {p.external_id: [c.text for c in s.candidates_for(p.id)] for p in s.queued_prompts()}

    assert texts(db_path) == texts(db2)


def test_generate_with_a_bad_model_exits_with_one_line(tmp_path, db_path):
    queue(tmp_path, db_path, n=1)
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 10)
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--model", str(bad)])
    assert result.exit_code != 0
    assert "broken.gguf" in result.output and "Traceback" not in result.output
    with Store.open(db_path) as s:
        assert s.db["candidates"].count == 0
