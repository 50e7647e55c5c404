"""The R-CNN unit's commands: evaluation and prediction run R-CNN weights on the proposals they
were trained with (googlenet.tasks.rcnn.proposals) through the detection unit's commands; an
ensemble of R-CNN runs averages their softmax over the same proposals (§8). Other detection runs
in the same ensemble run as the detection unit runs them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ...data.proposals import warp_regions
from ...errors import UserError
from ...models.detection import from_model_outputs, rcnn_detect
from ...weights.records import LoadedWeights
from ..detect import commands as detect_commands
from ..detect.evaluation import Runner, describe, run_detector
from .proposals import model_proposals

__all__ = ["is_rcnn", "run_rcnn", "runner", "evaluate", "predict", "export"]


def is_rcnn(model: torch.nn.Module) -> bool:
    return getattr(model, "config", {}).get("detector") == "rcnn"


@torch.no_grad()
def run_rcnn(models: Sequence[torch.nn.Module], images: Sequence[Any],
             device: torch.device) -> list[dict[str, torch.Tensor]]:
    """R-CNN runs (one, or an ensemble: softmax averaged over the same proposals, §8)."""
    for m in models:
        m.eval().to(device)
    props = model_proposals(models[0], images)
    return from_model_outputs(rcnn_detect(list(models), list(images), props, warp_regions,
                                          device=device))


def _run(model: torch.nn.Module, images: Sequence[Any], device: torch.device,
         **kw: Any) -> list[dict[str, torch.Tensor]]:
    return run_rcnn([model], images, device) if is_rcnn(model) else run_detector(
        model, images, device, **kw)


def _describe(model: torch.nn.Module) -> str:
    if not is_rcnn(model):
        return describe(model)
    cfg = model.config
    return (f"R-CNN (Selective Search{' + MultiBox stand-in' if cfg.get('extra_proposals') else ''}"
            f", GoogLeNet {cfg['variant']} regions)")


def runner(models: Sequence[LoadedWeights]) -> Runner:
    """How to run ``models`` (R-CNN runs, maybe with other detection runs): each by its kind; an
    ensemble of R-CNN runs only averages softmax per region, else it fuses boxes."""
    if len(models) > 1 and all(is_rcnn(m.model) for m in models):  # the paper's
        return Runner(run=_run, describe=_describe, ensemble=run_rcnn,
                      ensemble_method="R-CNN, softmax averaged over the models")
    return Runner(run=_run, describe=_describe)


def evaluate(args: argparse.Namespace, models: list[LoadedWeights], names: list[str],
             device: torch.device) -> int:
    return detect_commands.evaluate(args, models, names, device, runner=runner(models))


def predict(args: argparse.Namespace, loaded: LoadedWeights, files: Sequence[Path],
            failures: list, device: torch.device, out_dir: Callable[[], Optional[Path]]) -> int:
    return detect_commands.predict(args, loaded, files, failures, device, out_dir,
                                   runner=runner([loaded]))


def export(args: argparse.Namespace, loaded: LoadedWeights, prefix: Callable[[], Path]) -> int:
    detect_commands.check_export_args(args)
    raise UserError(f"{args.weights}: an R-CNN run (--arch rcnn) does not export: its "
                    f"proposals come from OpenCV's Selective Search, outside the network; "
                    f"export a detector of --arch fcos, retinanet or fasterrcnn")
