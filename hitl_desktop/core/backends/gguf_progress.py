"""Progress through a GGUF's tensors while transformers dequantises them (the first start).

Converting the embedded model is mostly one call, ``from_pretrained(gguf_file=...)``, whose
tensor loop (``transformers.modeling_gguf_pytorch_utils``) shows a tqdm bar on a terminal and
nothing else: the window sat at "Reading and dequantising ... 27 %" for two minutes on a busy
2-core machine. :func:`tensor_progress` puts a counting iterable in that tqdm's place while the
call runs, so the loop reports "tensor i of n" from ``start`` to ``end``. Where the module or
its ``tqdm`` is not there (another transformers), it does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hitl_desktop.core.backends.base import ProgressCallback

#: At most this many reports over the loop.
REPORTS = 50


@contextlib.contextmanager
def tensor_progress(progress: ProgressCallback, start: float, end: float, what: str) -> Iterator[None]:
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - transformers without GGUF support
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return

    def counted(iterable, *args, **kwargs):
        items = list(iterable)
        total = len(items)
        every = max(1, total // REPORTS)
        for i, item in enumerate(items):
            if i % every == 0:
                progress(start + (end - start) * i / max(1, total), f"{what}: tensor {i + 1} of {total}")
            yield item
        progress(end, f"{what}: {total} tensors")

    gguf_utils.tqdm = counted
    try:
        yield
    finally:
        gguf_utils.tqdm = original
