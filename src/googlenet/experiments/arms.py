"""The experiments as data: each is a list of arms (named config overrides) and the claims its
report checks. Every arm is an ordinary training run; nothing here trains.

Defaults are sized for the built-in digits on a 2-core CPU (the targets: ``googlenet experiment
all`` in 30 minutes with 3 seeds, ``reduction`` alone in 5): the BatchNorm variant with the short
recipe's optimiser, 32 px input, 5 epochs (``head``: 3; ``reduction``: 1, because the naive
network costs ~8x the multiply-adds; ``head``: 64 px, because at 32 px inception 5b's map is 1x1 and a fully
connected head on it is the same function as global average pooling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..models.choices import feature_grid  # plain data: the command line's --help reads this module

__all__ = ["Arm", "Claim", "Experiment", "EXPERIMENTS", "model_cost", "match_width"]

# final_weights averaged: every arm reports its averaged weights (§6), never the raw ones it
# might have scored better with, so the averaging arms measure averaging.
BASE = dict(variant="bn", image_size=32, plots=False, tensorboard=False, progress=False,
            average="mean", final_weights="averaged")
HEAD_IMAGE_SIZE = 64  # inception 5b's map is 2x2 there: an FC head differs from GAP
# Epochs per arm. 5 for the 32-px experiments sharing the baseline run (aux, norm, averaging,
# crops): at 2 the networks without BatchNorm had not left chance (LRN and no-norm arms: 10%
# test top-1; at 6 epochs 69% and 92%). 3 for head (64 px costs 4x), 1 for reduction (the naive
# network costs 8x). `googlenet experiment all` then takes ~15 min on the 2-core CPU.
SHORT_EPOCHS, HEAD_EPOCHS, REDUCTION_EPOCHS = 5, 3, 1


@dataclass(frozen=True)
class Arm:
    name: str  # run directory stem: DIR/runs/<name>-seed<k>; the same name means the same config
    label: str  # for tables and slides
    overrides: dict[str, Any]  # config keys on top of BASE, the user's --set and the epochs


@dataclass(frozen=True)
class Claim:
    """One of the deck's claims, measured as ``metric`` of ``arm`` against ``baseline``.

    ``better``: "higher" or "lower" is what the paper says the arm does to the metric relative to
    the baseline. ``kind``: "seeds" (decided against the seeds' spread) or "exact" (a count, no
    noise: the sign decides).
    """

    key: str
    statement: str  # the paper's / deck's words
    metric: str  # a key of the per-run results (see report.run_summary)
    arm: str
    baseline: str
    better: str = "higher"
    kind: str = "seeds"
    baseline_metric: Optional[str] = None  # default: ``metric``


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    epochs: int  # default training length of each arm
    arms: Callable[[dict[str, Any]], list[Arm]]  # (settings) -> arms
    claims: list[Claim] = field(default_factory=list)
    notes: str = ""


# ---------------------------------------------------------------------------------------------
# Costs (multiply-adds by torch.utils.flop_counter on the meta device: no memory, no compute)
# ---------------------------------------------------------------------------------------------

def model_cost(size: int, num_classes: int = 10, **kwargs: Any) -> dict[str, int]:
    """Parameters (main network, aux heads excluded) and inference multiply-adds of one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.googlenet import GoogLeNet

    with torch.device("meta"):
        m = GoogLeNet(init_weights=False, num_classes=num_classes, aux_logits=False,
                      **kwargs).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        m(torch.zeros(1, 3, size, size, device="meta"))
    return {"params": sum(p.numel() for p in m.parameters()),
            "multiply_adds": counter.get_total_flops() // 2}  # FLOPs = 2 x multiply-adds


def match_width(target_macs: int, size: int, *, tol: float = 0.005, **kwargs: Any) -> float:
    """The width multiplier at which ``GoogLeNet(width=w, **kwargs)`` costs ``target_macs`` per
    image, by bisection (multiply-adds grow monotonically with the width, ~quadratically)."""
    lo, hi = 0.01, 1.0
    if model_cost(size, width=hi, **kwargs)["multiply_adds"] <= target_macs:
        return hi
    best = (float("inf"), hi)
    for _ in range(30):
        mid = (lo + hi) / 2
        macs = model_cost(size, width=mid, **kwargs)["multiply_adds"]
        err = abs(macs - target_macs) / target_macs
        best = min(best, (err, mid))
        if err <= tol:
            break
        lo, hi = (mid, hi) if macs < target_macs else (lo, mid)
    return round(best[1], 4)


# ---------------------------------------------------------------------------------------------
# The experiments
# ---------------------------------------------------------------------------------------------

BASELINE = Arm("baseline", "GoogLeNet (reduced modules, aux 0.3, GAP, BN, tail mean)", {})


def _reduction_arms(s: dict[str, Any]) -> list[Arm]:
    size, variant = s["image_size"], s["variant"]
    reduced = model_cost(size, variant=variant)["multiply_adds"]
    w = match_width(reduced, size, variant=variant, inception="naive")
    # One epoch: the final weights as they are. A mean of that epoch's iterates would start at
    # the random init (what that cost: section "experiments" of benchmarks/results/notes.md).
    raw = {"average": "none"}
    return [Arm("reduction-reduced", "reduced modules (Fig. 2b)", dict(raw)),
            Arm("reduction-naive", "naive modules (Fig. 2a)", {"inception": "naive", **raw}),
            Arm("reduction-naive-trimmed", f"naive, width x{w:g} (same multiply-adds as 2b)",
                {"inception": "naive", "width": w, **raw})]


def _aux_arms(s: dict[str, Any]) -> list[Arm]:
    return [Arm("aux-off", "no aux heads", {"aux_logits": False}),
            Arm("baseline", "aux heads, weight 0.3 (paper)", {}),
            Arm("aux-w0.1", "aux heads, weight 0.1", {"aux_weight": 0.1}),
            Arm("aux-w1.0", "aux heads, weight 1.0", {"aux_weight": 1.0})]


def _head_arms(s: dict[str, Any]) -> list[Arm]:
    return [Arm("head-gap", "global average pooling (paper)", {}),
            Arm("head-fc", "flatten + fully connected", {"head": "fc"})]


def _norm_arms(s: dict[str, Any]) -> list[Arm]:
    return [Arm("norm-lrn", "LRN (paper)", {"norm": "lrn"}),
            Arm("baseline", "BatchNorm", {}),
            Arm("norm-none", "no normalisation", {"norm": "none"})]


def _averaging_arms(s: dict[str, Any]) -> list[Arm]:
    return [Arm("avg-none", "no averaging", {"average": "none"}),
            # decay 0.95: a ~20-step horizon. At 0.99 the init still weighs 0.99^195 = 14% after a
            # 5-epoch run of 39 steps each (measured: benchmarks/results/notes.md, "experiments").
            Arm("avg-ema", "EMA (decay 0.95)", {"average": "ema", "ema_decay": 0.95,
                                                "average_start_epoch": 0.0}),
            Arm("baseline", "tail mean (last epoch, Polyak)", {})]


def _crops_arms(s: dict[str, Any]) -> list[Arm]:
    return [Arm("baseline", "GoogLeNet", {})]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        "reduction", "1x1 reductions cut the computation (Figure 2a vs 2b)", REDUCTION_EPOCHS,
        _reduction_arms,
        [Claim("macs", "1x1 reductions make the module far cheaper: the naive module's compute "
               "blows up (Fig. 2a vs 2b)", "multiply_adds", "reduction-reduced",
               "reduction-naive", "lower", "exact"),
         Claim("params", "... and keep the parameter count down", "params",
               "reduction-reduced", "reduction-naive", "lower", "exact"),
         Claim("speed", "... so training is faster", "images_per_s", "reduction-reduced",
               "reduction-naive", "higher"),
         Claim("budget", "depth and width can grow within a fixed compute budget: at the same "
               "multiply-adds, the reduced (deeper/wider) design is more accurate",
               "top1", "reduction-reduced", "reduction-naive-trimmed", "higher")],
        "The naive network is built at the reduced network's depth; its trimmed copy has every "
        "width scaled by the factor bisection found to match the reduced network's multiply-adds."),
    Experiment(
        "aux", "Auxiliary classifiers (weight 0.3) against vanishing gradients and overfitting",
        SHORT_EPOCHS, _aux_arms,
        [Claim("accuracy", "aux classifiers (weight 0.3) improve accuracy", "top1", "baseline",
               "aux-off", "higher"),
         Claim("gradient", "aux classifiers push more gradient into the early layers (against "
               "vanishing gradients): mean gradient norm of conv1 over training",
               "grad_norm_conv1", "baseline", "aux-off", "higher"),
         Claim("overfitting", "aux classifiers regularise: a smaller train-val top-1 gap at the "
               "end of training", "train_val_gap", "baseline", "aux-off", "lower")],
        "Gradient norms are those of the total loss (main + weighted aux), averaged over the "
        "steps of each epoch; the gap is train top-1 (on augmented batches, dropout on) minus "
        "val top-1 at the last epoch."),
    Experiment(
        "head", "Global average pooling instead of a fully connected layer", HEAD_EPOCHS,
        _head_arms,
        [Claim("top1", "average pooling instead of FC improves top-1 (paper: about +0.6%)",
               "top1", "head-gap", "head-fc", "higher"),
         Claim("params", "... with far fewer parameters in the head", "params", "head-gap",
               "head-fc", "lower", "exact")],
        f"Both arms at {HEAD_IMAGE_SIZE} px input (5b's map is "
        f"{feature_grid(HEAD_IMAGE_SIZE)}x{feature_grid(HEAD_IMAGE_SIZE)}; at 32 px it is 1x1 "
        f"and the two heads are the same function). The FC head is an ablation, not a paper "
        f"variant: it flattens the 1024 x h x w map into the linear layer, so the input size is "
        f"fixed."),
    Experiment(
        "norm", "Local response normalisation (paper) vs BatchNorm vs none", SHORT_EPOCHS,
        _norm_arms,
        [Claim("lrn", "LRN (the paper's normalisation) helps against no normalisation",
               "top1", "norm-lrn", "norm-none", "higher"),
         Claim("bn", "BatchNorm (after the paper) trains better than LRN", "top1", "baseline",
               "norm-lrn", "higher")],
        "All arms: the bn variant's topology and init; only the normalisation differs (LRN "
        "after pool1 and conv2, as in the paper; or BN after every conv; or neither)."),
    Experiment(
        "averaging", "Polyak averaging of the weights at test time (§6)", SHORT_EPOCHS,
        _averaging_arms,
        [Claim("mean", "Polyak averaging (here: uniform mean of the last epoch's iterates) "
               "improves the final model", "top1", "baseline", "avg-none", "higher"),
         Claim("ema", "an exponential moving average of the weights does too", "top1",
               "avg-ema", "avg-none", "higher")]),
    Experiment(
        "crops", "Table 3: more crops and more models, at a cost", SHORT_EPOCHS, _crops_arms,
        [Claim("crops10", "10 crops beat 1 crop (Table 3)", "crops_10", "baseline", "baseline",
               baseline_metric="crops_1"),
         Claim("crops144", "144 crops beat 10 crops (Table 3)", "crops_144", "baseline",
               "baseline", baseline_metric="crops_10"),
         Claim("ensemble", "an ensemble of models beats one model (1 crop; Table 3)",
               "ensemble_1", "baseline", "baseline", baseline_metric="crops_1")],
        "Single models: each seed's run, mean +- std over seeds; the ensemble averages the "
        "softmax of all seeds' models (one number). Cost: forward passes per image."),
]}


def default_settings(experiment: Experiment, image_size: Optional[int] = None) -> dict[str, Any]:
    s = dict(BASE)
    if experiment.name == "head":
        s["image_size"] = HEAD_IMAGE_SIZE
    if image_size:
        s["image_size"] = image_size
    return s


DEFAULTS_NOTE = (
    "Defaults are sized for the built-in digits on a 2-core CPU: the bn variant with the short "
    "recipe's optimiser, 32 px, 5 epochs per arm (head: 3; reduction: 1, the naive network costs "
    f"~8x the multiply-adds; head: {HEAD_IMAGE_SIZE} px), Polyak mean over the last epoch (reduction: "
    "the final weights, no averaging over its single epoch). These are short "
    "runs: they show the direction of an effect where it exceeds the seeds' spread, not the "
    "paper's ImageNet numbers.")
