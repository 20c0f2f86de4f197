"""The generation engine: a local transformers model writing K candidates in one batch, on the
CPU or a GPU.

Public API (no Qt here; the GUI wraps it in a worker thread):

* :func:`load_backend` ``(path=None, *, on_progress=None, dtype="bfloat16") -> TransformersBackend``:
  the embedded Gemma 3 270M when ``path`` is None; a ``.gguf`` file goes through the
  conversion cache (converted once to a bf16 folder, see :mod:`.cache` and :mod:`.gguf_files`);
  a folder loads as is.
* :meth:`TransformersBackend.load` ``(path, *, dtype="bfloat16", on_progress=None, cache_dir=None)``:
  a model folder, or a ``.gguf`` file (dequantised by transformers on every load unless
  ``cache_dir`` is given). Offline only. A Gemma 3 GGUF conversion whose int8 tables are
  cached loads without transformers (:mod:`.native_gemma3`): a :class:`NativeGemma3Backend`,
  the same batch loop over the lean step's prefill and steps.
* :meth:`TransformersBackend.generate` ``(conversation, *, k, params, seeds, on_token=None,
  should_stop=None) -> GenerationResult``.

How generation works:

* The prompt is the tokenizer's chat template (``add_generation_prompt=True``), earlier
  turns and system message included, when it has one; a template without a system role
  (Gemma's older ones raise) gets the system text at the start of the first user turn. A base
  model without a template gets the plain format :data:`PLAIN_FORMAT_DOC`, and each answer
  ends where the model starts a new ``User:`` turn (cut off, not shown).
* A conversation near the model's context limit gets shorter answers (finish_reason
  "length"); one that leaves no room at all is a ModelError.
* The prompt is run once (batch 1), its KV cache copied to the K rows, then all K candidates
  are decoded together, one token per step for every row (bf16 on CPU). Rows never need
  padding since they share the prompt; a finished row is dropped from the batch. On the CPU
  a bf16 model's linear layers hold int8 weights (:mod:`.int8`; ``HITL_CPU_INT8=0``: bf16).
* Each candidate has its own ``torch.Generator`` seeded with its seed, drawing exactly one
  number per token, and sampling (repetition penalty, temperature, top-k, top-p) is done per
  row. The batch always has at least two rows (a lone candidate gets a throwaway twin),
  because CPU matmul kernels give bit-identical rows for any batch of 2 or more but not for a
  batch of 1. So candidate i's text depends only on (prompt, params, seed i): not on K or the
  other seeds.
* On CUDA (``fast_decode``) the KV cache is static, sized in powers of two, and the decoding
  step is compiled with CUDA graphs while the model loads (:meth:`compile_fast_path`); the
  sampling's whole-vocabulary work stays on the GPU and only the few tokens a row draws from
  come to the CPU. Figures on H100 and H200 cards: the README's "GPU figures".
* Each row stops at its own end token: the tokenizer's EOS, the EOS ids of the model's config
  and generation config (Llama 3 lists ``<|eot_id|>`` there), the token the chat template
  writes after an assistant turn (found by rendering one: ``<end_of_turn>``, ``<|im_end|>``,
  ``</s>``...), and the common end-of-turn tokens of :data:`END_OF_TURN_TOKENS` in the vocabulary.
* Streaming: ``on_token(i, text_so_far)`` each time candidate i's visible text grows. Text is
  decoded incrementally (only the last few tokens each step), never ends in half a UTF-8
  character (U+FFFD), is stripped of surrounding white space, and only grows; the last call
  carries the final text.
* ``should_stop()`` is checked before every decoding step: the candidates come back as
  written so far, finish_reason "stopped", ``result.stopped = True``. An exception raised
  inside (including by a callback) propagates to the caller.
* Tuning knobs on a loaded backend: ``logit_bias`` ({token id: bias}, e.g. -inf bans a token)
  and ``plain_stops`` (the plain format's stop strings).

The work is split by job, one module each; this one holds the batch loop that ties them:
:mod:`.loading` (folders, GGUF files, the cache, int8, warm-up), :mod:`.prompting` (chat
templates, the plain format, end-of-turn tokens), :mod:`.decoding` (prefill and decoding
steps, the CUDA fast path), :mod:`.sampling` (one draw per row from its own generator),
:mod:`.streaming` (incremental detokenizing, what ``on_token`` gets) and :mod:`.runtime`
(environment defaults, set by the model process before torch is imported, never at import
time here; CPU threads).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from hitl_desktop.core.backends import cache, gguf_files, loading, prompting, sampling, streaming
from hitl_desktop.core.backends.base import (
    GeneratedText,
    GenerationResult,
    ModelError,
    ProgressCallback,
    SamplingParams,
    StopCallback,
    TokenCallback,
    check_request,
)
from hitl_desktop.core.backends.decoding import STATIC_CACHE_MIN, DecodingMixin, forward_keywords
from hitl_desktop.core.backends.decoding import fast_decode_default as _fast_decode_default
from hitl_desktop.core.backends.decoding import warm_up as _warm_up
from hitl_desktop.core.backends.devices import choose_device
from hitl_desktop.core.backends.lean_gemma3 import LeanGemma3
from hitl_desktop.core.backends.lean_gemma3 import enabled as _lean_enabled
from hitl_desktop.core.backends.lean_gemma3 import supports as _lean_supports
from hitl_desktop.core.backends.loading import DTYPES
from hitl_desktop.core.backends.plain import PLAIN_STOPS, format_plain, held_back
from hitl_desktop.core.backends.prompting import END_OF_TURN_TOKENS, PLAIN_FORMAT_DOC
from hitl_desktop.core.backends.runtime import THREADS_ENV, CpuThreads
from hitl_desktop.core.backends.streaming import Row as _Row
from hitl_desktop.core.types import Message

__all__ = [
    "DTYPES",
    "END_OF_TURN_TOKENS",
    "PLAIN_FORMAT_DOC",
    "PLAIN_STOPS",
    "STATIC_CACHE_MIN",
    "THREADS_ENV",
    "NativeGemma3Backend",
    "TransformersBackend",
    "format_plain",
    "held_back",
    "load_backend",
]


class TransformersBackend(DecodingMixin):
    """A causal LM and its tokenizer, generating K candidates per call. See the module doc."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        revision: str,
        dtype: str,
        path: Path | None = None,
        device: str = "cpu",
        fast_decode: bool | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision
        self.dtype = dtype
        self.path = path
        #: Where the model runs ("cpu", "cuda:0", "mps"); each row's draw is made on the CPU.
        self.device = device
        #: CUDA fast path: a static KV cache and a compiled decoding step. None = on for CUDA,
        #: unless ``HITL_FAST_DECODE`` says ``0`` (off) or ``1`` (on, any device).
        self.fast_decode = _fast_decode_default(device) if fast_decode is None else bool(fast_decode)
        self._compiled: Any = None
        self._static_cache: tuple[tuple[int, int], Any] | None = None  # ((width, size), StaticCache)
        #: How the linear layers' weights are held: the dtype, or "int8" (CPU, see :mod:`.int8`).
        self.weights = dtype
        #: Added to the logits before sampling, {token id: bias}; e.g. -inf bans a token.
        self.logit_bias: dict[int, float] = {}
        #: Where an answer ends in the plain format (no chat template); () = only at EOS.
        self.plain_stops: tuple[str, ...] = PLAIN_STOPS
        self._lock = threading.Lock()
        self._decoder = getattr(tokenizer, "backend_tokenizer", None)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self._model_facts(model)
        self._keep_kw, self._cache_kw = forward_keywords(model)
        #: The lean CPU decoding step of a Gemma 3 text model (:mod:`.lean_gemma3`); None:
        #: transformers' step (other models, other devices, ``HITL_LEAN_DECODE=0``).
        self.lean: LeanGemma3 | None = None
        if not self.fast_decode and _lean_enabled() and _lean_supports(model, device):
            self.lean = LeanGemma3(model)

    def _model_facts(self, model: Any) -> None:
        """The EOS ids, the padding id and the length limit, from the tokenizer and ``model``
        (its ``config`` and ``generation_config``)."""
        #: Token ids that end a candidate (EOS and the chat template's end of turn).
        self.eos_ids = {i for i in prompting.find_eos_ids(self.tokenizer, model) if 0 <= i < self.vocab_size}
        self.pad_id = self._first_int(self.tokenizer.pad_token_id, *sorted(self.eos_ids), 0)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)

    # ----------------------------------------------------------------------------------- load

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: str = "bfloat16",
        on_progress: ProgressCallback | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        warmup: bool = True,
        device: str = "cpu",
    ) -> TransformersBackend:
        """Load a local model folder or ``.gguf`` file, offline. Raises ModelError naming the path.

        ``cache_dir``: the conversion cache root for a ``.gguf`` file (converted once to a
        bf16 folder there); None loads the GGUF directly (dequantised on every load, slow).
        ``warmup``: run one tiny batch so the first real generation starts at full speed.
        (:func:`.loading.load`.)
        """
        return loading.load(
            cls, path, dtype=dtype, on_progress=on_progress, cache_dir=cache_dir, warmup=warmup, device=device
        )

    @classmethod
    def from_native_parts(cls, parts: Any, *, name: str, revision: str, path: Path | None = None) -> TransformersBackend:
        """The backend over a model loaded without transformers (:func:`.native_gemma3.load_parts`)."""
        return NativeGemma3Backend(parts, name=name, revision=revision, path=path)

    def warmup(self) -> None:
        """One tiny prompt and decoding step: the CPU kernels get set up before the first request."""
        with self._lock:
            _warm_up(self.model, self.device, self._cache_kw)
            if self.lean is not None:
                with torch.inference_mode():
                    _, past = self._prefill([self.pad_id] * 2, 2, 1)
                    self._step([self.pad_id] * 2, past)

    # --------------------------------------------------------------------------------- prompt

    @property
    def has_chat_template(self) -> bool:
        return prompting.has_chat_template(self.tokenizer)

    @property
    def prompt_format(self) -> str:
        """Either ``chat_template`` or ``plain``."""
        return "chat_template" if self.has_chat_template else "plain"

    def format_prompt(self, conversation: Sequence[Message]) -> str:
        """The text the model is given: chat template, or the plain format for a base model
        (:func:`.prompting.format_prompt`). Raises ModelError when the template refuses the
        conversation (e.g. roles that do not alternate)."""
        return prompting.format_prompt(self.tokenizer, conversation, label=self.path or self.name)

    def encode_prompt(self, conversation: Sequence[Message]) -> list[int]:
        """Token ids of the prompt (a chat template writes its own BOS; the plain format gets one)."""
        return prompting.encode_prompt(self.tokenizer, conversation, label=self.path or self.name)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return () if self.has_chat_template else tuple(self.plain_stops)

    # ----------------------------------------------------------------------------- generation

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
        """Write ``k`` answers to ``conversation`` in one batch, candidate i seeded with ``seeds[i]``.

        ``on_token(i, text_so_far)`` is called whenever candidate i's text grows (the last call
        carries its final text); ``should_stop()`` is polled before each decoding step.
        Returns the candidates in order with their tokens, seconds and finish reason ("eos",
        "length" or "stopped"). Exceptions (a callback's included) propagate.
        """
        check_request(k, seeds)
        with self._lock, torch.inference_mode():
            threads = torch.get_num_threads()
            governor = None
            if self.device == "cpu":
                governor = CpuThreads()  # looked at again while it runs
                torch.set_num_threads(governor.threads)
            try:
                return self._generate(
                    conversation, k, params, [int(s) for s in seeds], on_token, should_stop, governor
                )
            finally:
                torch.set_num_threads(threads)

    def _generate(
        self,
        conversation: Sequence[Message],
        k: int,
        params: SamplingParams,
        seeds: list[int],
        on_token: TokenCallback | None,
        should_stop: StopCallback | None,
        governor: CpuThreads | None = None,
    ) -> GenerationResult:
        start = time.perf_counter()
        prompt = self.encode_prompt(conversation) or [self.pad_id]
        max_new = max(0, int(params.max_new_tokens))
        if self.max_positions:  # a long conversation leaves shorter answers, down to none
            if len(prompt) >= self.max_positions:
                raise ModelError(
                    f"{self.name}: the conversation is {len(prompt)} tokens, which leaves no room "
                    f"for an answer within the model's limit of {self.max_positions} tokens"
                )
            max_new = min(max_new, self.max_positions - len(prompt))
        rows = [_Row(i, s, torch.Generator().manual_seed(s % 2**64)) for i, s in enumerate(seeds)]
        stops = self.stop_strings
        result = GenerationResult(
            candidates=[],
            model=self.name,
            model_revision=self.revision,
            dtype=self.dtype,
            params={
                **params.to_dict(),
                "prompt_format": self.prompt_format,
                "device": self.device,
                **({"weights": self.weights} if self.weights != self.dtype else {}),
            },
            device=self.device,
        )

        def finish(row: _Row, reason: str, now: float) -> None:
            row.finish, row.seconds = row.finish or reason, now
            self._flush(row, stops, on_token)

        stopped = bool(should_stop and should_stop())
        if stopped or max_new == 0:
            for row in rows:
                finish(row, "stopped" if stopped else "length", time.perf_counter() - start)
            return self._result(result, rows, start, stopped)

        # at least two lines in the batch (see the module doc); None marks a throwaway twin
        batch: list[int | None] = [r.index for r in rows] + [None] * max(0, 2 - k)
        logits, past = self._prefill(prompt, len(batch), max_new)
        seen: torch.Tensor | None = None  # tokens each line has seen (repetition penalty)
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(len(batch), logits.shape[-1], dtype=torch.bool, device=logits.device)
            seen[:, torch.tensor(prompt, device=logits.device)] = True

        while True:
            live = [b for b, i in enumerate(batch) if i is not None and rows[i].finish is None]
            if len(live) < len(batch):  # only the lines still writing are sampled
                lines = torch.tensor(live, device=logits.device)
                logits = logits.index_select(0, lines)
                live_seen = seen.index_select(0, lines) if seen is not None else None
            else:
                live_seen = seen
            live_rows = [rows[batch[b]] for b in live]  # type: ignore[index]
            picked = self._sample(logits, params, [r.generator for r in live_rows], live_seen)
            now = time.perf_counter() - start
            if result.first_token_seconds is None:
                result.first_token_seconds = now
            tokens = [self.pad_id] * len(batch)
            for b, row, tok in zip(live, live_rows, picked):
                tokens[b] = tok
                if tok in self.eos_ids:
                    finish(row, "eos", now)
                    continue
                row.ids.append(tok)
                if seen is not None:
                    seen[b, tok] = True
                self._advance(row, stops)  # may end the row at a stop string
                if row.finish is None and len(row.ids) >= max_new:
                    row.finish = "length"
                if row.finish is not None:
                    finish(row, row.finish, now)
                else:
                    self._show(row, stops, on_token)
            if all(r.finish is not None for r in rows):
                break
            if should_stop and should_stop():
                stopped = True
                for row in rows:
                    if row.finish is None:
                        finish(row, "stopped", time.perf_counter() - start)
                break
            # drop finished rows from the batch (keeping at least two lines); a static cache
            # keeps its batch, its finished lines decode padding
            active = [b for b, i in enumerate(batch) if i is not None and rows[i].finish is None]
            spare = [b for b in range(len(batch)) if b not in active]
            keep = sorted(active + spare[: max(0, 2 - len(active))])
            if len(keep) < len(batch) and not self._static(past):
                past.batch_select_indices(torch.tensor(keep, device=self.device))
                batch = [batch[b] for b in keep]
                tokens = [tokens[b] for b in keep]
                if seen is not None:
                    seen = seen.index_select(0, torch.tensor(keep, device=seen.device))
            if governor is not None and (threads := governor.before_step()) is not None:
                torch.set_num_threads(threads)
            logits, past = self._step(tokens, past)
        return self._result(result, rows, start, stopped)

    def _result(
        self, result: GenerationResult, rows: list[_Row], start: float, stopped: bool
    ) -> GenerationResult:
        result.candidates = [
            GeneratedText(
                index=r.index,
                text=r.shown,
                seed=r.seed,
                tokens=len(r.ids),
                seconds=r.seconds,
                finish_reason=r.finish or "stopped",
            )
            for r in rows
        ]
        result.seconds = time.perf_counter() - start
        result.stopped = stopped
        return result

    # ------------------------------------------------------------------- sampling, streaming

    def _sample(
        self,
        logits: torch.Tensor,
        params: SamplingParams,
        generators: list[torch.Generator],
        seen: torch.Tensor | None,
    ) -> list[int]:
        """One token per row (:func:`.sampling.sample`), with this backend's ``logit_bias``."""
        return sampling.sample(logits, params, generators, seen, self.logit_bias)

    _draw = staticmethod(sampling.draw)

    def _decode(self, ids: list[int]) -> str:
        if self._decoder is not None:
            return self._decoder.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _advance(self, row: _Row, stops: Sequence[str], *, final: bool = False) -> None:
        streaming.advance(row, self._decode, stops, final=final)

    def _show(self, row: _Row, stops: Sequence[str], on_token: TokenCallback | None) -> None:
        streaming.show(row, stops, on_token)

    def _flush(self, row: _Row, stops: Sequence[str], on_token: TokenCallback | None) -> None:
        streaming.flush(row, self._decode, stops, on_token)

    @staticmethod
    def _first_int(*values: Any) -> int:
        for v in values:
            if isinstance(v, int):
                return v
        return 0


class NativeGemma3Backend(TransformersBackend):
    """The backend over a Gemma 3 loaded without transformers (:mod:`.native_gemma3`): the
    prompt through :meth:`.LeanGemma3.prefill`, every step through the lean step; the rest
    (sampling, streaming, stops, seeds) is :class:`TransformersBackend`'s, so the candidates
    are the same as when the model loads through transformers."""

    def __init__(self, parts: Any, *, name: str, revision: str, path: Path | None = None) -> None:
        self.model = None
        self.tokenizer = parts.tokenizer
        self.name, self.revision, self.dtype, self.path = name, revision, "bfloat16", path
        self.device = "cpu"
        self.fast_decode = False
        self._compiled = None
        self._static_cache = None
        self.weights = "int8"
        self.logit_bias = {}
        self.plain_stops = PLAIN_STOPS
        self._lock = threading.Lock()
        self._decoder = parts.tokenizer.backend_tokenizer
        self.vocab_size = int(parts.vocab_size)
        facts = SimpleNamespace(config=parts.config, generation_config=SimpleNamespace(eos_token_id=parts.generation_eos))
        self._model_facts(facts)
        self._keep_kw, self._cache_kw = {}, "cache"
        self.lean = parts.lean

    def warmup(self) -> None:
        with self._lock, torch.inference_mode():
            _, past = self._prefill([self.pad_id] * 2, 2, 1)
            self._step([self.pad_id] * 2, past)

    def _prefill(self, prompt: list[int], width: int, max_new: int) -> tuple[torch.Tensor, Any]:
        return self.lean.prefill(prompt, width, max_new + 1)


# ------------------------------------------------------------------------------- default model


def load_backend(
    path: str | os.PathLike[str] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> TransformersBackend:
    """The backend for ``path``; the embedded default model when ``path`` is None.

    A ``.gguf`` file is converted once into the cache (:func:`cache.cache_root`) and loaded
    from there afterwards; a model folder is loaded directly. ``on_progress(fraction,
    message)`` reports conversion and loading. ``device``: "auto"/None (CUDA, else MPS, else
    CPU), "cpu", "cuda", "cuda:N" or "mps" (:func:`.devices.choose_device`); ``dtype``: None =
    the device's (bf16 on CUDA where supported, else fp16; fp16 on MPS; bf16 on the CPU).
    ``HITL_FAST_DECODE=0``/``1`` turns the CUDA fast path (static KV cache + torch.compile)
    off or on (default: on for CUDA). Raises ModelError naming the path and cause.
    """
    progress = on_progress or (lambda f, m: None)
    choice = choose_device(device)
    dtype = dtype or choice.dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    root = cache.cache_root()
    if path is None:
        return loading.load_cached(
            TransformersBackend,
            gguf_files.default_gguf_path,
            gguf_files.DEFAULT_SHA256,
            Path(gguf_files.DEFAULT_GGUF_NAME).stem,
            root,
            dtype,
            progress,
            True,
            device=choice.device,
        )
    return TransformersBackend.load(
        path, dtype=dtype, on_progress=progress, cache_dir=root, device=choice.device
    )
