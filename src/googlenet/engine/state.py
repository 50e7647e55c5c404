"""The run's counters and history (``RunState``), and the RNG states saved with a checkpoint."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["RunState", "rng_state", "set_rng_state"]


@dataclass
class RunState:
    epoch: int = 0  # the epoch in progress (or next to start)
    epoch_step: int = 0  # optimizer steps already done in ``epoch``
    step: int = 0  # optimizer steps done in total
    best_metric: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch
    sums: dict[str, float] = field(default_factory=dict)  # the epoch in progress, over ranks
    train_seconds: float = 0.0  # time spent in train_one_epoch in this epoch so far
    last_checkpoint_step: int = -1  # not saved: where the last checkpoint on disk stands

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("last_checkpoint_step")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunState":
        return cls(epoch=d["epoch"], epoch_step=d["epoch_step"], step=d["step"],
                   best_metric=d.get("best_metric", -1.0), best_epoch=d.get("best_epoch", -1),
                   history=list(d.get("history", [])), sums=dict(d.get("sums", {})),
                   train_seconds=d.get("train_seconds", 0.0), last_checkpoint_step=d["step"])

    def next_epoch(self) -> None:
        self.epoch += 1
        self.epoch_step = 0
        self.sums = {}
        self.train_seconds = 0.0


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
    }


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available() and len(s["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = s["python"]
    random.setstate((py[-1], tuple(py[:-1]), None))
