"""Detection's config: the engine's sections (``RunConfig``) and the task's own: ``model`` (the
GoogLeNet backbone's settings and the detector's: arch, FPN, heads, post-processing), ``data``
and ``augment`` (flips and scale jitter). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...data.config import DataConfig, ordered
from ...engine.config import RunConfig
from ...models.config import ModelConfig
from ...settings import UNIT, Range, section, setting
from ..naming import NamedByModel

__all__ = ["DetectConfig", "DetectModel", "DetectAugment", "ARCHS", "CONFIG"]

ARCHS = ("fcos", "retinanet", "fasterrcnn", "rcnn")


def _groups(v: int) -> str:
    return "must be a multiple of 32 (the detection heads' GroupNorm has 32 groups)" if v % 32 else ""


@dataclass
class DetectModel(ModelConfig):
    # fcos | retinanet | fasterrcnn (GoogLeNet FPN) | rcnn (the paper's §8; googlenet.tasks.rcnn)
    arch: str = setting("fcos", choices=ARCHS)
    fpn_channels: int = setting(128, range=Range(64, 1024), check=_groups)  # torchvision's: 256
    head_convs: int = setting(2, range=Range(1, 16))  # conv layers per head branch (torchvision: 4)
    anchor_scale: float = setting(2.0, range=Range(0, 64, lo_open=True))  # anchor size in strides
    score_thresh: float = setting(0.05, range=UNIT, alias="det_score_thresh")  # eval/predict floor
    nms_thresh: float = setting(0.5, range=UNIT, alias="det_nms_thresh")  # per-class NMS IoU
    # no init: "digits" first trains a digits classifier in OUT/pretrain (tasks/detect/stages.py)
    pretrain: str = setting("none", choices=("none", "digits"), identity=False)

    def detector(self) -> dict[str, Any]:
        """What a detector's model config (weights metadata) records of the network."""
        return dict(detector=self.arch, **self.backbone())


@dataclass
class DetectAugment:
    hflip: float = setting(0.5, range=UNIT)  # probability of a horizontal flip (boxes flipped too)
    # training images rescaled by a factor drawn from this range
    scale_jitter: tuple[float, float] = setting((0.75, 1.25), range=Range(0, 10, lo_open=True),
                                                check=ordered)


@dataclass
class DetectConfig(NamedByModel, RunConfig):
    KIND: ClassVar[str] = "--task detect"

    task: str = setting("detect")
    model: DetectModel = section(DetectModel)
    data: DataConfig = section(DataConfig)
    augment: DetectAugment = section(DetectAugment)


CONFIG = DetectConfig
