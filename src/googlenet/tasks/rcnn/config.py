"""The paper's R-CNN pipeline (§8): detection's config (``arch = "rcnn"``) and its own ``rcnn``
section (the regions) and the region classifier's ``loss``. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ...models.choices import MIN_INPUT_SIZE
from ...settings import UNIT, Range, section, setting
from ..classify.config import LossConfig
from ..detect.config import DetectConfig

__all__ = ["RCNNConfig", "RegionsConfig", "CONFIG"]


def _region(v: int) -> str:
    return f"GoogLeNet needs inputs of at least {MIN_INPUT_SIZE} px" if v < MIN_INPUT_SIZE else ""


@dataclass
class RegionsConfig:
    # + a detection run's top-200 boxes per image (the paper's MultiBox stand-in)
    extra_proposals: Optional[str] = setting(None, alias="rcnn_extra_proposals")
    fg_fraction: float = setting(0.25, range=UNIT, alias="rcnn_fg_fraction")  # R-CNN: 1:3
    # proposals are warped to this square (R-CNN: 227)
    region_size: int = setting(64, range=Range(0, 1024), check=_region, alias="rcnn_region_size")


@dataclass
class RCNNConfig(DetectConfig):
    KIND: ClassVar[str] = "--task detect --arch rcnn"

    rcnn: RegionsConfig = section(RegionsConfig)
    loss: LossConfig = section(LossConfig)


CONFIG = RCNNConfig
