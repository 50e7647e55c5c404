"""What the engine asks of a task. The engine (``trainer.fit``) owns the loop, progress,
checkpoints, resume, averaging, schedule, DDP, logging and plots; a task brings its data, its
model, the loss of a batch, its metrics, what "best" means, and the check that weights or a
checkpoint fit it. ``googlenet.tasks.classification`` is one; a detector is another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import torch
import torch.nn as nn

from ..weights.records import WeightsMeta
from .config import TrainConfig
from .distributed import DistInfo

__all__ = ["Task", "TaskData", "StepResult"]


@dataclass
class TaskData:
    """The datasets of one run, and what the final weights carry besides the model config."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: Optional[torch.utils.data.Dataset]  # the final evaluation split; None: val
    meta: WeightsMeta  # class names, preprocessing, task (the engine adds the model config)
    description: str  # one log line: name, sizes, classes, input size
    collate: Optional[Callable[[list[Any]], Any]] = None
    train_collate: Optional[Callable[[list[Any]], Any]] = None  # the training loader's, if not collate
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) not used
    in_memory: bool = False  # data-loader workers would cost more than they save

    @property
    def eval_split(self) -> str:
        return "val" if self.test is None else "test"


@dataclass
class StepResult:
    """One training batch: the loss to back-propagate and the sums to log.

    ``sums`` are per-batch totals (e.g. loss x images, correct predictions) as 0-d tensors; the
    engine sums them over processes and over the epoch, and hands the epoch totals to
    ``Task.epoch_metrics``. ``sums["images"]`` is required: it makes per-image means and img/s.
    ``loss_key`` names the entry of ``sums`` that is the total loss (checked for NaN/inf).
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor]
    loss_key: str = "loss"


class Task(Protocol):
    name: str  # "classify", "detect": stored in weights and checkpoints
    best_metric: str  # the epoch-row key maximised for checkpoint-best.pt, e.g. "val_top1"

    def setup_data(self, cfg: TrainConfig, dist: DistInfo) -> TaskData: ...

    def build_model(self, cfg: TrainConfig, data: TaskData) -> nn.Module: ...

    def check_compatible(self, meta: WeightsMeta, cfg: TrainConfig, data: TaskData,
                         source: str, what: str) -> None:
        """Raise UserError when weights/a checkpoint (``meta``) do not fit this run."""

    def load_init(self, cfg: TrainConfig, data: TaskData) -> Any:
        """Read and check ``cfg.init`` (before the run directory is made)."""

    def apply_init(self, model: nn.Module, loaded: Any, cfg: TrainConfig) -> str:
        """Load what ``load_init`` returned into the fresh ``model``; return a log line."""

    def train_step(self, model: nn.Module, batch: Any, cfg: TrainConfig,
                   device: torch.device) -> StepResult: ...

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        """Epoch totals (summed over processes) -> the row's ``train_*`` entries."""

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader,
                 device: torch.device, cfg: TrainConfig) -> dict[str, float]:
        """Metrics over a loader's batches, summed over all processes' shards."""

    def epoch_summary(self, row: dict[str, Any], cfg: TrainConfig, averaged: bool) -> str: ...

    def final_summary(self, split: str, res: dict[str, float], averaged: bool) -> str: ...

    def plot_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Panels of curves.png: (title, [(row key, label), ...])."""
