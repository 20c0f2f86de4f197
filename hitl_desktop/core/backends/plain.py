"""The plain ``User:`` / ``Assistant:`` prompt format, without torch.

One definition for every backend, importable where torch must not be loaded: the local
transformers backend uses it for a model without a chat template, and the served backend sends
it to a base model served without one (``--completions``), cutting each answer at the next
``User:`` turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from hitl_desktop.core.types import Message

PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
#: Where an answer in the plain format ends: the model starting the next user turn.
PLAIN_STOPS = ("\nUser:",)


def format_plain(conversation: Sequence[Message]) -> str:
    """The plain prompt for a base model: ``Role: content`` turns, then ``Assistant:``."""
    parts = [
        f"{PLAIN_ROLES.get(m.role, m.role.capitalize())}: {m.content.strip()}\n\n"
        for m in conversation
    ]
    return "".join(parts) + "Assistant:"


def cut_at_stop(text: str, stops: Sequence[str] = PLAIN_STOPS) -> tuple[str, bool]:
    """``(text before the first stop string, whether one was found)``."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def held_back(text: str, stops: Sequence[str] = PLAIN_STOPS) -> str:
    """``text`` without a trailing start of a stop string (it may still become one)."""
    cut = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                cut = max(cut, n)
                break
    return text[: len(text) - cut] if cut else text
