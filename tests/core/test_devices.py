"""Device choice (CUDA / MPS / CPU and the dtype that goes with it), with a mocked torch; and
the backend's device bookkeeping and static-cache path on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hitl_desktop.core.backends.base import ModelError, SamplingParams
from hitl_desktop.core.backends.devices import (
    DeviceChoice,
    check_device_name,
    choose_device,
)
from hitl_desktop.core.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from benchmark_scripts import load_benchmark  # noqa: E402


def fake_torch(*, cuda: int = 0, bf16: bool = True, mps: bool = False, cuda_build: str | None = "12.4"):
    cuda_ns = SimpleNamespace(
        is_available=lambda: cuda > 0,
        device_count=lambda: cuda,
        is_bf16_supported=lambda: bf16,
        get_device_capability=lambda i: (8, 0) if bf16 else (7, 5),
    )
    return SimpleNamespace(
        cuda=cuda_ns,
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
        version=SimpleNamespace(cuda=cuda_build),
    )


@pytest.mark.parametrize(
    ("torch", "requested", "expected"),
    [
        (fake_torch(cuda=1), None, DeviceChoice("cuda:0", "bfloat16")),
        (fake_torch(cuda=1), "auto", DeviceChoice("cuda:0", "bfloat16")),
        (fake_torch(cuda=1, bf16=False), "auto", DeviceChoice("cuda:0", "float16")),  # a T4, V100
        (fake_torch(cuda=2), "cuda:1", DeviceChoice("cuda:1", "bfloat16")),
        (fake_torch(cuda=1, mps=True), "auto", DeviceChoice("cuda:0", "bfloat16")),  # CUDA first
        (fake_torch(mps=True), None, DeviceChoice("mps", "float16")),
        (fake_torch(), "auto", DeviceChoice("cpu", "bfloat16")),
        (fake_torch(cuda=1), "cpu", DeviceChoice("cpu", "bfloat16")),
        (fake_torch(mps=True), "MPS", DeviceChoice("mps", "float16")),
    ],
)
def test_choice(torch, requested, expected):
    assert choose_device(requested, torch) == expected


def test_older_torch_without_bf16_query_reads_the_compute_capability():
    t = fake_torch(cuda=1)

    def missing():
        raise AttributeError("is_bf16_supported")

    t.cuda.is_bf16_supported = missing
    assert choose_device("cuda", t).dtype == "bfloat16"
    t.cuda.get_device_capability = lambda i: (7, 0)
    assert choose_device("cuda", t).dtype == "float16"


@pytest.mark.parametrize(
    ("torch", "requested", "message"),
    [
        (fake_torch(cuda_build=None), "cuda", "CPU-only build"),
        (fake_torch(), "cuda", "no CUDA device is visible"),
        (fake_torch(cuda=1), "cuda:3", "only 1 CUDA device"),
        (fake_torch(), "mps", "MPS is not available"),
    ],
)
def test_a_device_that_is_not_there_is_a_one_line_model_error(torch, requested, message):
    with pytest.raises(ModelError, match=message) as err:
        choose_device(requested, torch)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cuda0"])
def test_unknown_device_names(name):
    with pytest.raises(ModelError, match="unknown device"):
        check_device_name(name)
    assert check_device_name(None) == "auto" and check_device_name(" Cuda:2 ") == "cuda:2"


def test_this_machine_chooses_what_torch_reports():
    torch = pytest.importorskip("torch")
    choice = choose_device("auto")
    if torch.cuda.is_available():
        assert choice.kind == "cuda"
    else:
        assert choice.kind in ("cpu", "mps")
    assert choose_device("cpu") == DeviceChoice("cpu", "bfloat16")


def test_the_static_cache_path_writes_what_the_dynamic_one_writes(tiny_model_dir, tiny_chat_model_dir):
    """fast_decode (a StaticCache; compiled only on CUDA) on the CPU: same greedy text, rows
    that end early included; the device is recorded in the provenance."""
    pytest.importorskip("torch")
    from hitl_desktop.core.backends.transformers_backend import TransformersBackend

    conv = [Message("user", "What is the capital of France?")]
    for folder in (tiny_model_dir, tiny_chat_model_dir):
        backend = TransformersBackend.load(folder, dtype="float32")
        assert backend.device == "cpu" and backend.fast_decode is False
        caches = []
        for params in (
            SamplingParams(temperature=0.0, max_new_tokens=20),
            SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=40),
        ):
            dynamic = backend.generate(conv, k=3, params=params, seeds=[1, 2, 3])
            backend.fast_decode = True
            static = backend.generate(conv, k=3, params=params, seeds=[1, 2, 3])
            backend.fast_decode = False
            caches.append(backend._static_cache[1])
            assert [c.text for c in static.candidates] == [c.text for c in dynamic.candidates]
            assert [c.finish_reason for c in static.candidates] == [c.finish_reason for c in dynamic.candidates]
            assert static.device == "cpu" and static.params["device"] == "cpu"
        assert caches[0] is caches[1]  # same shape: the static cache is reset and reused


def test_bench_gpu_says_there_is_no_cuda_device_and_exits_0(monkeypatch, capsys):
    """On a machine without CUDA the GPU benchmark measures nothing and says why (CPU CI)."""
    import runpy
    import sys
    from pathlib import Path

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run benchmarks/bench_gpu.py itself")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
    monkeypatch.setattr(sys, "argv", [str(script)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_bench_gpu_floor_table():
    bench = load_benchmark("bench_gpu")
    assert bench.bandwidth_of("NVIDIA H100 80GB HBM3") == 3.35e12  # SXM
    assert bench.bandwidth_of("NVIDIA H100 PCIe") == 2.0e12
    assert bench.bandwidth_of("NVIDIA H200") == 4.8e12
    assert bench.bandwidth_of("Some Future Card") is None
    # 8B bf16 on an H100 SXM: one read of the weights is ~4.8 ms
    params = 8.03e9
    assert 4.7 < params * 2 / bench.bandwidth_of("H100 SXM5") * 1000 < 4.9
