"""The keyboard scheme: the hint under the bench and the F1 help's table (the keys themselves
are bound in ``qt/bench_controller.install_shortcuts``)."""

from __future__ import annotations

#: The keyboard scheme, as shown under the bench and in the F1 help.
KEY_HINT = (
    "<b>1–9</b> rank next · <b>=</b>&nbsp;<b>1–9</b> tie · <b>←→</b> select · "
    "<b>+/−</b> move · <b>0</b> unrank · <b>I U H N O S</b> flag · <b>E</b> correct · "
    "<b>B</b> all bad · <b>Ctrl+↵</b> submit · <b>Ctrl+Z</b> undo · <b>Esc</b> stop · <b>F1</b> help"
)

KEY_TABLE: list[tuple[str, str]] = [
    ("1 – 9", "Give the card at that position the next rank (press cards best first)"),
    ("=  then 1 – 9", "Tie that card with the last rank given"),
    ("← → ↑ ↓", "Select a card"),
    ("+  /  −", "Move the selected card up / down half a step (tie, then past)"),
    ("0  or  Backspace", "Unrank the selected card"),
    ("Ctrl+Backspace", "Clear the whole ranking"),
    ("I  U  H  N  O  S", "Flag the selected card: incorrect, unsafe, hallucination, incomplete, off-topic, style"),
    ("E", "Correct (rewrite) the selected card"),
    ("B", "All bad: no candidate is acceptable"),
    ("Ctrl+1 / 2 / 3", "Strength of preference: slightly / clearly / much better"),
    ("R  /  Shift+R", "Regenerate the selected card / all cards (never those that came with the prompt)"),
    ("Ctrl+Shift+R", "Write a new, separate candidate set (candidates that came with the prompt stay)"),
    ("Ctrl+G", "Generate candidates for this prompt"),
    ("Esc", "Stop generating (or cancel a pending tie)"),
    ("Ctrl+Enter", "Submit the judgment (saved at once)"),
    ("Ctrl+Shift+Enter", "Submit and continue the conversation"),
    ("Ctrl+→", "Skip this prompt"),
    ("Ctrl+Z", "Undo the last submission (again: the one before)"),
    ("Ctrl+N", "Type a new prompt"),
    ("Ctrl+Shift+G", "Grading grid: show it and grade (again: back to the cards)"),
    ("Ctrl+Shift+U", "Rubric panel: write the prompt's criteria (Ctrl+N add, Ctrl+S save)"),
    ("Ctrl+E", "Export…"),
    ("F1", "This help"),
    ("Drag a card's header", "Drop on another card: upper third better, middle tie, lower third worse"),
]
