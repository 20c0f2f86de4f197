"""A small fake model backend (the ModelBackend protocol): streams words, honours should_stop."""

from __future__ import annotations

import time

from hitl_desktop.core.backends.base import (
    GeneratedText,
    GenerationResult,
    ModelError,
    SamplingParams,
)

WORDS = ["Metformin", "**should", "be", "reduced**", "when", "eGFR", "falls", "below", "45", "and", "stopped", "below", "30.", "Check", "renal", "function", "every", "3–6", "months;", "consider", "an", "SGLT2", "inhibitor.", "|", "eGFR", "|", "action", "|\n|---|---|\n|", "≥45", "|", "continue", "|\n|", "30–44", "|", "reduce", "|\n|", "<30", "|", "stop", "|\n"]  # noqa: SIM905


class FakeBackend:
    name = "fake-model"
    revision = "fake-rev-1"
    dtype = "float32"

    def __init__(self, *, delay: float = 0.0005, words: int = 40, fail: bool = False) -> None:
        self.delay = delay
        self.words = words
        self.fail = fail
        self.calls = 0

    def generate(self, conversation, *, k, params: SamplingParams, seeds, on_token=None, should_stop=None):
        self.calls += 1
        if self.fail:
            raise ModelError("fake failure: out of memory")
        t0 = time.perf_counter()
        texts = [""] * k
        counts = [0] * k
        stopped = False
        for step in range(self.words):
            if should_stop is not None and should_stop():
                stopped = True
                break
            for i in range(k):
                w = WORDS[(step + 3 * i + seeds[i]) % len(WORDS)]
                texts[i] += ("" if step == 0 else " ") + w
                counts[i] += 1
                if on_token is not None:
                    on_token(i, f"Answer {seeds[i] % 97}: " + texts[i])
            if self.delay:
                time.sleep(self.delay)
        secs = time.perf_counter() - t0
        return GenerationResult(
            candidates=[
                GeneratedText(
                    index=i,
                    text=f"Answer {seeds[i] % 97}: " + texts[i] if texts[i] else "",
                    seed=seeds[i],
                    tokens=counts[i],
                    seconds=secs,
                    finish_reason="stopped" if stopped else "length",
                )
                for i in range(k)
            ],
            model=self.name,
            model_revision=self.revision,
            dtype=self.dtype,
            params=params.to_dict(),
            seconds=secs,
            stopped=stopped,
        )


def fake_factory(backend: FakeBackend):
    def factory(path, on_progress):
        on_progress(0.5, "loading fake")
        on_progress(1.0, "ready")
        return backend

    return factory


def press(qtbot, window, key, modifier=None):
    """A key press as the tutor makes it: to the focused widget of the (active) window."""
    from PySide6.QtCore import Qt

    target = window.focusWidget() or window
    qtbot.keyClick(target, key, modifier or Qt.KeyboardModifier.NoModifier)


def wait_ready(qtbot, window, timeout=20000):
    """Wait until the bench's candidates can be judged."""
    qtbot.waitUntil(lambda: window.bench.phase == "judging" and not window.model.is_generating(), timeout=timeout)
