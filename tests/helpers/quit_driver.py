"""Runs the real app (``hitl_desktop.app.main``) and presses Quit at a chosen moment.

    python quit_driver.py DB MODEL WHEN [EMITS]

MODEL: a model folder (the real model process) or ``fake`` (tests/qt/fakes.py's backend, in
the model thread). WHEN: ``loading`` (at the first progress report), ``streaming`` (at the
first streamed text), ``idle`` (once the candidates are ready) or ``kill`` (SIGKILL this
process at the first streamed text: the model process must end quietly). EMITS: signals to
emit first through the window's model controller, as a long day of streaming does (PySide6
6.12.0's emit() drops a reference to True each time: the abort on quit).

Prints ``QUIT in <state>`` when it quits; the exit code is the app's.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qt"))  # fakes.py


def _fake_factory(when: str):
    from fakes import FakeBackend

    # long enough to be quit mid-stream; short when the quit waits for the candidates
    backend = FakeBackend(delay=0.02, words=300) if when == "streaming" else FakeBackend(delay=0.005, words=40)

    def factory(path, on_progress):
        steps = 20 if when == "loading" else 2
        for i in range(steps):
            on_progress(i / steps, "Loading the fake model")
            time.sleep(0.05)
        return backend

    return factory


def main() -> int:
    from PySide6.QtCore import QTimer

    from hitl_desktop import app
    from hitl_desktop.core.store import Store
    from hitl_desktop.core.types import Prompt

    db, model, when = sys.argv[1], sys.argv[2], sys.argv[3]
    emits = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    with Store.open(db) as store:
        for i in range(3):
            store.add_prompt(Prompt(text=f"Explain point number {i} in a few sentences.", domain="general"))

    original = app.create_window

    def create_window(**kwargs):
        if model == "fake":
            kwargs["backend_factory"] = _fake_factory(when)
            kwargs["model_path"] = None
        window = original(**kwargs)
        window.settings.tutor_name = "tess"
        window.settings.tutor_domains = ["general"]
        window.settings.k = 2
        window.settings.max_new_tokens = 200
        fired: list[str] = []

        def quit_now() -> None:
            if fired:
                return
            fired.append(window.model.state)
            for _ in range(emits):
                window.model.tokens_streamed.emit(0, {})  # request 0 is nobody's: ignored
            if when == "kill":
                print("KILL in", window.model.state, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            print("QUIT in", window.model.state, flush=True)
            window.lab_menus.quit_action.trigger()  # Ctrl+Q

        if when == "loading":
            window.model.load_progressed.connect(lambda *_: QTimer.singleShot(0, quit_now))
        elif when in ("streaming", "kill"):
            window.model.tokens_streamed.connect(lambda rid, _b: rid and QTimer.singleShot(0, quit_now))
        else:
            window.candidates_ready.connect(lambda _p: QTimer.singleShot(200, quit_now))
        return window

    app.create_window = create_window
    return app.main([db] if model == "fake" else [db, model])


if __name__ == "__main__":  # the model process (spawn) imports this file again: nothing runs then
    raise SystemExit(main())
