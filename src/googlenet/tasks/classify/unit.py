"""The classify unit (what ``googlenet.tasks.TASKS['classify']`` loads): imports torch."""

from __future__ import annotations

from ...engine.config import DEFAULT_RECIPE
from ..base import TaskUnit
from . import evaluate, export, predict
from .task import ClassificationTask

UNIT = TaskUnit(name="classify", recipe=DEFAULT_RECIPE, task=ClassificationTask,
                evaluate=evaluate.evaluate, predict=predict.predict, export=export.export)
