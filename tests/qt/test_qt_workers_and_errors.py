"""The model worker with a fake backend; errors reach the tutor and the window stays usable."""

from __future__ import annotations

import subprocess
import sys

from fakes import FakeBackend, fake_factory, press, wait_ready
from PySide6.QtCore import Qt

from hitl_desktop.core.backends.base import ModelError, SamplingParams
from hitl_desktop.core.store import StoreError
from hitl_desktop.core.types import Message
from hitl_desktop.qt.workers import ModelController


def test_controller_streams_coalesced_and_generates(qtbot):
    backend = FakeBackend(delay=0.002, words=60)
    ctl = ModelController(fake_factory(backend))
    batches = []
    ctl.tokens_streamed.connect(lambda rid, batch: batches.append(dict(batch)))
    with qtbot.waitSignal(ctl.model_loaded, timeout=5000):
        ctl.load(None)
    assert ctl.state == "ready"
    with qtbot.waitSignal(ctl.generated, timeout=10000) as done:
        ctl.generate(conversation=[Message("user", "hi")], k=3, params=SamplingParams(), seeds=[1, 2, 3])
    request, result = done.args
    assert request.k == 3 and len(result.candidates) == 3 and not result.stopped
    # 60 steps x 3 candidates = 180 on_token calls, coalesced into far fewer signals
    assert 1 <= len(batches) < 60
    # a batch holds only the candidates that changed since the last one (under load the last
    # batch may not hold candidate 0): what the bench ends up showing is every batch applied
    shown: dict[int, str] = {}
    for batch in batches:
        shown.update(batch)
    state = ctl.state
    assert ctl.shutdown()  # before any assert that could fail, so no thread is left running
    assert shown == {i: c.text for i, c in enumerate(result.candidates)}
    assert state == "ready"
    assert not ctl.is_running()


def test_controller_stop(qtbot):
    backend = FakeBackend(delay=0.01, words=2000)
    ctl = ModelController(fake_factory(backend))
    ctl.load(None)
    with qtbot.waitSignal(ctl.tokens_streamed, timeout=10000):
        ctl.generate(conversation=[Message("user", "hi")], k=2, params=SamplingParams(), seeds=[1, 2])
    with qtbot.waitSignal(ctl.generated, timeout=5000) as done:
        ctl.stop_generation()
    assert done.args[1].stopped
    assert all(c.finish_reason == "stopped" for c in done.args[1].candidates)
    assert ctl.shutdown()


def test_controller_failures(qtbot):
    def broken(path, on_progress):
        raise ModelError(f"{path}: not a model folder")

    ctl = ModelController(broken)
    with qtbot.waitSignal(ctl.load_failed, timeout=5000) as failed:
        ctl.load("/nowhere")
    assert "/nowhere: not a model folder" in failed.args[0] and ctl.state == "error"
    with qtbot.waitSignal(ctl.generation_failed, timeout=5000) as gen_failed:
        ctl.generate(conversation=[Message("user", "x")], k=2, params=SamplingParams(), seeds=[1, 2])
    assert "not loaded" in gen_failed.args[1]
    assert ctl.shutdown()


def test_model_load_failure_is_shown(qtbot, file_store, app_settings, guideline_library):
    from hitl_desktop.qt.main_window import MainWindow

    def broken(path, on_progress):
        on_progress(0.2, "converting")
        raise ModelError("model.gguf: truncated file")

    w = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library, backend_factory=broken)
    qtbot.addWidget(w)
    w.show()
    w.start_model()
    qtbot.waitUntil(lambda: w.model.state == "error", timeout=5000)
    assert "could not be loaded" in w.messages.text() and "truncated file" in w.messages.text()
    assert w.state_label.text() == "error"
    # still usable: a session starts, a typed prompt is saved, the cards say why they are empty
    w.start_session(tutor_name="Dr. Test", domain="medicine")
    w.add_prompt("Is this still usable?")
    qtbot.waitUntil(lambda: w.bench.phase == "idle", timeout=5000)
    assert "Generation failed" in w.messages.text()
    assert len(file_store.queued_prompts()) == 1
    w.close()


def test_generation_failure_is_shown(fake_window, fake_backend, qtbot):
    w = fake_window
    fake_backend.fail = True
    w.start_session(tutor_name="Dr. Test", domain="finance")
    with qtbot.waitSignal(w.generation_failed, timeout=5000):
        w.add_prompt("What is duration?")
    assert "out of memory" in w.messages.text()
    assert w.bench.phase == "idle" and w.model.state == "ready"
    # nothing is being written any more: the footer must not say so (it did, until Ctrl+G)
    assert "being written" not in w.bench.order_label.text()
    fake_backend.fail = False
    press(qtbot, w, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)  # try again
    wait_ready(qtbot, w)
    assert len(w.bench.cards) == 4


def test_store_error_on_submit_is_shown(fake_window, qtbot, file_store, monkeypatch):
    w = fake_window
    w.start_session(tutor_name="Dr. Test", domain="law")
    w.load_samples()
    wait_ready(qtbot, w)
    for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4):
        press(qtbot, w, key)

    def fail(judgment):
        raise StoreError("database is locked")

    monkeypatch.setattr(file_store, "save_judgment", fail)
    prompt = w.prompt
    assert w.submit() is None
    assert "not saved: database is locked" in w.messages.text()
    assert w.prompt is prompt and w.bench.state.ranks()  # nothing lost
    monkeypatch.undo()
    assert w.submit() is not None


def test_window_state_persists(qtbot, file_store, app_settings, guideline_library, fake_backend):
    from hitl_desktop.qt.main_window import MainWindow

    w = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library,
                   backend_factory=fake_factory(fake_backend))
    qtbot.addWidget(w)
    w.show()
    w.splitter.setSizes([300, 700, 400])
    sizes = w.splitter.sizes()
    w.close()
    assert app_settings.state("geometry") is not None and app_settings.state("splitter") is not None
    w2 = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library,
                    backend_factory=fake_factory(fake_backend))
    qtbot.addWidget(w2)
    w2.show()
    qtbot.waitExposed(w2)
    assert w2.size() == w.size()
    assert w2.splitter.sizes() == sizes
    w2.close()


def test_gui_path_does_not_import_torch():
    code = (
        "import sys; import hitl_desktop.app, hitl_desktop.qt.main_window; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_rolling_backup_runs_off_the_gui_thread_when_the_database_changed(fake_window, qtbot, file_store):
    import threading

    import hitl_desktop.core.backup as mw  # the copy is core.operations.backup -> backup_database
    from hitl_desktop.core.store import Store

    w = fake_window
    assert w.backups is not None
    assert not w.maybe_backup(), "nothing changed yet: no backup"
    file_store.ensure_tutor("dr-backup")
    w.backups.interval_s = 0
    threads = []
    real = mw.backup_database

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    mw.backup_database = spy
    try:
        with qtbot.waitSignal(w.backup_runner.succeeded, timeout=20000) as blocker:
            assert w.maybe_backup()
    finally:
        mw.backup_database = real
    path = blocker.args[0]
    assert threads == [False], "the copy ran on the GUI thread"
    assert path.exists() and w.backups.last_backup == path
    assert not w.backups.changed()
    with Store.open_readonly(path) as copy:
        assert copy.tutor_by_name("dr-backup") is not None
