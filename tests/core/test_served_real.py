"""The served backend against a REAL OpenAI-compatible server: ``transformers serve`` (from
``transformers[serving]``, installed by ``scripts/setup.sh --dev``) serving the tiny random
model on 127.0.0.1, started by the test (about 10 s on two cores). K streams, seeds, stop,
plain completions, provenance, and the CLI writing a served model's candidates."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.backends.served import ServedBackend
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from transformers_serve import ServerDidNotStart, serving  # noqa: E402

pytestmark = pytest.mark.slow

CONV = [Message("user", "The patient was given")]


@pytest.fixture(scope="module")
def served(tiny_chat_model_dir, tmp_path_factory):
    """``(url, model id)`` of ``transformers serve`` serving the tiny chat model, sampling."""
    pytest.importorskip("fastapi", reason="transformers[serving] is installed by scripts/setup.sh --dev")
    model = tmp_path_factory.mktemp("served") / "tiny-chat"
    shutil.copytree(tiny_chat_model_dir, model)
    config = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**config, "do_sample": True}))
    log = tmp_path_factory.mktemp("served-log") / "serve.log"
    try:
        with serving(model, log=log) as (url, _):
            yield url, str(model)
    except ServerDidNotStart as e:
        pytest.fail(str(e))


def test_k_concurrent_streams_with_provenance(served):
    url, model = served
    backend = ServedBackend(url)
    assert backend.name == model  # the server's only model, from GET /models
    seen: dict[int, list[str]] = {}
    result = backend.generate(
        CONV, k=4, params=SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=10),
        seeds=[1, 2, 3, 4], on_token=lambda i, t: seen.setdefault(i, []).append(t),
    )
    assert sorted(seen) == [0, 1, 2, 3]
    assert [c.seed for c in result.candidates] == [1, 2, 3, 4]
    for c in result.candidates:
        assert c.params["tokens_from"] == "usage" and c.params["prompt_tokens"] > 0
        assert c.finish_reason in ("length", "eos") and 0 < c.tokens <= 10
        assert seen[c.index][-1] == c.text
    assert result.model == model and result.params["url"] == url and result.params["api"] == "chat"
    assert result.first_token_seconds is not None and result.first_token_seconds < result.seconds


def test_same_seed_same_text(served):
    """transformers serve seeds torch's global generator per request, so a seed reproduces
    when its request runs alone (concurrent requests share that generator there; vLLM and
    llama.cpp keep a generator per request)."""
    url, _ = served
    backend = ServedBackend(url)
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)

    def text(seed: int) -> str:
        return backend.generate(CONV, k=1, params=params, seeds=[seed]).candidates[0].text

    first = text(7)
    assert first and text(7) == first
    assert {text(8), text(9)} != {first}


def test_plain_completions_switch(served):
    url, _ = served
    backend = ServedBackend(url, completions=True)
    result = backend.generate(CONV, k=2, params=SamplingParams(temperature=1.0, max_new_tokens=12), seeds=[1, 2])
    assert result.params["api"] == "completions"
    assert all("\nUser:" not in c.text and c.params["tokens_from"] == "usage" for c in result.candidates)


def test_cli_generate_writes_the_served_candidates(served, tmp_path):
    url, model = served
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "prompt": "What is the capital of France?"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    r = runner.invoke(cli, ["generate", "--db", str(db), "--model", url, "-k", "2",
                            "--max-new-tokens", "8", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    with Store.open(db) as store:
        rows = list(store.db["candidates"].rows)
    assert len(rows) == 2 and {row["model"] for row in rows} == {model}
    for row in rows:
        params = json.loads(row["params"])
        assert params["url"] == url and params["served_model"] == model and params["max_new_tokens"] == 8
        assert row["tokens"] == 8 or params["finish_reason"] == "eos"


def test_stop_closes_the_streams_at_once(served):
    url, _ = served
    backend = ServedBackend(url)
    tokens: list[float] = []
    result = backend.generate(
        CONV, k=3, params=SamplingParams(temperature=1.0, max_new_tokens=400), seeds=[1, 2, 3],
        on_token=lambda i, t: tokens.append(time.perf_counter()), should_stop=lambda: len(tokens) >= 3,
    )
    assert result.stopped and time.perf_counter() - tokens[2] < 0.3
    assert any(c.finish_reason == "stopped" for c in result.candidates)
