"""core/errors.py: an unexpected error as one line, its traceback kept in the log (issue 20)."""

from __future__ import annotations

from hitl_desktop.core import errors


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def test_log_traceback_appends_to_the_log_in_the_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    first = errors.log_traceback(_raised(OverflowError("too large")), context="import x.jsonl")
    second = errors.log_traceback(_raised(RecursionError("deep")))
    assert first == second == tmp_path / "data" / "hitl-desktop" / "logs" / "errors.log"
    text = first.read_text()
    assert text.count("Traceback (most recent call last)") == 2
    assert "OverflowError: too large" in text and "RecursionError: deep" in text and "import x.jsonl" in text


def test_the_log_keeps_its_newer_half_past_its_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(errors, "MAX_LOG_BYTES", 5_000)
    for i in range(200):
        path = errors.log_traceback(_raised(ValueError(f"error number {i}")))
    text = path.read_text()
    assert path.stat().st_size < 3 * 5_000
    assert "error number 199" in text and "error number 0\n" not in text
    assert text.startswith("--- ")  # cut at an entry, never inside one


def test_an_unwritable_log_is_no_second_error(tmp_path, monkeypatch):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    assert errors.log_traceback(_raised(KeyError("k"))) is None
