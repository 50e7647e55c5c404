"""Seeded, resumable sampling: every random draw is a function of the seed and a position, not
of history. The augmentation of a sample is seeded by (seed, epoch, sample index), dropout at a
step by (seed, rank, step), and the shuffling of an epoch by (seed, epoch) (DistributedSampler).
So a resumed run only needs its counters to draw exactly what an uninterrupted run would.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["sample_seed", "step_seed", "seed_rng", "SeededSampler", "SeededDataset",
           "loader_workers"]

_CPU = torch.device("cpu")


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, 1 + rank, step]).generate_state(1, np.uint64)[0] >> 1)


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the CPU generator and, on a GPU, that device's. Not ``torch.manual_seed``: with a
    CUDA build of torch it also queues lazy seeding calls for CUDA, XPU and MTIA, each recording
    a Python stack trace; at one call per sample that was ~2 ms per image on the CPU."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


class SeededSampler(torch.utils.data.Sampler):
    """Yields ``(index, seed)`` for one epoch of a DistributedSampler shard, skipping the first
    ``skip`` items (the batches a resumed run has already trained on)."""

    def __init__(self, base: torch.utils.data.DistributedSampler, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in list(self.base)[self.skip:]:
            yield i, sample_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return len(self.base) - self.skip


class SeededDataset(torch.utils.data.Dataset):
    """Applies the dataset's transform under a per-sample seed, in workers and in the main process."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            seed_rng(seed, _CPU)  # transforms draw from the CPU generator only
            return self.dataset[index]


def loader_workers(workers: int, in_memory: bool) -> int:
    """DataLoader worker processes: ``workers`` (the config's) unless it is -1, automatic."""
    if workers >= 0:
        return workers
    if in_memory:
        return 0  # in memory, cheap transforms: worker processes cost more than they save
    return max(0, min(8, (os.cpu_count() or 1) - 1))
