"""Optimiser and learning-rate schedule: AdamW with linear warm-up, then cosine decay to zero."""

from __future__ import annotations

import math

import torch

from compass.train.plan import OptimSpec


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR multiplier at ``step``: 0→1 linearly over ``warmup_steps``, then a half cosine to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(optim: OptimSpec, total_steps: int) -> int:
    if optim.warmup_steps is not None:
        return min(optim.warmup_steps, total_steps)
    return round(optim.warmup_fraction * total_steps)


class WarmupCosine:
    """The ``LambdaLR`` multiplier as an object: its plain ``__dict__`` goes into the scheduler state."""

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps)


def build_optimizer(
    model: torch.nn.Module, optim: OptimSpec, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no weight decay on biases, norms and buffers-like 1-D params) and its schedule."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=optim.lr)
    lr_lambda = WarmupCosine(total_steps, warmup_steps_for(optim, total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    return optimizer, scheduler
