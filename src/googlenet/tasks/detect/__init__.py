"""Object detection with a GoogLeNet-FPN detector (FCOS, RetinaNet, Faster R-CNN): training
(``task``, after the backbone's digits pretraining stage), evaluation, prediction and ONNX
export."""

from ..base import TaskUnit
from . import commands
from .stages import PRETRAIN
from .task import DetectionTask

__all__ = ["UNIT"]

UNIT = TaskUnit(name="detect", recipe="detect", task=DetectionTask, evaluate=commands.evaluate,
                predict=commands.predict, export=commands.export, stages=(PRETRAIN,))
