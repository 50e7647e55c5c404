"""What the engine asks of a task, and how a task plugs in.

The engine (``trainer.fit``) owns the loop, progress, checkpoints and resume, averaging, the
schedule, DDP, metrics.csv, TensorBoard, the lines it logs and curves.png; a task brings its
data, its model, the loss of a batch, its metrics, what "best" means, and the check that
weights or a checkpoint fit it. ``googlenet.tasks.classify`` is one; a detector is another;
tests/test_engine.py trains a 30-line regression task with the same engine.

A task is an object with (``Task`` below lists the signatures):

- ``name`` (stored in weights and checkpoints) and ``best_metric``: the key of the epoch's row
  that is maximised for "best" (``"val_top1"``; a loss to minimise is shown as its negative);
- ``setup_data`` -> ``TaskData`` (train/val/test datasets, collate, what the weights carry),
  ``build_model`` (an ``nn.Module`` with a ``config`` dict: what its weights file records);
- ``train_step`` -> ``StepResult``: the loss to back-propagate and per-batch sums (0-d
  tensors) that the engine sums over processes and the epoch; ``epoch_metrics`` turns the
  epoch's sums into the row's ``train_*`` numbers; ``evaluate`` -> the ``val_*`` numbers;
- ``check_compatible`` (and, for ``init``, ``load_init``/``apply_init``): refuse weights that do
  not fit;
- what is shown (engine/report.py): ``metrics`` (``Metric``: key, label, format, curves.png
  panel), optionally ``epoch_line``/``final_line`` templates, and the throughput's
  ``count_key``/``count_unit`` (the ``StepResult.sums`` entry counting a step's items; default
  ``"images"``, shown as img/s). Optional: ``prepare_batch`` (a batch to the device, one ahead).

``fit(task, cfg, hooks=[...])`` runs it; a hook (engine/hooks.py, ``HookBase``) adds behaviour
around the loop without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import torch
import torch.nn as nn

from ..weights.records import WeightsMeta
from .config import RunConfig  # a task's config class extends it
from .distributed import DistInfo
from .report import Metric

__all__ = ["Task", "TaskData", "StepResult", "Metric"]


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
    ``Task.epoch_metrics``. ``sums[task.count_key]`` (default ``"images"``) is required: it
    counts what the step processed, for the mean loss and the throughput (img/s).
    ``loss_key`` names the entry of ``sums`` that is the total loss (checked for NaN/inf).
    """

    loss: torch.Tensor
    sums: dict[str, torch.Tensor]
    loss_key: str = "loss"


class Task(Protocol):
    name: str  # "classify", "detect": stored in weights and checkpoints
    best_metric: str  # the epoch-row key maximised for checkpoint-best.pt, e.g. "val_top1"
    metrics: Sequence[Metric]  # what the lines and curves.png show (engine/report.py)
    # Optional: ``detector = True`` keeps box coding and losses in fp32 under autocast
    # (googlenet.models.graph.amp_autocast).

    def setup_data(self, cfg: RunConfig, dist: DistInfo) -> TaskData: ...

    def build_model(self, cfg: RunConfig, data: TaskData) -> nn.Module: ...

    def check_compatible(self, meta: WeightsMeta, cfg: RunConfig, data: TaskData,
                         source: str, what: str) -> None:
        """Raise UserError when weights/a checkpoint (``meta``) do not fit this run."""

    # Optional: ``adopt(meta, data)``, called after ``check_compatible`` on resume: take over what
    # the checkpoint fixes besides its tensors (detection: the input normalisation).

    def load_init(self, cfg: RunConfig, data: TaskData) -> Any:
        """Read and check ``cfg.run.init`` (before the run directory is made)."""

    def apply_init(self, model: nn.Module, loaded: Any, cfg: RunConfig) -> str:
        """Load what ``load_init`` returned into the fresh ``model``; return a log line."""

    def train_step(self, model: nn.Module, batch: Any, cfg: RunConfig,
                   device: torch.device) -> StepResult: ...

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        """Epoch totals (summed over processes) -> the row's ``train_*`` entries."""

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader,
                 device: torch.device, cfg: RunConfig) -> dict[str, float]:
        """Metrics over a loader's batches, summed over all processes' shards."""
