"""A small stand-in for an OpenAI-compatible server, on 127.0.0.1, for the served backend's tests.

``StubServer(mode=...)`` runs ``http.server`` in a thread (``with StubServer() as s: s.url``).
Modes: "ok" (answers: each chunk one word, the words chosen by the request's seed, with a
usage chunk at the end; or ``text``, three characters a chunk), "slow" (like ok, one chunk per ``delay`` seconds, ``words`` of them),
"401", "404" (the model list answers but every completion is a 404), "no-models" (``/models``
is a 404: not an OpenAI server), "500", "429", "hang" (headers never come), "stall" (one piece, then
nothing), "garbage" (a stream
of invalid JSON), "several" (lists several models), "interrupt" (one request at a time, the way
llama-cpp-python's server does with ``interrupt_requests``: a request waits for the one before
it, and a running stream that sees another waiting ends after its current chunk with ``[DONE]``
and no finish_reason; each stream starts with a role chunk), "cut" (every stream ends after
its role chunk, alone or not), "empty" (finish_reason "stop" and no text). Every request is
recorded in ``server.requests`` as ``(method, path, headers, body)``; ``server.max_active`` is
the most completion requests it has had in flight at once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
MODEL = "stub-model"


def answer_words(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(WORDS) for _ in range(n)]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up (a closed stream) is expected here


class LocalServer:
    """An ``http.server`` on 127.0.0.1 in a thread, for a stub: ``with Stub() as s: s.url``.
    A subclass calls ``_serve(handler)`` in its ``__init__``; ``closed`` is set on exit."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.closed = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self):  # the subclass itself
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler with ``_json(status, obj)``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, obj: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        self.wfile.flush()


class StubServer(LocalServer):
    def __init__(
        self, *, mode: str = "ok", words: int = 6, delay: float = 0.0, models: list[str] | None = None,
        text: str | None = None,
    ) -> None:
        self.mode = mode
        self.text = text
        self.words = words
        self.delay = delay
        self.models = models or ([MODEL, "other-model"] if mode == "several" else [MODEL])
        self.requests: list[tuple[str, str, dict[str, str], dict]] = []
        self.active = 0
        self.max_active = 0
        self._count_lock = threading.Lock()
        # llama-cpp-python's two locks: a request takes the outer, then the inner (waiting for
        # the running one), then lets the outer go; a stream that finds the outer taken ends
        self.outer = threading.Lock()
        self.inner = threading.Lock()
        self._serve(self._handler())

    def completion_requests(self) -> list[dict]:
        return [body for method, path, _, body in self.requests if path.endswith("completions")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(JsonHandler):
            def _error(self, status: int, message: str) -> None:
                self._json(status, {"error": {"message": message, "type": "error", "code": status}})

            def do_GET(self) -> None:
                stub.requests.append(("GET", self.path, dict(self.headers), {}))
                if stub.mode == "401":
                    return self._error(401, "Incorrect API key provided")
                if stub.mode in ("no-models", "500"):
                    return self._error(404 if stub.mode == "no-models" else 500, "no such route")
                if self.path.rstrip("/").endswith("/models"):
                    return self._json(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "stub"} for m in stub.models
                    ]})
                return self._error(404, "no such route")

            def do_POST(self) -> None:
                with stub._count_lock:
                    stub.active += 1
                    stub.max_active = max(stub.max_active, stub.active)
                self._in_flight = True
                try:
                    self._post()
                finally:
                    self._leave()

            def _leave(self) -> None:
                """No longer in flight: said before the stream's last bytes, which the client
                may answer with its next request at once."""
                if getattr(self, "_in_flight", False):
                    self._in_flight = False
                    with stub._count_lock:
                        stub.active -= 1

            def _done(self) -> None:
                self._leave()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(("POST", self.path, dict(self.headers), body))
                mode = stub.mode
                if mode == "interrupt":
                    with stub.outer:
                        stub.inner.acquire()
                    try:
                        return self._stream(body, mode)
                    finally:
                        stub.inner.release()
                return self._stream(body, mode)

            def _stream(self, body: dict, mode: str) -> None:
                if mode == "401":
                    return self._error(401, "Incorrect API key provided")
                if mode == "404":
                    return self._error(404, f"The model `{body.get('model')}` does not exist")
                if mode == "500":
                    return self._error(500, "internal error")
                if mode == "429":
                    return self._error(429, "slow down")
                if mode == "hang":
                    stub.closed.wait(30)
                    return None
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if mode == "stall":  # one piece, then nothing more
                    self._event({"id": "x", "object": "chunk", "created": 0, "model": body.get("model"),
                                 "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]})
                    stub.closed.wait(30)
                    return None
                if mode == "garbage":
                    self.wfile.write(b"data: {this is not json\n\n")
                    self.wfile.flush()
                    return None
                chat = self.path.endswith("chat/completions")
                words = answer_words(int(body.get("seed") or 0), stub.words)
                if stub.text is not None:  # that text, three characters a piece
                    words = [stub.text[i:i + 3] for i in range(0, len(stub.text), 3)]
                if mode == "empty":
                    words = []
                try:
                    if mode in ("interrupt", "cut"):  # llama-cpp-python's first chunk: the role
                        role = {"index": 0, "finish_reason": None}
                        role["delta" if chat else "text"] = {"role": "assistant"} if chat else ""
                        self._event({"id": "x", "object": "chunk", "created": 0, "model": body.get("model"),
                                     "choices": [role]})
                        time.sleep(0.2)  # the other requests arrive meanwhile (on a loaded machine too)
                        if mode == "cut" or stub.outer.locked():
                            self._done()
                            return None
                    for n, word in enumerate(words):
                        piece = word if n == 0 or stub.text is not None else " " + word
                        choice = {"index": 0, "finish_reason": None}
                        if chat:
                            choice["delta"] = {"content": piece}
                        else:
                            choice["text"] = piece
                        self._event({"id": "x", "object": "chunk", "created": 0, "model": body.get("model"),
                                     "choices": [choice]})
                        if stub.delay and stub.closed.wait(stub.delay):
                            return None
                    last = {"index": 0, "finish_reason": "stop" if mode == "empty" else "length"}
                    last["delta" if chat else "text"] = {} if chat else ""
                    usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
                    self._event({"id": "x", "object": "chunk", "created": 0, "model": body.get("model"),
                                 "choices": [last], "usage": usage})
                    self._done()
                except (BrokenPipeError, ConnectionResetError):
                    return None
                return None

        return Handler


def free_port() -> int:
    """A port nothing listens on (for the refused-connection test)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":  # python openai_stub.py MODE: serve until killed, print the URL
    import sys

    with StubServer(mode=sys.argv[1] if len(sys.argv) > 1 else "ok") as server:
        print(server.url, flush=True)
        while True:
            time.sleep(3600)
