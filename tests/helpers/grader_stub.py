"""A stand-in for an OpenAI-compatible server answering HealthBench-style grading requests.

``GraderStub(mode=...)`` serves /v1/models and /v1/chat/completions (streamed or not) on
127.0.0.1 in a thread. The verdict is a rule the tests can compute: a rubric item is met when
its last word appears in the assistant's answer (the last ``assistant:`` turn). Modes: "ok"
(fenced JSON reply), "garbage" (never JSON), "flaky" (the first request for each rubric item and
answer is garbage, the second is good JSON), "hang" (no answer for ``hang`` seconds), "slow"
(good JSON after ``delay`` seconds). ``requests`` counts the completion requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler

from openai_stub import JsonHandler, LocalServer

MODEL = "grader-model"
_ITEM = re.compile(r"# Rubric item\n\[(-?[\d.]+)\] (.*?)\n\n# Instructions", re.S)


def verdict(prompt: str) -> bool:
    item = _ITEM.search(prompt)
    convo = prompt.split("# Conversation\n", 1)[1].split("\n\n# Rubric item", 1)[0]
    answer = convo.rsplit("assistant: ", 1)[-1]
    word = item.group(2).split()[-1].strip(".").lower() if item else ""
    return bool(word) and word in answer.lower()


class GraderStub(LocalServer):
    def __init__(self, *, mode: str = "ok", hang: float = 30.0, delay: float = 0.0) -> None:
        self.mode, self.hang, self.delay = mode, hang, delay
        self.requests = 0
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self._serve(self._handler())

    def reply(self, prompt: str) -> str:
        with self.lock:
            self.requests += 1
            n = self.seen[prompt] = self.seen.get(prompt, 0) + 1
        if self.mode == "garbage" or (self.mode == "flaky" and n == 1):
            return "I think it is fine, really."
        met = verdict(prompt)
        return "```json\n" + json.dumps({"explanation": f"rule says {met}", "criteria_met": met}) + "\n```"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "x"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if stub.mode == "hang":
                    stub.closed.wait(stub.hang)
                    return
                if stub.delay:
                    time.sleep(stub.delay)
                text = stub.reply(body["messages"][-1]["content"])
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                if not body.get("stream"):
                    return self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": text}}],
                                       "usage": usage})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                        self._event({"id": "x", "object": "chunk", "created": 0, "model": MODEL,
                                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                    self._event({"id": "x", "object": "chunk", "created": 0, "model": MODEL,
                                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


if __name__ == "__main__":  # python grader_stub.py [MODE] [DELAY]: serve until killed, print the URL
    import sys

    with GraderStub(mode=sys.argv[1] if len(sys.argv) > 1 else "ok",
                    delay=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0) as server:
        print(server.url, flush=True)
        while True:
            time.sleep(3600)
