"""Fixtures for the core tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Gemma 3 text model + byte-level BPE tokenizer, no chat template (plain format)."""
    from hitl_desktop.core.backends.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-gemma3")


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory):
    """A tiny random Llama model whose tokenizer has a Gemma-style chat template."""
    from hitl_desktop.core.backends.tiny import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-chat-model") / "tiny-llama-chat", chat=True
    )
