"""What a task is as a whole: ``TaskUnit``, the one object each task package (``tasks/classify``,
``tasks/detect``, ``tasks/rcnn``) exposes as ``UNIT``. The command line looks a unit up
(``googlenet.tasks.unit_for_weights`` / ``unit_for_config`` / ``unit_for_command_line``) and
calls it; it never tests a task's name. Torch-free: ``googlenet --help`` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping


if TYPE_CHECKING:  # torch behind both
    from ..engine.stages import Stage
    from ..engine.task import Task

__all__ = ["TaskUnit", "model_differences"]


@dataclass(frozen=True)
class TaskUnit:
    """A task end to end.

    ``task``: builds the training ``Task`` (googlenet.engine.task) the engine fits.
    ``evaluate(args, models, names, device) -> exit status``: ``googlenet eval`` of its weights.
    ``predict(args, loaded, files, failures, device) -> exit status``: ``googlenet predict``.
    ``export(args, loaded) -> exit status``: ``googlenet export`` with its check of the files.
    ``stages``: what runs before a fresh training run (googlenet.engine.stages.run_stages).
    """

    name: str  # the unit's key in googlenet.tasks.TASKS
    recipe: str  # the recipe of `googlenet train` when --recipe is not given
    task: Callable[[], Task]
    evaluate: Callable[..., int]
    predict: Callable[..., int]
    export: Callable[..., int]
    stages: tuple[Stage, ...] = field(default=())


def model_differences(saved: Mapping[str, Any], want: Mapping[str, Any], *,
                      missing_matches: bool = False) -> str:
    """How a saved model config differs from what this run's model section builds (``want``:
    ``ModelConfig.backbone()``, ``DetectModel.detector()``, ...), for an error message
    ("variant: 'bn' there, 'paper' here, ..."); "" when it does not. ``missing_matches``: a key
    the saved config lacks (written before the key existed) counts as the default ``want`` has."""
    diff = [(k, saved.get(k, v) if missing_matches else saved.get(k), v) for k, v in want.items()]
    return ", ".join(f"{k}: {a!r} there, {b!r} here" for k, a, b in diff if a != b)
