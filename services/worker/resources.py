"""What this process uses: memory, CPU and, when torch is already in play, GPU memory.

torch is consulted only if the kind imported it or asked for CUDA: importing it just to
report "no GPU" would cost an echo worker a second of start-up and hundreds of MB.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from types import ModuleType

import psutil

log = logging.getLogger(__name__)


class ResourceProbe:
    """Samples this process; one instance per worker (psutil keeps CPU-time state)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first call only primes the counter

    def rss_mb(self) -> float:
        return round(self._proc.memory_info().rss / 2**20, 1)

    def cpu_percent(self) -> float:
        """CPU use since the previous call (can exceed 100 on several cores)."""
        return round(self._proc.cpu_percent(None), 1)

    def _torch(self) -> ModuleType | None:
        torch = sys.modules.get("torch")
        if torch is None and self.device.startswith("cuda") and importlib.util.find_spec("torch") is not None:
            import torch  # heavy: imported only for CUDA workers
        return torch

    def gpu_available(self) -> bool:
        torch = self._torch()
        try:
            return bool(torch is not None and torch.cuda.is_available())
        except Exception:  # a broken CUDA install must not break /health
            log.debug("torch.cuda.is_available() failed", exc_info=True)
            return False

    def gpu_mem_mb(self) -> float | None:
        """GPU memory this process holds through torch, or None without a usable GPU."""
        if not self.gpu_available():
            return None
        torch = self._torch()
        try:
            return round(torch.cuda.memory_reserved() / 2**20, 1)  # type: ignore[union-attr]
        except Exception:
            return None
