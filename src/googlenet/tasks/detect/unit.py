"""The detect unit (what ``googlenet.tasks.TASKS['detect']`` loads): imports torch."""

from __future__ import annotations

from ..base import TaskUnit
from . import commands
from .stages import PRETRAIN
from .task import DetectionTask

UNIT = TaskUnit(name="detect", recipe="detect", task=DetectionTask, evaluate=commands.evaluate,
                predict=commands.predict, export=commands.export, stages=(PRETRAIN,))
