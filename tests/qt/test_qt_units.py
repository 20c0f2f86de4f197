"""The queue model, drop zones, guidelines, settings, the token throttle."""

from __future__ import annotations

import pytest

from hitl_desktop.core.guidelines import GuidelineLibrary, check_domain, resources_dir
from hitl_desktop.core.types import Message, Prompt
from hitl_desktop.qt.candidate_card import drop_zone
from hitl_desktop.qt.models import PromptQueueModel, PromptRole
from hitl_desktop.qt.workers import TokenThrottle


def test_drop_zones():
    assert [drop_zone(y, 300) for y in (0, 99, 100, 199, 200, 299)] == ["above", "above", "tie", "tie", "below", "below"]


def test_queue_model(qtmodeltester):
    model = PromptQueueModel()
    prompts = [Prompt(text=f"question {i}\nsecond line", domain="medicine") for i in range(4)]
    prompts.append(Prompt(text="follow-up \u202eevil", messages=[Message("user", "q"), Message("assistant", "a")]))
    model.set_prompts(prompts)
    qtmodeltester.check(model, force_py=True)
    assert model.rowCount() == 5
    assert model.index(0).data() == "question 0 second line"
    assert model.index(4).data().startswith("↳ ") and "\u202e" not in model.index(4).data()
    assert model.index(1).data(PromptRole) is prompts[1]
    model.move_to_end(prompts[0].id)
    assert model.prompts()[-1] is prompts[0]
    assert model.remove(prompts[2].id) and not model.remove("nope")
    model.insert(0, Prompt(text="typed"))
    assert model.prompt_at(0).text == "typed" and model.row_of(prompts[1].id) == 1
    qtmodeltester.check(model, force_py=True)


def test_guidelines_versioned(tmp_path):
    lib = GuidelineLibrary(user_dir=tmp_path)
    shipped = lib.current("medicine")
    assert shipped.number == 1 and not shipped.edited and shipped.version.startswith("v1-")
    assert set(lib.shipped_domains()) >= {"medicine", "finance", "stem", "coding", "law", "general"}
    v2 = lib.save("medicine", shipped.text + "\nMore.\n")
    assert v2.version.startswith("v2-") and lib.current("medicine") == v2
    assert lib.save("medicine", v2.text) == v2  # unchanged: no new version
    v3 = lib.revert("medicine")
    assert v3.number == 3 and v3.text == shipped.text and v3.version != shipped.version
    assert [g.number for g in lib.history("medicine")] == [1, 2, 3]
    custom = lib.current("cardiology")
    assert "cardiology" in custom.text and custom.path is None
    with pytest.raises(ValueError):
        check_domain("../etc")
    assert (resources_dir() / "samples" / "medicine.jsonl").is_file()


def test_settings_roundtrip(app_settings, qsettings):
    from hitl_desktop.qt.settings import AppSettings

    app_settings.k = 12
    assert app_settings.k == 9
    app_settings.seed = 7
    assert app_settings.seeds(3) == [7, 8, 9]
    assert len(set(app_settings.seeds(3, fresh=True))) == 3
    app_settings.seed = None
    assert app_settings.seed is None
    app_settings.tutor_domains = ["medicine", "law"]
    app_settings.sync()
    again = AppSettings(qsettings)
    assert again.tutor_domains == ["medicine", "law"] and again.k == 9
    assert again.sampling_params().max_new_tokens == 24


def test_token_throttle_coalesces(monkeypatch):
    batches = []
    clock = [0.0]
    monkeypatch.setattr("hitl_desktop.core.backends.process.time.monotonic", lambda: clock[0])
    t = TokenThrottle(batches.append, interval=0.03)
    t(0, "a")  # first call emits at once (last = 0 -> now 0.0 >= 0.03? no)
    clock[0] = 0.05
    t(1, "b")
    for i in range(10):
        clock[0] += 0.001
        t(i % 2, f"x{i}")
    t.flush()
    assert batches[0] == {0: "a", 1: "b"}
    assert batches[-1] == {0: "x8", 1: "x9"} and len(batches) == 2
