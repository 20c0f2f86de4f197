"""Whole flows on the real main window with the tiny real model: what the store then holds
and what the export gives."""

from __future__ import annotations

import json

import pytest
from fakes import press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.core import export
from hitl_desktop.core.ranking import pairs_for_item

K = Qt.Key


def start(window, qtbot, domain="medicine", samples=True):
    window.start_session(tutor_name="Dr. Test", domain=domain)
    if samples:
        assert window.load_samples() == 5
        wait_ready(qtbot, window)


def ids_by_position(window):
    return [window.bench.candidate_at(p).id for p in range(len(window.bench.cards))]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def expected_pairs(texts_by_id, ranks, correction=None, corrected_id=None):
    """Pairs by DESIGN.md section 4, identical texts dropped."""
    out = set()
    ids = list(ranks)
    for a in ids:
        for b in ids:
            if ranks[a] < ranks[b] and texts_by_id[a] != texts_by_id[b]:
                out.add((texts_by_id[a], texts_by_id[b]))
    if correction is not None:
        for b in ids:
            if texts_by_id[b] != correction:
                out.add((correction, texts_by_id[b]))
    return out


def test_rank_with_tie_correct_submit_and_export(window, qtbot, file_store, tmp_path):
    start(window, qtbot)
    bench = window.bench
    assert len(bench.cards) == 4
    pos_ids = ids_by_position(window)
    prompt = window.prompt
    # 2 best; 1 and 3 tie second; 4 last
    for key in (K.Key_2, K.Key_1, K.Key_Equal, K.Key_3, K.Key_4):
        press(qtbot, window, key)
    assert bench.state.ranks() == {pos_ids[1]: 1, pos_ids[0]: 2, pos_ids[2]: 2, pos_ids[3]: 3}
    assert "2 › 1 = 3 › 4" in bench.order_label.text()
    # flag card 4 (selected after its key) as hallucination, rate it
    press(qtbot, window, K.Key_H)
    bench.cards[3].rating_boxes["correctness"].setCurrentIndex(2)
    # correct the best card: select it, E opens the editor
    bench.select(1)
    press(qtbot, window, K.Key_E)
    dialog = window.correction_dialog
    assert dialog.original == bench.candidate_at(1).text
    assert dialog.editor.toPlainText().strip()
    corrected = "Stop metformin: eGFR 28 is below 30. Review diabetes therapy."
    dialog.editor.setPlainText(corrected)
    dialog.update_diff()
    assert 'class="ins"' in dialog.diff_view.toHtml() or "Stop" in dialog.diff_view.toPlainText()
    dialog.accept()
    assert bench.state.correction.candidate_id == pos_ids[1]
    assert bench.cards[1].corrected_badge.isVisibleTo(bench.cards[1])

    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        press(qtbot, window, K.Key_Return, Qt.KeyboardModifier.ControlModifier)
    judgment = saved.args[0]

    items = list(file_store.judged_items())
    assert len(items) == 1
    j = items[0].judgment
    assert j.id == judgment.id
    assert j.prompt_id == prompt.id
    assert j.ranks == {pos_ids[1]: 1, pos_ids[0]: 2, pos_ids[2]: 2, pos_ids[3]: 3}
    assert j.display_order == pos_ids
    assert j.session_id == window.session.id
    assert j.guideline_version == window.guideline.version and j.guideline_version.startswith("v1-")
    assert j.flags == {pos_ids[3]: ["hallucination"]}
    assert j.ratings == {pos_ids[3]: {"correctness": 2}}
    assert j.correction.text == corrected and j.correction.candidate_id == pos_ids[1]
    assert j.seconds_spent is not None and j.seconds_spent >= 0
    assert items[0].domain == "medicine"
    # the candidates carry their provenance
    cands = file_store.candidates_for(prompt.id)
    assert {c.model for c in cands} == {window.model.backend_name}
    assert all(c.seed is not None and c.tokens for c in cands)

    # the bench moved on to the next prompt; the judged one left the queue
    assert window.prompt.id != prompt.id
    assert window.queue_model.row_of(prompt.id) == -1

    # export gives the expected pairs
    texts = {c.id: c.text for c in cands}
    want = expected_pairs(texts, j.ranks, corrected, pos_ids[1])
    out = tmp_path / "pairs.jsonl"
    summary = export.export_dataset(file_store, fmt="trl-preference", out=out, keep_tutor_names=True)
    rows = read_jsonl(out)
    assert summary.pairs == len(rows) == len(want) == len(pairs_for_item(items[0]))
    assert {(r["chosen"], r["rejected"]) for r in rows} == want
    assert all(r["prompt"] == prompt.text and r["tutor"] == "Dr. Test" for r in rows)
    summary_text = window.session_summary_text()
    assert "1 item ·" in summary_text and f"{len(want)} pairs" in summary_text
    assert "(s)" not in summary_text and "1 correction" in summary_text


def test_session_summary_counts_in_words(window, qtbot):
    start(window, qtbot)
    assert window.session_summary_text() == "This session: 0 items · 0 pairs · 0 corrections"
    assert window.summary_label.text() == window.session_summary_text()


def test_undo_restores_the_item(window, qtbot, file_store):
    start(window, qtbot)
    prompt = window.prompt
    pos_ids = ids_by_position(window)
    for key in (K.Key_3, K.Key_1, K.Key_4, K.Key_2):
        press(qtbot, window, key)
    window.bench.rationale.setText("3 is the only one that mentions eGFR")
    window.bench.rationale.textEdited.emit(window.bench.rationale.text())
    with qtbot.waitSignal(window.judgment_saved, timeout=5000):
        press(qtbot, window, K.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(list(file_store.judged_items())) == 1
    wait_ready(qtbot, window)

    with qtbot.waitSignal(window.judgment_undone, timeout=5000):
        press(qtbot, window, K.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert list(file_store.judged_items()) == []
    # back on the bench, as it was: same cards in the same places, same ranking and note
    assert window.prompt.id == prompt.id
    assert ids_by_position(window) == pos_ids
    assert window.bench.state.ranks() == {pos_ids[2]: 1, pos_ids[0]: 2, pos_ids[3]: 3, pos_ids[1]: 4}
    assert window.bench.rationale.text() == "3 is the only one that mentions eGFR"
    assert window.queue_model.row_of(prompt.id) == 0
    # and it can be submitted again
    with qtbot.waitSignal(window.judgment_saved, timeout=5000):
        window.submit()
    assert [i.judgment.ranks for i in file_store.judged_items()] == [
        {pos_ids[2]: 1, pos_ids[0]: 2, pos_ids[3]: 3, pos_ids[1]: 4}
    ]


def test_escape_stops_generation(window, qtbot, file_store, app_settings):
    app_settings.max_new_tokens = 900  # the tiny model's window is 1024
    window.start_session(tutor_name="Dr. Test", domain="stem")
    with qtbot.waitSignal(window.prompt_loaded, timeout=5000):
        window.add_prompt("Prove that there are infinitely many primes.")
    prompt = window.prompt
    # wait until the cards are filling in, then Esc (a random tiny model may end a row at
    # once, so wait for most rows, not all)
    qtbot.waitUntil(
        lambda: sum(card.status.text() == "writing…" for card in window.bench.cards) >= 2, timeout=20000
    )
    assert window.model.state == "generating"
    press(qtbot, window, K.Key_Escape)
    qtbot.waitUntil(lambda: not window.model.is_generating(), timeout=10000)
    cands = file_store.candidates_for(prompt.id)
    assert len(cands) == 4
    assert any(c.params.get("finish_reason") == "stopped" for c in cands)
    assert all(c.tokens < 900 for c in cands)
    assert window.bench.phase == "judging"  # what was written can still be judged
    assert window.model.state == "ready"


def test_continue_conversation(window, qtbot, file_store, tmp_path):
    start(window, qtbot, domain="coding")
    first = window.prompt
    pos_ids = ids_by_position(window)
    for key in (K.Key_4, K.Key_2, K.Key_3, K.Key_1):
        press(qtbot, window, key)
    best_text = window.bench.candidate_at(3).text
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        window.submit()
    j1 = saved.args[0]
    wait_ready(qtbot, window)
    assert window.bench.continue_button.isEnabled()

    new = window.continue_conversation("Now make it iterative, please.")
    assert new is not None
    assert new.parent_judgment_id == j1.id
    assert [(m.role, m.content) for m in new.messages] == [("user", first.text), ("assistant", best_text)]
    wait_ready(qtbot, window)
    assert window.prompt.id == new.id
    assert "TURN 2" in window.bench.prompt_title.text()
    for key in (K.Key_1, K.Key_2, K.Key_Equal, K.Key_3, K.Key_4):
        press(qtbot, window, key)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000):
        window.submit()
    stored = file_store.get_prompt(new.id)
    assert stored.parent_judgment_id == j1.id and len(stored.messages) == 2
    # the continued conversation cannot be undone from under its next turn
    assert pos_ids[3] in j1.ranks

    out = tmp_path / "chat.jsonl"
    export.export_dataset(file_store, fmt="trl-preference-chat", out=out)
    rows = [r for r in read_jsonl(out) if r["prompt_id"] == new.id]
    assert rows
    assert [m["role"] for m in rows[0]["prompt"]] == ["user", "assistant", "user"]
    assert rows[0]["prompt"][1]["content"] == best_text
    assert rows[0]["prompt"][2]["content"] == "Now make it iterative, please."


def test_regenerate_one_and_all(window, qtbot, file_store):
    start(window, qtbot, domain="finance")
    prompt = window.prompt
    pos_ids = ids_by_position(window)
    press(qtbot, window, K.Key_1)
    window.bench.select(2)
    press(qtbot, window, K.Key_R)
    qtbot.waitUntil(lambda: not window.bench.busy_slots and not window.model.is_generating(), timeout=20000)
    new_ids = ids_by_position(window)
    assert new_ids[2] != pos_ids[2] and new_ids[:2] == pos_ids[:2] and new_ids[3] == pos_ids[3]
    stored = {c.id for c in file_store.candidates_for(prompt.id)}
    assert stored == set(new_ids)
    assert window.bench.state.ranks() == {pos_ids[0]: 1}  # the rest of the judgment is kept

    press(qtbot, window, K.Key_R, Qt.KeyboardModifier.ShiftModifier)
    wait_ready(qtbot, window)
    again = ids_by_position(window)
    assert not set(again) & set(new_ids)
    assert {c.id for c in file_store.candidates_for(prompt.id)} == set(again)
    assert window.bench.state.ranks() == {}


def test_k3_drag_and_drop_and_all_bad(window, qtbot, file_store, app_settings):
    app_settings.k = 3
    start(window, qtbot, domain="law")
    bench = window.bench
    assert len(bench.cards) == 3
    ids = ids_by_position(window)
    press(qtbot, window, K.Key_1)
    # drag card 3 onto card 1: upper third = better, then card 2 onto card 3's middle = tie
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QDropEvent

    def drop(src, dst, y_fraction):
        card = bench.cards[dst]
        pos = QPointF(card.width() / 2, card.height() * y_fraction)
        mime = bench.cards[src].mime_data()  # keep a reference: the event does not own it
        event = QDropEvent(pos, Qt.DropAction.MoveAction, mime,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        card.dropEvent(event)

    drop(2, 0, 0.1)
    assert bench.state.ranks() == {ids[2]: 1, ids[0]: 2}
    drop(1, 2, 0.5)
    assert bench.state.ranks() == {ids[2]: 1, ids[1]: 1, ids[0]: 2}
    press(qtbot, window, K.Key_B)
    assert bench.all_bad_button.isChecked()
    press(qtbot, window, K.Key_3, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000):
        window.submit()
    j = next(file_store.judged_items()).judgment
    assert j.all_bad and j.strength == 3
    assert j.ranks == {ids[2]: 1, ids[1]: 1, ids[0]: 2}
    assert pairs_for_item(next(file_store.judged_items())) == []  # all bad, no correction


def test_skip_and_incomplete_ranking(window, qtbot, file_store):
    start(window, qtbot)
    first = window.prompt
    press(qtbot, window, K.Key_1)
    assert not window.bench.submit_button.isEnabled()
    assert window.submit() is None
    assert "not ranked" in window.messages.text()
    assert list(file_store.judged_items()) == []
    press(qtbot, window, K.Key_Right, Qt.KeyboardModifier.ControlModifier)  # skip
    wait_ready(qtbot, window)
    assert window.prompt.id != first.id
    prompts = window.queue_model.prompts()
    assert prompts[-1].id == first.id
    # three of four ranked: the last one is implied
    for key in (K.Key_1, K.Key_2, K.Key_3):
        press(qtbot, window, key)
    assert window.bench.submit_button.isEnabled()
    j = window.submit()
    assert sorted(j.ranks.values()) == [1, 2, 3, 4]


def test_typed_prompt_and_queue_excludes_judged(window, qtbot, file_store):
    start(window, qtbot, domain="general", samples=False)
    assert window.bench.phase == "empty"
    assert "Nothing is waiting in general" in window.bench.empty_label.text()
    assert not window.bench.samples_button.isVisibleTo(window)  # no sample set for "general"
    window.add_prompt("What should I pack for a week of hiking?")
    wait_ready(qtbot, window)
    assert window.prompt.source == "typed" and window.prompt.domain == "general"
    for key in (K.Key_1, K.Key_2, K.Key_3, K.Key_4):
        press(qtbot, window, key)
    window.submit()
    assert file_store.queued_prompts(domain="general", tutor_id=window.tutor.id) == []
    assert window.bench.phase == "empty"


@pytest.mark.parametrize("domain", ["medicine"])
def test_guideline_edit_is_versioned_and_recorded(window, qtbot, file_store, domain):
    start(window, qtbot, domain=domain)
    v1 = window.guideline.version
    g = window.save_guideline(domain, window.guideline.text + "\n\nAlways check renal dosing.\n")
    assert g.version.startswith("v2-") and window.guideline.version == g.version != v1
    assert "v2-" in window.guideline_version.text()
    for key in (K.Key_1, K.Key_2, K.Key_3, K.Key_4):
        press(qtbot, window, key)
    window.submit()
    assert next(file_store.judged_items()).judgment.guideline_version == g.version

