"""The lab in the real window: a tutor opens a pack and judges it; protected candidates;
editing a past judgment; the window holds no workflow rule (no store write)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from click.testing import CliRunner
from fakes import press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.cli import cli
from hitl_desktop.core.store import Store

K = Qt.Key
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def make_packs(tmp_path):
    records = [
        {"id": f"p{i}", "prompt": f"Question {i}?", "domain": "medicine", "candidates": [f"p{i}-a", f"p{i}-b", f"p{i}-c"]}
        for i in range(3)
    ] + [
        {"id": "g1", "prompt": "Question g1?", "domain": "medicine", "candidates": ["g1-a", "g1-b", "g1-c"], "gold_ranking": [1, 2, 3]}
    ]
    src = tmp_path / "lab.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    lab = tmp_path / "lab.db"
    run("import", src, "--db", lab)
    run("assign", "--db", lab, "--tutors", "ann,bob,cy", "--out", tmp_path / "packs")
    return lab, tmp_path / "packs"


def card_texts(window):
    return sorted(window.bench.candidate_at(p).text for p in range(len(window.bench.cards)))


def test_tutor_opens_a_pack_and_judges_it_in_the_window(fake_window, qtbot, tmp_path, fake_backend):
    window = fake_window
    lab, packs = make_packs(tmp_path)
    pack = packs / "bob.db"
    with Store.open_readonly(pack) as s:
        n_items = len(s.all_prompts())
    with qtbot.waitSignal(window.database_opened, timeout=5000):
        assert window.open_database(str(pack))
    assert window.tutor.name == "bob" and window.session.domain == "medicine"
    assert window.queue_model.rowCount() == n_items
    assert window.store.path == pack

    # the pack's candidates are protected: R and Shift+R keep them, and say how to get more
    wait_ready(qtbot, window)
    before = card_texts(window)
    calls = fake_backend.calls
    window.bench.select(0)
    press(qtbot, window, K.Key_R)
    assert "came with the prompt" in window.messages.label.text()
    press(qtbot, window, K.Key_R, SHIFT)
    assert card_texts(window) == before and fake_backend.calls == calls

    # the tutor ranks every item with the keyboard and submits
    judged = 0
    while window.prompt is not None:
        wait_ready(qtbot, window)
        for key in (K.Key_1, K.Key_2, K.Key_3):
            press(qtbot, window, key)
        with qtbot.waitSignal(window.judgment_saved, timeout=5000):
            press(qtbot, window, K.Key_Return, CTRL)
        judged += 1
    assert judged == n_items

    # the lead merges the pack back: bob's judgments, on the lab's own candidates
    window.close()
    run("merge", pack, "--db", lab)
    stats = json.loads(run("stats", "--db", lab, "--json"))
    assert stats["judgments"] == n_items and stats["candidates"] == 12
    assert stats["agreement"]["gold"]["bob"]["items"] == 1


def test_window_constructed_on_a_pack_starts_as_its_tutor(qtbot, tmp_path, app_settings, guideline_library, fake_backend):
    from fakes import fake_factory

    from hitl_desktop.app import begin
    from hitl_desktop.qt.main_window import MainWindow

    _, packs = make_packs(tmp_path)
    store = Store.open(packs / "cy.db")
    app_settings.tutor_name = "someone else"
    window = MainWindow(store=store, settings=app_settings, guidelines=guideline_library, backend_factory=fake_factory(fake_backend))
    qtbot.addWidget(window)
    window.show()
    begin(window, ask=False)
    assert window.tutor.name == "cy" and window.session.domain == "medicine"
    qtbot.waitUntil(lambda: window.model.state == "ready", timeout=20000)
    wait_ready(qtbot, window)
    assert len(window.bench.cards) == 3
    window.close()
    store.close()


def test_explicit_new_set_for_protected_candidates(fake_window, qtbot, tmp_path):
    window = fake_window
    _, packs = make_packs(tmp_path)
    assert window.open_database(str(packs / "ann.db"))
    wait_ready(qtbot, window)
    prompt = window.prompt
    pack_ids = {c.id for c in window.store.candidates_for(prompt.id)}
    press(qtbot, window, K.Key_R, CTRL | SHIFT)
    wait_ready(qtbot, window)
    shown = {window.bench.candidate_at(p).id for p in range(len(window.bench.cards))}
    assert not shown & pack_ids  # a new set on the bench
    origins = window.store.candidate_origins(prompt.id)
    assert {cid for cid, (o, _) in origins.items() if o == "pack"} == pack_ids  # the pack's kept
    assert len({s for o, s in origins.values() if o == "generated"}) == 1


def test_open_database_refuses_a_bad_file(fake_window, tmp_path, file_store):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"not a database at all" * 10)
    assert window_refuses(fake_window, bad)
    assert fake_window.store is file_store and "notes.db" in fake_window.messages.label.text()


def window_refuses(window, path: Path) -> bool:
    return window.open_database(str(path)) is False


def test_edit_a_past_judgment_in_the_window(fake_window, qtbot, tmp_path, file_store):
    window = fake_window
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.load_samples()
    wait_ready(qtbot, window)
    ids = [window.bench.candidate_at(p).id for p in range(len(window.bench.cards))]
    for key in (K.Key_1, K.Key_2, K.Key_3, K.Key_4):
        press(qtbot, window, key)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        press(qtbot, window, K.Key_Return, CTRL)
    old = saved.args[0]
    assert old.ranks == {ids[0]: 1, ids[1]: 2, ids[2]: 3, ids[3]: 4}

    window.reopen_judgment(old.id)
    assert window.prompt.id == old.prompt_id
    assert window.bench.state.ranks() == old.ranks
    assert [window.bench.candidate_at(p).id for p in range(4)] == ids  # shown as it was judged
    press(qtbot, window, K.Key_Backspace, CTRL)
    for key in (K.Key_4, K.Key_3, K.Key_2, K.Key_1):
        press(qtbot, window, key)
    with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
        press(qtbot, window, K.Key_Return, CTRL)
    new = saved.args[0]
    assert new.supersedes == old.id and new.ranks == {ids[3]: 1, ids[2]: 2, ids[1]: 3, ids[0]: 4}

    out = tmp_path / "pairs.jsonl"
    run("export", "--db", file_store.path, "--format", "trl-preference", "--out", out)
    texts = {c.id: c.text for c in file_store.candidates_for(old.prompt_id)}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    want = {(texts[ids[a]], texts[ids[b]]) for a in range(4) for b in range(4) if a > b and texts[ids[a]] != texts[ids[b]]}
    assert {(r["chosen"], r["rejected"]) for r in rows} == want  # only the new version
    assert len(list(file_store.judged_items(include_superseded=True))) == 2  # the old kept for audit


def test_undo_goes_back_several_submissions(fake_window, qtbot):
    window = fake_window
    window.start_session(tutor_name="Dr. Test", domain="medicine")
    window.load_samples()
    done = []
    for _ in range(3):
        wait_ready(qtbot, window)
        for key in (K.Key_1, K.Key_2, K.Key_3, K.Key_4):
            press(qtbot, window, key)
        with qtbot.waitSignal(window.judgment_saved, timeout=5000) as saved:
            press(qtbot, window, K.Key_Return, CTRL)
        done.append(saved.args[0])
    for j in reversed(done):
        with qtbot.waitSignal(window.judgment_undone, timeout=5000) as undone:
            press(qtbot, window, K.Key_Z, CTRL)
        assert undone.args[0] == j.id and window.prompt.id == j.prompt_id
        assert window.bench.state.ranks() == j.ranks
    assert window.undo() is False


MAIN_WINDOW = Path(__file__).resolve().parents[2] / "hitl_desktop" / "qt" / "main_window.py"
#: what the window may still ask the store directly: reads for dialogs, the backup marker, closing
STORE_READS = {"tutors", "domains", "change_marker", "close", "path"}


def test_main_window_holds_no_store_writes():
    tree = ast.parse(MAIN_WINDOW.read_text(encoding="utf-8"))
    used = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "store"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        ):
            used.add(node.attr)
    assert used and used <= STORE_READS, sorted(used - STORE_READS)
