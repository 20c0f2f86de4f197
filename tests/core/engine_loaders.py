"""Loaders the generation process's tests give the child (``loader="engine_loaders:NAME"``).

The child is a fresh interpreter (spawn) that imports this module from the test folder (it is
on the parent's sys.path, which the child inherits). None of them imports torch, so these
children start in a fraction of a second.
"""

from __future__ import annotations

import os
import time

from hitl_desktop.core.backends.base import (
    GeneratedText,
    GenerationResult,
    ModelError,
    SamplingParams,
)

#: Seconds per decoding step of the slow backend.
STEP_S = 0.05


class SlowBackend:
    """Writes ``word{step}`` per candidate per step, one step every STEP_S, for a long time."""

    name = "slow-fake"
    revision = "rev-slow"
    dtype = "float32"
    device = "cpu"

    def __init__(self, *, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def generate(self, conversation, *, k, params: SamplingParams, seeds, on_token=None, should_stop=None):
        texts = [""] * k
        stopped = False
        steps = 0
        for step in range(params.max_new_tokens):
            if should_stop is not None and should_stop():
                stopped = True
                break
            if self.fail_at is not None and step == self.fail_at:
                raise MemoryError()
            steps += 1
            for i in range(k):
                texts[i] += f"w{step}-{seeds[i]} "
                if on_token is not None:
                    on_token(i, texts[i].strip())
            time.sleep(STEP_S)
        return GenerationResult(
            candidates=[
                GeneratedText(i, texts[i].strip(), seeds[i], steps, 0.0,
                              "stopped" if stopped else "length")
                for i in range(k)
            ],
            model=self.name,
            model_revision=self.revision,
            dtype=self.dtype,
            params={**params.to_dict(), "device": self.device, "child_pid": os.getpid()},
            stopped=stopped,
        )


def slow(path, *, device=None, on_progress=None):
    on_progress(0.5, "half way")
    on_progress(1.0, "slow fake ready")
    return SlowBackend()


def memory_hog(path, *, device=None, on_progress=None):
    return SlowBackend(fail_at=2)


def refuses(path, *, device=None, on_progress=None):
    raise ModelError(f"{path}: not a model this test accepts")


def refuses_with_memory_error(path, *, device=None, on_progress=None):
    raise MemoryError()


def flaky_tiny(path, *, device=None, on_progress=None):
    """The real tiny model (imports torch) whose second generation raises a RuntimeError."""
    from hitl_desktop.core.backends.transformers_backend import load_backend

    backend = load_backend(path, device=device, on_progress=on_progress)
    real = backend.generate
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory in the attention")
        return real(*a, **kw)

    backend.generate = flaky
    return backend


def never_ready(path, *, device=None, on_progress=None):
    """A load that does not finish (a big model on a slow disk): only ending the process stops it."""
    on_progress(0.1, "reading the weights")
    time.sleep(600)
    raise ModelError("never reached")


def reports_environment(path, *, device=None, on_progress=None):
    """Says, as its load failure, the model environment the child runs under."""
    raise ModelError("environment: " + " ".join(
        f"{name}={os.environ.get(name, '')}" for name in ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GOMP_SPINCOUNT")
    ))
