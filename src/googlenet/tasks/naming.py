"""How a GoogLeNet task's config names its runs; torch-free (the config modules import it,
and ``train --help`` imports them)."""

from __future__ import annotations

from typing import Any

__all__ = ["NamedByModel"]


class NamedByModel:
    """How a GoogLeNet task's config names its runs (mixed into its config class, before
    ``RunConfig``): by the variant and the data (``model`` and ``data`` sections)."""

    model: Any
    data: Any

    def label(self) -> str:  # runs/<date>-<time>-<variant>-<data>
        return f"{self.model.variant}-{self.data.name}"

    def title(self) -> str:
        return f"{self.model.variant}, {self.data.path or 'digits'}"

    def summary(self) -> str:
        return f"variant={self.model.variant}"
