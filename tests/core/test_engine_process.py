"""The generation process: a model in a child process behind the ModelBackend protocol.

Most tests use the torch-free loaders of engine_loaders.py (fast children); one loads the tiny
real model in the child and checks it writes exactly what the in-process backend writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hitl_desktop.core.backends.base import ModelBackend, ModelError, SamplingParams
from hitl_desktop.core.backends.process import (
    EngineDied,
    TokenCoalescer,
    open_local_backend,
)
from hitl_desktop.core.types import Message

CONV = [Message("user", "What is the capital of France?")]
LONG = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=400)


@pytest.fixture
def slow():
    backend = open_local_backend("slow-model", loader="engine_loaders:slow")
    yield backend
    backend.close()


def test_load_progress_crosses_and_the_proxy_is_a_model_backend():
    seen = []
    backend = open_local_backend("x", loader="engine_loaders:slow", on_progress=lambda f, m: seen.append((f, m)))
    try:
        assert isinstance(backend, ModelBackend)
        assert (0.5, "half way") in seen and (1.0, "slow fake ready") in seen
        assert (backend.name, backend.revision, backend.dtype, backend.device) == (
            "slow-fake", "rev-slow", "float32", "cpu",
        )
        assert backend.pid != os.getpid() and backend.alive
    finally:
        backend.close()
    assert not backend.alive


def test_streams_coalesced_updates_and_returns_the_result(slow):
    updates: list[tuple[int, str]] = []
    params = SamplingParams(max_new_tokens=6)
    result = slow.generate(CONV, k=3, params=params, seeds=[7, 8, 9], on_token=lambda i, t: updates.append((i, t)))
    assert [c.text for c in result.candidates] == [
        " ".join(f"w{s}-{seed}" for s in range(6)) for seed in (7, 8, 9)
    ]
    assert result.params["child_pid"] == slow.pid and result.device == "cpu"
    # every candidate's last update is its final text, and texts only grow
    for i, c in enumerate(result.candidates):
        mine = [t for j, t in updates if j == i]
        assert mine[-1] == c.text
        assert all(b.startswith(a) for a, b in zip(mine, mine[1:]))
    # a second request on the same child
    again = slow.generate(CONV, k=2, params=params, seeds=[1, 2])
    assert [c.seed for c in again.candidates] == [1, 2]


def test_stop_is_honoured_within_one_step(slow):
    asked_at: list[float] = []

    def should_stop():
        if not asked_at and time.perf_counter() - t0 > 0.3:
            asked_at.append(time.perf_counter())
        return bool(asked_at)

    t0 = time.perf_counter()
    result = slow.generate(CONV, k=4, params=LONG, seeds=[1, 2, 3, 4], should_stop=should_stop)
    latency = time.perf_counter() - asked_at[0]
    assert result.stopped
    assert all(c.finish_reason == "stopped" for c in result.candidates)
    assert 0 < result.candidates[0].tokens < 100
    # one step is 50 ms; the stop crosses the pipe and is read before the next step
    assert latency < 0.5, latency


def test_a_killed_child_is_a_model_error_and_the_proxy_stays_dead(slow):
    killed = []

    def on_token(i, text):
        if not killed:
            killed.append(True)
            os.kill(slow.pid, signal.SIGKILL)

    with pytest.raises(EngineDied, match="SIGKILL.*restart the model") as err:
        slow.generate(CONV, k=2, params=LONG, seeds=[1, 2], on_token=on_token)
    assert isinstance(err.value, ModelError)
    assert not slow.alive
    t0 = time.perf_counter()
    with pytest.raises(EngineDied):
        slow.generate(CONV, k=2, params=LONG, seeds=[1, 2])
    assert time.perf_counter() - t0 < 1.0


def test_memory_error_in_the_child_is_a_model_error_and_ends_it():
    backend = open_local_backend("x", loader="engine_loaders:memory_hog")
    try:
        streamed = []
        with pytest.raises(EngineDied, match="out of memory"):
            backend.generate(CONV, k=2, params=LONG, seeds=[1, 2], on_token=lambda i, t: streamed.append(t))
        backend._process.join(5)
        assert backend._process.exitcode == 3 and not backend.alive
    finally:
        backend.close()


def test_load_failures_are_model_errors_with_the_reason():
    with pytest.raises(ModelError, match="bad-path: not a model this test accepts"):
        open_local_backend("bad-path", loader="engine_loaders:refuses")
    with pytest.raises(ModelError, match="MemoryError"):
        open_local_backend("big", loader="engine_loaders:refuses_with_memory_error")


def test_a_bad_loader_or_a_child_that_dies_while_loading():
    with pytest.raises(ModelError, match="ModuleNotFoundError"):
        open_local_backend("x", loader="no_such_module_anywhere:load")


def test_the_parent_side_does_not_import_torch():
    code = (
        "import sys, hitl_desktop.core.backends.process as p, hitl_desktop.core.backends.devices;"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_token_coalescer_keeps_the_latest_text_per_candidate(monkeypatch):
    batches = []
    now = [1.0]
    monkeypatch.setattr("hitl_desktop.core.backends.process.time.monotonic", lambda: now[0])
    c = TokenCoalescer(batches.append, interval=0.03)
    c(0, "a")  # first: sent at once
    c(0, "ab")
    c(1, "x")
    c(0, "abc")  # within the interval: held
    now[0] = 1.05
    c(1, "xy")  # interval passed: the latest of each
    c(1, "xyz")
    c.flush()
    assert batches == [{0: "a"}, {0: "abc", 1: "xy"}, {1: "xyz"}]


def test_the_child_writes_what_the_in_process_backend_writes(tiny_model_dir):
    """The real tiny model in a child: same seeds, same candidates, device recorded."""
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=16)
    seeds = [11, 12, 13, 14]
    in_process = TransformersBackend.load(tiny_model_dir)
    local = in_process.generate(CONV, k=4, params=params, seeds=seeds)
    progress = []
    backend = open_local_backend(str(tiny_model_dir), device="cpu", on_progress=lambda f, m: progress.append(m))
    try:
        streamed: dict[int, str] = {}
        remote = backend.generate(CONV, k=4, params=params, seeds=seeds, on_token=streamed.__setitem__)
    finally:
        backend.close()
    assert [c.text for c in remote.candidates] == [c.text for c in local.candidates]
    assert [c.tokens for c in remote.candidates] == [c.tokens for c in local.candidates]
    assert {i: t for i, t in streamed.items() if t} == {c.index: c.text for c in remote.candidates if c.text}
    assert remote.device == "cpu" and remote.params["device"] == "cpu"
    assert backend.device == "cpu" and backend.dtype == "bfloat16"
    assert backend.weights == in_process.weights  # int8 on the CPU: the window shows it
    assert any("ready" in m for m in progress)


def test_the_protocol_doc_and_the_readme_match_the_code():
    """Every message type the engine sends is in docs/engine-protocol.md; every device choice
    and the --device option are in the README."""
    import re
    from pathlib import Path

    from hitl_desktop.core.backends import process
    from hitl_desktop.core.backends.devices import DEVICE_CHOICES

    root = Path(__file__).resolve().parents[2]
    source = Path(process.__file__).read_text(encoding="utf-8")
    kinds = set(re.findall(r'"type": "(\w+)"', source)) | set(re.findall(r'kind == "([a-z_]+)"', source))
    assert {"generate", "stop", "shutdown", "progress", "ready", "load_failed", "tokens", "result", "error"} <= kinds
    doc = (root / "docs" / "engine-protocol.md").read_text(encoding="utf-8")
    assert not [k for k in kinds if f"| `{k}` |" not in doc]
    assert f"`PROTOCOL_VERSION = {process.PROTOCOL_VERSION}`" in doc
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "[--device D]" in readme
    assert not [d for d in DEVICE_CHOICES if f"| `{d}`" not in readme]


def test_close_during_a_generation_stops_it_and_ends_the_child(slow):
    import threading

    errors = []

    def run():
        try:
            slow.generate(CONV, k=2, params=LONG, seeds=[1, 2])
        except Exception as e:  # noqa: BLE001 - the result or the error, whichever comes
            errors.append(e)

    started = threading.Event()
    original = slow._receive

    def receive(timeout):
        started.set()
        return original(timeout)

    slow._receive = receive
    t = threading.Thread(target=run)
    t.start()
    started.wait(5)
    time.sleep(0.2)
    t0 = time.perf_counter()
    slow._conn.send({"type": "shutdown"})  # as close() sends it
    t.join(10)
    slow._process.join(5)
    assert not t.is_alive() and slow._process.exitcode == 0
    assert time.perf_counter() - t0 < 2.0  # not the 20 s the request would take


def test_bad_arguments_are_the_child_backends_value_error(tiny_model_dir):
    backend = open_local_backend(str(tiny_model_dir), device="cpu")
    try:
        with pytest.raises(ValueError, match="one seed per candidate"):
            backend.generate(CONV, k=3, params=SamplingParams(max_new_tokens=2), seeds=[1, 2])
        assert backend.alive  # a refused request leaves the child serving
        ok = backend.generate(CONV, k=2, params=SamplingParams(max_new_tokens=2), seeds=[1, 2])
        assert len(ok.candidates) == 2
    finally:
        backend.close()


def test_end_loading_stops_a_load_in_its_thread_at_once():
    """Closing the app mid-load: the thread waiting for the model process returns at once,
    with a message that says why, and a load in another thread is left alone."""
    import threading

    from hitl_desktop.core.backends.process import end_loading

    outcome: dict[str, object] = {}
    loading = threading.Event()

    def load() -> None:
        outcome["thread"] = threading.get_ident()
        try:
            open_local_backend(
                "big",
                loader="engine_loaders:never_ready",
                on_progress=lambda f, m: loading.set() if m == "reading the weights" else None,  # the child's
            )
        except EngineDied as e:
            outcome["error"] = str(e)

    t = threading.Thread(target=load)
    t.start()
    assert loading.wait(60), "the child never reported progress"
    assert end_loading(threading.get_ident()) == 0  # not this thread's load
    t0 = time.monotonic()
    assert end_loading(outcome["thread"]) == 1
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert outcome["error"] == "big: loading stopped, the app is closing"
    assert end_loading(outcome["thread"]) == 0  # nothing left loading


_PARENT = """
import sys, time
sys.path.insert(0, sys.argv[2])
import multiprocessing
from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.backends.process import open_local_backend
from hitl_desktop.core.types import Message

state = sys.argv[1]
if state == "loading":
    def progress(fraction, message):
        if message == "reading the weights":
            print("child", multiprocessing.active_children()[0].pid, flush=True)
    open_local_backend("big", loader="engine_loaders:never_ready", on_progress=progress)
backend = open_local_backend("x", loader="engine_loaders:slow")
if state == "idle":
    print("child", backend.pid, flush=True)
    time.sleep(600)
said = []
def on_token(i, text):
    if not said:
        said.append(1)
        print("child", backend.pid, flush=True)
backend.generate([Message("user", "q")], k=3, params=SamplingParams(max_new_tokens=2000),
                 seeds=[1, 2, 3], on_token=on_token)
"""


def _ended(pid: int) -> bool:
    """Gone, or a zombie nobody reaps (its parent was killed; a container's init may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("state", ["loading", "idle", "generating"])
def test_the_child_ends_quietly_when_its_parent_is_killed(tmp_path, state):
    """A SIGKILL of the window (the parent): the model process sees its pipe close and ends at
    once, whether it was loading, idle or streaming, with nothing on stderr (no BrokenPipeError)."""
    here = os.path.dirname(os.path.abspath(__file__))
    err = tmp_path / "stderr.txt"
    root = os.path.dirname(os.path.dirname(here))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, here])}
    with open(err, "w") as stderr:
        parent = subprocess.Popen([sys.executable, "-c", _PARENT, state, here], stdout=subprocess.PIPE,
                                  stderr=stderr, text=True, env=env)
        try:
            line = parent.stdout.readline()
            assert line.startswith("child "), f"no child pid: {line!r} {err.read_text()}"
            child = int(line.split()[1])
            time.sleep(0.3)  # the child is loading / idle / streaming
            assert not _ended(child)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            deadline = time.monotonic() + 10
            while not _ended(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _ended(child), f"the model process outlived its parent ({state})"
        finally:
            if parent.poll() is None:
                parent.kill()
            parent.stdout.close()
    time.sleep(0.2)  # anything the child wrote on its way out
    assert err.read_text() == ""


def test_the_model_process_sets_the_model_environment_before_loading(monkeypatch):
    """The defaults of runtime.MODEL_ENVIRONMENT are set in the child, before its loader
    imports torch, and a variable already set is left as it is."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    with pytest.raises(ModelError) as e:
        open_local_backend("x", loader="engine_loaders:reports_environment")
    # the window's: a short spin before a waiting thread sleeps (runtime.WINDOW_ENVIRONMENT)
    assert str(e.value) == (
        "environment: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GOMP_SPINCOUNT=2000"
    )
    # a headless parent (the command line): libgomp's own spin before a thread sleeps
    with pytest.raises(ModelError) as e:
        open_local_backend("x", loader="engine_loaders:reports_environment", headless=True)
    assert str(e.value).endswith(" GOMP_SPINCOUNT=300000")
    assert "GOMP_SPINCOUNT" not in os.environ  # set in the child only
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")  # the user's own setting wins
    with pytest.raises(ModelError) as e:
        open_local_backend("x", loader="engine_loaders:reports_environment", headless=True)
    assert str(e.value).endswith(" GOMP_SPINCOUNT=0")
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with pytest.raises(ModelError, match="OMP_WAIT_POLICY=ACTIVE .* GOMP_SPINCOUNT=$"):
        open_local_backend("x", loader="engine_loaders:reports_environment")
    # the user's wait policy: no spin count of ours overrides it, headless or not
    with pytest.raises(ModelError, match="OMP_WAIT_POLICY=ACTIVE .* GOMP_SPINCOUNT=$"):
        open_local_backend("x", loader="engine_loaders:reports_environment", headless=True)
    assert "OMP_WAIT_POLICY" in os.environ and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_importing_the_backend_modules_sets_no_environment_variable():
    code = (
        "import os, torch, transformers; before = dict(os.environ)  # what torch sets itself\n"
        "import hitl_desktop.core.backends.transformers_backend, hitl_desktop.core.backends.loading\n"
        "import hitl_desktop.core.backends.runtime, hitl_desktop.core.backends.process\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "changed -= {'TORCHINDUCTOR_CACHE_DIR'}  # torch's inductor sets its own on import\n"
        "assert not changed, changed\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_apply_model_environment_keeps_what_is_set():
    from hitl_desktop.core.backends.runtime import (
        HEADLESS_ENVIRONMENT,
        MODEL_ENVIRONMENT,
        WINDOW_ENVIRONMENT,
        apply_model_environment,
    )

    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    added = apply_model_environment(env)
    assert env == {**MODEL_ENVIRONMENT, "OMP_WAIT_POLICY": "ACTIVE"}
    assert added == {k: v for k, v in MODEL_ENVIRONMENT.items() if k != "OMP_WAIT_POLICY"}
    assert apply_model_environment(env) == {}
    # no wait setting of the user's: ours, with the window's or the command line's spin
    assert apply_model_environment({}) == {**MODEL_ENVIRONMENT, **WINDOW_ENVIRONMENT}
    assert apply_model_environment({}, headless=True) == {**MODEL_ENVIRONMENT, **HEADLESS_ENVIRONMENT}
    env = {"GOMP_SPINCOUNT": "0"}
    assert apply_model_environment(env, headless=True) == MODEL_ENVIRONMENT
    assert env["GOMP_SPINCOUNT"] == "0"
