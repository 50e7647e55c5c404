"""Tasks as whole units: each package here (``classify``, ``detect``, ``rcnn``) exposes one
``TaskUnit`` (googlenet/tasks/base.py) with its training ``Task`` (the ``Task`` protocol,
googlenet/engine/task.py), its evaluation, prediction, export check and the stages run before
training. The command line looks the unit up here and calls it.

Adding a task: a package ``tasks/<name>/`` with ``UNIT = TaskUnit(...)``, a line in ``_UNITS``
and, when its weights or configs name it otherwise, a line in the ``unit_for_*`` functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import UserError

if TYPE_CHECKING:  # the units import torch; the command line's --help lists TASKS without it
    from ..engine.task import Task
    from .base import TaskUnit

__all__ = ["TASKS", "CONFIG_TASKS", "get_unit", "get_task", "unit_for_config",
           "unit_for_command_line", "unit_for_weights", "train"]


def _loader(package: str) -> Callable[[], TaskUnit]:
    def load() -> TaskUnit:
        return importlib.import_module(f"{__name__}.{package}").UNIT

    return load


# unit name -> its loader; a unit is imported when used, so one task's dependencies never load
# for another
TASKS: dict[str, Callable[[], TaskUnit]] = {
    "classify": _loader("classify"), "detect": _loader("detect"), "rcnn": _loader("rcnn")}

# The values of the config's ``task`` key (what weights and checkpoints store); the R-CNN unit
# trains ``task = "detect"`` with ``arch = "rcnn"`` (``unit_for_config``).
CONFIG_TASKS = ("classify", "detect")


def get_unit(name: str) -> TaskUnit:
    if name not in TASKS:
        raise UserError(f"task {name!r} is not known; choose one of {sorted(CONFIG_TASKS)}",
                        key="task")
    return TASKS[name]()


def _unit_name(task: Any, detector: Any) -> str:
    return "rcnn" if task == "detect" and detector == "rcnn" else str(task)


def unit_for_config(cfg: Any) -> TaskUnit:
    """The unit that trains a resolved config (``TrainConfig``: ``task`` and ``arch``)."""
    if cfg.task not in CONFIG_TASKS:
        raise UserError(f"task {cfg.task!r} is not known; choose one of {sorted(CONFIG_TASKS)}",
                        key="task")
    return get_unit(_unit_name(cfg.task, cfg.arch))


def unit_for_command_line(overrides: Mapping[str, Any]) -> TaskUnit:
    """The unit a `googlenet train` command line asks for (--task, --arch, --set), before a
    recipe is read: it names the default recipe."""
    task = overrides.get("task", "classify")
    return get_unit(_unit_name(task, overrides.get("arch")) if task in CONFIG_TASKS else "classify")


def unit_for_weights(models: Sequence[Any]) -> TaskUnit:
    """The unit that evaluates, predicts with or exports loaded weights (``LoadedWeights``;
    several: an ensemble). Detection weights go to the detection units, R-CNN's when one of
    them is an R-CNN run (it runs both kinds); everything else is a classifier."""
    detect = [m for m in models if m.task == "detect"]
    if not detect:
        return get_unit("classify")
    rcnn = any(_unit_name(m.task, m.model.config.get("detector")) == "rcnn" for m in detect)
    return get_unit("rcnn" if rcnn else "detect")


def get_task(name: str) -> Task:
    """The training ``Task`` of the unit ``name`` ("classify", "detect", "rcnn")."""
    return get_unit(name).task()


def train(cfg, **kwargs):  # noqa: ANN001, ANN201  (TrainConfig -> results dict)
    """Train ``cfg`` with the engine: ``fit(unit_for_config(cfg).task(), cfg, **kwargs)``."""
    from ..engine.trainer import fit

    return fit(unit_for_config(cfg).task(), cfg, **kwargs)
