"""Screenshots of every dialog in the light and the dark theme, for looking at (issue 19).

    python scripts/screenshot_dialogs.py [OUT_DIR]      (default: /tmp/hitl-dialogs)

Runs offscreen (no display needed): a main window on a temporary database with a scripted
model (no torch), one prompt judged with a correction, then each dialog is opened as the
window opens it and saved with ``widget.grab()`` as ``OUT_DIR/<theme>-<name>.png``. Prints
the files written. Nothing of the user's (settings, database) is read or written.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

_SCREEN = Path(tempfile.gettempdir()) / "hitl-desktop-shots-screen.json"
_SCREEN.write_text(json.dumps({"screens": [{"name": "shots", "x": 0, "y": 0, "width": 1920, "height": 1200,
                                            "logicalDpi": 96, "logicalBpi": 96, "dpr": 1}]}))
os.environ.setdefault("QT_QPA_PLATFORM", f"offscreen:configfile={_SCREEN}")
TMP = Path(tempfile.mkdtemp(prefix="hitl-shots-"))
os.environ["HITL_DESKTOP_DB"] = str(TMP / "default.db")
os.environ["XDG_CONFIG_HOME"] = str(TMP / "config")
os.environ["XDG_DATA_HOME"] = str(TMP / "data")
os.environ["HITL_DESKTOP_NO_AUTO_BACKUP"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hitl_desktop

from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from hitl_desktop.core.backends.base import GeneratedText, GenerationResult  # noqa: E402
from hitl_desktop.core.guidelines import GuidelineLibrary  # noqa: E402
from hitl_desktop.core.importing import ImportFileError, LineError  # noqa: E402
from hitl_desktop.core.store import Store  # noqa: E402
from hitl_desktop.qt import refcounts, theme  # noqa: E402
from hitl_desktop.qt.settings import AppSettings  # noqa: E402

ANSWERS = [
    "Metformin should be **reduced** when the eGFR falls below 45 and stopped below 30. "
    "Check renal function every 3–6 months.",
    "A 52 year old man with an eGFR of 28 can continue metformin at the full dose.",
    "Stop metformin: an eGFR of 28 is below 30. Review the diabetes therapy (an SGLT2 "
    "inhibitor may not be suitable either) and recheck kidney function.",
    "| eGFR | action |\n|---|---|\n| ≥45 | continue |\n| 30–44 | reduce |\n| <30 | stop |",
]


class ScriptedBackend:
    """Streams the ANSWERS word by word (no model, no torch)."""

    name, revision, dtype = "scripted-model", "rev-1", "float32"

    def generate(self, conversation, *, k, params, seeds, on_token=None, should_stop=None):
        texts = [ANSWERS[(i + s) % len(ANSWERS)] for i, s in zip(range(k), seeds)]
        for i, text in enumerate(texts):
            if on_token is not None:
                on_token(i, text)
        return GenerationResult(
            candidates=[GeneratedText(index=i, text=t, seed=seeds[i], tokens=len(t.split()), seconds=0.1,
                                      finish_reason="stop") for i, t in enumerate(texts)],
            model=self.name, model_revision=self.revision, dtype=self.dtype,
            params=params.to_dict(), seconds=0.1, stopped=False,
        )


def factory(path, on_progress):
    on_progress(1.0, "ready")
    return ScriptedBackend()


def wait(app: QApplication, predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def settle(app: QApplication, seconds: float = 0.15) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def make_window(app: QApplication):
    from hitl_desktop.qt.main_window import MainWindow

    settings = AppSettings(QSettings(str(TMP / "settings.ini"), QSettings.Format.IniFormat))
    settings.k, settings.tutor_name, settings.tutor_domains = 4, "Dr. Amara", ["medicine"]
    store = Store.open(TMP / "shots.db")
    window = MainWindow(store=store, settings=settings, guidelines=GuidelineLibrary(user_dir=TMP / "guidelines"),
                        backend_factory=factory)
    window.resize(1440, 900)
    window.show()
    window.start_model()
    wait(app, lambda: window.model.state == "ready")
    window.start_session(tutor_name="Dr. Amara", domain="medicine")
    bench = window.bench
    window.add_prompt("Should metformin be stopped before a CT scan with contrast at an eGFR of 35?")
    wait(app, lambda: bench.phase == "judging" and not window.model.is_generating())
    for n in (3, 1, 4, 2):  # rank, flag, explain and submit one prompt: the history has a row
        bench.press_position(n)
    bench.rationale.setText("3 names the threshold and what to do instead.")
    settle(app, 2.0)  # a judgment takes a moment (the dashboard's items per hour)
    window.submit()
    window.add_prompt("A 52-year-old man with type 2 diabetes has an eGFR of 28. Should he stay on metformin?")
    wait(app, lambda: bench.phase == "judging" and not window.model.is_generating()
         and bench.prompt is not None and "52-year-old" in bench.prompt.text)
    from hitl_desktop.core.types import Correction

    bench.set_correction(Correction(text=ANSWERS[2] + " Metformin is contraindicated below 30.",
                                    candidate_id=bench.candidate_at(0).id))
    return window


def dialogs(window) -> dict[str, QWidget]:
    """Every dialog, opened as the window opens it (or built as the window builds it)."""
    from hitl_desktop.qt.dialogs.correction import CorrectionDialog
    from hitl_desktop.qt.dialogs.export_dialog import ExportDialog
    from hitl_desktop.qt.dialogs.guideline_editor import GuidelineEditorDialog
    from hitl_desktop.qt.dialogs.help import ShortcutsDialog
    from hitl_desktop.qt.dialogs.settings_dialog import SettingsDialog
    from hitl_desktop.qt.dialogs.text_entry import ContinueDialog
    from hitl_desktop.qt.dialogs.tutor import FirstRunDialog, SessionDialog
    from hitl_desktop.qt.menus import AboutDialog, ImportErrorsDialog

    out: dict[str, QWidget] = {}
    out["first-run"] = FirstRunDialog(window, name="", domains=["medicine"])
    out["session"] = SessionDialog(window, tutors=["Dr. Amara", "Dr. Chen"], tutor="Dr. Amara",
                                   domains=["medicine", "law", "finance"], domain="medicine")
    out["settings"] = SettingsDialog(window, settings=window.settings)
    out["export"] = ExportDialog(window, db_path=str(window.store.path), domains=["medicine", "law"],
                                 tutors=["Dr. Amara"], domain="medicine")
    correction = CorrectionDialog(window, original=ANSWERS[1], position=1)
    correction.editor.setPlainText(
        "A 52 year old man with an eGFR of 28 should stop metformin: it is contraindicated below 30."
    )
    correction.update_diff()
    out["correction"] = correction
    if window.guideline is not None:
        out["guidelines"] = GuidelineEditorDialog(window, guideline=window.guideline, history=2)
    out["shortcuts"] = ShortcutsDialog(window)
    out["continue"] = ContinueDialog(window, answer=ANSWERS[0], corrected=True)
    error = ImportFileError("/data/lab.jsonl", [LineError(3, "prompt", "missing"), LineError(7, "ranking", "not a list")])
    out["import-errors"] = ImportErrorsDialog(window, error=error)
    out["about"] = AboutDialog(window)
    menus = window.lab_menus
    menus.open_history()
    out["history"] = menus.history_view
    menus.lead_action.setChecked(True)
    menus.open_review()
    if menus.review_view is not None:
        out["review"] = menus.review_view
    window.open_quality_dashboard()
    out["dashboard"] = window.dashboard
    return out


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1] if len(argv) > 1 else "/tmp/hitl-dialogs")
    out_dir.mkdir(parents=True, exist_ok=True)
    refcounts.guard()
    app = QApplication(["screenshots"])
    QCoreApplication.setOrganizationName("hitl-desktop-shots")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(TMP / "qsettings"))
    theme.apply(app, dark=False)
    window = make_window(app)
    written = []
    for name in ("light", "dark"):
        theme.apply(app, dark=name == "dark")
        window.apply_theme()
        settle(app)
        window.grab().save(str(out_dir / f"{name}-main-window.png"))
        written.append(out_dir / f"{name}-main-window.png")
        for label, dialog in dialogs(window).items():
            dialog.show()
            settle(app)
            path = out_dir / f"{name}-{label}.png"
            dialog.grab().save(str(path))
            written.append(path)
            dialog.hide()
            if label not in ("history", "review", "dashboard"):
                dialog.deleteLater()
        menus = window.lab_menus
        for attr in ("history_view", "review_view"):
            view = getattr(menus, attr, None)
            if view is not None:
                view.close()
                view.deleteLater()
                setattr(menus, attr, None)
        if window.dashboard is not None:
            window.dashboard.close()
            window.dashboard.deleteLater()
            window.dashboard = None
        settle(app)
    for path in written:
        print(path)
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
