"""Stages: work a task declares to run before a fresh training run (the detector's backbone
pretraining, googlenet.tasks.detect.stages). The command line runs a unit's stages with
``run_stages`` before ``fit`` on a new run, never on ``--resume`` (a resumed run's config already
carries what its stages decided)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .config import RunConfig
from .distributed import from_env

__all__ = ["Stage", "run_stages"]


@dataclass(frozen=True)
class Stage:
    name: str
    # (config, log) -> the config to continue with (e.g. ``init`` set to the stage's output);
    # ``log`` prints a line on the main process only
    run: Callable[[RunConfig, Callable[[str], None]], RunConfig]


def run_stages(stages: Sequence[Stage], cfg: RunConfig,
               log: Callable[[str], None] | None = None) -> RunConfig:
    """Run ``stages`` in order, each on the config the previous one returned. ``log``: default,
    print (flushed) on the main process of a distributed run, nothing on the others."""
    if log is None:
        main = from_env().is_main
        log = (lambda s: print(s, flush=True)) if main else (lambda s: None)
    for stage in stages:
        cfg = stage.run(cfg, log)
    return cfg
