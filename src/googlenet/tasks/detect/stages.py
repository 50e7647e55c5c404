"""The stage a detector's training declares before a fresh run: ``pretrain = "digits"`` trains
the backbone's digits classifier first (``pretrain_backbone``). Run by the command line through
googlenet.engine.stages.run_stages, never on --resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...data.detection import DIGITS_DETECT
from ...engine.checkpoint import default_run_dir
from ...engine.runs import complete
from ...engine.stages import Stage
from ...settings import get_path
from .. import resolve_config
from ..classify.task import ClassificationTask
from .config import DetectConfig

__all__ = ["PRETRAIN", "PRETRAIN_KEYS", "pretrain_backbone"]

# What a digits pretraining keeps of the detection run's settings (the rest is the classification
# recipe's for the variant: the run `googlenet train --variant V` makes).
PRETRAIN_KEYS = ("model.variant", "model.inception", "model.stem", "system.seed", "system.device",
                 "system.amp", "system.threads", "system.deterministic", "system.channels_last",
                 "system.compile", "run.progress", "run.tensorboard", "run.plots",
                 "run.max_steps", "run.log_every")


def pretrain_backbone(cfg: DetectConfig, log: Any = print) -> DetectConfig:
    """``pretrain = "digits"`` (the detect recipe's): before a detector on the built-in
    digits-detect is trained without --init weights, train the classifier ``googlenet train --variant V``
    would (the short recipe's table for the variant: ~30 s for bn on a 2-core CPU) in
    ``OUT/pretrain`` (its weights and metrics; checkpoints are dropped once it is done) and start
    the backbone from it (``run.init``). Classifying the digits is what
    a from-scratch detector learns last (its class-agnostic AP50 leads its AP50 by ~5 points).
    Running the command again continues the pretraining or reuses it (``engine.runs.complete``).
    Returns ``cfg``, its ``out`` made concrete and ``init`` set where the pretraining applies."""
    if cfg.model.pretrain == "none" or cfg.run.init:
        return cfg
    if cfg.data.path not in (None, DIGITS_DETECT):
        log(f"pretrain {cfg.model.pretrain}: applies to the built-in digits-detect only; the backbone "
            f"starts from scratch (--init imagenet starts it from ImageNet weights)")
        return cfg
    if not cfg.run.out:
        cfg.run.out = str(default_run_dir(cfg.label()))
    over = {k: get_path(cfg, k) for k in PRETRAIN_KEYS}
    over.update({"task": "classify", "data.path": None,
                 "run.out": str(Path(cfg.run.out) / "pretrain")})
    pcfg = resolve_config(None, over)
    log(f"pretraining the backbone: a {cfg.model.variant} digits classifier, {pcfg.run.epochs} "
        f"epochs, in {pcfg.run.out}")
    how = complete(ClassificationTask(), pcfg, keep_checkpoints=False)
    if how == "done":
        log(f"pretraining: {pcfg.run.out} is finished; reusing it")
    cfg.run.init = pcfg.run.out
    return cfg


PRETRAIN = Stage("pretrain", pretrain_backbone)
