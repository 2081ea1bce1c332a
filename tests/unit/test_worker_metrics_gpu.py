"""The worker's GPU-memory gauges: 0 without CUDA, torch's figures with it, never an import of torch."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.worker.metrics import WorkerMetrics, gpu_memory_bytes

GIB = 2**30


def scrape() -> dict[str, float]:
    metrics = WorkerMetrics("echo", "1.0", inflight=lambda: 0.0, draining=lambda: 0.0)
    text = metrics.render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("worker_gpu_memory")
    }


def fake_torch(initialized: bool = True, reserved: int = 3 * GIB, total: int = 80 * GIB) -> SimpleNamespace:
    cuda = SimpleNamespace(
        is_initialized=lambda: initialized,
        current_device=lambda: 0,
        memory_reserved=lambda device=None: reserved,
        get_device_properties=lambda device: SimpleNamespace(total_memory=total),
    )
    return SimpleNamespace(cuda=cuda)


def test_without_torch_the_gauges_read_zero_and_torch_stays_unimported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert scrape() == {"worker_gpu_memory_used_bytes": 0.0, "worker_gpu_memory_total_bytes": 0.0}
    assert "torch" not in sys.modules


def test_cuda_not_initialised_reads_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = fake_torch(initialized=False)
    torch.cuda.get_device_properties = lambda device: pytest.fail("asked a device before CUDA was initialised")
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert gpu_memory_bytes() == (0.0, 0.0)


def test_with_cuda_the_gauges_report_reserved_and_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", fake_torch(reserved=3 * GIB, total=80 * GIB))
    assert scrape() == {"worker_gpu_memory_used_bytes": 3.0 * GIB, "worker_gpu_memory_total_bytes": 80.0 * GIB}


def test_a_broken_cuda_reads_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA driver version is insufficient")

    torch = fake_torch()
    torch.cuda.is_initialized = broken
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert gpu_memory_bytes() == (0.0, 0.0)


def test_real_cuda_memory_is_reported() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")
    used, total = gpu_memory_bytes()
    assert used >= block.numel() and total >= used
    assert total == torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
