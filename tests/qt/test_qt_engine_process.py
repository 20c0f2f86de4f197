"""The model controller over the real generation process (a torch-free test loader in the
child): a crash mid-stream or while idle becomes a message and a "Restart model" button, and
a restart brings a new process; nothing in the window is lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from hitl_desktop.core.backends.base import SamplingParams
from hitl_desktop.core.backends.process import open_local_backend
from hitl_desktop.core.types import Message
from hitl_desktop.qt.workers import ModelController, RestartButton

LONG = SamplingParams(max_new_tokens=400)


@pytest.fixture
def controller(qtbot, monkeypatch):
    # the child imports the loaders from the core tests' folder (it inherits sys.path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "core"))
    devices = []

    def factory(path, on_progress, *, device=None):
        devices.append(device)
        return open_local_backend(path, device=device, on_progress=on_progress, loader="engine_loaders:slow")

    ctl = ModelController(factory)
    ctl.devices = devices
    yield ctl
    ctl.shutdown()


def generate(ctl):
    return ctl.generate(conversation=[Message("user", "hi")], k=2, params=LONG, seeds=[1, 2])


def test_crash_mid_stream_then_restart(qtbot, controller):
    holder = QWidget()
    qtbot.addWidget(holder)
    button = RestartButton(controller, holder)
    with qtbot.waitSignal(controller.model_loaded, timeout=20000) as loaded:
        controller.load("slow", device="cpu")
    assert controller.devices == ["cpu"]
    first = loaded.args[0]
    assert not button.isVisibleTo(holder)
    with qtbot.waitSignal(controller.tokens_streamed, timeout=10000):
        generate(controller)
    failures = []
    controller.generation_failed.connect(lambda request, message: failures.append(message))
    with qtbot.waitSignal(controller.crashed, timeout=10000) as crashed:
        os.kill(first.pid, signal.SIGKILL)
    assert failures == [crashed.args[0]]  # the generation in flight failed, with the reason
    message = crashed.args[0]
    assert "SIGKILL" in message and "restart the model" in message
    assert controller.state == "error" and not controller.loaded
    assert button.isVisibleTo(holder)

    with qtbot.waitSignal(controller.model_loaded, timeout=20000) as again:
        button.click()
    second = again.args[0]
    assert second.pid != first.pid and second.alive and not first.alive
    assert controller.devices == ["cpu", "cpu"]  # the same model, on the same device
    assert not button.isVisibleTo(holder)
    short = SamplingParams(max_new_tokens=3)
    with qtbot.waitSignal(controller.generated, timeout=10000) as done:
        controller.generate(conversation=[Message("user", "hi")], k=2, params=short, seeds=[5, 6])
    assert [c.text for c in done.args[1].candidates] == ["w0-5 w1-5 w2-5", "w0-6 w1-6 w2-6"]
    assert controller.shutdown()
    assert not second.alive  # the window closing ends the model's process


def test_a_process_that_dies_while_idle_is_noticed(qtbot, controller):
    with qtbot.waitSignal(controller.model_loaded, timeout=20000) as loaded:
        controller.load(None)
    with qtbot.waitSignal(controller.crashed, timeout=5000) as crashed:
        os.kill(loaded.args[0].pid, signal.SIGKILL)
    assert "restart the model" in crashed.args[0]
    assert controller.state == "error"


def test_loading_another_model_ends_the_previous_process(qtbot, controller):
    with qtbot.waitSignal(controller.model_loaded, timeout=20000) as first:
        controller.load("a")
    with qtbot.waitSignal(controller.model_loaded, timeout=20000) as second:
        controller.load("b")
    assert not first.args[0].alive and second.args[0].alive


def test_device_setting_and_its_dialog_row(qtbot, app_settings):
    from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog

    assert app_settings.device == "auto"
    app_settings.q.setValue("model/device", "tpu")  # a hand-edited settings file
    assert app_settings.device == "auto"
    app_settings.device = "cuda:1"
    d = SettingsDialog(settings=app_settings)
    qtbot.addWidget(d)
    assert d.device_combo.currentData() == "cuda:1"  # kept, though not in the list
    assert d.apply() is False  # nothing changed
    d.device_combo.setCurrentIndex(d.device_combo.findData("cpu"))
    assert d.apply() is True and app_settings.device == "cpu"  # a new device reloads the model


def test_the_window_loads_the_model_on_the_settings_device(qtbot, file_store, app_settings, guideline_library):
    from fakes import FakeBackend

    from hitl_desktop.qt.main_window import MainWindow

    asked = []

    def factory(path, on_progress, *, device=None):
        asked.append((path, device))
        return FakeBackend()

    app_settings.device = "cpu"
    window = MainWindow(store=file_store, settings=app_settings, guidelines=guideline_library, backend_factory=factory)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.model.model_loaded, timeout=10000):
        window.start_model()
    assert asked == [(None, "cpu")]
    assert not window.restart_button.isVisibleTo(window)
    window.close()


def test_shutdown_mid_load_ends_the_load_at_once(qtbot, monkeypatch):
    """Closing the window while the model loads: no 15 s wait, the thread ends (a QThread
    destroyed while running aborts the app)."""
    import time

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "core"))

    def factory(path, on_progress, *, device=None):
        return open_local_backend(path, device=device, on_progress=on_progress, loader="engine_loaders:never_ready")

    ctl = ModelController(factory)
    with qtbot.waitSignal(ctl.load_progressed, timeout=30000, check_params_cb=lambda f, m: m == "reading the weights"):
        ctl.load("big", device="cpu")
    assert ctl.state == "loading"
    t0 = time.monotonic()
    assert ctl.shutdown(timeout_ms=15000)
    assert time.monotonic() - t0 < 5
    assert not ctl.is_running()
