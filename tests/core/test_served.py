"""The served backend against small stub servers on 127.0.0.1: K streams with their seeds, stop,
provenance, the API key, and every kind of bad server (refused, 401, 404, 500, hang, garbage).
The same backend against a real server is in test_served_real.py (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_desktop.cli import cli
from hitl_desktop.core.backends.base import ModelError, SamplingParams
from hitl_desktop.core.backends.plain import format_plain
from hitl_desktop.core.backends.registry import CompositeBackend, open_backend
from hitl_desktop.core.backends.served import ServedBackend, ServedModelError, public_url
from hitl_desktop.core.engine import candidates_from_result, fill_queue
from hitl_desktop.core.store import Store
from hitl_desktop.core.types import Message, Prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from openai_stub import MODEL, StubServer, answer_words, free_port  # noqa: E402

CONV = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]
PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=32)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("HITL_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def expected(seed: int, n: int = 6) -> str:
    return " ".join(answer_words(seed, n))


def test_k_streams_each_with_its_seed_and_provenance():
    with StubServer() as server:
        backend = ServedBackend(server.url)
        seen: list[tuple[int, str, int]] = []
        result = backend.generate(
            CONV, k=4, params=PARAMS, seeds=[11, 22, 33, 44],
            on_token=lambda i, text: seen.append((i, text, threading.get_ident())),
        )
        bodies = server.completion_requests()
    assert [c.text for c in result.candidates] == [expected(s) for s in (11, 22, 33, 44)]
    assert sorted(b["seed"] for b in bodies) == [11, 22, 33, 44]
    for body in bodies:
        assert body["model"] == MODEL and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert body["messages"] == [m.to_dict() for m in CONV]
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 32)
    # streamed on the calling thread, each candidate's text only growing, ending with the final text
    assert {tid for _, _, tid in seen} == {threading.get_ident()}
    for i, c in enumerate(result.candidates):
        texts = [t for j, t, _ in seen if j == i]
        assert texts[-1] == c.text and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert result.model == MODEL and result.dtype == "served" and not result.stopped
    assert result.params["url"] == server.url and result.params["served_model"] == MODEL
    assert result.params["api"] == "chat" and result.params["temperature"] == 0.7
    assert all(c.tokens == 6 and c.params["tokens_from"] == "usage" and c.params["prompt_tokens"] == 7
               for c in result.candidates)
    assert all(c.finish_reason == "length" for c in result.candidates)
    cands = candidates_from_result(Prompt(text="q"), result)
    assert cands[2].seed == 33 and cands[2].params["url"] == server.url and cands[2].params["prompt_tokens"] == 7


def test_completions_switch_sends_the_plain_prompt_and_cuts_at_the_next_user_turn():
    with StubServer(text=" Paris, of course.\nUser: and Spain?\nAssistant: Madrid") as server:
        backend = ServedBackend(server.url, completions=True)
        shown: list[str] = []
        result = backend.generate(CONV, k=2, params=PARAMS, seeds=[1, 2], on_token=lambda i, t: shown.append(t))
        body = server.completion_requests()[0]
    assert server.requests[-1][1].endswith("/v1/completions")
    assert body["prompt"] == format_plain(CONV) and body["stop"] == ["\nUser:"]
    assert [c.text for c in result.candidates] == ["Paris, of course."] * 2
    assert all(c.finish_reason == "eos" for c in result.candidates)
    assert not any("User" in t for t in shown)
    assert result.params["api"] == "completions"


def test_stop_closes_every_stream_at_once():
    with StubServer(mode="slow", words=200, delay=0.1) as server:
        backend = ServedBackend(server.url)
        first: list[float] = []

        def should_stop() -> bool:
            return bool(first) and time.perf_counter() - first[0] > 0.25

        start = time.perf_counter()
        result = backend.generate(
            CONV, k=3, params=PARAMS, seeds=[1, 2, 3],
            on_token=lambda i, t: first.append(time.perf_counter()), should_stop=should_stop,
        )
        elapsed = time.perf_counter() - first[0]
    assert result.stopped and time.perf_counter() - start < 5
    assert elapsed < 0.25 + 0.2, f"took {elapsed:.2f} s to stop"
    for c, seed in zip(result.candidates, (1, 2, 3)):
        assert c.finish_reason == "stopped" and 0 < c.tokens < 200
        assert expected(seed, 200).startswith(c.text) and c.text


def test_served_model_several_and_unknown():
    with StubServer(mode="several") as server:
        with pytest.raises(ServedModelError) as e:
            ServedBackend(server.url)
        assert str(e.value) == (
            f"{server.url}: the server serves several models (other-model, stub-model); "
            "choose one with --served-model NAME"
        )
        assert ServedBackend(server.url, served_model="other-model").name == "other-model"
        assert ServedBackend(server.url + "#other-model").name == "other-model"
        with pytest.raises(ServedModelError, match=r"has no model 'nope'; it serves: other-model, stub-model"):
            ServedBackend(server.url, served_model="nope")


def errors_of(mode: str, **kw) -> tuple[str, float, StubServer]:
    with StubServer(mode=mode) as server:
        start = time.perf_counter()
        with pytest.raises(ModelError) as e:
            ServedBackend(server.url, **kw).generate(CONV, k=2, params=PARAMS, seeds=[1, 2])
    message = str(e.value)
    assert "\n" not in message and message.startswith(server.url + ": ")
    return message, time.perf_counter() - start, server


def test_refused_connection_is_one_line_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServedModelError) as e:
        ServedBackend(url, max_retries=0)
    assert str(e.value).startswith(f"{url}: cannot reach the server while listing the models")
    assert "\n" not in str(e.value)


def test_401_names_the_key_variables():
    message, _, _ = errors_of("401", max_retries=0)
    assert "refused the API key (401); set HITL_API_KEY or OPENAI_API_KEY" in message


def test_404_unknown_model_while_generating_and_a_server_without_models():
    message, _, _ = errors_of("404", max_retries=0)
    assert "not found (404) while streaming an answer, model 'stub-model'" in message
    message, _, _ = errors_of("no-models", max_retries=0)
    assert "not found (404) while listing the models" in message


def test_500_is_retried_a_bounded_number_of_times_with_backoff():
    message, elapsed, server = errors_of("500", max_retries=2)
    assert "server error (500) after 2 retries" in message
    assert len(server.requests) == 3  # GET /models, then two retries; nothing else
    assert elapsed >= 0.375 + 0.75  # the openai client's exponential backoff (0.5 s, 1 s, jitter -25%)


def test_429_is_retried_then_reported():
    with StubServer(mode="ok") as server:
        backend = ServedBackend(server.url, max_retries=1)
        server.mode = "429"
        with pytest.raises(ServedModelError, match=r"rate limited \(429\) after 1 retry"):
            backend.generate(CONV, k=2, params=PARAMS, seeds=[1, 2])
        time.sleep(1.5)  # time for any further retry to arrive
        assert 2 <= len(server.completion_requests()) <= 4  # two candidates, each tried at most twice


def test_a_hanging_server_times_out():
    message, elapsed, _ = errors_of("hang", timeout=0.5, max_retries=0)
    assert "no answer within 0.5 s while streaming an answer after 0 retries" in message
    assert elapsed < 3


def test_a_stream_that_stalls_times_out():
    message, elapsed, _ = errors_of("stall", timeout=0.5, max_retries=0)
    assert "no answer within 0.5 s while streaming an answer" in message
    assert elapsed < 3


def test_a_garbage_stream_is_a_malformed_response():
    message, _, _ = errors_of("garbage", max_retries=0)
    assert "malformed response while streaming an answer" in message


def test_api_key_comes_from_the_environment_hitl_first(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-variable")
    with StubServer() as server:
        ServedBackend(server.url).generate(CONV, k=2, params=PARAMS, seeds=[1, 2])
        monkeypatch.setenv("HITL_API_KEY", "hitl-variable")
        backend = ServedBackend(server.url)
        result = backend.generate(CONV, k=2, params=PARAMS, seeds=[1, 2])
    auth = [{k.lower(): v for k, v in h.items()}.get("authorization") for _, _, h, _ in server.requests]
    assert auth[:3] == ["Bearer sk-openai-variable"] * 3 and auth[-1] == "Bearer hitl-variable"
    provenance = json.dumps([result.params, result.model, result.model_revision,
                             [c.params for c in result.candidates]])
    assert "hitl-variable" not in provenance and "sk-openai" not in provenance


def test_public_url_drops_credentials_query_and_fragment():
    assert public_url("https://user:pw@host.example:8443/v1/?key=1#m") == "https://host.example:8443/v1"


def test_a_dead_server_writes_nothing_and_stops_the_queue(store):
    for i in range(3):
        store.add_prompt(Prompt(text=f"question {i}"))
    with StubServer() as server:
        backend = ServedBackend(server.url, max_retries=0)
        server.mode = "500"
        with pytest.raises(ServedModelError):
            fill_queue(store, backend, k=2, params=PARAMS)
        asked = server.completion_requests()
        # the first prompt only, no skipping on: its K=2 streams start together, and the second
        # may be cancelled before it is sent once the first fails (a race under load)
        assert 1 <= len(asked) <= 2, asked
        assert all("question 0" in json.dumps(body) for body in asked), asked
    assert store.db["candidates"].count == 0


def test_composite_splits_k_round_robin_with_each_models_provenance():
    with StubServer(models=["model-a"]) as a, StubServer(models=["model-b"]) as b:
        backend = open_backend([a.url, b.url])
        assert isinstance(backend, CompositeBackend) and backend.name == "model-a + model-b"
        tokens: list[int] = []
        result = backend.generate(CONV, k=5, params=PARAMS, seeds=[10, 20, 30, 40, 50],
                                  on_token=lambda i, t: tokens.append(i))
        seeds_a = sorted(body["seed"] for body in a.completion_requests())
        seeds_b = sorted(body["seed"] for body in b.completion_requests())
    assert (seeds_a, seeds_b) == ([10, 30, 50], [20, 40])
    assert [c.text for c in result.candidates] == [expected(s) for s in (10, 20, 30, 40, 50)]
    assert set(tokens) == set(range(5))
    cands = candidates_from_result(Prompt(text="q"), result)
    assert [c.model for c in cands] == ["model-a", "model-b", "model-a", "model-b", "model-a"]
    assert [c.params["url"] for c in cands[:2]] == [a.url, b.url]
    assert [c.seed for c in cands] == [10, 20, 30, 40, 50] and [c.index for c in cands] == list(range(5))


def test_composite_stops_every_member():
    with StubServer(mode="slow", words=200, delay=0.1, models=["a"]) as a, \
            StubServer(mode="slow", words=200, delay=0.1, models=["b"]) as b:
        backend = open_backend([a.url, b.url])
        calls: list[int] = []
        start = time.perf_counter()
        result = backend.generate(CONV, k=4, params=PARAMS, seeds=[1, 2, 3, 4],
                                  on_token=lambda i, t: calls.append(i), should_stop=lambda: len(calls) > 8)
    assert result.stopped and time.perf_counter() - start < 3
    assert all(c.finish_reason == "stopped" for c in result.candidates)


def test_plain_format_is_one_definition_for_every_backend():
    from hitl_desktop.core.backends import plain, transformers_backend

    conv = [Message("system", " Be brief. "), Message("user", "Hi?"), Message("assistant", "Hello."),
            Message("user", "2+2?")]
    assert format_plain(conv) == "System: Be brief.\n\nUser: Hi?\n\nAssistant: Hello.\n\nUser: 2+2?\n\nAssistant:"
    assert transformers_backend.format_plain is plain.format_plain
    assert transformers_backend.PLAIN_STOPS == plain.PLAIN_STOPS == ("\nUser:",)


def test_generate_cli_through_a_server_never_imports_torch(tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(2)))
    assert CliRunner().invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from hitl_desktop.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        "sys.exit(rc)\n"
    )
    with StubServer() as server:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        out = subprocess.run(
            [sys.executable, "-c", script, "generate", "--db", str(db), "--model", server.url,
             "-k", "3", "--json"],
            capture_output=True, text=True, env=env, timeout=60,
        )
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert (line["prompts"], line["candidates"], line["model"]) == (2, 6, MODEL)
    with Store.open(db) as store:
        rows = list(store.db["candidates"].rows)
    assert len(rows) == 6 and {json.loads(r["params"])["url"] for r in rows} == {server.url}


def test_generate_cli_reports_a_dead_server_in_one_line_and_writes_nothing(tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = runner.invoke(cli, ["generate", "--db", str(db), "--model", url])
    assert out.exit_code == 1
    assert out.output.strip().splitlines()[-1].startswith(f"Error: {url}: cannot reach the server")
    with Store.open(db) as store:
        assert store.db["candidates"].count == 0


def test_the_readme_documents_the_served_contract():
    from hitl_desktop.core.backends.served import (
        API_KEY_VARIABLES,
        DEFAULT_MAX_RETRIES,
        DEFAULT_TIMEOUT,
    )

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Served models"):readme.index("### Comparing checkpoints")]
    assert f"`{API_KEY_VARIABLES[0]}`, else `{API_KEY_VARIABLES[1]}`" in section
    assert f"retried {['never', 'once', 'twice'][DEFAULT_MAX_RETRIES]}" in section
    assert f"no answer within {DEFAULT_TIMEOUT:g} s" in section
    for option in ("--served-model", "--completions"):
        assert option in section and option in CliRunner().invoke(cli, ["generate", "--help"]).output


def test_generate_compares_a_local_and_a_served_model(tmp_path, tiny_model_dir):
    """Repeated --model: each prompt's K candidates shared round-robin between a local
    checkpoint and a served model, each candidate with its own model's provenance."""
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(2)))
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    with StubServer() as server:
        r = runner.invoke(cli, ["generate", "--db", str(db), "--model", str(tiny_model_dir),
                                "--model", server.url, "-k", "4", "--max-new-tokens", "8", "--json"])
        assert r.exit_code == 0, r.output
        served_seeds = sorted(body["seed"] for body in server.completion_requests())
    with Store.open(db) as store:
        rows = sorted(store.db["candidates"].rows, key=lambda row: (row["prompt_id"], row["idx"]))
    assert len(rows) == 8
    local_name = tiny_model_dir.name
    assert [row["model"] for row in rows] == [local_name, MODEL] * 4
    for row in rows:
        params = json.loads(row["params"])
        assert ("url" in params) == (row["model"] == MODEL)
        assert row["dtype"] == ("served" if row["model"] == MODEL else "bfloat16")
    assert served_seeds == sorted(row["seed"] for row in rows if row["model"] == MODEL)
    assert json.loads(r.output.strip().splitlines()[-1])["model"] == f"{local_name} + {MODEL}"


def test_served_and_composite_refuse_k_without_a_seed_each_before_any_request():
    with StubServer(models=["model-a"]) as a, StubServer(models=["model-b"]) as b:
        for backend in (ServedBackend(a.url), open_backend([a.url, b.url])):
            for k, seeds in ((0, []), (3, [1, 2])):
                with pytest.raises(ValueError, match="one seed per candidate"):
                    backend.generate(CONV, k=k, params=PARAMS, seeds=seeds)
        assert a.completion_requests() == [] and b.completion_requests() == []


# -- cut streams (issue 18 item 5): never candidates; retried one at a time; a cap per server --


def test_streams_a_one_at_a_time_server_cuts_are_retried_alone_never_returned_cut():
    """llama-cpp-python's ``interrupt_requests``: of K concurrent streams, every one but the
    last ends after its role chunk with no finish_reason. None of those is a candidate: they
    are written again one request at a time, with the same seeds, and said so."""
    said: list[str] = []
    with StubServer(mode="interrupt") as server:
        backend = ServedBackend(server.url, on_status=said.append)
        shown: dict[int, list[str]] = {}
        result = backend.generate(CONV, k=4, params=PARAMS, seeds=[11, 22, 33, 44],
                                  on_token=lambda i, t: shown.setdefault(i, []).append(t))
        first_round = len(server.completion_requests())
        seeds_sent = [b["seed"] for b in server.completion_requests()]
        again = backend.generate(CONV, k=4, params=PARAMS, seeds=[11, 22, 33, 44])
        later = len(server.completion_requests()) - first_round
    assert [c.text for c in result.candidates] == [expected(s) for s in (11, 22, 33, 44)]
    assert all(c.text and c.finish_reason == "length" and c.tokens == 6 for c in result.candidates)
    assert result.retried == 3 and first_round == 7 and not result.stopped
    assert sorted(seeds_sent) == sorted([11, 22, 33, 44] + [s for s in seeds_sent[4:]])
    assert sum(bool(c.params.get("retried")) for c in result.candidates) == 3
    assert said == result.notes and len(said) == 2
    assert said[0] == (f"{server.url}: 3 answers of 4 cut short by the server (no finish_reason) at 4 streams"
                       " at once; retrying them one at a time")
    assert said[1] == f"{server.url}: sending the next prompts' streams one at a time"
    for i, texts in shown.items():  # what a retried candidate showed before is cleared first
        assert texts[-1] == result.candidates[i].text
    # the backend learnt: the next prompt's streams go one at a time, nothing cut, nothing retried
    assert later == 4 and again.retried == 0 and again.notes == []
    assert [c.text for c in again.candidates] == [c.text for c in result.candidates]
    assert backend.concurrency_for(4) == 1


def test_a_server_that_cuts_even_one_stream_at_a_time_is_one_line_naming_it():
    for mode, why in (("cut", "no finish_reason"), ("empty", "an empty answer")):
        with StubServer(mode=mode) as server:
            with pytest.raises(ServedModelError) as e:
                ServedBackend(server.url).generate(CONV, k=3, params=PARAMS, seeds=[1, 2, 3])
            assert len(server.completion_requests()) == 6  # three at once, then each alone
        message = str(e.value)
        assert "\n" not in message
        assert message == (f"{server.url}: the server cut 3 answers short even one request at a time "
                           f"({why}, seed 1, 2, 3); nothing of this prompt is kept")


def test_max_concurrency_caps_the_streams_sent_to_one_server():
    with StubServer(mode="slow", words=6, delay=0.05) as server:
        result = ServedBackend(server.url, max_concurrency=2).generate(
            CONV, k=4, params=PARAMS, seeds=[1, 2, 3, 4])
        assert server.max_active == 2
    assert [c.text for c in result.candidates] == [expected(s) for s in (1, 2, 3, 4)]
    with StubServer(mode="slow", words=6, delay=0.05) as server:
        ServedBackend(server.url).generate(CONV, k=4, params=PARAMS, seeds=[1, 2, 3, 4])
        assert server.max_active == 4  # default: K at once
    with StubServer() as server, pytest.raises(ValueError, match="at least 1"):
        ServedBackend(server.url, max_concurrency=0)


def test_max_concurrency_one_never_cuts_on_a_one_at_a_time_server():
    with StubServer(mode="interrupt") as server:
        result = ServedBackend(server.url, max_concurrency=1).generate(
            CONV, k=3, params=PARAMS, seeds=[5, 6, 7])
        assert len(server.completion_requests()) == 3 and server.max_active == 1
    assert result.retried == 0 and [c.text for c in result.candidates] == [expected(s) for s in (5, 6, 7)]


def test_generate_cli_against_a_one_at_a_time_server_stores_no_cut_answer(tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(2)))
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    with StubServer(mode="interrupt") as server:
        r = runner.invoke(cli, ["generate", "--db", str(db), "--model", server.url, "-k", "4", "--json"])
        assert r.exit_code == 0, r.output
        sent = len(server.completion_requests())
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert (last["prompts"], last["candidates"], last["retried"]) == (2, 8, 3)
    assert sent == 4 + 3 + 4  # the first prompt: 4 at once, 3 again alone; the second: one at a time
    assert "3 answers of 4 cut short by the server (no finish_reason)" in r.stderr
    with Store.open(db) as store:
        rows = list(store.db["candidates"].rows)
    assert len(rows) == 8 and all(row["text"] for row in rows)
    assert {row["text"] for row in rows} == {expected(row["seed"]) for row in rows}
    assert sum(1 for row in rows if json.loads(row["params"]).get("retried")) == 3
    assert {json.loads(row["params"])["finish_reason"] for row in rows} == {"length"}
    # and said in the plain summary
    db2 = tmp_path / "lab2.db"
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db2)]).exit_code == 0
    with StubServer(mode="interrupt") as server:
        r = runner.invoke(cli, ["generate", "--db", str(db2), "--model", server.url, "-k", "4"])
    assert r.exit_code == 0 and "3 candidates cut short by the server, written again one request at a time." in r.stdout


def test_generate_cli_max_concurrency(tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    with StubServer(mode="slow", words=4, delay=0.05) as server:
        r = runner.invoke(cli, ["generate", "--db", str(db), "--model", server.url, "-k", "4",
                                "--max-concurrency", "2", "--json"])
        assert r.exit_code == 0, r.output
        assert server.max_active == 2
    assert json.loads(r.stdout.strip().splitlines()[-1])["retried"] == 0
    bad = runner.invoke(cli, ["generate", "--db", str(db), "--model", "http://127.0.0.1:1/v1",
                              "--max-concurrency", "0"])
    assert bad.exit_code == 2 and "--max-concurrency" in bad.output


def test_a_server_that_cuts_every_stream_stops_the_cli_in_one_line_and_stores_nothing(tmp_path):
    db = tmp_path / "lab.db"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "q"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(prompts), "--db", str(db)]).exit_code == 0
    with StubServer(mode="cut") as server:
        r = runner.invoke(cli, ["generate", "--db", str(db), "--model", server.url, "-k", "2"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"Error: generation failed: {server.url}: the server cut 2 answers short even one request at a time"
        " (no finish_reason, seed " + ", ".join(str(s) for s in _seeds_of(db)) + "); nothing of this prompt is kept")
    with Store.open(db) as store:
        assert store.db["candidates"].count == 0


def _seeds_of(db: Path) -> list[int]:
    from hitl_desktop.core.engine import seeds_for

    with Store.open(db) as store:
        prompt = store.queued_prompts(without_candidates=True)[0]
    return seeds_for(prompt, base_seed=0, k=2)
