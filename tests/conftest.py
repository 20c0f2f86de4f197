"""Fixtures for every test: a fresh database per test, never the user's own."""

from __future__ import annotations

import os

# Headless and offline, before anything imports Qt or transformers.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from hitl_desktop.core.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's own database or settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HITL_DESKTOP_DB", str(home / "default.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))


@pytest.fixture
def store():
    """A fresh in-memory store."""
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "hitl.db"
