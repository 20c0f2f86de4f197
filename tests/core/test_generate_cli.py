"""`hitl-desktop generate`: fills queued prompts with K candidates and their provenance."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.backends.base import ModelError
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


def test_generate_opens_the_local_model_as_a_headless_parent(tmp_path, db_path, monkeypatch):
    """The command line only takes the streamed text: its model process may spin its threads
    (runtime.HEADLESS_ENVIRONMENT); the window keeps PASSIVE."""
    from hitl_desktop.core.backends import process

    seen = {}

    def refuse(*a, **kw):
        seen.update(kw)
        raise ModelError("no model here")

    monkeypatch.setattr(process, "open_local_backend", refuse)
    queue(tmp_path, db_path, n=1)
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path)])
    assert result.exit_code == 1 and "no model here" in result.output
    assert seen.get("headless") is True


def test_generate_with_nothing_queued_loads_no_model(tmp_path, db_path, monkeypatch):
    from hitl_desktop.core.backends import process

    def no_load(*a, **kw):
        raise AssertionError("the model was loaded for nothing")

    monkeypatch.setattr(process, "open_local_backend", no_load)
    queue(tmp_path, db_path, n=1)
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--domain", "law", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["candidates"] == 0
    # a bad --model is still refused (checked without loading it)
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--domain", "law", "--model", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "nowhere: model not found" in result.output


def test_ctrl_c_stops_generation_and_keeps_what_was_saved(tmp_path, db_path, monkeypatch):
    import os
    import signal
    import time

    from hitl_desktop.core import engine
    from hitl_desktop.core.backends import process

    class Backend:
        name = "fake"
        closed = False

        def close(self):
            Backend.closed = True

    def fill_queue(store, backend, *, should_stop, **kw):
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl+C does
        deadline = time.monotonic() + 5
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert should_stop()
        return engine.GenerateSummary(prompts=1, candidates=2, tokens=10, seconds=1.0, stopped=True)

    monkeypatch.setattr(process, "open_local_backend", lambda *a, **kw: Backend())
    monkeypatch.setattr(engine, "fill_queue", fill_queue)
    queue(tmp_path, db_path, n=2)
    before = signal.getsignal(signal.SIGINT)  # default, or SIG_IGN under nohup / a background job
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--json"])
    assert result.exit_code == 130, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["stopped"] is True and last["candidates"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler given back as it was
    assert Backend.closed  # the model's process is ended


def test_a_model_failing_mid_way_is_one_line_and_keeps_the_earlier_prompts(tmp_path, db_path, tiny_model_dir, monkeypatch):
    from hitl_desktop.core.backends import process

    # the model's process (the same engine as the app's) raises on its second prompt
    monkeypatch.setattr(process, "DEFAULT_LOADER", "engine_loaders:flaky_tiny")
    queue(tmp_path, db_path, n=3)
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--model", str(tiny_model_dir), "--max-new-tokens", "4"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "RuntimeError: out of memory" in errors[0]
    assert "Traceback" not in result.output
    with Store.open(db_path) as s:
        assert s.db["candidates"].count == 4  # the first prompt's candidates are saved


def test_a_prompt_too_long_for_the_model_is_skipped_and_the_others_are_written(tmp_path, db_path, tiny_model_dir):
    f = tmp_path / "mixed.jsonl"
    records = [{"id": "short", "prompt": "Explain.", "domain": "stem"}, {"id": "long", "prompt": "Paris " * 3000, "domain": "stem"}]
    f.write_text("\n".join(json.dumps(r) for r in records))
    assert CliRunner().invoke(cli, ["import", str(f), "--db", str(db_path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--model", str(tiny_model_dir), "--max-new-tokens", "4", "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert (last["prompts"], last["candidates"], last["skipped"]) == (1, 4, 1)
    assert "Skipped prompt long:" in result.stderr and "no room" in result.stderr


def test_device_option(tmp_path, db_path, tiny_model_dir):
    queue(tmp_path, db_path, n=1)
    bad = CliRunner().invoke(cli, ["generate", "--db", str(db_path), "--device", "gpu"])
    assert bad.exit_code == 2 and "unknown device 'gpu'" in bad.output
    args = ["generate", "--db", str(db_path), "--model", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", "4", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with Store.open(db_path) as s:
        (prompt,) = s.queued_prompts()
        assert {c.params["device"] for c in s.candidates_for(prompt.id)} == {"cpu"}
