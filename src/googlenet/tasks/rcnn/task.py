"""The paper's detection pipeline (§8), ``googlenet train --task detect --arch rcnn``: R-CNN with
GoogLeNet as the region classifier.

- Proposals (googlenet.tasks.rcnn.proposals, the same for training and inference): Selective
  Search, fast mode, ``base_k = inc_k = 300`` (the paper: "superpixel size doubled"; OpenCV's
  default k is 150), cached on disk per image, at most ``RCNN_MAX_PROPOSALS`` per image; with
  ``rcnn_extra_proposals=RUN``, plus that detection run's 200 best boxes per image as the
  stand-in for the paper's 200 MultiBox proposals (MultiBox itself is not reproduced).
- Training: each image gives ``REGIONS_PER_IMAGE`` warped regions, ``rcnn_fg_fraction``
  foreground (IoU >= 0.5 with a ground-truth box: its class; R-CNN's 1:3 by default) and the rest
  background (IoU < 0.3; between the two: not used), drawn with the per-sample seed; the ground
  truth boxes are proposals too during training (as R-CNN's fine-tuning). Loss: cross-entropy over
  C + 1 classes with the aux heads at 0.3 (§5). No box regression (the paper's choice).
- Detection: every proposal classified, softmax, per class score threshold and NMS
  (googlenet.models.detection.rcnn_detect); several runs at eval average their softmax.
- Reported with the COCO numbers: proposal recall at IoU 0.5 (the paper's "coverage") and
  proposals per image.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn as nn

from ...data.proposals import label_proposals, proposal_stats, warp_regions
from ...engine.config import RunConfig, SystemConfig
from ...engine.distributed import DistInfo, unwrap
from ...engine.task import StepResult, TaskData
from ...engine.trainer import autocast
from ...models.detection import RegionClassifier, from_model_outputs, rcnn_detect
from ..classify.task import compute_loss
from ..detect.task import DetectionTask, evaluate_detections, gather, open_splits, task_data
from ..classify.config import LossConfig
from ..detect.config import DetectModel
from .config import RCNNConfig, RegionsConfig
from .proposals import SELECTIVE_SEARCH, ExtraProposer, extra_proposer, image_proposals

__all__ = ["RCNNTask", "RegionDataset", "region_collate", "build_rcnn", "rcnn_train_step",
           "rcnn_evaluate", "REGIONS_PER_IMAGE"]

REGIONS_PER_IMAGE = 16  # warped regions per training image (R-CNN: 128 per batch of 2 images)


class RegionDataset(torch.utils.data.Dataset):
    """Item i: ``REGIONS_PER_IMAGE`` warped regions of image i (R, 3, S, S) float in [0, 1] and
    their labels (R,) in 0..C (0: background), sampled fg:bg as ``fg_fraction``."""

    def __init__(self, images: Any, size: int, context: int, fg_fraction: float,
                 extra: Optional[ExtraProposer] = None) -> None:
        self.images, self.size, self.context = images, size, context
        self.fg_fraction, self.extra = fg_fraction, extra
        self.classes = images.classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, t = self.images[i]
        gt = t["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4)
        boxes = torch.cat([image_proposals(image, self.extra), gt])
        lab = label_proposals(boxes, gt, t["labels"], fg_iou=0.5, bg_iou=0.3)
        fg = torch.nonzero(lab.labels > 0).flatten()
        bg = torch.nonzero((lab.labels == 0) & ~lab.ignore).flatten()
        n_fg = min(round(REGIONS_PER_IMAGE * self.fg_fraction), REGIONS_PER_IMAGE) if len(fg) else 0
        pick = [_draw(fg, n_fg), _draw(bg if len(bg) else fg, REGIONS_PER_IMAGE - n_fg)]
        idx = torch.cat(pick)
        return warp_regions(image, boxes[idx], self.size, context=self.context), lab.labels[idx]


def _draw(pool: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` of ``pool`` (without replacement while it lasts), from torch's seeded generator."""
    if n == 0 or len(pool) == 0:
        return pool[:0]
    reps = math.ceil(n / len(pool))
    return torch.cat([pool[torch.randperm(len(pool))] for _ in range(reps)])[:n]


def region_collate(batch: list[Any]) -> tuple[Any, Any]:
    """Training items (regions, labels) are concatenated; eval items (image, target) listed."""
    first = batch[0][0]
    if isinstance(first, torch.Tensor) and first.ndim == 4:
        return torch.cat([b[0] for b in batch]), torch.cat([b[1] for b in batch])
    images, targets = zip(*batch)
    return list(images), list(targets)


def build_rcnn(m: DetectModel, regions: RegionsConfig, num_classes: int, preprocess: Any,
               init: Optional[dict[str, Any]] = None) -> RegionClassifier:
    size = regions.region_size
    return RegionClassifier(
        num_classes=num_classes, region_size=size, context=round(size * 16 / 227),  # R-CNN's 16/227
        image_mean=preprocess.mean, image_std=preprocess.std, min_size=preprocess.crop,
        max_size=preprocess.crop, score_thresh=m.score_thresh, nms_thresh=m.nms_thresh,
        variant=m.variant, inception=m.inception, stem=m.stem, aux_logits=m.aux_logits,
        transform_input=bool((init or {}).get("transform_input", False)), dropout=m.dropout,
        aux_dropout=m.aux_dropout, proposals=SELECTIVE_SEARCH,
        extra_proposals=regions.extra_proposals)


def rcnn_train_step(model: nn.Module, batch: Any, system: SystemConfig, loss_cfg: LossConfig,
                    device: torch.device) -> StepResult:
    regions, labels = batch  # (B*R, 3, S, S), (B*R,)
    regions = regions.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    if system.channels_last:
        regions = regions.contiguous(memory_format=torch.channels_last)
    with autocast(system.amp, device, detector=True):
        outputs = model(regions)
    loss = compute_loss(outputs, labels, aux_weight=loss_cfg.aux_weight,
                        label_smoothing=loss_cfg.label_smoothing)
    n_img = torch.tensor(float(len(labels) // REGIONS_PER_IMAGE), device=device)
    with torch.no_grad():
        sums = {"loss": loss.total * n_img, "images": n_img, "loss_cls": loss.main * n_img,
                "region_correct": (loss.logits.argmax(1) == labels).sum().float(),
                "regions": torch.tensor(float(len(labels)), device=device)}
    return StepResult(loss=loss.total, sums=sums)


def rcnn_evaluate(model: nn.Module, loader: Any, device: torch.device, classes: list[str],
                  extra: Optional[ExtraProposer] = None) -> dict[str, float]:
    net = unwrap(model)
    preds, targets, props = [], [], []
    for images, tgts in loader:
        boxes = [image_proposals(im, extra) for im in images]
        preds += from_model_outputs(rcnn_detect([net], images, boxes, warp_regions, device=device))
        targets += [{"boxes": t["boxes"].as_subclass(torch.Tensor).cpu(), "labels": t["labels"].cpu()}
                    for t in tgts]
        props += boxes
    preds, targets, props = gather(preds), gather(targets), gather(props)
    res = evaluate_detections(preds, targets, classes)
    st = proposal_stats(props, [t["boxes"] for t in targets])
    res.update(proposal_recall50=100.0 * st["recall@0.5"], proposals_per_image=st.get("per_image_mean", 0.0))
    return res


class RCNNTask(DetectionTask):
    """The ``Task`` of ``googlenet train --task detect --arch rcnn``: the detection run's data,
    checks, init and reporting (``DetectionTask``), with region batches, the region classifier
    and proposal-based evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.arch = "rcnn"
        self._extra: Optional[ExtraProposer] = None  # the MultiBox stand-in proposer

    def _losses(self) -> tuple[str, ...]:
        return ("cls",)

    def setup_data(self, cfg: RCNNConfig, dist: DistInfo) -> TaskData:
        # the images as they are
        splits = open_splits(cfg.data, cfg.system.seed, None, eval_transforms=False)
        self.classes = splits.classes
        extra = cfg.rcnn.extra_proposals
        self._extra = extra_proposer(extra) if extra else None
        size = cfg.rcnn.region_size
        train = RegionDataset(splits.train, size, round(size * 16 / 227), cfg.rcnn.fg_fraction,
                              self._extra)
        note = (f" (Selective Search + {extra}'s top-200 boxes as the MultiBox stand-in)"
                if self._extra else "")
        return task_data(self.name, self.arch, splits, train, region_collate, in_memory=False,
                         note=note)

    def build_model(self, cfg: RCNNConfig, data: TaskData) -> nn.Module:
        pre = data.meta.preprocess_obj("the data")
        return build_rcnn(cfg.model, cfg.rcnn, len(data.meta.class_names), pre,
                          self._init_source or {})

    def train_step(self, model: nn.Module, batch: Any, cfg: RCNNConfig,
                   device: torch.device) -> StepResult:
        return rcnn_train_step(model, batch, cfg.system, cfg.loss, device)

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        out = super().epoch_metrics(sums, model)
        # accuracy of the region classifier on its batches
        out["train_region_acc"] = 100.0 * sums["region_correct"] / max(sums["regions"], 1.0)
        return out

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader,
                 device: torch.device, cfg: RunConfig) -> dict[str, float]:
        return rcnn_evaluate(model, loader, device, self.classes, self._extra)
