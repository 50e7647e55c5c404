"""Runs that are one stage of a larger job (experiment arms, a detector's digits pretraining):
``complete`` brings such a run to its end whatever an earlier process left behind, so that
running the job again continues it."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import distributed as dist_lib
from .checkpoint import load_resume
from .config import RunConfig
from .rundir import RunDir
from .task import Task
from .trainer import fit

__all__ = ["complete"]


def complete(task: Task, cfg: RunConfig, *, keep_checkpoints: bool = True) -> str:
    """Bring the run in ``cfg.run.out`` to its end, whatever state an earlier process left it in:
    "done" when it has ``results.json`` (nothing is trained), "resumed" from its last
    checkpoint, or "trained" from the start (a directory stopped before its first checkpoint
    holds nothing to keep and is started over). For runs that are one stage of a larger job
    (experiment arms, a detector's pretraining), so that running the job again continues it.
    Without ``keep_checkpoints`` a run finished here keeps its weights, metrics and results but
    not its checkpoints (over 100 MB each at full width; nothing reads them once it is done)."""
    run = Path(cfg.run.out)  # type: ignore[arg-type]
    main = dist_lib.from_env().is_main
    if RunDir(run).is_finished():
        return "done"
    if RunDir(run).checkpoint_last.is_file():
        run, ckpt = load_resume(run)
        fit(task, cfg, resume=ckpt, resume_dir=run)
        how = "resumed"
    else:
        if run.exists() and main:
            shutil.rmtree(run)
        fit(task, cfg)
        how = "trained"
    if not keep_checkpoints and RunDir(run).is_finished() and main:
        for name in (RunDir.CHECKPOINT_LAST, RunDir.CHECKPOINT_BEST):
            (run / name).unlink(missing_ok=True)
    return how
