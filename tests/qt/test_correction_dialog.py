"""The correction editor refuses an unchanged correction and says why (issue 9, rule 2)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from hitl_desktop.qt.dialogs.correction import CorrectionDialog


def test_an_unchanged_correction_is_refused_with_a_reason(qtbot):
    d = CorrectionDialog(original="Take 500 mg.", position=0)
    qtbot.addWidget(d)
    d.editor.setPlainText("  Take 500 mg.\n")  # only whitespace changed
    d._accept()
    assert d.result() == 0 and "unchanged correction is not saved" in d.stats.text()
    d.editor.setPlainText("Take 500 mg with food.")
    d._accept()
    assert d.result() == CorrectionDialog.DialogCode.Accepted
    assert d.text() == "Take 500 mg with food."


# -- the diff reads as words (issue 19 item 3) ----------------------------------------------------

import re  # noqa: E402

from fakes import wait_ready  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from hitl_desktop.core import rendering  # noqa: E402
from hitl_desktop.qt import theme  # noqa: E402

ORIGINAL = "A 52 year old man with a BMI of 1.48m² weighs 70 kg."
REWRITE = "With 52 year old patients, a BMI of 1.73m2 weighs 28 kg."


def rendered_segments(view) -> list[tuple[str, str]]:
    """What the diff view shows, as ("del" | "ins" | "equal", text) runs, read from the
    document's character formats (struck through on del_bg, on ins_bg, or plain)."""
    t = theme.current()
    kinds = {QColor(t["del_bg"]).name(): "del", QColor(t["ins_bg"]).name(): "ins"}
    runs: list[tuple[str, str]] = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            kind = kinds.get(fmt.background().color().name(), "equal") if fmt.background().style() else "equal"
            if kind == "del":
                assert fmt.fontStrikeOut()
            text = fragment.text().replace("\u2009", "")
            if text:
                if runs and runs[-1][0] == kind:
                    runs[-1] = (kind, runs[-1][1] + text)
                else:
                    runs.append((kind, text))
            it += 1
        block = block.next()
    return runs


def test_the_diff_of_a_rewrite_reads_as_words_deleted_and_inserted(qtbot):
    d = CorrectionDialog(original=ORIGINAL, position=0)
    qtbot.addWidget(d)
    d.editor.setPlainText(REWRITE)
    d.update_diff()
    runs = rendered_segments(d.diff_view)
    changed = [(k, s.strip()) for k, s in runs if k != "equal"]
    assert changed == [
        ("del", "A"), ("ins", "With"),
        ("del", "man with"), ("ins", "patients,"),
        ("del", "48m²"), ("ins", "73m2"),
        ("del", "70"), ("ins", "28"),
    ]
    # no change starts or ends inside a word of its own text: never "AWith", "7028", "oldan"
    texts = {"del": "".join(s for k, s in runs if k != "ins"), "ins": "".join(s for k, s in runs if k != "del")}
    offsets = {"del": 0, "ins": 0}
    for k, s in runs:
        for side in ("del", "ins"):
            if k not in ("equal", side):
                continue
            text, at = texts[side], offsets[side]
            if k == side:
                for i in (at, at + len(s)):  # both ends of the change
                    assert not (re.match(r"\w", text[i - 1 : i]) and re.match(r"\w", text[i : i + 1])), (side, s)
            offsets[side] = at + len(s)
    # the visible text, deletions left out, is the rewrite
    assert "".join(s for k, s in runs if k != "del").strip() == REWRITE
    assert "".join(s for k, s in runs if k != "ins").strip() == ORIGINAL
    assert d.stats.text() == "5 words added · 5 removed"


def test_a_deletion_and_the_insertion_that_replaces_it_are_kept_apart(qtbot):
    html = rendering.diff_html("A man.", "With a man.")
    assert '<span class="del">A</span>\u2009<span class="ins">With a</span>' in html


@pytest.mark.parametrize("dark", [False, True])
def test_the_legend_uses_the_diff_colours_of_the_theme(qtbot, qapp, dark):
    t = theme.apply(qapp, dark=dark)
    try:
        d = CorrectionDialog(original="x", position=0)
        qtbot.addWidget(d)
        legend = d.findChildren(type(d.stats))[0].text()
        assert t["del_bg"] in legend and t["ins_bg"] in legend and t["text"] in legend
        assert "#fadadd" not in legend or not dark
    finally:
        theme.apply(qapp, dark=False)


# -- the card after "Use correction" -------------------------------------------------------------


def _correct_card(window, qtbot, position: int, text: str):
    bench = window.bench
    bench.select(position)
    bench.correct_selected()
    dialog = window.correction_dialog
    dialog.editor.setPlainText(text)
    dialog._accept()
    assert dialog.result() == CorrectionDialog.DialogCode.Accepted
    return bench.cards[position]


def test_the_card_shows_the_correction_and_the_original_is_one_click_away(fake_window, qtbot):
    window = fake_window
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.add_prompt("When should metformin be stopped?")
    wait_ready(qtbot, window)
    original = window.bench.candidate_at(1).text
    corrected = "Stop metformin when eGFR falls below 30; reduce the dose below 45."
    card = _correct_card(window, qtbot, 1, corrected)
    assert card.text() == corrected  # what is exported as chosen is what the card shows
    assert card.correction_bar.isVisibleTo(card) and not card.showing_original()
    qtbot.mouseClick(card.original_button, Qt.MouseButton.LeftButton)
    assert card.showing_original() and card.text() == original
    assert "original" in card.corrected_badge.text()
    qtbot.mouseClick(card.original_button, Qt.MouseButton.LeftButton)
    assert card.text() == corrected
    # a key press on the bench (a refresh) keeps the correction shown
    window.bench.select(0)
    assert card.text() == corrected
    # the other cards show their own text
    assert window.bench.cards[0].text() == window.bench.candidate_at(0).text
    assert not window.bench.cards[0].correction_bar.isVisibleTo(window.bench.cards[0])
    # "Remove correction": the card shows the original again, without the bar
    window.bench.set_correction(None)
    assert card.text() == original and not card.correction_bar.isVisibleTo(card)


@pytest.mark.parametrize("width", [1440, 900])
def test_the_correction_badge_says_what_it_is_in_full(fake_window, qtbot, width):
    window = fake_window
    window.resize(width, 900)
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.add_prompt("When should metformin be stopped?")
    wait_ready(qtbot, window)
    card = _correct_card(window, qtbot, 0, "Stop it below an eGFR of 30.")
    qtbot.waitUntil(lambda: card.corrected_badge.isVisible(), timeout=3000)
    qtbot.wait(50)
    badge = card.corrected_badge
    assert badge.text() == "✎ Your correction, shown here: it is exported as the chosen answer."
    # not cut: the label has the room its (wrapped) text needs
    assert badge.width() >= badge.minimumSizeHint().width()
    assert badge.height() >= badge.heightForWidth(badge.width())
    assert card.original_button.width() >= card.original_button.sizeHint().width()
