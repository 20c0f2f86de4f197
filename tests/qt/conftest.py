"""Fixtures for the GUI tests: headless Qt, temp settings, a temp database, the tiny model,
and a guard that fails any test which leaves a QThread running."""

from __future__ import annotations

import json  # noqa: E402
import os
import tempfile  # noqa: E402

# Headless, with a desktop-sized virtual screen (the offscreen default is 800x600, too small
# for the bench's three panels, so restored window geometry would be clamped).
_SCREEN = os.path.join(tempfile.gettempdir(), "hitl-desktop-tests-screen.json")
with open(_SCREEN, "w", encoding="utf-8") as _f:
    json.dump({"screens": [{"name": "test", "x": 0, "y": 0, "width": 1920, "height": 1200,
                            "logicalDpi": 96, "logicalBpi": 96, "dpr": 1}]}, _f)
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_SCREEN}"
os.environ.setdefault("QT_API", "pyside6")

import weakref  # noqa: E402

import pytest  # noqa: E402
from fakes import FakeBackend, fake_factory  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings, QThread  # noqa: E402

from hitl_desktop.core.guidelines import GuidelineLibrary  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _qt_settings_sandbox(tmp_path_factory):
    """QSettings() anywhere in a test goes to a temp folder under a test organisation."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    QCoreApplication.setOrganizationName("hitl-desktop-tests")
    QCoreApplication.setApplicationName("hitl-desktop-tests")
    yield folder


@pytest.fixture(autouse=True)
def _dangling_qthreads(monkeypatch):
    """Fail a test that leaves a QThread it started still running (after its teardown)."""
    started: list[weakref.ref] = []
    original = QThread.start

    def start(self, *args, **kwargs):
        started.append(weakref.ref(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start)
    yield
    leaked = []
    for ref in started:
        thread = ref()
        if thread is None:
            continue
        try:
            running = thread.isRunning()
        except RuntimeError:  # C++ object already deleted
            continue
        if running and not thread.wait(3000):
            leaked.append(thread.objectName() or repr(thread))
    if leaked:
        pytest.fail(f"QThread(s) still running after the test: {leaked}")


@pytest.fixture
def qsettings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def app_settings(qsettings):
    from hitl_desktop.qt.settings import AppSettings

    s = AppSettings(qsettings)
    s.k = 4
    s.max_new_tokens = 24
    s.temperature = 1.0
    return s


@pytest.fixture
def db_file(tmp_path):
    return tmp_path / "bench.db"


@pytest.fixture
def file_store(db_file):
    store = Store.open(db_file)
    yield store
    store.close()


@pytest.fixture
def guideline_library(tmp_path):
    return GuidelineLibrary(user_dir=tmp_path / "guidelines")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from hitl_desktop.core.backends.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    """The tiny real model, loaded once (a backend is used by one thread at a time)."""
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load(tiny_model_dir)


@pytest.fixture
def tiny_factory(tiny_backend):
    def factory(path, on_progress):
        on_progress(1.0, "tiny model ready")
        return tiny_backend

    return factory


@pytest.fixture
def fake_backend():
    return FakeBackend()


def _make_window(qtbot, *, store, settings, guidelines, factory):
    from hitl_desktop.qt import theme
    from hitl_desktop.qt.main_window import MainWindow

    theme.apply(QCoreApplication.instance(), dark=False)
    window = MainWindow(store=store, settings=settings, guidelines=guidelines, backend_factory=factory)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    window.start_model()
    qtbot.waitUntil(lambda: window.model.state == "ready", timeout=20000)
    return window


@pytest.fixture
def window(qtbot, file_store, app_settings, guideline_library, tiny_factory):
    """The real main window on a temp database, with the tiny real model loaded."""
    w = _make_window(qtbot, store=file_store, settings=app_settings, guidelines=guideline_library, factory=tiny_factory)
    yield w
    w.close()


@pytest.fixture
def fake_window(qtbot, file_store, app_settings, guideline_library, fake_backend):
    """The main window with the fake backend (fast, scripted streaming)."""
    w = _make_window(
        qtbot, store=file_store, settings=app_settings, guidelines=guideline_library, factory=fake_factory(fake_backend)
    )
    yield w
    w.close()

