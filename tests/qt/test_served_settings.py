"""Settings → Model: a served model's URL, its name, the completions switch, models compared."""

from __future__ import annotations

import sys
from pathlib import Path

from hitl_desktop.core.backends.registry import CompositeBackend, open_backend
from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from openai_stub import StubServer  # noqa: E402


def test_settings_take_urls_a_served_model_and_models_to_compare(qtbot, app_settings, tmp_path):
    with StubServer(mode="several") as a, StubServer(models=["ckpt-b"]) as b:
        d = SettingsDialog(settings=app_settings)
        qtbot.addWidget(d)
        assert app_settings.backend_spec() == {"spec": None, "served_model": None, "completions": False,
                                               "device": "auto", "max_concurrency": None}
        # the served model's options mean something only once a URL is named
        assert not d.served_model_edit.isEnabled() and not d.completions_check.isEnabled()
        d.local.setChecked(True)
        d.path_edit.setText(str(tmp_path))
        assert not d.served_model_edit.isEnabled()
        d.path_edit.setText(a.url)
        assert d.served_model_edit.isEnabled() and d.completions_check.isEnabled()
        d.served_model_edit.setText("other-model")
        d.completions_check.setChecked(True)
        d.compare_edit.setPlainText(f"\n{b.url}#ckpt-b\n  \n")
        d.show()
        qtbot.waitExposed(d)
        d.grab().save(str(tmp_path / "settings.png"))
        assert d.apply() is True
        assert d.apply() is False  # nothing changed since
        spec = app_settings.backend_spec()
        assert spec == {"spec": [a.url, f"{b.url}#ckpt-b"], "served_model": "other-model", "completions": True,
                        "device": "auto", "max_concurrency": None}
        backend = open_backend(spec["spec"], served_model=spec["served_model"], completions=spec["completions"])
        assert isinstance(backend, CompositeBackend)
        assert [m.name for m in backend.members] == ["other-model", "ckpt-b"]
        assert all(m.completions for m in backend.members)


def test_the_apps_model_controller_opens_what_settings_name(qtbot, app_settings):
    """The window's default factory goes through open_backend: a served model and a second one
    to compare, with the served-model name, share each prompt's K candidates."""
    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.types import Message
    from hitl_desktop.qt.workers import ModelController

    with StubServer(mode="several") as a, StubServer(models=["ckpt-b"]) as b:
        app_settings.model_path = a.url
        app_settings.served_model = "other-model"
        app_settings.compare_models = [f"{b.url}#ckpt-b"]
        spec = app_settings.backend_spec()
        ctl = ModelController()
        with qtbot.waitSignal(ctl.model_loaded, timeout=20000) as loaded:
            ctl.load(spec["spec"], device=spec["device"], served_model=spec["served_model"],
                     completions=spec["completions"])
        backend = loaded.args[0]
        with qtbot.waitSignal(ctl.generated, timeout=20000) as done:
            ctl.generate(conversation=[Message("user", "hi")], k=4, params=SamplingParams(max_new_tokens=8),
                         seeds=[11, 12, 13, 14])
        assert ctl.shutdown()
        _, result = done.args
        assert isinstance(backend, CompositeBackend)
        assert [c.model for c in result.candidates] == ["other-model", "ckpt-b", "other-model", "ckpt-b"]
        assert [c.seed for c in result.candidates] == [11, 12, 13, 14]
        assert sorted(r["seed"] for r in a.completion_requests()) == [11, 13]  # concurrent streams


def test_streams_at_once_caps_what_the_window_sends_one_server(qtbot, app_settings):
    """Settings → Streams at once reaches the served backend the window's controller opens:
    K=4 candidates, never more than 2 streams at the server at once."""
    from hitl_desktop.core.backends.base import SamplingParams
    from hitl_desktop.core.types import Message
    from hitl_desktop.qt.workers import ModelController

    with StubServer() as server:
        d = SettingsDialog(settings=app_settings)
        qtbot.addWidget(d)
        d.local.setChecked(True)
        d.path_edit.setText(server.url)
        assert d.concurrency_spin.isEnabled() and d.concurrency_spin.value() == 0  # "as many as candidates"
        d.concurrency_spin.setValue(2)
        assert d.apply() is True
        spec = app_settings.backend_spec()
        assert spec["max_concurrency"] == 2
        ctl = ModelController()
        with qtbot.waitSignal(ctl.model_loaded, timeout=20000):
            ctl.load(spec["spec"], device=spec["device"], served_model=spec["served_model"],
                     completions=spec["completions"], max_concurrency=spec["max_concurrency"])
        with qtbot.waitSignal(ctl.generated, timeout=20000) as done:
            ctl.generate(conversation=[Message("user", "hi")], k=4, params=SamplingParams(max_new_tokens=8),
                         seeds=[1, 2, 3, 4])
        assert ctl.shutdown()
        _, result = done.args
        assert len(result.candidates) == 4 and len(server.completion_requests()) == 4
        assert 1 <= server.max_active <= 2
