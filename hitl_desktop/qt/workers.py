"""The model off the GUI thread (a long-lived controller, not an operation: see qt/ops.py).

The backend takes plain callbacks (``on_token``, ``should_stop``); ``ModelWorker`` lives in
its own QThread and turns them into signals. Tokens are coalesced (``TokenThrottle``): at
most one ``tokens_streamed`` signal every ~30 ms carries the latest text of every candidate
that grew, so the GUI event loop never drowns in updates.

The default factory starts the generation process (:mod:`hitl_desktop.core.backends.process`):
the model, torch and transformers live in a child process, so neither loading nor decoding
holds this process's GIL, and a crash or out-of-memory there is a message (``crashed``, state
"error") and :meth:`ModelController.restart`, never a dead window.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QPushButton, QWidget

from hitl_desktop.core.backends.base import (
    GenerationResult,
    ModelBackend,
    ModelError,
    ProgressCallback,
    SamplingParams,
)
from hitl_desktop.core.backends.process import TokenCoalescer, end_loading
from hitl_desktop.core.types import Message
from hitl_desktop.qt.ops import OperationRunner, describe_error

#: backend_factory(model spec or None, on_progress) -> ModelBackend. A spec is a local path, a
#: served model's URL, or a list of them (checkpoints compared). A factory that also takes a
#: ``device`` keyword gets the device asked for ("auto", "cpu", "cuda", "mps"...); one that takes
#: ``served_model`` / ``completions`` gets the served-model options.
BackendFactory = Callable[[Any, ProgressCallback], ModelBackend]

TOKEN_INTERVAL_S = 0.03
#: How often the controller checks that a loaded model's process is still there.
HEALTH_CHECK_MS = 1000


def default_backend_factory(
    spec: Any,
    on_progress: ProgressCallback,
    *,
    device: str | None = None,
    served_model: str | None = None,
    completions: bool = False,
    max_concurrency: int | None = None,
) -> ModelBackend:
    """``core.backends.registry.open_backend``: a local model in its own process (None = the
    embedded default model), a served model over HTTP, or several of them. ``max_concurrency``:
    streams sent to one server at once (None: K)."""
    from hitl_desktop.core.backends.registry import open_backend

    return open_backend(
        spec or None, device=device, on_progress=on_progress,
        served_model=served_model, completions=completions, max_concurrency=max_concurrency,
    )


def _factory_options(factory: BackendFactory, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword options ``factory`` accepts (test factories take only the spec and progress)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in options.items() if k in params}


def _close(backend: ModelBackend | None) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def report(e: BaseException) -> None:
    """stderr: one line for an expected failure (a bad model file: the window says why), the
    whole traceback for anything else (a bug)."""
    if isinstance(e, ModelError):
        print(f"hitl-desktop: {describe_error(e)}", file=sys.stderr)
    else:
        traceback.print_exception(e)


#: Collects on_token(i, text) calls and emits ``{i: text}`` at most every interval (the same
#: coalescing the generation process applies before its messages cross the pipe).
TokenThrottle = TokenCoalescer


@dataclass
class GenerationRequest:
    request_id: int
    conversation: list[Message]
    k: int
    params: SamplingParams
    seeds: list[int]
    slots: list[int]  # the card slot each generated candidate goes to
    purpose: str = "all"  # "all" | "one"
    meta: dict[str, Any] = field(default_factory=dict)


class ModelWorker(QObject):
    """Lives in the model thread; holds the backend. Its slots run there."""

    progressed = Signal(float, str)
    loaded = Signal(object)  # the backend
    load_failed = Signal(str)
    tokens_streamed = Signal(int, object)  # request id, {candidate index: text so far}
    generated = Signal(object, object)  # GenerationRequest, GenerationResult
    generation_failed = Signal(object, str)  # GenerationRequest, message
    crashed = Signal(str)  # the model's process ended: restart to go on

    def __init__(self, factory: BackendFactory) -> None:
        super().__init__()
        self._factory = factory
        self.backend: ModelBackend | None = None
        self.stop_upto = 0  # requests with an id <= this are asked to stop
        self.thread_id: int | None = None  # threading.get_ident() of the model thread, once known

    @Slot(object)
    def load(self, what: tuple[Any, dict[str, Any]]) -> None:
        path, options = what
        self.thread_id = threading.get_ident()
        self.close_backend()  # a model loaded before (restart, another model): its process ends
        kwargs = _factory_options(self._factory, options)
        try:
            self.backend = self._factory(
                path, lambda f, m: self.progressed.emit(float(f), str(m)), **kwargs
            )
        except BaseException as e:  # noqa: BLE001 - any failure becomes a message
            self.backend = None
            report(e)
            self.load_failed.emit(describe_error(e))
            return
        self.loaded.emit(self.backend)

    @Slot(object)
    def generate(self, request: GenerationRequest) -> None:
        if request.request_id <= self.stop_upto:
            result = GenerationResult(candidates=[], model="", model_revision="", dtype="", stopped=True)
            self.generated.emit(request, result)
            return
        if self.backend is None:
            self.generation_failed.emit(request, "the model is not loaded")
            return
        throttle = TokenThrottle(
            lambda batch: self.tokens_streamed.emit(request.request_id, batch), TOKEN_INTERVAL_S
        )
        try:
            result = self.backend.generate(
                request.conversation,
                k=request.k,
                params=request.params,
                seeds=request.seeds,
                on_token=throttle,
                should_stop=lambda: request.request_id <= self.stop_upto,
            )
            throttle.flush()
        except BaseException as e:  # noqa: BLE001
            report(e)
            self.generation_failed.emit(request, describe_error(e))
            if not getattr(self.backend, "alive", True):
                self.crashed.emit(describe_error(e))
            return
        self.generated.emit(request, result)

    def close_backend(self) -> None:
        backend, self.backend = self.backend, None
        _close(backend)


class ModelController(QObject):
    """The GUI thread's handle on the model thread."""

    state_changed = Signal(str)  # "idle" | "loading" | "ready" | "generating" | "error"
    load_progressed = Signal(float, str)
    model_loaded = Signal(object)  # backend (use its name/revision/dtype only)
    load_failed = Signal(str)
    tokens_streamed = Signal(int, object)
    generated = Signal(object, object)
    generation_failed = Signal(object, str)
    crashed = Signal(str)  # the model's process ended (killed, out of memory): offer a restart

    _load_requested = Signal(object)
    _generate_requested = Signal(object)

    def __init__(self, factory: BackendFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("model-thread")
        self._worker = ModelWorker(factory or default_backend_factory)
        self._worker.moveToThread(self._thread)
        self._load_requested.connect(self._worker.load)
        self._generate_requested.connect(self._worker.generate)
        w = self._worker
        w.progressed.connect(self.load_progressed)
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.tokens_streamed.connect(self._on_tokens)
        w.generated.connect(self._on_generated)
        w.generation_failed.connect(self._on_generation_failed)
        w.crashed.connect(self._on_crashed)
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self.last_request_id = 0
        self.state = "idle"
        self.backend_name = ""
        self.loaded = False
        self._started = False
        self._backend: ModelBackend | None = None
        self.path: Any = None
        self.device: str | None = None
        self.options: dict[str, Any] = {}
        self._health = QTimer(self)
        self._health.setInterval(HEALTH_CHECK_MS)
        self._health.timeout.connect(self._check_health)

    # -- lifecycle ------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if not self._started:
            self._thread.start()
            self._started = True

    def load(
        self,
        path: Any,
        *,
        device: str | None = None,
        served_model: str | None = None,
        completions: bool = False,
        max_concurrency: int | None = None,
    ) -> None:
        """Load ``path`` (None = the embedded model; a served model's URL; or a list of them to
        compare) on ``device`` (None/"auto" = the best one)."""
        self._ensure_started()
        self.path, self.device = path, device
        self.options = {"device": device, "served_model": served_model, "completions": completions,
                        "max_concurrency": max_concurrency}
        self.loaded = False
        self._backend = None
        self._health.stop()
        self._set_state("loading")
        self._load_requested.emit((path, dict(self.options)))

    def restart(self) -> None:
        """Load the last model again in a new process (after a crash, or to free its memory)."""
        self.load(self.path, **self.options)

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Stop generating, end the thread and the model's process; True when it ended in time."""
        self.stop_generation()
        self._health.stop()
        if not self._started:
            return True
        self._thread.quit()
        if self.state == "loading" and self._worker.thread_id is not None:
            end_loading(self._worker.thread_id)  # the thread waits for the model process: end that wait now
        ok = self._thread.wait(timeout_ms)
        self._started = not ok
        if ok:
            self._worker.close_backend()
        return ok

    def is_running(self) -> bool:
        return self._thread.isRunning()

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        *,
        conversation: Sequence[Message],
        k: int,
        params: SamplingParams,
        seeds: Sequence[int],
        slots: Sequence[int] | None = None,
        purpose: str = "all",
        meta: dict[str, Any] | None = None,
    ) -> GenerationRequest:
        self._ensure_started()
        request = GenerationRequest(
            request_id=next(self._ids),
            conversation=list(conversation),
            k=k,
            params=params,
            seeds=list(seeds),
            slots=list(slots) if slots is not None else list(range(k)),
            purpose=purpose,
            meta=dict(meta or {}),
        )
        self.last_request_id = request.request_id
        self._pending.add(request.request_id)
        if self.loaded:
            self._set_state("generating")
        self._generate_requested.emit(request)
        return request

    def stop_generation(self) -> None:
        """Ask every generation asked for so far to stop (within one decoding step)."""
        self._worker.stop_upto = self.last_request_id

    def is_generating(self) -> bool:
        return bool(self._pending)

    # -- from the worker --------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _on_loaded(self, backend) -> None:
        self.loaded = True
        self._backend = backend
        self.backend_name = getattr(backend, "name", "") or "model"
        if hasattr(backend, "alive"):
            self._health.start()
        self._set_state("generating" if self._pending else "ready")
        self.model_loaded.emit(backend)

    def _check_health(self) -> None:
        """A model process that died while idle is found here (one generating is found by
        the worker, which fails that generation)."""
        backend = self._backend
        if self.loaded and not self._pending and backend is not None and not backend.alive:
            self._on_crashed(f"{self.backend_name}: the model process ended; restart the model")

    def _on_crashed(self, message: str) -> None:
        self._health.stop()
        self.loaded = False
        self._backend = None
        self._set_state("error")
        self.crashed.emit(message)

    def _on_load_failed(self, message: str) -> None:
        self.loaded = False
        self._set_state("error")
        self.load_failed.emit(message)

    def _on_tokens(self, request_id: int, batch) -> None:
        if request_id in self._pending:
            if self.state != "generating":
                self._set_state("generating")
            self.tokens_streamed.emit(request_id, batch)

    def _finish(self, request: GenerationRequest) -> None:
        self._pending.discard(request.request_id)
        if not self._pending:
            self._set_state("ready" if self.loaded else ("error" if self.state == "error" else "idle"))

    def _on_generated(self, request: GenerationRequest, result: GenerationResult) -> None:
        self._finish(request)
        self.generated.emit(request, result)

    def _on_generation_failed(self, request: GenerationRequest, message: str) -> None:
        self._finish(request)
        if not self.loaded:
            self._set_state("error")
        self.generation_failed.emit(request, message)


class RestartButton(QPushButton):
    """"Restart model" for the status bar: shown only while the model is in error (its process
    crashed or ran out of memory, or it failed to load); a click calls the controller's restart."""

    def __init__(self, controller: ModelController, parent: QWidget | None = None) -> None:
        super().__init__("Restart model", parent)
        self.setObjectName("RestartModel")
        self.setAccessibleName("Restart model")
        self.setToolTip("Start the model again in a new process; nothing saved is affected")
        self.clicked.connect(controller.restart)
        controller.state_changed.connect(self._state_changed)
        self.setVisible(controller.state == "error")

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        self.setVisible(state == "error")


# -- the export dialog's runner ----------------------------------------------------------------


class ExportRunner(OperationRunner):
    """The export dialog's operation: ``core.operations.export`` (its own read-only connection,
    the integrity check first: the same rule as ``hitl-desktop export``)."""

    exported = Signal(object)  # ExportSummary

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent, name="export-thread")
        self.succeeded.connect(self.exported)

    def start(self, *, db_path: str, options: dict[str, Any]) -> None:
        from hitl_desktop.core import operations

        self.run(lambda progress, cancelled: operations.export(db_path, progress=progress, cancelled=cancelled, **options))
