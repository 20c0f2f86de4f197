"""The generation process: the model lives in a child process; this is the parent's proxy.

:func:`open_local_backend` starts a child (``multiprocessing``, ``spawn`` context: a fresh
interpreter, no inherited threads or Qt state), which imports torch and transformers, loads
the model and then answers generation requests. The parent never imports torch: it gets a
:class:`ProcessBackend`, which satisfies :class:`~.base.ModelBackend`, so the engine, the CLI
and the GUI's worker use it like any backend. The messages that cross the pipe are described
in ``docs/engine-protocol.md`` (:data:`PROTOCOL_VERSION`).

What it guarantees:

* ``should_stop()`` is polled every :data:`POLL_S` while the child generates; the first True
  sends a ``stop`` message, which the child honours before its next decoding step.
* Streamed text arrives coalesced: at most one ``tokens`` message every
  :data:`TOKEN_INTERVAL_S`, carrying the latest text of every candidate that grew.
* A child that dies (killed, crashed, out of memory: a ``MemoryError`` in the child ends it
  after it says so) turns into a :class:`EngineDied` (a :class:`~.base.ModelError`) in the
  parent, naming the cause; the proxy is then dead (``alive`` False) and the caller offers a
  restart (open a new one). Nothing in the parent is lost.
* A parent that dies (the window killed) ends the child at once and quietly: the reader
  thread reads EOF on the pipe, a send meets a broken pipe (:func:`_parent_gone`), whether
  the child was loading, idle or decoding; no traceback reaches the terminal.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from hitl_desktop.core.backends.base import (
    GenerationResult,
    ModelBackend,
    ModelError,
    ProgressCallback,
    SamplingParams,
    StopCallback,
    TokenCallback,
)
from hitl_desktop.core.types import Message

__all__ = [
    "DEFAULT_LOADER",
    "PROTOCOL_VERSION",
    "EngineDied",
    "ProcessBackend",
    "TokenCoalescer",
    "open_local_backend",
]

#: Bumped when a message changes shape (docs/engine-protocol.md).
PROTOCOL_VERSION = 1
#: The function the child calls to load the model: "module:function", called as
#: ``function(path, device=..., on_progress=...)`` and returning a ModelBackend.
DEFAULT_LOADER = "hitl_desktop.core.backends.transformers_backend:load_backend"
#: How often the parent checks should_stop() and the child's health while waiting.
POLL_S = 0.02
#: The child sends streamed text at most this often.
TOKEN_INTERVAL_S = 0.03


class EngineDied(ModelError):
    """The generation process ended (killed, crashed, out of memory): restart the model."""


@dataclass
class _Request:
    """What the child is asked to run (the fields of a ``generate`` message)."""

    id: int
    conversation: list[Message]
    k: int
    params: SamplingParams
    seeds: list[int]


class TokenCoalescer:
    """Collects ``on_token(i, text)`` and passes ``{i: text}`` on at most every ``interval``."""

    def __init__(self, emit: Callable[[dict[int, str]], None], interval: float = TOKEN_INTERVAL_S):
        self._emit = emit
        self._interval = interval
        self._pending: dict[int, str] = {}
        self._last = 0.0

    def __call__(self, index: int, text: str) -> None:
        self._pending[index] = text
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self.flush()

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, {}
            self._emit(batch)


# ------------------------------------------------------------------------------------ the child


def _load_function(spec: str) -> Callable[..., ModelBackend]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, ModelError):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _parent_gone() -> NoReturn:
    """The parent ended without a word (killed, crashed): nobody waits for this process's
    answers and it holds nothing to save, so it ends at once and quietly (no traceback of a
    broken pipe on the terminal), wherever it was: loading, idle or decoding."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(0)


def _child_main(conn: Any, path: str | None, device: str | None, loader: str, headless: bool = False) -> None:
    """The child's whole life: load, say ``ready`` (or ``load_failed``), serve requests.

    The parent's death is seen on the pipe: the reader thread's ``recv`` reads EOF (the
    kernel closes the parent's end), and any ``send`` fails with a broken pipe; both end the
    child through :func:`_parent_gone`. An orderly close is a ``shutdown`` message first."""
    # Ctrl+C in a terminal reaches the whole process group: the parent decides (it sends stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send_lock = threading.Lock()
    ending = threading.Event()  # the child closes its own end: an EOF then is no parent's death

    def send(message: dict[str, Any]) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (OSError, EOFError):  # BrokenPipeError, ConnectionResetError: the parent is gone
                _parent_gone()

    requests: queue.Queue[_Request | None] = queue.Queue()
    stopped: set[int] = set()
    closing = threading.Event()  # shutdown, or the parent is gone: stop what is running

    def read() -> None:  # the reader thread: stop messages arrive while the main thread decodes
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                if ending.is_set():  # this process closed its end on its way out
                    return
                _parent_gone()
            kind = message.get("type")
            if kind == "stop":
                stopped.add(int(message["id"]))
            elif kind == "generate":
                requests.put(
                    _Request(
                        id=int(message["id"]),
                        conversation=list(message["conversation"]),
                        k=int(message["k"]),
                        params=message["params"],
                        seeds=list(message["seeds"]),
                    )
                )
            elif kind == "shutdown":
                closing.set()
                requests.put(None)
                return

    threading.Thread(target=read, name="engine-reader", daemon=True).start()

    def progress(fraction: float, text: str) -> None:
        send({"type": "progress", "fraction": float(fraction), "message": str(text)})

    try:
        from hitl_desktop.core.backends.runtime import apply_model_environment

        # before the loader first imports torch (OMP_WAIT_POLICY...)
        apply_model_environment(headless=headless)
        backend = _load_function(loader)(path, device=device, on_progress=progress)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a message
        send({"type": "load_failed", "error": _describe(e), "memory": isinstance(e, MemoryError)})
        if not isinstance(e, ModelError):
            traceback.print_exc()
        ending.set()
        conn.close()
        return
    send(
        {
            "type": "ready",
            "protocol": PROTOCOL_VERSION,
            "name": backend.name,
            "revision": backend.revision,
            "dtype": backend.dtype,
            "weights": str(getattr(backend, "weights", "") or backend.dtype),
            "device": str(getattr(backend, "device", "") or "cpu"),
            "pid": os.getpid(),
        }
    )
    while True:
        request = requests.get()
        if request is None:
            break
        rid = request.id
        tokens = TokenCoalescer(lambda batch, rid=rid: send({"type": "tokens", "id": rid, "texts": batch}))
        try:
            result = backend.generate(
                request.conversation,
                k=request.k,
                params=request.params,
                seeds=request.seeds,
                on_token=tokens,
                should_stop=lambda rid=rid: rid in stopped or closing.is_set(),
            )
            tokens.flush()
        except MemoryError:
            send({"type": "error", "id": rid, "error": "out of memory", "fatal": True})
            ending.set()
            conn.close()
            os._exit(3)  # the interpreter's state after a MemoryError is not to be trusted
        except BaseException as e:  # noqa: BLE001
            if not isinstance(e, ModelError):
                traceback.print_exc()
            send(
                {
                    "type": "error",
                    "id": rid,
                    "error": str(e).strip(),
                    "error_type": "ModelError" if isinstance(e, ModelError) else type(e).__name__,
                    "fatal": False,
                }
            )
            continue
        finally:
            stopped.discard(rid)
        send({"type": "result", "id": rid, "result": result})
    ending.set()
    conn.close()


# ----------------------------------------------------------------------------------- the parent


def _rebuilt(kind: str, text: str) -> Exception:
    """The child's exception as the parent raises it: a ModelError (a refusal: a prompt too
    long, a template that refuses it) stays one; a built-in exception type is raised as itself;
    any other (torch's OutOfMemoryError...) becomes a RuntimeError naming its type."""
    if kind == "ModelError":
        return ModelError(text)
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(text)
        except Exception:  # noqa: BLE001 - an exception type with other arguments
            pass
    return RuntimeError(f"{kind}: {text}" if kind else text)


def _exit_cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name}, often the system running out of memory"
        return f"killed by {name}"
    if exitcode == 3:
        return "out of memory"
    return f"exit code {exitcode}"


class ProcessBackend:
    """The parent's handle on a model in a child process (a ModelBackend). One call at a time."""

    def __init__(self, process: Any, conn: Any, *, name: str) -> None:
        self._process = process
        self._conn = conn
        self._lock = threading.Lock()
        self._next_id = 1
        self._died = ""
        self.name = name
        self.revision = ""
        self.dtype = ""
        self.weights = ""  # how the linear layers' weights are held: the dtype, or "int8"
        self.device = ""
        self.pid: int = process.pid or 0

    @property
    def alive(self) -> bool:
        return not self._died and self._process.is_alive()

    def _dead(self, cause: str) -> EngineDied:
        self._died = self._died or cause
        return EngineDied(
            f"{self.name}: the model process ended ({self._died}); restart the model"
        )

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, None after ``timeout``; EngineDied when the child is gone."""
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            self._process.join(2.0)
            raise self._dead(_exit_cause(self._process.exitcode)) from None
        if not self._process.is_alive():
            raise self._dead(_exit_cause(self._process.exitcode))
        return None

    def generate(
        self,
        conversation: Sequence[Message],
        *,
        k: int,
        params: SamplingParams,
        seeds: Sequence[int],
        on_token: TokenCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> GenerationResult:
        # the child's backend checks the arguments: its ValueError is raised here as it is
        with self._lock:
            if self._died:
                raise self._dead(self._died)
            rid, self._next_id = self._next_id, self._next_id + 1
            try:
                self._conn.send(
                    {
                        "type": "generate",
                        "id": rid,
                        "conversation": [Message(m.role, m.content) for m in conversation],
                        "k": int(k),
                        "params": params,
                        "seeds": [int(s) for s in seeds],
                    }
                )
            except (OSError, EOFError):
                self._process.join(2.0)
                raise self._dead(_exit_cause(self._process.exitcode)) from None
            asked_to_stop = False
            while True:
                if not asked_to_stop and should_stop is not None and should_stop():
                    asked_to_stop = True
                    with contextlib.suppress(OSError):  # a dead child is found by _receive
                        self._conn.send({"type": "stop", "id": rid})
                message = self._receive(POLL_S)
                if message is None or message.get("id") != rid:
                    continue
                kind = message["type"]
                if kind == "tokens":
                    if on_token is not None:
                        for index, text in message["texts"].items():
                            on_token(int(index), text)
                elif kind == "result":
                    result: GenerationResult = message["result"]
                    result.device = result.device or self.device
                    return result
                elif kind == "error":
                    if message.get("fatal"):
                        self._process.join(5.0)
                        raise self._dead(str(message["error"]))
                    raise _rebuilt(str(message.get("error_type", "")), str(message["error"]))

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to end; kill it when it does not within ``timeout`` (idempotent)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send({"type": "shutdown"})
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout)
        self._died = self._died or "closed"
        self._conn.close()

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_local_backend(
    path: str | None,
    *,
    device: str | None = None,
    on_progress: ProgressCallback | None = None,
    loader: str | None = None,
    headless: bool = False,
) -> ModelBackend:
    """Start a generation process for a local model and return its proxy once it is loaded.

    ``path``: a model folder or ``.gguf`` file; None = the embedded default model.
    ``device``: "cuda", "cuda:N", "mps", "cpu", or None / "auto" (the best one there is).
    ``on_progress(fraction, message)`` reports the child's loading, from this thread.
    ``loader``: "module:function" the child loads the model with (default
    :data:`DEFAULT_LOADER`, read at call time; tests use their own).
    ``headless``: the caller only takes the streamed text (the command line): the child's
    OpenMP threads spin briefly before they sleep (:data:`.runtime.HEADLESS_ENVIRONMENT`).
    Raises ModelError with the child's reason when it cannot load, EngineDied when it dies.
    """
    progress = on_progress or (lambda f, m: None)
    progress(0.0, "Starting the model process")
    import multiprocessing  # here, not at import: the window shows first

    context = multiprocessing.get_context("spawn")
    parent_conn, child_conn = context.Pipe(duplex=True)
    process = context.Process(
        target=_child_main,
        args=(child_conn, path, device, loader or DEFAULT_LOADER, headless),
        name="hitl-model",
        daemon=True,
    )
    with _LOADING_LOCK:
        process.start()
        _LOADING[process] = threading.get_ident()
    child_conn.close()  # only the child holds its end: its death reads as EOF here
    label = str(path) if path else "the embedded model"
    proxy = ProcessBackend(process, parent_conn, name=label)
    try:
        while True:
            message = proxy._receive(0.1)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "progress":
                progress(float(message["fraction"]), str(message["message"]))
            elif kind == "load_failed":
                process.join(5.0)
                parent_conn.close()
                raise ModelError(str(message["error"]))
            elif kind == "ready":
                proxy.name = str(message["name"])
                proxy.revision = str(message["revision"])
                proxy.dtype = str(message["dtype"])
                proxy.weights = str(message.get("weights") or message["dtype"])
                proxy.device = str(message["device"])
                proxy.pid = int(message["pid"])
                return proxy
    except EngineDied as e:
        if getattr(process, "ended_by_app", False):
            raise EngineDied(f"{label}: loading stopped, the app is closing") from None
        raise EngineDied(f"{label}: the model process ended while loading ({proxy._died})") from e
    except BaseException:
        if process.is_alive():
            process.kill()
        raise
    finally:
        with _LOADING_LOCK:
            _LOADING.pop(process, None)


#: Model processes still loading -> the thread that waits for them in ``open_local_backend``.
_LOADING: dict[Any, int] = {}
_LOADING_LOCK = threading.Lock()


def end_loading(thread_id: int) -> int:
    """Kill the model processes still loading for the thread ``thread_id``
    (``threading.get_ident()``), so that it returns at once (with EngineDied) instead of when
    the model is in memory: for closing the app mid-load. Returns how many were ended."""
    with _LOADING_LOCK:
        loading = [process for process, waiter in _LOADING.items() if waiter == thread_id]
    for process in loading:
        process.ended_by_app = True
        with contextlib.suppress(Exception):
            process.kill()
    return len(loading)

