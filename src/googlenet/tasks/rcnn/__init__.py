"""The paper's detection pipeline (§8): R-CNN with GoogLeNet as the region classifier on
Selective Search proposals (``googlenet train --task detect --arch rcnn``). Shares the detection
unit's data, checks, reporting and pretraining stage; no export (its proposals are outside the
network)."""

from ..base import TaskUnit
from ..detect.stages import PRETRAIN
from . import commands
from .task import RCNNTask

__all__ = ["UNIT"]

UNIT = TaskUnit(name="rcnn", recipe="detect", task=RCNNTask, evaluate=commands.evaluate,
                predict=commands.predict, export=commands.export, stages=(PRETRAIN,))
