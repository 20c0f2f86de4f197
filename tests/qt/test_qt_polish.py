"""The look-through's leftovers: the review list's prompt column reaches the table's right edge,
and dialogs count in words ("1 version", "3 errors", never "version(s)")."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from hitl_desktop.core.guidelines import Guideline
from hitl_desktop.core.importing import ImportFileError, LineError, import_file
from hitl_desktop.qt.dialogs.correction import CorrectionDialog
from hitl_desktop.qt.dialogs.guideline_editor import GuidelineEditorDialog
from hitl_desktop.qt.menus import ImportErrorsDialog
from hitl_desktop.qt.review import DisagreementModel

TEXTS = ["Avoid ibuprofen with warfarin.", "Ibuprofen is fine.", "Use topical diclofenac.", "Take it with food."]


@pytest.fixture
def review_view(fake_window, qtbot, tmp_path):
    lines = []
    for ext, by_tutor in {
        "med-1": {"ann": [1, 2, 3, 4], "bob": [4, 3, 2, 1]},
        "med-2": {"ann": [1, 2, 3, 4], "bob": [2, 1, 3, 4], "cem": [1, 3, 2, 4]},
    }.items():
        for tutor, ranking in by_tutor.items():
            lines.append(json.dumps({"id": ext, "prompt": f"A 68-year-old on warfarin asks about knee pain ({ext})",
                                     "domain": "medicine", "candidates": TEXTS, "ranking": ranking, "tutor": tutor}))  # fmt: skip
    (tmp_path / "lab.jsonl").write_text("\n".join(lines) + "\n")
    import_file(fake_window.store, tmp_path / "lab.jsonl")
    fake_window.start_session(tutor_name="lead", domain="medicine")
    m = fake_window.lab_menus
    m.lead_action.setChecked(True)
    m.open_review()
    view = m.review_view
    qtbot.waitExposed(view)
    return view


def _prompt_right_edge(view) -> tuple[int, int]:
    header = view.list_view.horizontalHeader()
    col = DisagreementModel.PROMPT
    return header.sectionPosition(col) + header.sectionSize(col), view.list_view.viewport().width()


def test_the_prompt_column_is_last_and_stretches_to_the_right_edge(review_view, qtbot):
    view = review_view
    model = view.list_model
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[-1] == "Prompt" and all(headers), f"a column without a heading: {headers}"
    narrow_then_wide = []
    for width in (1100, 1700):
        view.resize(width, 800)
        qtbot.waitUntil(lambda: _prompt_right_edge(view)[0] == _prompt_right_edge(view)[1], timeout=3000)
        narrow_then_wide.append(view.list_view.horizontalHeader().sectionSize(DisagreementModel.PROMPT))
    assert narrow_then_wide[1] > narrow_then_wide[0], "the prompt column does not take the extra width"
    # after a refresh (the model is reset) it still stretches
    view.domain_box.setCurrentIndex(view.domain_box.findData("medicine"))
    view.resize(1300, 800)
    qtbot.waitUntil(lambda: _prompt_right_edge(view)[0] == _prompt_right_edge(view)[1], timeout=3000)


def test_the_done_column_marks_adjudicated_prompts(review_view, qtbot):
    view = review_view
    done = view.list_model.index(0, DisagreementModel.DONE)
    assert done.data() == "" and done.data(Qt.ItemDataRole.AccessibleTextRole) == "not adjudicated"
    view.rationale_edit.setPlainText("A is safe.")
    with qtbot.waitSignal(view.adjudicated, timeout=3000):
        view.record_button.click()
    row = view.list_model.row_of(view.item.prompt.id)
    done = view.list_model.index(row, DisagreementModel.DONE)
    assert done.data() == "✓" and done.data(Qt.ItemDataRole.AccessibleTextRole) == "adjudicated"


def _labels(dialog) -> str:
    return "\n".join(lb.text() for lb in dialog.findChildren(QLabel))


@pytest.mark.parametrize(("history", "expected"), [(1, "(1 version so far)"), (3, "(3 versions so far)")])
def test_guideline_editor_counts_versions_in_words(qtbot, history, expected):
    g = Guideline(domain="medicine", text="# Medicine\n", number=history, path=None, edited=history > 1)
    d = GuidelineEditorDialog(guideline=g, history=history)
    qtbot.addWidget(d)
    assert expected in _labels(d) and "(s)" not in _labels(d)


def test_correction_dialog_counts_words_in_words(qtbot):
    d = CorrectionDialog(original="Take 500 mg.", position=0)
    qtbot.addWidget(d)
    d.editor.setPlainText("Take 500 mg daily.")
    d.update_diff()
    assert d.stats.text().startswith("1 word added")
    d.editor.setPlainText("Take 500 mg daily with food.")
    d.update_diff()
    assert d.stats.text().startswith("3 words added") and "(s)" not in d.stats.text()


@pytest.mark.parametrize(
    ("errors", "expected", "more"),
    [(1, "1 error below", ""), (2, "2 errors below", " (and 1 more bad line)"), (3, "3 errors below", " (and 2 more bad lines)")],
)
def test_import_errors_dialog_counts_errors_in_words(qtbot, errors, expected, more):
    error = ImportFileError("/data/lab.jsonl", [LineError(i + 1, "prompt", "missing") for i in range(errors)])
    d = ImportErrorsDialog(None, error=error)
    qtbot.addWidget(d)
    assert expected in _labels(d) and "(s)" not in _labels(d)
    assert str(error) == f"/data/lab.jsonl:1: prompt: missing{more}; nothing was imported"


# -- controls drawn right in both themes (issue 19 item 4) ------------------------------------------

import re  # noqa: E402
from pathlib import Path  # noqa: E402

from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import QCheckBox, QSpinBox, QStyle, QStyleOptionSpinBox  # noqa: E402

from hitl_desktop.qt import theme  # noqa: E402


@pytest.mark.parametrize("dark", [False, True])
def test_every_image_the_style_sheet_names_is_there(dark):
    t = theme.Theme("dark", theme.DARK) if dark else theme.Theme("light", theme.LIGHT)
    sheet = theme.style_sheet(t)
    urls = re.findall(r'url\("([^"]+)"\)', sheet)
    assert len(urls) >= 8 and "@" not in "".join(urls)  # every token was filled
    for url in urls:
        assert Path(url).is_file(), url
        assert f"-{t.name}" in Path(url).name  # the theme's own arrows and ticks


def _near(color: QColor, target: QColor, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color.getRgb()[:3], target.getRgb()[:3]))


@pytest.mark.parametrize("dark", [False, True])
def test_spin_box_arrows_are_drawn_as_arrows(qtbot, qapp, dark):
    """The up and down buttons each hold an arrow in the theme's muted colour (a chevron is
    wider than it is tall; the dash it was drawn as before had no height at all)."""
    t = theme.apply(qapp, dark=dark)
    try:
        box = QSpinBox()
        box.setRange(0, 10)
        box.setValue(5)  # both arrows enabled
        box.resize(120, 30)
        qtbot.addWidget(box)
        box.show()
        qtbot.waitExposed(box)
        image = box.grab().toImage()
        opt = QStyleOptionSpinBox()
        box.initStyleOption(opt)
        for sub in (QStyle.SubControl.SC_SpinBoxUp, QStyle.SubControl.SC_SpinBoxDown):
            rect = box.style().subControlRect(QStyle.ComplexControl.CC_SpinBox, opt, sub, box)
            assert rect.width() >= 14 and rect.height() >= 8
            hits = [(x, y) for x in range(rect.left(), rect.right() + 1) for y in range(rect.top(), rect.bottom() + 1)
                    if _near(image.pixelColor(x, y), QColor(t["muted"]))]
            assert hits, sub
            xs, ys = {x for x, _ in hits}, {y for _, y in hits}
            assert max(xs) - min(xs) >= 5 and max(ys) - min(ys) >= 2, (sub, sorted(xs), sorted(ys))
            # a chevron's apex (top for up, bottom for down) is in its middle, not at an end
            apex_y = min(ys) if sub == QStyle.SubControl.SC_SpinBoxUp else max(ys)
            apex = [x for x, y in hits if y == apex_y]
            third = (max(xs) - min(xs)) / 3
            assert all(min(xs) + third <= x <= max(xs) - third for x in apex), (sub, apex, min(xs), max(xs))
    finally:
        theme.apply(qapp, dark=False)


@pytest.mark.parametrize("dark", [False, True])
def test_an_unchecked_box_shows_its_outline_on_both_themes(qtbot, qapp, dark):
    t = theme.apply(qapp, dark=dark)
    try:
        box = QCheckBox("Fixed seed")
        qtbot.addWidget(box)
        box.show()
        qtbot.waitExposed(box)
        image = box.grab().toImage()
        outline = [image.pixelColor(x, y) for x in range(0, 20) for y in range(image.height())]
        assert any(_near(c, QColor(t["muted"]), 30) for c in outline)
        box.setChecked(True)
        image = box.grab().toImage()
        assert any(_near(image.pixelColor(x, y), QColor(t["accent"]), 20) for x in range(0, 20) for y in range(image.height()))
    finally:
        theme.apply(qapp, dark=False)


# -- the model's loading, in words and percent (issue 19 item 7) ------------------------------------

import threading  # noqa: E402

from fakes import FakeBackend  # noqa: E402

from hitl_desktop.qt.load_progress import LoadProgress  # noqa: E402


def test_load_progress_reads_as_words_and_percent():
    p = LoadProgress()
    assert p.status() == "loading…" and p.waiting() == "Waiting for the model to load…"
    p.update(0.414, "Converting and dequantising gemma.gguf: tensor 98 of 236…")
    assert p.status() == "loading · Converting and dequantising gemma.gguf: tensor 98 of 236 · 41 %"
    assert p.waiting() == "Waiting for the model to load (41 %): Converting and dequantising gemma.gguf: tensor 98 of 236…"
    p.update(1.7, "")
    assert p.status() == "loading · 100 %"
    p.reset()
    assert p.percent is None


def test_the_window_shows_the_conversion_in_words_and_percent(qtbot, file_store, app_settings, guideline_library):
    from hitl_desktop.qt.main_window import MainWindow

    release = threading.Event()

    def converting(path, on_progress):
        on_progress(0.05, "Reading the tokenizer of gemma-3-270m.gguf")
        on_progress(0.41, "Converting and dequantising gemma-3-270m.gguf: tensor 98 of 236")
        release.wait(20)
        on_progress(1.0, "ready")
        return FakeBackend()

    window = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library, backend_factory=converting)
    qtbot.addWidget(window)
    try:
        window.show()
        window.start_model()
        window.start_session(tutor_name="Dr. Test", domain="medicine")
        window.add_prompt("What are the first signs of dehydration?")  # its cards wait for the model
        qtbot.waitUntil(lambda: "41 %" in window.state_label.text(), timeout=10000)
        assert window.state_label.text() == "loading · Converting and dequantising gemma-3-270m.gguf: tensor 98 of 236 · 41 %"
        waiting = [card.placeholder() for card in window.bench.cards]
        assert waiting and all("(41 %)" in t and "dequantising" in t for t in waiting), waiting
        window.status.show_model_state()  # a refresh while loading keeps the words and the percent
        assert "41 %" in window.state_label.text()
    finally:
        release.set()
        qtbot.waitUntil(lambda: window.model.state in ("ready", "generating"), timeout=20000)
        window.close()
