"""The generation engine: a local transformers model writing K candidates in one batch, on the
CPU or a GPU.

Public API (no Qt here; the GUI wraps it in a worker thread):

* :func:`load_backend` ``(path=None, *, on_progress=None, dtype="bfloat16") -> TransformersBackend``:
  the embedded Gemma 3 270M when ``path`` is None; a ``.gguf`` file goes through the
  conversion cache (converted once to a bf16 folder, see :mod:`.cache` and :mod:`.gguf_files`);
  a folder loads as is.
* :meth:`TransformersBackend.load` ``(path, *, dtype="bfloat16", on_progress=None, cache_dir=None)``:
  a model folder, or a ``.gguf`` file (dequantised by transformers on every load unless
  ``cache_dir`` is given). Offline only.
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
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# OpenMP threads that sleep when they wait instead of spinning: with all cores in use, a busy
# GUI thread or another program otherwise makes every parallel region wait for a descheduled
# spinner (measured on 2 cores with one other busy process: 0.6 s per decoding step instead of
# 0.15). Costs ~20% on an otherwise idle machine; set OMP_WAIT_POLICY=ACTIVE to prefer that.
# Only effective when torch is first imported here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

# PreTrainedModel: imports transformers' model-loading machinery now, not during the first load
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel  # noqa: E402,F401
from transformers.utils import logging as _hf_logging  # noqa: E402

from hitl_desktop.core.backends import cache, gguf_files, memory, model_files  # noqa: E402
from hitl_desktop.core.backends.base import (  # noqa: E402
    GeneratedText,
    GenerationResult,
    ModelError,
    NotEnoughMemory,
    ProgressCallback,
    SamplingParams,
    StopCallback,
    TokenCallback,
    short_error,
)
from hitl_desktop.core.backends.devices import choose_device  # noqa: E402
from hitl_desktop.core.backends.int8 import quantize_linears, supported  # noqa: E402
from hitl_desktop.core.backends.lean_gemma3 import LeanCache, LeanGemma3  # noqa: E402
from hitl_desktop.core.backends.lean_gemma3 import enabled as _lean_enabled  # noqa: E402
from hitl_desktop.core.backends.lean_gemma3 import supports as _lean_supports  # noqa: E402
from hitl_desktop.core.backends.plain import PLAIN_STOPS, format_plain, held_back
from hitl_desktop.core.types import Message  # noqa: E402

__all__ = [
    "DTYPES",
    "PLAIN_FORMAT_DOC",
    "TransformersBackend",
    "format_plain",
    "load_backend",
]

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}

#: Roles as written in the plain format for base models.
PLAIN_FORMAT_DOC = "System: ...\\n\\nUser: ...\\n\\nAssistant: ...\\n\\nUser: ...\\n\\nAssistant:"

#: End-of-turn tokens of common chat templates; each one present in a vocabulary as a special
#: token ends a row. ("</s>" is not one: Gemma has it as an HTML tag; where it is the EOS,
#: the tokenizer's eos_token says so.)
END_OF_TURN_TOKENS = (
    "<end_of_turn>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|return|>",
)

#: First candidates considered for top-p before widening to the whole vocabulary.
_NUCLEUS_STEPS = (256, 4096)
#: The smallest static KV cache (CUDA fast path), in tokens; a larger one doubles it until the
#: prompt and the answer fit (see TransformersBackend._prefill).
STATIC_CACHE_MIN = 256

# all cores (torch's default is the physical ones, and interop threads are not used)
torch.set_num_threads(max(1, os.cpu_count() or 1))
# no tqdm bars of transformers' own while loading: on_progress reports instead
_hf_logging.disable_progress_bar()
#: Threads for one generate() call on the CPU: a number, or "auto" (:func:`_cpu_threads`).
THREADS_ENV = "HITL_CPU_THREADS"


def _cpu_threads(cores: int | None = None) -> int:
    """Threads for a generation on the CPU: ``HITL_CPU_THREADS`` when set, else the cores
    that other programs leave idle right now (at least one). A decoding step is some 2000
    small parallel regions; a thread that has to wait for a core at each of them makes the
    step several times slower than one thread alone (measured on 2 cores with other
    programs busy: 660 ms per step with 2 threads against 160 ms with 1). The busy cores are
    the runnable tasks of ``/proc/loadavg`` (median of 3 looks, this thread excluded); where
    it cannot be read, every core. The texts do not depend on the number of threads (the
    int8 sums are exact; checked on the embedded model)."""
    cores = max(1, cores or os.cpu_count() or 1)
    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted and wanted != "auto":
        try:
            return max(1, int(wanted))
        except ValueError:
            pass
    if cores == 1:
        return 1
    looks = []
    try:
        for i in range(3):
            if i:
                time.sleep(0.002)
            with open("/proc/loadavg", encoding="ascii") as f:
                looks.append(int(f.read().split()[3].split("/")[0]))
    except (OSError, ValueError, IndexError):
        return cores
    busy = max(0, sorted(looks)[1] - 1)
    return max(1, min(cores, cores - busy))


_TRAILING = re.compile(r"[\s\ufffd]+$")


def _tidy(text: str) -> str:
    """What is shown: no surrounding white space and no trailing U+FFFD (half a character, or
    an undecodable byte that would otherwise end the text)."""
    return _TRAILING.sub("", text.lstrip())


@dataclass
class _Row:
    """One candidate being written."""

    index: int
    seed: int
    generator: torch.Generator
    ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far (complete characters only)
    prefix_offset: int = 0
    read_offset: int = 0
    shown: str = ""  # last text given to on_token
    finish: str | None = None
    seconds: float = 0.0


class TransformersBackend:
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
        #: Token ids that end a candidate (EOS and the chat template's end of turn).
        self.eos_ids = {i for i in self._find_eos_ids() if 0 <= i < self.vocab_size}
        self.pad_id = self._first_int(tokenizer.pad_token_id, *sorted(self.eos_ids), 0)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self._keep_kw, self._cache_kw = _forward_keywords(model)
        #: The lean CPU decoding step of a Gemma 3 text model (:mod:`.lean_gemma3`); None:
        #: transformers' step (other models, other devices, ``HITL_LEAN_DECODE=0``).
        self.lean: LeanGemma3 | None = None
        if not self.fast_decode and _lean_enabled() and _lean_supports(model, device):
            self.lean = LeanGemma3(model)

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
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
        progress = on_progress or (lambda f, m: None)
        path = Path(path).expanduser()
        root = Path(cache_dir).expanduser() if cache_dir is not None else None
        info = model_files.check_model_path(path)  # ModelError: missing, not a model, truncated...
        try:
            if info is None:  # a folder
                return cls._load_folder(path, dtype, progress, warmup, root, device=device)
            if root is None:
                return cls._load_gguf(path, info, dtype, progress, warmup, device=device)
            need = int(info.parameters * DTYPES[dtype].itemsize * 1.2)
            memory.check_memory(path, need, "loading it")
            sha = cache.file_sha256(path, root=root)
            return cls._load_cached(
                lambda: path, sha, path.stem, root, dtype, progress, warmup, device=device
            )
        except OSError as e:  # unreadable file or folder (permissions, I/O error)
            raise ModelError(f"{path}: cannot read the model: {e.strerror or e}") from None

    @classmethod
    def _load_cached(
        cls,
        gguf: Callable[[], Path],
        sha: str,
        name: str,
        root: Path,
        dtype: str,
        progress: ProgressCallback,
        warmup: bool,
        *,
        device: str = "cpu",
    ) -> TransformersBackend:
        """Load the converted folder of a GGUF (``gguf()`` gives the file), converting it first
        if needed; a damaged cache entry is converted again, once."""
        first, then = _two_stages(progress)
        for attempt in (1, 2):
            folder = cache.lookup(sha, root)
            if folder is None:
                if attempt == 1:
                    first(0.0, f"Preparing {name}")
                folder = cache.ensure_converted(
                    gguf(),
                    converter=gguf_files.convert_gguf,
                    sha256=sha,
                    root=root,
                    on_progress=first,
                    name=name,
                )
            try:
                return cls._load_folder(folder, dtype, then, warmup, root, device=device)
            except NotEnoughMemory:
                raise
            except ModelError:
                if attempt == 2:
                    raise
                shutil.rmtree(folder, ignore_errors=True)  # damaged: convert again
        raise AssertionError("unreachable")

    @classmethod
    def _load_folder(
        cls,
        path: Path,
        dtype: str,
        progress: ProgressCallback,
        warmup: bool,
        root: Path | None,
        *,
        device: str = "cpu",
    ) -> TransformersBackend:
        weights, params = model_files.folder_weights(path)  # ModelError: not a model folder...
        memory.check_memory(path, int(params * DTYPES[dtype].itemsize * 1.2), "loading it")
        source = cache.read_source(path)
        if source and source.get("sha256"):
            name, revision = str(source.get("name") or path.name), str(source["sha256"])
        else:
            name = path.name
            progress(0.0, f"Checking {path.name}")
            try:
                revision = cache.files_sha256(
                    [path / "config.json", *weights], base=path, root=root
                )
            except OSError as e:
                raise ModelError(f"{path}: cannot read the model files: {e}") from None
        try:
            progress(0.05, f"Loading the tokenizer of {name}")
            tokenizer = gguf_files.converted_tokenizer(path, source) or (
                AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            )
            progress(0.6, f"Loading {name}")
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, dtype=DTYPES[dtype]
            )
        except MemoryError:
            raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
        except Exception as e:  # noqa: BLE001 - many failure modes inside transformers
            raise ModelError(f"{path}: cannot load the model ({short_error(e)})") from None
        return cls._finish(
            model,
            tokenizer,
            name=name,
            revision=revision,
            dtype=dtype,
            path=path,
            progress=progress,
            warmup=warmup,
            device=device,
        )

    @classmethod
    def _load_gguf(
        cls,
        path: Path,
        info: gguf_files.GgufInfo,
        dtype: str,
        progress: ProgressCallback,
        warmup: bool,
        *,
        device: str = "cpu",
    ) -> TransformersBackend:
        memory.check_memory(path, int(info.parameters * 4 * 1.5), "loading it")
        progress(0.0, f"Checking {path.name}")
        revision = cache.file_sha256(path)
        model, tokenizer = gguf_files.read_gguf(path, dtype=DTYPES[dtype], progress=progress)
        return cls._finish(
            model,
            tokenizer,
            name=path.stem,
            revision=revision,
            dtype=dtype,
            path=path,
            progress=progress,
            warmup=warmup,
            device=device,
        )

    @classmethod
    def _finish(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        revision: str,
        dtype: str,
        path: Path,
        progress: ProgressCallback,
        warmup: bool,
        device: str = "cpu",
    ) -> TransformersBackend:
        """The backend over a loaded model; ``warmup`` runs it once, so a model that loads but
        cannot run fails here, with a ModelError naming the path."""
        model.eval()
        quantized = device == "cpu" and _int8_wanted(DTYPES[dtype])
        if quantized:
            progress(0.8, f"Preparing {name} for the CPU")
            quantize_linears(model)
        if device != "cpu":
            progress(0.85, f"Moving {name} to {device}")
            try:
                model.to(device)
            except Exception as e:  # noqa: BLE001 - out of device memory, a missing kernel...
                raise ModelError(f"{path}: cannot move the model to {device} ({short_error(e)})") from None
        tokenizer.padding_side = "left"
        backend = cls(
            model, tokenizer, name=name, revision=revision, dtype=dtype, path=path, device=device
        )
        backend.weights = "int8" if quantized else dtype
        if warmup:
            progress(0.9, "Warming up")
            try:
                backend.warmup()
            except MemoryError:
                raise NotEnoughMemory(f"{path}: too large for this computer's memory") from None
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"{path}: the model loads but does not run ({short_error(e)})") from None
            if backend.fast_decode and device.startswith("cuda"):
                progress(0.92, f"Compiling {name} for the GPU (up to a minute the first time)")
                failed = backend.compile_fast_path()
                if failed:
                    progress(0.98, f"{name}: the GPU fast path is off ({failed}); decoding eagerly")
        progress(1.0, f"{name} ready")
        return backend

    def warmup(self) -> None:
        """One tiny prompt and decoding step: the CPU kernels get set up before the first request."""
        with self._lock:
            _warm_up(self.model, self.device, self._cache_kw)
            if self.lean is not None:
                with torch.inference_mode():
                    _, past = self._prefill([self.pad_id] * 2, 2, 1)
                    self._step([self.pad_id] * 2, past)

    def compile_fast_path(self) -> str | None:
        """Compile the fast path's decoding step now (while the model loads), not at the first
        request. Where it cannot be compiled here, the fast path is turned off (eager decoding
        still works) and the reason is returned; None when it is ready.

        Two shapes (2 lines and the smallest cache, then 3 lines and the next cache size) make
        torch.compile treat the batch and the cache length as dynamic, so later requests of any
        K and prompt length only record their CUDA graph (under a second) instead of compiling
        (20-35 s each on an H100 or H200; see the README's GPU figures)."""
        with self._lock, torch.inference_mode():
            try:
                for width, length in ((2, 8), (3, STATIC_CACHE_MIN)):
                    prompt = [self.pad_id] * length
                    _, past = self._prefill(prompt, width, 2)
                    for _ in range(3):  # CUDA graphs are recorded at the second or third call
                        _, past = self._step([self.pad_id] * width, past)
                self._static_cache = None  # not kept: a request makes its own
            except Exception as e:  # noqa: BLE001 - an old card, a missing compiler: eager still works
                self.fast_decode, self._compiled, self._static_cache = False, None, None
                # torch.compile wraps the compiler's own error, whose message says what failed
                return short_error(getattr(e, "inner_exception", None) or e)
        return None

    # --------------------------------------------------------------------------------- prompt

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def prompt_format(self) -> str:
        """Either ``chat_template`` or ``plain``."""
        return "chat_template" if self.has_chat_template else "plain"

    def format_prompt(self, conversation: Sequence[Message]) -> str:
        """The text the model is given: chat template, or the plain format for a base model.

        A template that refuses a system turn (Gemma's older ones raise) gets the system text
        folded into the first user turn instead. Raises ModelError when the template refuses
        the conversation anyway (e.g. roles that do not alternate).
        """
        if not self.has_chat_template:
            return format_plain(conversation)
        messages = [{"role": m.role, "content": m.content} for m in conversation]
        try:
            return self._apply_template(messages)
        except Exception as e:  # noqa: BLE001 - a template raises whatever it likes
            folded = _fold_system(messages)
            if folded is not None:
                try:
                    return self._apply_template(folded)
                except Exception:  # noqa: BLE001 - report the first refusal
                    pass
            raise ModelError(
                f"{self.path or self.name}: the chat template refused the conversation ({short_error(e)})"
            ) from None

    def _apply_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def encode_prompt(self, conversation: Sequence[Message]) -> list[int]:
        """Token ids of the prompt (a chat template writes its own BOS; the plain format gets one)."""
        text = self.format_prompt(conversation)
        return list(self.tokenizer(text, add_special_tokens=not self.has_chat_template).input_ids)

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
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        if len(seeds) != k:
            raise ValueError(f"need one seed per candidate: k={k} but {len(seeds)} seeds")
        with self._lock, torch.inference_mode():
            threads = torch.get_num_threads()
            if self.device == "cpu":
                torch.set_num_threads(_cpu_threads())
            try:
                return self._generate(
                    conversation, k, params, [int(s) for s in seeds], on_token, should_stop
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
            logits, past = self._step(tokens, past)
        return self._result(result, rows, start, stopped)

    @staticmethod
    def _static(past: Any) -> bool:
        return not hasattr(past, "batch_select_indices") or type(past).__name__ == "StaticCache"

    def _forward(self, input_ids: torch.Tensor, past: Any, *, compiled: bool = False) -> tuple[torch.Tensor, Any]:
        """One forward pass: the last position's logits (float32) and the cache. On CUDA the
        logits stay on the card: the sampling narrows them there and brings only the few tokens
        it draws from to the CPU (measured: 9.9 -> 7.4 ms per step, 8B on an H200); elsewhere
        (the CPU, MPS, untested for this) they are on the CPU."""
        model = self._compiled if compiled and self._compiled is not None else self.model
        kw = {self._cache_kw: past} if past is not None else {}
        out = model(input_ids=input_ids, use_cache=True, **kw, **self._keep_kw)
        cache_out = getattr(out, "cache", None)
        if cache_out is None:
            cache_out = getattr(out, "past_key_values", None)
        logits = out.logits[:, -1, :].float()
        return (logits if self.device.startswith("cuda") else logits.cpu()), cache_out

    def _step(self, tokens: list[int], past: Any) -> tuple[torch.Tensor, Any]:
        """One decoding step: one token for every line of the batch."""
        if isinstance(past, LeanCache) and self.lean is not None:
            return self.lean.step(torch.tensor(tokens), past), past
        ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
        return self._forward(ids, past, compiled=self.fast_decode)

    def _prefill(self, prompt: list[int], width: int, max_new: int) -> tuple[torch.Tensor, Any]:
        """Run the prompt once and give its KV cache ``width`` lines: (last logits, cache).

        With ``fast_decode`` the cache is a StaticCache sized for the prompt and the answer,
        rounded up to a power of two from :data:`STATIC_CACHE_MIN` tokens (so a session meets
        few sizes, and attention reads at most twice the tokens it needs), and the decoding step
        is compiled (on CUDA) on first use: by :meth:`compile_fast_path` while the model loads.
        The compiled step treats sizes as static until a second size comes, then compiles once
        for any size (torch.compile's automatic dynamic shapes). The last StaticCache is
        kept and reset for the next request of the same shape: the same tensors at the same
        addresses, so the compiled step and its CUDA graph are reused."""
        if self.fast_decode:
            from transformers import StaticCache

            size = STATIC_CACHE_MIN
            while size < len(prompt) + max_new + 1:
                size *= 2
            if self.max_positions:
                size = min(size, int(self.max_positions))
            if self._static_cache is not None and self._static_cache[0] == (width, size):
                past = self._static_cache[1]
                past.reset()
            else:
                self._static_cache = None  # one static cache at a time (its memory)
                past = StaticCache(config=_all_layers_full(self.model.config), max_cache_len=size)
                self._static_cache = ((width, size), past)
            if self._compiled is None and self.device.startswith("cuda"):
                self._compiled = torch.compile(self.model, mode="reduce-overhead")
            ids = torch.tensor([prompt] * width, device=self.device)
            logits, _ = self._forward(ids, past)
            return logits, past
        logits, past = self._forward(torch.tensor([prompt], device=self.device), None)
        if self.lean is not None and hasattr(past, "layers"):
            return logits.expand(width, -1), self.lean.cache_from(past, width, max_new + 1)
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(width)
            return logits.expand(width, -1), past
        # a cache that cannot be copied: run the prompt for every line
        return self._forward(torch.tensor([prompt] * width, device=self.device), None)

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

    # ------------------------------------------------------------------------------- sampling

    def _sample(
        self,
        logits: torch.Tensor,
        params: SamplingParams,
        generators: list[torch.Generator],
        seen: torch.Tensor | None,
    ) -> list[int]:
        """One token per row: bias, repetition penalty, temperature, top-k, top-p, then one draw
        from the row's own generator (inverse CDF over the kept tokens, most likely first).

        The whole-vocabulary work runs where the logits are (the card, for a model on CUDA);
        only the kept tokens (top-k, or the nucleus's first 256...) come to the CPU for the
        draw, so a step moves a few kilobytes, not the K x vocabulary logits."""
        where = logits.device
        if self.logit_bias:
            ids = torch.tensor(list(self.logit_bias), dtype=torch.long, device=where)
            logits = logits.clone()
            bias = torch.tensor(list(self.logit_bias.values()), dtype=logits.dtype, device=where)
            logits[:, ids] += bias
        if seen is not None:
            p = float(params.repetition_penalty)
            logits = torch.where(seen, torch.where(logits > 0, logits / p, logits * p), logits)
        if params.temperature <= 1e-5:
            return logits.argmax(dim=-1).tolist()
        logits = logits / float(params.temperature)
        vocab = logits.shape[-1]
        top_k = int(params.top_k) if 0 < int(params.top_k) < vocab else 0
        top_p = float(params.top_p) if 0.0 < float(params.top_p) < 1.0 else 1.0
        draws = [float(torch.rand(1, generator=g)) for g in generators]
        if top_k == 0 and top_p >= 1.0:  # the whole distribution, in vocabulary order
            probs = torch.softmax(logits, dim=-1)
            cdf = probs.cumsum(dim=-1)
            u = torch.tensor(draws, dtype=cdf.dtype, device=where).unsqueeze(1) * cdf[:, -1:]
            picks = torch.searchsorted(cdf, u, right=True).clamp_(max=vocab - 1)
            return picks.squeeze(1).tolist()
        if top_k:
            vals, idx = logits.topk(top_k, dim=-1)
            # top-p then applies to the renormalised top-k
            probs, idx = torch.softmax(vals, dim=-1).cpu(), idx.cpu()
            return [self._draw(probs[r], idx[r], top_p, draws[r]) for r in range(len(draws))]
        # top-p: look at the most likely 256 tokens first, further only for rows that need it
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        rows_left = list(range(logits.shape[0]))
        found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for n in (*_NUCLEUS_STEPS, vocab):
            n = min(n, vocab)
            sub = logits if len(rows_left) == logits.shape[0] else logits[rows_left]
            vals, idx = sub.topk(n, dim=-1) if n < vocab else sub.sort(dim=-1, descending=True)
            probs = torch.exp(vals - lse[rows_left])
            mass = probs.sum(dim=-1).tolist()
            probs, idx = probs.cpu(), idx.cpu()
            still = []
            for j, r in enumerate(rows_left):
                if mass[j] >= top_p or n == vocab:
                    found[r] = (probs[j], idx[j])
                else:
                    still.append(r)
            rows_left = still
            if not rows_left:
                break
        return [self._draw(*found[r], top_p, draws[r]) for r in range(logits.shape[0])]

    @staticmethod
    def _draw(probs: torch.Tensor, ids: torch.Tensor, top_p: float, u: float) -> int:
        """Inverse-CDF draw among the top-p prefix of ``probs`` (sorted, most likely first)."""
        cdf = probs.double().cumsum(dim=0)
        if top_p < 1.0:
            # the smallest prefix whose mass reaches top_p (the crossing token included)
            threshold = torch.tensor([min(top_p, float(cdf[-1]))], dtype=cdf.dtype)
            n = int(torch.searchsorted(cdf, threshold).item()) + 1
            cdf = cdf[: min(n, cdf.shape[0])]
        target = torch.tensor([u * float(cdf[-1])], dtype=cdf.dtype)
        j = int(torch.searchsorted(cdf, target, right=True).item())
        return int(ids[min(j, cdf.shape[0] - 1)])

    # ------------------------------------------------------------------------------ streaming

    def _decode(self, ids: list[int]) -> str:
        if self._decoder is not None:
            return self._decoder.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _advance(self, row: _Row, stops: Sequence[str], *, final: bool = False) -> None:
        """Decode the newest token(s) of a row: only a short window, complete characters only
        (``final``: the row is done, a trailing half character is dropped)."""
        prefix = self._decode(row.ids[row.prefix_offset : row.read_offset])
        full = self._decode(row.ids[row.prefix_offset :])
        if final:
            full = full.rstrip("\ufffd")
        elif full.endswith("\ufffd"):
            return  # half a character: wait for the rest
        if len(full) > len(prefix):
            old = len(row.text)
            row.text += full[len(prefix) :]
            row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
            for stop in stops:
                at = row.text.find(stop, max(0, old - len(stop) + 1))
                if at >= 0:
                    row.text = row.text[:at]
                    row.finish = "eos"

    def _show(self, row: _Row, stops: Sequence[str], on_token: TokenCallback | None) -> None:
        """Give on_token the row's visible text if it grew: a finished row's whole text, else
        the text without a trailing start of a stop string."""
        visible = _tidy(row.text if row.finish else held_back(row.text, stops))
        if visible != row.shown:
            row.shown = visible
            if on_token is not None:
                on_token(row.index, visible)

    def _flush(self, row: _Row, stops: Sequence[str], on_token: TokenCallback | None) -> None:
        """A finished row: decode what is left (dropping half a character), show the final text."""
        if row.read_offset < len(row.ids):
            self._advance(row, stops, final=True)
        self._show(row, stops, on_token)

    # --------------------------------------------------------------------------------- tokens

    @staticmethod
    def _first_int(*values: Any) -> int:
        for v in values:
            if isinstance(v, int):
                return v
        return 0

    def _find_eos_ids(self) -> set[int]:
        """Ids that end a candidate: the tokenizer's EOS, the model's (generation) config EOS
        ids, the token the chat template writes after an assistant turn, and any of the
        common end-of-turn tokens (:data:`END_OF_TURN_TOKENS`) the vocabulary has."""
        ids: set[int] = set()

        def add(v: Any) -> None:
            if isinstance(v, int):
                ids.add(v)
            elif isinstance(v, (list, tuple, set)):
                for x in v:
                    add(x)

        add(self.tokenizer.eos_token_id)
        add(getattr(getattr(self.model, "generation_config", None), "eos_token_id", None))
        add(getattr(self.model.config, "eos_token_id", None))
        add(self._template_end_of_turn())
        special = self._special_ids()
        for token in END_OF_TURN_TOKENS:
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid in special and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return ids

    def _special_ids(self) -> set[int]:
        """Ids of the special tokens: the tokenizer's named ones and its added tokens."""
        special = set(getattr(self.tokenizer, "all_special_ids", None) or [])
        special |= set(getattr(self.tokenizer, "added_tokens_decoder", None) or {})
        return special

    def _template_end_of_turn(self) -> int | None:
        """The special token the chat template writes right after an assistant message
        (``<end_of_turn>``, ``<|eot_id|>``, ``<|im_end|>``, ``</s>``...), found by rendering a
        short conversation; None without a template or when it writes none there."""
        if not self.has_chat_template:
            return None
        marker = "HITLxMARKERx7"
        try:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}],
                tokenize=False,
            )
        except Exception:  # noqa: BLE001 - a template that cannot render this has no answer
            return None
        at = text.rfind(marker) if isinstance(text, str) else -1
        if at < 0:
            return None
        after = self.tokenizer(text[at + len(marker) :], add_special_tokens=False).input_ids
        special = self._special_ids()
        for tid in after:
            if tid in special:
                return int(tid)
            if self.tokenizer.decode([tid]).strip():
                return None  # text before any special token: no end-of-turn token
        return None


# --------------------------------------------------------------------------------- helpers


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The conversation with its system text put at the start of the first user turn (for
    templates without a system role); None when there is no system turn to fold."""
    system = [m["content"].strip() for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return None
    text = "\n\n".join(t for t in system if t)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{text}\n\n{m['content']}" if text else m["content"]
            return rest
    return [{"role": "user", "content": text}, *rest]


def _all_layers_full(config: Any) -> Any:
    """``config`` with every sliding-window (or chunked) layer's cache made a full one, for a
    StaticCache that a compiled step can reuse.

    transformers' static sliding-window cache layer counts its length in a Python int, which
    torch.compile guards on: a model with such layers (Gemma 3, the embedded model) recompiled
    at every step until it gave up, 2.5 minutes on an H200, and then ran eager. A full static
    layer counts in a tensor; the model's own sliding-window mask still hides the tokens out of
    the window, so the attention is the same; the cost is that those layers keep the whole
    prompt and answer rather than the window's last tokens (for Gemma 3 270M, one KV head of
    256: 18 kB per token and line over all layers)."""
    import copy

    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    if not types or all(t == "full_attention" for t in types):
        return config
    full = copy.deepcopy(text)
    full.layer_types = ["full_attention" if t in _WINDOWED else t for t in types]
    return full


_WINDOWED = ("sliding_attention", "chunked_attention")


def _forward_keywords(model: Any) -> tuple[dict[str, Any], str]:
    """({"logits_to_keep": 1} where the model takes it, the KV cache's keyword): transformers
    5.x names the cache ``cache`` (``past_key_values`` is deprecated there), 4.x
    ``past_key_values``."""
    import inspect

    try:
        names = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}, "past_key_values"
    keep = {"logits_to_keep": 1} if "logits_to_keep" in names else {}
    return keep, ("cache" if "cache" in names else "past_key_values")


def _warm_up(model: Any, device: str = "cpu", cache_kw: str = "cache") -> None:
    """A 2-token prompt, then one decoding step for two rows (what generate runs first)."""
    token = model.config.pad_token_id if isinstance(model.config.pad_token_id, int) else 0
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([[token, token]], device=device), use_cache=True)
        past = getattr(out, "cache", None)
        if past is None:
            past = getattr(out, "past_key_values", None)
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(2)
            ids = torch.tensor([[token], [token]], device=device)
            model(input_ids=ids, use_cache=True, **{cache_kw: past})


def _int8_wanted(dtype: torch.dtype) -> bool:
    """Int8 weights for a bf16 model on the CPU (:mod:`.int8`), unless ``HITL_CPU_INT8=0``."""
    return os.environ.get("HITL_CPU_INT8", "").strip() != "0" and supported(dtype)


def _two_stages(progress: ProgressCallback) -> tuple[ProgressCallback, ProgressCallback]:
    """Progress for a conversion (0-0.9) then a load (0.9-1, or 0-1 when nothing was converted)."""
    used = [False]

    def first(f: float, message: str) -> None:
        used[0] = True
        progress(0.9 * f, message)

    def then(f: float, message: str) -> None:
        progress(0.9 + 0.1 * f if used[0] else f, message)

    return first, then


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
        return TransformersBackend._load_cached(
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


def _fast_decode_default(device: str) -> bool:
    switch = os.environ.get("HITL_FAST_DECODE", "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    return device.startswith("cuda")
