"""The served backend against llama-cpp-python's real server (slow; ``scripts/setup.sh --dev``
builds it from source, as ``./test.sh`` and CI run it; by hand the ``bench`` extra): a server that serves one
request at a time and, by default (``interrupt_requests``), ends the running stream after its
role chunk with no finish_reason when the next request arrives. Of K concurrent streams all but
the last are cut: none of them may be stored; they are written again one at a time.

The embedded model's GGUF, plain completions (``--completions``: the server's guessed chat
format makes this model answer nothing), 12 tokens at most, one thread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.backends.served import ServedBackend
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from transformers_serve import ServerDidNotStart, local_server  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is built by scripts/setup.sh --dev")
    from hitl_desktop.core.backends.gguf_files import default_gguf_path

    gguf = default_gguf_path()

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                "--port", str(port), "--n_ctx", "1024", "--n_threads", "1"]

    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    try:
        with local_server(command, what="llama-cpp-python's server", log=log) as (url, _):
            yield url
    except ServerDidNotStart as e:
        pytest.fail(str(e))


def test_its_cut_streams_are_retried_alone_and_never_returned(llama_server):
    said: list[str] = []
    backend = ServedBackend(llama_server, completions=True, on_status=said.append)
    params = SamplingParams(max_new_tokens=12)
    result = backend.generate([Message("user", "Name a colour.")], k=4, params=params, seeds=[1, 2, 3, 4])
    assert result.retried >= 1, "the server cut none of four concurrent streams: not the server this tests"
    assert all(c.text and c.finish_reason in ("eos", "length") and c.tokens >= 1 for c in result.candidates)
    assert sum(bool(c.params.get("retried")) for c in result.candidates) == result.retried
    assert said and "cut short by the server (no finish_reason)" in said[0]
    again = backend.generate([Message("user", "Name a fruit.")], k=4, params=params, seeds=[1, 2, 3, 4])
    assert again.retried == 0 and all(c.text for c in again.candidates)  # one at a time now


def test_generate_cli_against_it_stores_no_empty_or_cut_answer(llama_server, tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": q}) + "\n"
                               for i, q in enumerate(["Name a colour.", "Name a fruit."])))
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    r = runner.invoke(cli, ["generate", "--db", str(db), "--model", llama_server, "--completions", "-k", "4",
                            "--max-new-tokens", "12", "--json"])
    assert r.exit_code == 0, r.output
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert (last["prompts"], last["candidates"]) == (2, 8) and last["retried"] >= 1
    with Store.open(db) as store:
        rows = list(store.db["candidates"].rows)
    assert len(rows) == 8 and all(row["text"].strip() and row["tokens"] >= 1 for row in rows)
    assert {json.loads(row["params"])["finish_reason"] for row in rows} <= {"eos", "length"}
    assert sum(1 for row in rows if json.loads(row["params"]).get("retried")) == last["retried"]
