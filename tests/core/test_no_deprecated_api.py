"""CI check: our use of transformers and torch raises no deprecation or future warning.

Loading and generating (the dynamic and the static KV cache paths, a base and a chat model,
from a folder and from a GGUF file) run with FutureWarning and DeprecationWarning as errors,
and transformers' own logged deprecation notices (``logger.warning_once``) fail the test too.
A new transformers that deprecates something we call fails here before it breaks.
"""

from __future__ import annotations

import logging
import warnings

import pytest

from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.types import Message

pytest.importorskip("torch")


def test_loading_and_generating_use_no_deprecated_api(tiny_model_dir, tiny_chat_model_dir, tmp_path, caplog):
    from hitl_desktop.core.backends.tiny import build_tiny_gguf
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    gguf = build_tiny_gguf(tmp_path / "tiny.gguf")
    conv = [Message("system", "Be brief."), Message("user", "What is the capital of France?")]
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, repetition_penalty=1.1, max_new_tokens=12)
    caplog.set_level(logging.WARNING, logger="transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        for source in (tiny_model_dir, tiny_chat_model_dir, gguf):
            backend = TransformersBackend.load(source, cache_dir=tmp_path / "cache")
            for fast in (False, True):
                backend.fast_decode = fast
                result = backend.generate(conv, k=3, params=params, seeds=[1, 2, 3])
                assert len(result.candidates) == 3
    notices = [r.getMessage() for r in caplog.records if "deprecat" in r.getMessage().lower()]
    assert not notices, notices
