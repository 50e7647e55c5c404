"""Classification's config: the engine's sections (``RunConfig``) and the task's own, ``model``
(googlenet.models.config), ``data`` (with ``loader``), ``augment`` and ``loss``. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...data.config import AugmentConfig, DataConfig
from ...engine.config import RunConfig
from ...models.choices import LOADERS
from ...models.config import ModelConfig
from ...settings import PROB, Range, section, setting
from ..naming import NamedByModel

__all__ = ["ClassifyConfig", "ClassifyData", "LossConfig", "CONFIG"]


@dataclass
class ClassifyData(DataConfig):
    # Image folders: gpu = JPEGs decoded (nvJPEG) and augmented on the device, the workers only
    # read files | cpu = all in the loader workers | auto = gpu for JPEG folders on a GPU
    loader: str = setting("auto", choices=LOADERS)


@dataclass
class LossConfig:
    aux_weight: float = setting(0.3, range=Range(0, 100))  # §5: aux losses added with weight 0.3
    label_smoothing: float = setting(0.0, range=PROB)  # not in the paper


@dataclass
class ClassifyConfig(NamedByModel, RunConfig):
    KIND: ClassVar[str] = "--task classify"

    task: str = setting("classify")
    model: ModelConfig = section(ModelConfig)
    data: ClassifyData = section(ClassifyData)
    augment: AugmentConfig = section(AugmentConfig)
    loss: LossConfig = section(LossConfig)


CONFIG = ClassifyConfig
