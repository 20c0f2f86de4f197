"""The judging state, the queue model, guidelines, settings, the token throttle."""

from __future__ import annotations

import pytest

from hitl_desktop.core.guidelines import GuidelineLibrary, check_domain, resources_dir
from hitl_desktop.core.ranking import validate_judgment
from hitl_desktop.core.types import Correction, Message, Prompt
from hitl_desktop.qt.candidate_card import drop_zone
from hitl_desktop.qt.judging import JudgingState
from hitl_desktop.qt.models import PromptQueueModel, PromptRole
from hitl_desktop.qt.workers import TokenThrottle


def test_rank_next_tie_and_moves():
    s = JudgingState(display_order=["a", "b", "c", "d"])
    s.rank_next("b")
    s.rank_next("a")
    s.tie_with_last("c")
    assert s.ranks() == {"b": 1, "a": 2, "c": 2}
    assert s.unranked() == ["d"] and s.missing() == []  # one left: implied last
    assert s.final_ranks()["d"] == 3
    s.move_up("c")  # breaks out of the tie, above a
    assert s.ranks() == {"b": 1, "c": 2, "a": 3}
    s.move_up("c")  # joins b
    assert s.ranks() == {"b": 1, "c": 1, "a": 2}
    s.move_down("b")
    assert s.ranks() == {"c": 1, "b": 2, "a": 3}
    s.move_down("a")  # already last and alone: stays
    assert s.rank_of("a") == 3
    s.place("d", "c", "above")
    assert s.ranks() == {"d": 1, "c": 2, "b": 3, "a": 4}
    s.place("a", "d", "tie")
    s.place("b", "c", "below")
    assert s.ranks() == {"d": 1, "a": 1, "c": 2, "b": 3}
    s.clear("a")
    assert s.missing() == [] and s.final_ranks()["a"] == 4
    s.clear_all()
    assert s.missing() and s.best() is None
    with pytest.raises(ValueError):
        s.place("a", "b", "sideways")


def test_all_bad_and_judgment():
    s = JudgingState(display_order=["a", "b", "c"])
    s.all_bad = True
    assert s.missing() == []
    assert s.final_ranks() == {"a": 1, "b": 1, "c": 1}
    s.rank_next("b")
    s.toggle_flag("b", "unsafe")
    s.set_rating("b", "helpfulness", 2)
    s.correction = Correction(text="better", candidate_id="b")
    j = s.to_judgment(prompt_id="p", tutor_id="t", session_id="s", guideline_version="v1-x", seconds_spent=3.0)
    assert j.ranks == {"b": 1, "a": 2, "c": 2} and j.all_bad and j.display_order == ["a", "b", "c"]
    assert j.flags == {"b": ["unsafe"]} and j.ratings == {"b": {"helpfulness": 2}}
    validate_judgment(j, ["a", "b", "c"])
    back = JudgingState.from_judgment(j, ["a", "b", "c"])
    assert back.ranks() == j.ranks and back.correction == j.correction and back.flags == {"b": {"unsafe"}}
    back.replace_id("b", "b2")
    assert back.display_order == ["a", "b2", "c"] and back.correction is None and "b" not in back.ranks()


def test_best_prefers_the_first_shown_in_a_tie():
    s = JudgingState(display_order=["a", "b", "c"])
    s.rank_next("c")
    s.tie_with_last("a")
    assert s.best() == "a"


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
    monkeypatch.setattr("hitl_desktop.qt.workers.time.monotonic", lambda: clock[0])
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
