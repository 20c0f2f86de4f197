"""What the rubric panel, the grading grid and the rubric charts share: how points, axes and
scores are written, the theme colours they use, and how a view keeps its keys from the
window's one-key shortcuts."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence

from hitl_desktop.core.rubrics import AXES, AXIS_PREFIX

AXIS_LABELS = {a: a.replace("_", " ") for a in AXES}
NO_AXIS = "(no axis)"


def points_text(points: float) -> str:
    """``+8``, ``−6`` (a real minus sign), ``+2.5``."""
    number = f"{abs(points):g}"
    return ("+" if points > 0 else "\u2212") + number


def score_text(value: float | None) -> str:
    """A HealthBench score as a percentage (it can be negative): ``62 %``, ``−8 %``, ``–``."""
    if value is None:
        return "\u2013"
    pct = round(100 * value)
    return f"{'−' if pct < 0 else ''}{abs(pct)} %"


def axis_label(axis: str | None) -> str:
    return AXIS_LABELS.get(axis or "", axis or "")


def split_tags(tags: Iterable[str]) -> tuple[str | None, list[str]]:
    """``(axis, free tags)`` of a criterion's tags."""
    axis, free = None, []
    for t in tags:
        if t.startswith(AXIS_PREFIX) and axis is None:
            axis = t[len(AXIS_PREFIX):]
        else:
            free.append(t)
    return axis, free


def join_tags(axis: str | None, free: Iterable[str]) -> list[str]:
    tags = [f"{AXIS_PREFIX}{axis}"] if axis else []
    for t in free:
        t = t.strip()
        if t and t not in tags:
            tags.append(t)
    return tags


def matches(event: QKeyEvent, sequences: Iterable[QKeySequence]) -> bool:
    combo = QKeySequence(event.keyCombination())
    return any(combo.matches(s) == QKeySequence.SequenceMatch.ExactMatch for s in sequences)


def claim_shortcut_override(event: QEvent, sequences: Iterable[QKeySequence]) -> bool:
    """Accept a ShortcutOverride for ``sequences`` so that the key press comes to the view
    instead of firing a window shortcut of the same key (the bench's arrows, digits, letters,
    Ctrl+N). Returns whether it claimed the event."""
    if event.type() == QEvent.Type.ShortcutOverride and matches(event, sequences):  # type: ignore[arg-type]
        event.accept()
        return True
    return False


def keys(*specs: str) -> tuple[QKeySequence, ...]:
    return tuple(QKeySequence(s) for s in specs)


ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
