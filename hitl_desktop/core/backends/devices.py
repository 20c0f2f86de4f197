"""Which device a local model runs on, and in which dtype.

:func:`choose_device` ``(requested, torch_module) -> DeviceChoice``: "auto" (or None) takes
CUDA when there is a CUDA device, else Apple's MPS, else the CPU; "cuda", "cuda:N", "mps" and
"cpu" ask for one and fail with a one-line ModelError when it is not there. The dtype follows
the device: bf16 on CUDA when the card supports it (Ampere and later), else fp16; fp16 on
MPS; bf16 on the CPU (half the memory of fp32, and what the CPU kernels here are fast at).

:func:`check_device_name` validates a name without importing torch (the parent process and
the command line use it before starting the model process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hitl_desktop.core.backends.base import ModelError
from hitl_desktop.core.wording import count

#: What --device and Settings accept.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # a torch device string: "cpu", "cuda:0", "mps"
    dtype: str  # "bfloat16" | "float16" | "float32"

    @property
    def kind(self) -> str:
        return self.device.split(":", 1)[0]


def check_device_name(name: str | None) -> str:
    """The normalised name ("auto" for None or ""); ModelError for a name that is no device."""
    text = (name or "auto").strip().lower()
    if not _NAME.match(text):
        raise ModelError(
            f"unknown device {name!r}: use auto, cpu, cuda, cuda:N (the card's number) or mps"
        )
    return text


def _mps_available(torch: Any) -> bool:
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except Exception:  # noqa: BLE001 - an old or odd build: no MPS
        return False


def _cuda_dtype(torch: Any, index: int) -> str:
    try:
        ok = torch.cuda.is_bf16_supported()
    except Exception:  # noqa: BLE001 - older torch: ask the card's compute capability
        ok = torch.cuda.get_device_capability(index)[0] >= 8
    return "bfloat16" if ok else "float16"


def choose_device(requested: str | None = None, torch: Any = None) -> DeviceChoice:
    """The device and dtype for ``requested`` (see the module doc); ``torch`` for tests."""
    name = check_device_name(requested)
    if torch is None:
        import torch  # noqa: PLC0415 - only where a model is loaded

    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "auto":
        if cuda_count:
            name = "cuda"
        elif _mps_available(torch):
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if not cuda_count:
            build = getattr(getattr(torch, "version", None), "cuda", None)
            why = "this torch is a CPU-only build" if not build else "no CUDA device is visible"
            raise ModelError(f"--device {name}: {why}; use --device cpu or auto")
        if index >= cuda_count:
            raise ModelError(
                f"--device {name}: there are only {count(cuda_count, 'CUDA device')} (cuda:0..cuda:{cuda_count - 1})"
            )
        return DeviceChoice(f"cuda:{index}", _cuda_dtype(torch, index))
    if name == "mps":
        if not _mps_available(torch):
            raise ModelError("--device mps: Apple's MPS is not available here; use --device cpu or auto")
        return DeviceChoice("mps", "float16")
    return DeviceChoice("cpu", "bfloat16")
