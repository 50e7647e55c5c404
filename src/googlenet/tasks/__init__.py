"""Tasks the training engine trains: each brings its data, model, loss, metrics and what "best"
means (the ``Task`` protocol, googlenet/engine/task.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import UserError

if TYPE_CHECKING:  # engine.task imports torch; the command line's --help lists TASKS without it
    from ..engine.task import Task

__all__ = ["TASKS", "get_task"]


def _classification() -> Task:
    from .classification import ClassificationTask

    return ClassificationTask()


def _detection() -> Task:
    from .detection import DetectionTask

    return DetectionTask()


# name -> builder; imported when used, so one task's dependencies never load for another
TASKS: dict[str, Callable[[], Task]] = {"classify": _classification, "detect": _detection}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"task {name!r} is not known; choose one of {sorted(TASKS)}", key="task")
    return TASKS[name]()


def train(cfg, **kwargs):  # noqa: ANN001, ANN201  (TrainConfig -> results dict)
    """Train ``cfg.task`` with the engine: ``fit(get_task(cfg.task), cfg, **kwargs)``."""
    from ..engine.trainer import fit

    return fit(get_task(cfg.task), cfg, **kwargs)
