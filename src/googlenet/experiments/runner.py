"""Running the arms: each arm x seed is an ordinary training run of the engine
(``googlenet.engine.trainer.fit``) in ``DIR/runs/<arm>-seed<k>/``, resumable.

A run with ``results.json`` is finished and never redone; a run with a checkpoint continues from
it (the engine's resume); a directory with neither (stopped before its first checkpoint) starts
again. A run directory made with other settings is refused, so one DIR never mixes two recipes.
Once a run has finished, its training checkpoints (about 125 MB each at full width) are deleted
unless ``keep_checkpoints``: the report and the crops evaluation read only ``results.json``,
``metrics.csv``, ``config.toml`` and ``model.safetensors``, and ``experiment all`` trains over a
dozen runs per seed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from ..engine.config import RunConfig
from ..settings import flatten
from ..tasks import dotted, resolve_config
from ..engine.rundir import RunDir
from ..engine.runs import complete
from ..engine.distributed import unwrap
from ..errors import UserError
from ..tasks.classify.task import ClassificationTask
from .arms import Arm

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["GradNormTask", "arm_config", "run_dir", "run_arm", "GRAD_LAYERS"]

RECIPE = "short"
# Layers whose gradient norm is logged per epoch: the stem (where vanishing gradients would show)
# and the last inception module (for scale).
GRAD_LAYERS = ("conv1", "conv2", "inception_5b")
# Settings that may differ between an interrupted run and its continuation. (final_weights:
# runs saved before the key existed reported their averaged weights, as "averaged" does;
# save_checkpoints and log_every change no result.)
_FREE_KEYS = {"run.out", "run.progress", "system.device", "system.threads", "system.workers",
              "average.final_weights", "run.save_checkpoints", "run.log_every"}


class GradNormTask(ClassificationTask):
    """Classification, plus the L2 norm of each ``GRAD_LAYERS`` module's weight gradient per
    step, averaged over the epoch, in the epoch row (metrics.csv: ``grad_norm_conv1`` ...).

    Tensor hooks on the parameters accumulate squared norms during backward; the engine is not
    changed. The hooks are attached at the first training step (after the engine has copied the
    model for averaging, so the copy carries none).
    """

    def __init__(self) -> None:
        self._hooked: Optional[int] = None
        self._sq: dict[str, torch.Tensor] = {}  # this step's squared norms
        self._sum: dict[str, float] = {k: 0.0 for k in GRAD_LAYERS}
        self._steps = 0

    def _attach(self, model: nn.Module) -> None:
        net = unwrap(model)
        if self._hooked == id(net):
            return
        self._hooked = id(net)
        for layer in GRAD_LAYERS:
            for p in getattr(net, layer).parameters():
                if p.requires_grad:
                    p.register_hook(lambda g, layer=layer: self._add(layer, g))

    def _add(self, layer: str, grad: torch.Tensor) -> None:
        sq = grad.detach().float().pow(2).sum()
        self._sq[layer] = self._sq[layer] + sq if layer in self._sq else sq

    def _flush(self) -> None:
        if self._sq:
            for layer in GRAD_LAYERS:
                self._sum[layer] += math.sqrt(float(self._sq.get(layer, 0.0)))
            self._steps += 1
            self._sq = {}

    def train_step(self, model: nn.Module, batch: Any, cfg: RunConfig, device: torch.device):
        self._attach(model)
        self._flush()  # the previous step's backward is complete
        return super().train_step(model, batch, cfg, device)

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        self._flush()
        out = super().epoch_metrics(sums, model)
        for layer in GRAD_LAYERS:
            out[f"grad_norm_{layer}"] = (self._sum[layer] / self._steps if self._steps
                                         else float("nan"))
        self._sum = {k: 0.0 for k in GRAD_LAYERS}
        self._steps = 0
        return out


def arm_config(arm: Arm, seed: int, settings: dict[str, Any], epochs: int,
               user: dict[str, Any], out: Path) -> RunConfig:
    """Short recipe -> the experiment's settings -> the user's --set -> the arm's own keys."""
    over: dict[str, Any] = dotted(settings, "experiment")
    # Polyak mean over the last epoch; over the last half of a one-epoch run (never from init)
    over.update(dotted({"epochs": epochs, "average_start_epoch": float(max(epochs / 2, epochs - 1)),
                        "seed": seed}))
    over.update(dotted(user))
    over.update(dotted(arm.overrides, f"experiment arm {arm.name}"))
    over["run.out"] = str(out)
    return resolve_config(RECIPE, over)


def run_dir(root: Path, arm: Arm, seed: int) -> Path:
    return root / "runs" / f"{arm.name}-seed{seed}"


def _saved_config(run: Path) -> Optional[dict[str, Any]]:
    path = RunDir(run).config
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        saved = tomllib.load(f)
    return flatten(resolve_config(base=saved).to_dict())


def _check_same(run: Path, cfg: RunConfig) -> None:
    saved = _saved_config(run)
    if saved is None:
        return
    want = flatten(cfg.to_dict())
    diff = {k: (saved.get(k), v) for k, v in want.items()
            if k not in _FREE_KEYS and saved.get(k) != v}
    if diff:
        txt = ", ".join(f"{k} {a!r} there, {b!r} now" for k, (a, b) in list(diff.items())[:4])
        raise UserError(f"{run}: holds a run with other settings ({txt}); pass the same "
                        f"settings to continue this experiment, or another --out")


def run_arm(cfg: RunConfig, run: Path, log: Callable[[str], None],
            keep_checkpoints: bool = False) -> tuple[str, Path]:
    """Train (or continue, or skip) one run; returns what was done: done / resumed / trained."""
    if RunDir(run).is_finished() or RunDir(run).checkpoint_last.is_file():
        _check_same(run, cfg)
    if not RunDir(run).is_finished():
        log(f"  {run.name}: " + ("resuming from its checkpoint"
                                 if RunDir(run).checkpoint_last.is_file() else "training"))
    return complete(GradNormTask(), cfg, keep_checkpoints=keep_checkpoints), run
