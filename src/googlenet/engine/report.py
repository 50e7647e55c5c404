"""How a run's numbers are shown, from what the task declares (engine/task.py):

- ``metrics``: ``Metric`` (row key, label, format, curves.png panel) for each number of the
  epoch's row worth showing; curves.png draws them by ``group``, in their order.
- ``epoch_line`` / ``final_line`` (optional): the lines' middle as format templates over the
  row (``"  val top-1 {val_top1:.2f}%"``); a template is left out when a key it names is
  missing or NaN. Without them the lines list the metrics, as "label value".
- ``count_key`` / ``count_unit`` / ``count_format``: the ``StepResult.sums`` entry that counts
  what a step processed (default ``"images"``), its label in "<n> img/s" (``"img"``), and the
  number's format (``".0f"``). The row's throughput is ``<count_key>_per_s``.

The engine writes the rest of the epoch line: ``epoch   3/8  ...  lr 0.0015  26 img/s  50.5s``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

__all__ = ["Metric", "count_of", "epoch_line", "final_line", "plot_groups", "throughput_key",
           "fill"]


@dataclass(frozen=True)
class Metric:
    """One number of an epoch's row: ``train_loss``, ``val_top1``, ...

    ``label`` names it in curves.png's legend (and in the lines of a task without templates),
    ``fmt`` is its format spec, ``unit`` follows the number ("%"), ``group`` is its curves.png
    panel (None: not drawn). A ``val_`` metric is also a key of the task's ``evaluate``.
    """

    key: str
    label: str
    fmt: str = ".4f"
    unit: str = ""
    group: Optional[str] = None

    def template(self, key: Optional[str] = None) -> str:
        return f"{self.label} {{{key or self.key}:{self.fmt}}}{self.unit}"


def count_of(task: Any) -> tuple[str, str]:
    """(the ``StepResult.sums`` key that counts a step's items, their unit label)."""
    return getattr(task, "count_key", "images"), getattr(task, "count_unit", "img")


def throughput_key(task: Any) -> str:
    """The row key of the epoch's throughput: ``images_per_s``, or ``<count_key>_per_s``."""
    return f"{count_of(task)[0]}_per_s"


_FORMATTER = string.Formatter()


def fill(template: str, values: Mapping[str, Any]) -> Optional[str]:
    """``template`` filled from ``values``; None when a key it names is missing or NaN."""
    for _, key, _, _ in _FORMATTER.parse(template):
        if key is None:
            continue
        v = values.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
    return template.format(**values)


def _filled(templates: Sequence[str], values: Mapping[str, Any]) -> str:
    return "".join(s for s in (fill(t, values) for t in templates) if s is not None)


def epoch_line(task: Any, row: dict[str, Any], epochs: int) -> str:
    """The line logged after each epoch."""
    templates = getattr(task, "epoch_line", None)
    if templates is None:
        templates = [("  " if i else "") + m.template()
                     for i, m in enumerate(getattr(task, "metrics", ()))]
    unit, fmt = count_of(task)[1], getattr(task, "count_format", ".0f")
    return (f"epoch {row['epoch']:>3}/{epochs}  " + _filled(templates, row)
            + f"  lr {row['lr']:.3g}  {row[throughput_key(task)]:{fmt}} {unit}/s  "
              f"{row['epoch_seconds']:.1f}s")


def final_line(task: Any, split: str, res: dict[str, Any], averaged: bool) -> str:
    """The line logged after the final evaluation (``res``: the task's ``evaluate``); a
    template may name ``{split}`` and ``{which}`` (the averaged weights or not) too."""
    which = "averaged weights" if averaged else "weights"
    templates = getattr(task, "final_line", None)
    if templates is None:
        key = count_of(task)[0]
        shown = [m.template(m.key[4:]) for m in getattr(task, "metrics", ())
                 if m.key.startswith("val_")]
        templates = ["final {split} ({which}" + (f", {{{key}}} {key}" if key in res else "")
                     + "): "] + [("  " if i else "") + t for i, t in enumerate(shown)]
    return _filled(templates, {**res, "split": split, "which": which})


def plot_groups(task: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """The panels of curves.png: (title, [(row key, label), ...]), in declaration order."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for m in getattr(task, "metrics", ()):
        if m.group is not None:
            groups.setdefault(m.group, []).append((m.key, m.label))
    return list(groups.items())
