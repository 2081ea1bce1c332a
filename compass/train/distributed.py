"""Multi-process training under ``torchrun``: process group, DDP wrapping, rank-0 I/O, metric all-reduce.

``torchrun --nproc_per_node N -m compass.train PLAN.json`` starts N copies of the trainer with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`init_distributed` reads them (torch's own
launch contract, so it is read here rather than through a settings module) and joins the group
(NCCL on CUDA, gloo on CPU). A plain ``python -m compass.train`` gets a one-process context and
never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist


@dataclass
class DistContext:
    """Where this process sits in the job. ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a copy; float64 on the group's device, returned on CPU)."""
        if not self.enabled:
            return values.detach().to("cpu", torch.float64).clone()
        t = values.detach().to(self._comm_device(), torch.float64).clone()
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t.cpu()

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (every rank gets the same answer)."""
        if not self.enabled:
            return bool(flag)
        return bool(self.all_reduce_sum(torch.tensor([1.0 if flag else 0.0]))[0] > 0)

    def broadcast_str(self, value: str | None) -> str | None:
        """Rank 0's ``value`` on every rank (e.g. a generated run id)."""
        if not self.enabled:
            return value
        box = [value]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the torchrun process group when launched by torchrun; else a one-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """DDP-wrap ``model`` when distributed (parameters are broadcast from rank 0 here)."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)
