"""How a run's numbers are shown, from what the task declares: its ``metrics`` (``Metric``: row
key, label, format, curves.png panel) and its throughput unit (``count_key``: the ``StepResult``
sum that counts what a step processed; ``count_unit``: its label in "<n> img/s").

A task that still writes its own lines (``epoch_summary``, ``final_summary``, ``plot_groups``)
keeps them; one that declares nothing counts ``sums["images"]`` as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

__all__ = ["Metric", "count_of", "epoch_line", "final_line", "plot_groups", "throughput_key"]


@dataclass(frozen=True)
class Metric:
    """One number of an epoch's row: ``train_loss``, ``val_top1``, ...

    ``fmt`` is a format spec (``".4f"``), ``unit`` follows the number (``"%"``); ``group``
    names the curves.png panel it is drawn in (None: not drawn). The epoch line shows the
    metrics the row has, in their order; the final line shows the ``val_`` ones, as evaluated
    on the final split.
    """

    key: str
    label: str
    fmt: str = ".4f"
    unit: str = ""
    group: Optional[str] = None

    def show(self, value: float) -> str:
        return f"{self.label} {value:{self.fmt}}{self.unit}"


def count_of(task: Any) -> tuple[str, str]:
    """(the ``StepResult.sums`` key that counts a step's items, their unit label)."""
    return getattr(task, "count_key", "images"), getattr(task, "count_unit", "img")


def throughput_key(task: Any) -> str:
    """The row key of the epoch's throughput: ``images_per_s``, or ``<count_key>_per_s``."""
    return f"{count_of(task)[0]}_per_s"


def epoch_line(task: Any, row: dict[str, Any], cfg: Any, averaged: bool) -> str:
    """The line logged after each epoch."""
    if hasattr(task, "epoch_summary"):
        return task.epoch_summary(row, cfg, averaged)
    parts = [f"epoch {row['epoch']:>3}/{cfg.epochs}"]
    parts += [m.show(row[m.key]) for m in getattr(task, "metrics", ()) if m.key in row]
    unit = count_of(task)[1]
    parts += [f"lr {row['lr']:.3g}", f"{row[throughput_key(task)]:.0f} {unit}/s",
              f"{row['epoch_seconds']:.1f}s"]
    return "  ".join(parts)


def final_line(task: Any, split: str, res: dict[str, Any], averaged: bool) -> str:
    """The line logged after the final evaluation (``res``: the task's ``evaluate``)."""
    if hasattr(task, "final_summary"):
        return task.final_summary(split, res, averaged)
    which = "averaged weights" if averaged else "weights"
    key, _ = count_of(task)
    shown = [m.show(res[m.key[4:]]) for m in getattr(task, "metrics", ())
             if m.key.startswith("val_") and m.key[4:] in res]
    n = f", {res[key]} {key}" if key in res else ""
    return f"final {split} ({which}{n}): " + "  ".join(shown)


def plot_groups(task: Any) -> Sequence[tuple[str, Sequence[tuple[str, str]]]]:
    """The panels of curves.png: (title, [(row key, label), ...]), in declaration order."""
    if hasattr(task, "plot_groups"):
        return task.plot_groups()
    groups: dict[str, list[tuple[str, str]]] = {}
    for m in getattr(task, "metrics", ()):
        if m.group is not None:
            groups.setdefault(m.group, []).append((m.key, m.label))
    return list(groups.items())
