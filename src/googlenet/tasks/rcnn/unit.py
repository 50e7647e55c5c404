"""The rcnn unit (what ``googlenet.tasks.TASKS['rcnn']`` loads): imports torch."""

from __future__ import annotations

from ..base import TaskUnit
from ..detect.stages import PRETRAIN
from . import commands
from .task import RCNNTask

UNIT = TaskUnit(name="rcnn", recipe="detect", task=RCNNTask, evaluate=commands.evaluate,
                predict=commands.predict, export=commands.export, stages=(PRETRAIN,))
