"""Tasks as whole units: each package here (``classify``, ``detect``, ``rcnn``) exposes one
``TaskUnit`` (googlenet/tasks/base.py) with its training ``Task`` (the ``Task`` protocol,
googlenet/engine/task.py), its evaluation, prediction, export check and the stages run before
training. The command line looks the unit up here and calls it.

Each package's ``config.py`` (torch-free) declares the task's config class as ``CONFIG`` (the
engine's ``RunConfig`` plus the task's sections), and ``unit.py`` its ``UNIT``. ``resolve_config``
builds the config of a run from a recipe, a saved config and the command line.

Adding a task: a package ``tasks/<name>/`` with ``config.py`` (``CONFIG``) and ``unit.py``
(``UNIT = TaskUnit(...)``), a line in ``TASKS`` and ``CONFIG_TASKS``, and, when its weights or
configs name it otherwise, a line in the ``unit_for_*`` functions.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from ..engine import config as config_lib
from ..errors import UserError

if TYPE_CHECKING:  # the units import torch; the command line's --help lists TASKS without it
    from ..engine.task import Task
    from .base import TaskUnit

__all__ = ["TASKS", "CONFIG_TASKS", "get_unit", "get_task", "unit_for_config",
           "unit_for_command_line", "unit_for_weights", "train", "schemas", "resolve_config",
           "saved_settings", "dotted"]


def _loader(package: str) -> Callable[[], TaskUnit]:
    def load() -> TaskUnit:
        return importlib.import_module(f"{__name__}.{package}.unit").UNIT

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


def _config_class(name: str) -> type:
    return importlib.import_module(f"{__name__}.{name}.config").CONFIG


def _pick(settings: Mapping[str, Any]) -> type:
    """The config class of the unit the settings (dotted keys) ask for."""
    task = str(settings.get("task", "classify")).strip()
    if task not in CONFIG_TASKS:
        raise UserError(f"task {task!r} is not known; choose one of {sorted(CONFIG_TASKS)}",
                        key="task")
    return _config_class(_unit_name(task, str(settings.get("model.arch", "")).strip()))


@functools.lru_cache(maxsize=1)
def schemas() -> config_lib.Schemas:
    """Every task's config class, and how a run's settings choose one."""
    return config_lib.Schemas(pick=_pick, all=tuple(_config_class(n) for n in TASKS))


def resolve_config(recipe: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                   *, base: Optional[Mapping[str, Any]] = None) -> Any:
    """A run's config (its task's config class): defaults, the recipe (or ``base``, a saved
    config), then ``overrides`` (googlenet.engine.config.resolve)."""
    return config_lib.resolve(schemas(), recipe, overrides, base=base)


def dotted(settings: Mapping[str, Any], source: str = "command line") -> dict[str, Any]:
    """Settings keyed flat (``lr``) or dotted (``optim.lr``) -> dotted keys, so that layers of
    settings merge by what they set, not by how they spell it."""
    return config_lib.to_dotted(settings, schemas(), source)


def saved_settings(saved: Any, source: str = "saved config", *, strict: bool = True) -> dict[str, Any]:
    """A saved config of any version (a checkpoint's, a weights file's) by dotted key;
    ``strict=False`` for what a weights file says of its training (not a dict: {})."""
    if not isinstance(saved, Mapping):
        return {}
    try:
        return config_lib.read_saved(saved, schemas(), source, strict=strict)
    except UserError:
        if strict:
            raise
        return {}


def unit_for_config(cfg: Any) -> TaskUnit:
    """The unit that trains a resolved config (its ``task`` and, for detection, ``model.arch``)."""
    if cfg.task not in CONFIG_TASKS:
        raise UserError(f"task {cfg.task!r} is not known; choose one of {sorted(CONFIG_TASKS)}",
                        key="task")
    return get_unit(_unit_name(cfg.task, getattr(getattr(cfg, "model", None), "arch", None)))


def unit_for_command_line(overrides: Mapping[str, Any]) -> TaskUnit:
    """The unit a `googlenet train` command line asks for (--task, --arch, --set), before a
    recipe is read: it names the default recipe."""
    over = dotted(overrides)
    task = over.get("task", "classify")
    return get_unit(_unit_name(task, over.get("model.arch")) if task in CONFIG_TASKS else "classify")


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


def train(cfg, **kwargs):  # noqa: ANN001, ANN201  (RunConfig -> results dict)
    """Train ``cfg`` with the engine: ``fit(unit_for_config(cfg).task(), cfg, **kwargs)``."""
    from ..engine.trainer import fit

    return fit(unit_for_config(cfg).task(), cfg, **kwargs)
