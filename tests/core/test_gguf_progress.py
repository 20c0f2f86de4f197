"""The first start's conversion reports its way through the GGUF's tensors (issue 19 item 7)."""

from __future__ import annotations

import re

from hitl_desktop.core.backends import gguf_files
from hitl_desktop.core.backends.gguf_progress import tensor_progress
from hitl_desktop.core.backends.tiny import build_tiny_gguf


def test_the_conversion_reports_each_stretch_of_tensors(tmp_path, tiny_chat_model_dir):
    path = build_tiny_gguf(tmp_path / "tiny.gguf", model_dir=tiny_chat_model_dir)
    reports: list[tuple[float, str]] = []
    gguf_files.convert_gguf(path, tmp_path / "out", lambda f, m: reports.append((f, m)))
    steps = [(f, m) for f, m in reports if "tensor " in m]
    assert steps, reports
    total = int(re.search(r"of (\d+)", steps[0][1]).group(1))
    assert total >= 4 and steps[0][1] == f"Dequantising tiny.gguf: tensor 1 of {total}"
    fractions = [f for f, _m in reports]
    assert fractions == sorted(fractions)  # never backwards
    assert all(0.3 <= f < 0.85 for f, _m in steps)
    assert (0.85, f"Dequantising tiny.gguf: {total} tensors") in reports


def test_the_hook_is_gone_after_the_call_even_when_it_fails():
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    before = gguf_utils.tqdm
    try:
        with tensor_progress(lambda f, m: None, 0.3, 0.85, "x"):
            assert gguf_utils.tqdm is not before
            raise RuntimeError("a bad file")
    except RuntimeError:
        pass
    assert gguf_utils.tqdm is before
