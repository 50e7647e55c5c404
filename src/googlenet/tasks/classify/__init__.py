"""Image classification, the paper's task: GoogLeNet trained on digits, CIFAR or an image
folder (``task``), evaluated over 1/10/144 crops (``evaluate``), predicting (``predict``) and
exported (``export``)."""

from ...engine.config import DEFAULT_RECIPE
from ..base import TaskUnit
from . import evaluate, export, predict
from .task import ClassificationTask

__all__ = ["UNIT"]

UNIT = TaskUnit(name="classify", recipe=DEFAULT_RECIPE, task=ClassificationTask,
                evaluate=evaluate.evaluate, predict=predict.predict, export=export.export)
