"""What the window says while the model loads: the loader's words and how far it is, in percent.

The first start converts the embedded GGUF model (about a minute on a laptop, see the
README): the status bar and the waiting cards say what is happening ("Converting and
dequantising the model's tensors: 120 of 236") and how far along it is ("41 %"), not only
"loading…".
"""

from __future__ import annotations


class LoadProgress:
    """The last progress report of the model being loaded (``update``), as text."""

    def __init__(self) -> None:
        self.fraction: float | None = None
        self.message = ""

    def reset(self) -> None:
        self.fraction, self.message = None, ""

    def update(self, fraction: float, message: str) -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        self.message = message.strip().rstrip(".…")

    @property
    def percent(self) -> int | None:
        return None if self.fraction is None else int(self.fraction * 100)

    def status(self) -> str:
        """For the status bar: "loading · Reading the tokenizer of gemma.gguf · 2 %"."""
        if self.percent is None:
            return "loading…"
        words = f" · {self.message}" if self.message else ""
        return f"loading{words} · {self.percent} %"

    def waiting(self) -> str:
        """For a card waiting for its answer: "Waiting for the model to load (41 %): ..."."""
        if self.percent is None:
            return "Waiting for the model to load…"
        words = f": {self.message}…" if self.message else "…"
        return f"Waiting for the model to load ({self.percent} %){words}"
