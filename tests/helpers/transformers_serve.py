"""``transformers serve`` on 127.0.0.1 for a model folder: a real OpenAI-compatible server, for
the served backend's tests (tests/core/test_served_real.py) and benchmarks/bench_served.py.

``with serving(folder) as (url, seconds): ...`` starts it on a free port, waits until
``/v1/models`` answers (``seconds``: how long that took), and ends it on the way out. It needs
``transformers[serving]`` (``scripts/setup.sh --dev``). Nothing is fetched: the hub is off.
``local_server(command, what=...)`` does the same for any such server (llama-cpp-python's too)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: ``transformers serve``, run by this Python (the ``transformers`` script may not be on PATH)
SERVE = (
    "import sys; from transformers.cli.transformers import main; "
    "sys.argv[0] = 'transformers'; sys.exit(main())"
)


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(
    model_dir: Path, *, log: Path | None = None, timeout: float = 120.0
) -> Iterator[tuple[str, float]]:
    """``(url, seconds to start)`` of ``transformers serve`` serving ``model_dir`` on the CPU;
    its output goes to ``log`` (else to a temporary file, removed afterwards); its end is in
    the error when it does not start."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-c", SERVE, "serve", str(model_dir), "--host", "127.0.0.1",
            "--port", str(port), "--device", "cpu", "--log-level", "warning",
        ]  # fmt: skip

    with local_server(command, what="transformers serve", env=env, log=log, timeout=timeout) as served:
        yield served


@contextmanager
def local_server(
    command: Callable[[int], list[str]], *, what: str, env: dict[str, str] | None = None,
    log: Path | None = None, timeout: float = 120.0,
) -> Iterator[tuple[str, float]]:
    """``(url, seconds to start)`` of the OpenAI-compatible server ``command(port)`` starts on
    127.0.0.1 (a free port), once its ``/v1/models`` answers; ended on the way out. Its output
    goes to ``log`` (else to a temporary file, removed afterwards); :class:`ServerDidNotStart`
    (naming ``what``, with the output's end) when it exits or does not answer in ``timeout``."""
    own_log = log is None
    if own_log:
        handle, name = tempfile.mkstemp(prefix="local-server-", suffix=".log")
        os.close(handle)
        log = Path(name)
    port = free_port()
    out = open(log, "wb")  # noqa: SIM115 - closed below
    start = time.perf_counter()
    proc = subprocess.Popen(command(port), stdout=out, stderr=subprocess.STDOUT,
                            env=env if env is not None else {**os.environ})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - start > timeout:
                proc.kill()
                said = log.read_text(errors="replace")
                raise ServerDidNotStart(f"{what} did not start: {said[-2000:]}")
            time.sleep(0.25)
        yield url, time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        if own_log:
            log.unlink(missing_ok=True)
