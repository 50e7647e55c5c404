"""The stage a detector's training declares before a fresh run: ``pretrain = "digits"`` trains
the backbone's digits classifier first (``pretrain_backbone``). Run by the command line through
googlenet.engine.stages.run_stages, never on --resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...data.detection import DIGITS_DETECT
from ...engine import config as config_lib
from ...engine.checkpoint import default_run_dir
from ...engine.config import TrainConfig
from ...engine.runs import complete
from ...engine.stages import Stage
from ..classify.task import ClassificationTask

__all__ = ["PRETRAIN", "PRETRAIN_KEYS", "pretrain_backbone"]

# What a digits pretraining keeps of the detection run's settings (the rest is the classification
# recipe's for the variant: the run `googlenet train --variant V` makes).
PRETRAIN_KEYS = ("variant", "inception", "stem", "seed", "device", "amp", "threads",
                 "deterministic", "channels_last", "compile", "progress", "tensorboard", "plots",
                 "max_steps", "log_every")


def pretrain_backbone(cfg: TrainConfig, log: Any = print) -> TrainConfig:
    """``pretrain = "digits"`` (the detect recipe's): before a detector on the built-in
    digits-detect is trained without --init weights, train the classifier ``googlenet train --variant V``
    would (the short recipe's table for the variant: ~30 s for bn on a 2-core CPU) in
    ``OUT/pretrain`` (its weights and metrics; checkpoints are dropped once it is done) and start
    the backbone from it (``cfg.init``). Classifying the digits is what
    a from-scratch detector learns last (its class-agnostic AP50 leads its AP50 by ~5 points).
    Running the command again continues the pretraining or reuses it (``engine.runs.complete``).
    Returns ``cfg``, its ``out`` made concrete and ``init`` set where the pretraining applies."""
    if cfg.pretrain == "none" or cfg.init:
        return cfg
    if cfg.data not in (None, DIGITS_DETECT):
        log(f"pretrain {cfg.pretrain}: applies to the built-in digits-detect only; the backbone "
            f"starts from scratch (--init imagenet starts it from ImageNet weights)")
        return cfg
    if not cfg.out:
        cfg.out = str(default_run_dir(cfg))
    over = {k: getattr(cfg, k) for k in PRETRAIN_KEYS}
    over.update(task="classify", data=None, out=str(Path(cfg.out) / "pretrain"))
    pcfg = config_lib.resolve(None, over)
    log(f"pretraining the backbone: a {cfg.variant} digits classifier, {pcfg.epochs} epochs, "
        f"in {pcfg.out}")
    how = complete(ClassificationTask(), pcfg, keep_checkpoints=False)
    if how == "done":
        log(f"pretraining: {pcfg.out} is finished; reusing it")
    cfg.init = pcfg.out
    return cfg


PRETRAIN = Stage("pretrain", pretrain_backbone)
