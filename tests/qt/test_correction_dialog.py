"""The correction editor refuses an unchanged correction and says why (issue 9, rule 2)."""

from __future__ import annotations

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
