"""Optimisation: the optimizer (weight decay on weights only, fused kernels), the learning-rate
schedule (§6's step decay, cosine, linear; per step, so a mid-epoch resume is exact) and Polyak
averaging (§6) through ``torch.optim.swa_utils``."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn

from .config import AverageConfig, OptimConfig

__all__ = ["lr_lambda", "make_averaged", "choose_final", "make_optimizer", "make_scheduler"]


def lr_lambda(cfg: OptimConfig, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of ``cfg.lr`` at optimizer step ``s`` of a run of ``epochs`` (per step, so a
    mid-epoch resume is exact)."""
    total = epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    step_size = max(1, int(round(cfg.step_epochs * steps_per_epoch)))

    def f(s: int) -> float:
        if s < warmup:  # linear warmup from 1% of the base lr
            return 0.01 + 0.99 * s / warmup
        if cfg.schedule == "step":  # §6: x0.96 every 8 epochs
            return cfg.gamma ** (s // step_size)
        t = min(1.0, (s - warmup) / max(1, total - warmup))
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0 - t  # linear to 0

    return f


def make_averaged(model: nn.Module, cfg: AverageConfig) -> Optional[AveragedModel]:
    """§6 "Polyak averaging": ``mean`` is Polyak-Juditsky's uniform mean of the iterates
    (``torch.optim.swa_utils``' SWA average), ``ema`` an exponential moving average. BN buffers
    are averaged too (``use_buffers``), so the averaged model needs no extra BN pass."""
    if cfg.mode == "none":
        return None
    avg = get_ema_multi_avg_fn(cfg.ema_decay) if cfg.mode == "ema" else get_swa_multi_avg_fn()

    @torch.no_grad()
    def fn(averaged: list[torch.Tensor], current: list[torch.Tensor], n: Any) -> None:
        # swa_utils' integer path fails on BN's num_batches_tracked (an int64 counter, torch
        # 2.x addcdiv refuses integer division): counters take the latest value, floats average.
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        for a, c in zip(averaged, current):
            if not a.is_floating_point():
                a.copy_(c)
        if floats:
            avg([a for a, _ in floats], [c for _, c in floats], n)

    return AveragedModel(model, multi_avg_fn=fn, use_buffers=True)


def choose_final(averaged: Optional[AveragedModel], model: nn.Module, key: str,
                 scores: Callable[[], tuple[float, float]], policy: str = "better"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The final model of a run (``final_weights``): the averaged weights (§6) or the raw ones,
    whichever scores higher on validation by ``key`` (``scores()``: (averaged, raw)), a tie
    going to the averaged; with ``policy="averaged"``, the averaged ones unasked. An average
    that has not caught up (an EMA of a run stopped early) can score far below the raw weights.
    Returns the module and the record of the choice (for the log, results.json and the
    weights' metadata)."""
    if averaged is None or averaged.n_averaged == 0:
        return model, {"chosen": "raw", "why": "no averaged weights"}
    if policy == "averaged":
        return averaged.module, {"chosen": "averaged", "why": "final_weights = averaged"}
    avg, raw = scores()
    chosen = "raw" if raw > avg else "averaged"
    other = "averaged" if chosen == "raw" else "raw"
    return (model if chosen == "raw" else averaged.module), {
        "chosen": chosen, "by": key, "averaged": avg, "raw": raw,
        "why": f"{key} {max(avg, raw):.2f}% against {min(avg, raw):.2f}% for the {other} weights"}


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only, not on biases or BN scales (as Caffe's
    # bvlc_googlenet, whose bias layers have decay_mult 0).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernels (CPU and CUDA) do the whole update in one pass over the weights: on the
    # 2-core CPU, AdamW's step over the bn variant's 10.3M weights takes 11 ms fused against
    # 43 ms with the default foreach path, a fifth of a 32-px training step.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                for g in groups for p in g["params"])
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           fused=fused)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, epochs, steps_per_epoch))
