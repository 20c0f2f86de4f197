"""The model backend protocol: plain callbacks, no Qt.

A backend loads a model once and then writes K candidate answers for a conversation. It
reports progress through plain callables, so it runs the same in a test, in the command line
and inside a Qt worker thread (which turns the callbacks into signals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from hitl_desktop.core.types import Message

#: on_token(candidate_index, text_so_far): called as a candidate grows.
TokenCallback = Callable[[int, str], None]
#: should_stop() -> True asks generation to stop within one decoding step.
StopCallback = Callable[[], bool]
#: on_progress(fraction 0..1, message): load and conversion progress.
ProgressCallback = Callable[[float, str], None]
#: on_status(message): something the tutor should know, said as it happens (the status bar).
StatusCallback = Callable[[str], None]


class ModelError(Exception):
    """A model could not be loaded or run; the message names the path and the cause."""


class NotEnoughMemory(ModelError):
    """The model does not fit in the memory available (converting it again will not help)."""


def short_error(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters of it), for a ModelError's cause."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class BackendUnavailableError(ModelError):
    """The backend as a whole failed (a server unreachable, refusing the key, erring): not one
    prompt's fault, so the engine stops instead of skipping prompt after prompt."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GeneratedText:
    """One candidate as the model wrote it, with its provenance."""

    index: int
    text: str
    seed: int
    tokens: int
    seconds: float
    finish_reason: str  # "eos" | "length" | "stopped"
    #: Per-candidate provenance, for a result whose candidates come from several models
    #: (checkpoints compared). None = the result's own ``model`` / ``model_revision`` /
    #: ``dtype``; ``params`` entries override the result's.
    model: str | None = None
    model_revision: str | None = None
    dtype: str | None = None
    params: dict[str, Any] | None = None


@dataclass
class GenerationResult:
    candidates: list[GeneratedText]
    model: str  # model name
    model_revision: str  # file sha256 or revision
    dtype: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    first_token_seconds: float | None = None
    stopped: bool = False
    device: str = ""  # where it ran: "cpu", "cuda:0", "mps"; also in params["device"]
    #: candidates written again one request at a time (a server cut their concurrent streams)
    retried: int = 0
    #: what the tutor should be told about this result (a retry), one line each
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.candidates)


def check_request(k: int, seeds: Sequence[int]) -> None:
    """The arguments every backend's ``generate`` checks first: ``k >= 1``, exactly one seed per candidate."""
    if k < 1 or len(seeds) != k:
        raise ValueError(f"need k >= 1 and one seed per candidate (k={k}, {len(seeds)} seeds)")


@runtime_checkable
class ModelBackend(Protocol):
    """What the engine, the CLI and the GUI need from a model."""

    name: str
    revision: str
    dtype: str

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
        """Write ``k`` answers to the last user turn of ``conversation``, one seed each."""
        ...
