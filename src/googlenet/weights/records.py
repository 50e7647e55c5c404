"""Typed records of what weights files and training checkpoints hold, written and read in one
place each.

- ``WeightsMeta``: what a model needs besides its tensors (the model config, class names, the
  input preprocessing, the task, and free-form ``extra`` such as the training config). The same
  record goes into a ``.safetensors`` file's string metadata and into a training checkpoint.
- ``TrainCheckpoint``: a resumable training checkpoint (weights, optimizer, scheduler, averaged
  weights, run state, RNG, resolved config), versioned: ``from_state`` refuses a checkpoint of an
  unknown format or a newer version with a message that says what to do.
- ``LoadedWeights``: what every loader returns: the built model in eval mode plus its metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch.nn as nn

from ..data.preprocess import Preprocess
from ..errors import UserError

__all__ = ["FORMAT", "FORMAT_KEY", "FORMAT_VERSION", "LEGACY_FORMAT", "CHECKPOINT_FORMAT",
           "CHECKPOINT_VERSION", "CHECKPOINT_LAST", "CHECKPOINT_BEST", "FINAL_WEIGHTS", "BEST_WEIGHTS",
           "WeightsMeta",
           "TrainCheckpoint", "LoadedWeights", "CheckpointError"]

# safetensors metadata of files written by save_weights: "format" is the Hub's convention ("pt":
# PyTorch tensors; transformers' loader and other tools check it), our own marker and version sit
# under FORMAT_KEY. Files written before this used format="googlenet" (and "format_version"); they
# still load.
FORMAT = "pt"
FORMAT_KEY = "googlenet_format"
FORMAT_VERSION = "1"
LEGACY_FORMAT = "googlenet"
CHECKPOINT_FORMAT = "googlenet-train-checkpoint"
# 1: the first layout (epoch/step/best_metric stored twice, history beside run_state).
# 2: ``TrainCheckpoint``: one run_state (history inside), a ``task``; version 1 still loads.
CHECKPOINT_VERSION = 2

# Run-directory layout written by the training engine.
CHECKPOINT_LAST = "checkpoint-last.pt"
CHECKPOINT_BEST = "checkpoint-best.pt"  # save_checkpoints all: the best epoch's whole checkpoint
FINAL_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "model-best.safetensors"  # save_checkpoints best: the best epoch's weights only

# Bounds on a weights file's model config (untrusted input): num_classes=1e9 would allocate a
# 4 TB classifier before anything else is checked. 100,000 covers ImageNet-21k (21,841 classes)
# with room to spare; in_chans beyond 64 is no image.
MAX_NUM_CLASSES = 100_000
MAX_IN_CHANS = 64
TASKS = ("classify", "detect")

# Every other number a model config may hold, bounded for the same reason (fpn_channels=1e6 is a
# 36 TB FPN, min_size=1e6 a 2 TB input, detections_per_img=1e9 a 4 GB result buffer), and typed:
# key -> (kind, low, high). Kinds: "int", "float" (finite), "prob" ([0, 1], finite), "bool",
# "str", "rgb" (3 finite numbers; "rgb+": each > 0), "opt_*" (also None). The same limits as the
# training settings that produce these values (engine.config.RANGES); the categorical ones
# (variant, inception, stem, arch, ...) are checked by the constructors themselves.
_MAX_SIDE = 4096  # min_size/max_size: Preprocess's MAX_RESIZE
_MODEL_FIELDS: dict[str, tuple[str, float, float]] = {
    "in_chans": ("int", 1, MAX_IN_CHANS),
    "aux_logits": ("bool", 0, 0), "transform_input": ("bool", 0, 0),
    "dropout": ("opt_float", 0, 1), "aux_dropout": ("opt_float", 0, 1),
    "drop_rate": ("opt_float", 0, 1),
    "width": ("float", 1e-6, 16), "img_size": ("opt_int", 32, 2048),
    "variant": ("str", 0, 0), "inception": ("str", 0, 0), "stem": ("str", 0, 0),
    "global_pool": ("str", 0, 0), "head": ("str", 0, 0), "norm": ("opt_str", 0, 0),
    # detectors (googlenet.models.detection)
    "detector": ("str", 0, 0),
    "fpn_channels": ("int", 64, 1024), "head_convs": ("int", 1, 16),
    "anchor_scale": ("float", 1e-6, 64), "min_size": ("int", 32, _MAX_SIDE),
    "max_size": ("int", 32, _MAX_SIDE), "image_mean": ("rgb", -1e3, 1e3),
    "image_std": ("rgb+", 1e-6, 1e3), "score_thresh": ("prob", 0, 1),
    "nms_thresh": ("prob", 0, 1), "detections_per_img": ("int", 1, 10_000),
    "region_size": ("int", 32, 1024), "context": ("int", 0, 511),
    "proposals": ("proposals", 0, 0), "extra_proposals": ("opt_str", 0, 0),
}
# Selective Search's settings saved by an R-CNN run (googlenet.data.proposals.selective_search)
_PROPOSAL_FIELDS: dict[str, tuple[str, float, float]] = {
    "mode": ("str", 0, 0), "base_k": ("int", 1, 100_000), "inc_k": ("int", 1, 100_000),
    "sigma": ("float", 1e-6, 100), "max_proposals": ("int", 1, 100_000)}


class CheckpointError(UserError):
    """A file that is not a training checkpoint this version can read."""


@dataclass
class WeightsMeta:
    """Everything about a model's weights except the tensors."""

    model_config: dict[str, Any]  # rebuilds the network (variant, switches, num_classes, ...)
    class_names: Optional[list[str]] = None
    preprocess: Optional[dict[str, Any]] = None  # Preprocess as a dict
    task: str = "classify"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. epochs, steps, training config

    def to_metadata(self) -> dict[str, str]:
        """The safetensors string metadata."""
        cfg = self.model_config
        return {
            "format": FORMAT, FORMAT_KEY: FORMAT_VERSION, "task": self.task,
            "model_config": json.dumps(cfg), "variant": str(cfg.get("variant", "")),
            "num_classes": str(cfg.get("num_classes", "")),
            "class_names": json.dumps(self.class_names),
            "preprocess": json.dumps(self.preprocess if self.preprocess is not None
                                     else Preprocess().to_dict()),
            "extra": json.dumps(self.extra),
        }

    @staticmethod
    def is_ours(meta: dict[str, str], source: str) -> bool:
        """Whether safetensors metadata was written by ``save_weights`` (this format, or the
        older ``format=googlenet``); a file from a newer googlenet is an error."""
        version = meta.get(FORMAT_KEY)
        if version is None:
            return meta.get("format") == LEGACY_FORMAT and "model_config" in meta
        if not version.isdigit() or int(version) > int(FORMAT_VERSION):
            raise UserError(f"{source}: weights format {FORMAT_KEY}={version!r} was written by a "
                            f"newer googlenet (this one reads up to {FORMAT_VERSION}); upgrade "
                            f"googlenet")
        if "model_config" not in meta:
            raise UserError(f"{source}: metadata says {FORMAT_KEY}={version} but has no "
                            f"'model_config'; the file is damaged")
        return True

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str) -> "WeightsMeta":
        def field_(key: str, default: Any) -> Any:
            if key not in meta:
                return default
            try:
                return json.loads(meta[key])
            except ValueError as e:  # JSONDecodeError, or an integer of over 4,300 digits
                raise UserError(f"{source}: metadata {key!r} is not valid JSON ({e}); the file "
                                f"is damaged or was not written by googlenet") from None
            except RecursionError:
                raise UserError(f"{source}: metadata {key!r} is nested too deeply to be a "
                                f"googlenet record; the file is damaged") from None

        config = field_("model_config", None)
        if not isinstance(config, dict):
            raise UserError(f"{source}: metadata 'model_config' must be a JSON object, got "
                            f"{type(config).__name__}")
        extra = field_("extra", {})
        return cls(model_config=config, class_names=field_("class_names", None),
                   preprocess=field_("preprocess", None), task=meta.get("task", "classify"),
                   extra=extra if isinstance(extra, dict) else {}).validated(source)

    def validated(self, source: str) -> "WeightsMeta":
        """``self`` if every field is usable, else a UserError naming ``source`` and the field,
        before anything is built from it (a 1e9-class classifier is refused, not allocated)."""
        cfg = self.model_config
        if not isinstance(cfg, dict):
            raise UserError(f"{source}: model config must be a mapping, got {type(cfg).__name__}")
        if not isinstance(self.task, str) or self.task not in TASKS:
            raise UserError(f"{source}: task {_show(self.task)} is not one of {list(TASKS)}; the "
                            f"file is damaged or from a newer googlenet")
        if (self.task == "detect") != ("detector" in cfg):
            what = "a detector's" if "detector" in cfg else "a classifier's"
            raise UserError(f"{source}: task {self.task!r} contradicts the model config, which "
                            f"is {what}; the file is damaged")
        v = cfg.get("num_classes")
        lo = 1 if "detector" in cfg else 0
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_NUM_CLASSES:
            raise UserError(f"{source}: model config num_classes = {_show(v)} is not a whole "
                            f"number in [{lo}, {MAX_NUM_CLASSES:,}]; the file is damaged or not a "
                            f"googlenet model")
        for key, value in cfg.items():
            if key in _MODEL_FIELDS:
                _check_field(f"{source}: model config", key, value, _MODEL_FIELDS[key])
        if cfg.get("detector") is not None and cfg.get("detector") != "rcnn":
            fpn = cfg.get("fpn_channels", 128)
            if fpn % 32:
                raise UserError(f"{source}: model config fpn_channels = {fpn} is not a multiple "
                                f"of 32; the file is damaged")
        if cfg.get("min_size", 0) > cfg.get("max_size", _MAX_SIDE):
            raise UserError(f"{source}: model config min_size {cfg['min_size']} is over max_size "
                            f"{cfg['max_size']}; the file is damaged")
        names = self.class_names
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise UserError(f"{source}: class names must be a list of strings, got "
                                f"{type(names).__name__}"
                                + (f" of {sorted({type(n).__name__ for n in names})}"
                                   if isinstance(names, list) else ""))
            if len(names) != cfg["num_classes"]:
                raise UserError(f"{source}: {len(names)} class names for a classifier of "
                                f"{cfg['num_classes']} classes; every prediction would be "
                                f"mislabelled. Fix or drop the class names")
        if self.preprocess is not None and not isinstance(self.preprocess, dict):
            raise UserError(f"{source}: saved preprocessing must be a mapping, got "
                            f"{type(self.preprocess).__name__}")
        self.preprocess_obj(source)  # crop/resize within bounds, std > 0, ...
        return self

    def preprocess_obj(self, source: str) -> Preprocess:
        if self.preprocess is None:
            return Preprocess()
        try:
            return Preprocess.from_dict(self.preprocess)
        except (TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: saved preprocessing {self.preprocess} is not valid: "
                            f"{e}") from None


def _show(v: Any, most: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= most else r[:most - 4] + " ..."


def _check_field(where: str, key: str, v: Any, spec: tuple[str, float, float]) -> None:
    """UserError unless ``v`` is of ``spec``'s kind and within its bounds (``_MODEL_FIELDS``)."""
    kind, lo, hi = spec
    if kind.startswith("opt_"):
        if v is None:
            return
        kind = kind[4:]
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    ok = {"int": lambda: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
          "float": lambda: number and math.isfinite(v) and lo <= v <= hi,
          "prob": lambda: number and math.isfinite(v) and lo <= v <= hi,
          "bool": lambda: isinstance(v, bool),
          "str": lambda: isinstance(v, str) and len(v) <= 4096,
          "rgb": lambda: _rgb(v, lo, hi), "rgb+": lambda: _rgb(v, lo, hi),
          "proposals": lambda: _proposals(where, v)}[kind]()
    if not ok:
        want = {"int": f"a whole number in [{lo:,}, {hi:,}]",
                "float": f"a finite number in [{lo:g}, {hi:g}]",
                "prob": f"a finite number in [{lo:g}, {hi:g}]", "bool": "true or false",
                "str": "a string", "rgb": f"3 finite numbers in [{lo:g}, {hi:g}]",
                "rgb+": f"3 finite numbers in [{lo:g}, {hi:g}] (a std of 0 divides by zero)",
                "proposals": "a mapping of Selective Search settings"}[kind]
        raise UserError(f"{where} {key} = {_show(v)} is not {want}; the file is damaged or not "
                        f"a googlenet model")


def _rgb(v: Any, lo: float, hi: float) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) == 3 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        and lo <= x <= hi for x in v))


def _proposals(where: str, v: Any) -> bool:
    if not isinstance(v, dict) or not set(v) <= set(_PROPOSAL_FIELDS):
        return False
    for k, x in v.items():
        _check_field(f"{where} proposals:", k, x, _PROPOSAL_FIELDS[k])
    return True


@dataclass
class TrainCheckpoint:
    """A resumable training checkpoint. ``run_state`` is the engine's ``RunState`` as a dict
    (epoch, epoch_step, step, best_metric, best_epoch, history, sums, train_seconds)."""

    meta: WeightsMeta
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    run_state: dict[str, Any]
    config: dict[str, Any]
    averaged_model: Optional[dict[str, Any]] = None
    averaged_n: int = 0
    rng: Optional[dict[str, Any]] = None
    world_size: int = 1
    scaler: Optional[dict[str, Any]] = None  # torch.amp.GradScaler's state (amp fp16 only)
    # The training hooks' own state (engine/hooks.py), by hook name; readers that predate it
    # ignore the entry, and a checkpoint without it restores every hook to its start.
    hooks: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """The dict ``torch.save`` writes (plain containers and tensors: weights_only loads)."""
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "task": self.meta.task,
            "model_config": dict(self.meta.model_config), "class_names": self.meta.class_names,
            "preprocess": self.meta.preprocess, "model": self.model,
            "averaged_model": self.averaged_model, "averaged_n": self.averaged_n,
            "optimizer": self.optimizer, "scheduler": self.scheduler,
            "run_state": self.run_state, "config": self.config, "rng": self.rng,
            "world_size": self.world_size, "scaler": self.scaler, "hooks": self.hooks,
        }

    @classmethod
    def from_state(cls, d: Any, source: str) -> "TrainCheckpoint":
        if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source}: not a googlenet training checkpoint (no 'format': "
                                  f"{CHECKPOINT_FORMAT!r} marker)")
        version = d.get("version")
        if not isinstance(version, int) or version < 1:
            raise CheckpointError(f"{source}: training checkpoint of unknown version {version!r}")
        if version > CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{source}: training checkpoint version {version} was written by a newer "
                f"googlenet (this one reads up to {CHECKPOINT_VERSION}); upgrade googlenet")
        missing = [k for k in ("model_config", "model", "optimizer", "scheduler", "run_state",
                               "config") if not isinstance(d.get(k), dict)]
        if missing:
            raise CheckpointError(f"{source}: training checkpoint without {missing}; the file "
                                  f"is incomplete or damaged")
        rs = dict(d["run_state"])
        if version == 1:  # history sat beside run_state
            rs.setdefault("history", list(d.get("history", [])))
        need = [k for k in ("epoch", "epoch_step", "step") if not isinstance(rs.get(k), int)]
        if need:
            raise CheckpointError(f"{source}: run_state without {need}; the file is damaged")
        meta = WeightsMeta(model_config=d["model_config"], class_names=d.get("class_names"),
                           preprocess=d.get("preprocess"), task=d.get("task", "classify"),
                           extra={"epoch": rs["epoch"], "step": rs["step"], "config": d["config"]}
                           ).validated(source)
        return cls(meta=meta, model=d["model"], optimizer=d["optimizer"],
                   scheduler=d["scheduler"], run_state=rs, config=d["config"],
                   averaged_model=d.get("averaged_model"), averaged_n=int(d.get("averaged_n", 0)),
                   rng=d.get("rng"), world_size=int(d.get("world_size", 1)),
                   scaler=d.get("scaler") if isinstance(d.get("scaler"), dict) else None,
                   hooks=dict(d["hooks"]) if isinstance(d.get("hooks"), dict) else {})

    @property
    def best_metric(self) -> float:
        v = self.run_state.get("best_metric", -math.inf)
        return float(v)


@dataclass
class LoadedWeights:
    """A model in eval mode with what it needs: its class names and the ``Preprocess`` of its
    inputs, so callers never guess the input pipeline."""

    model: nn.Module
    preprocess: Preprocess
    class_names: Optional[list[str]] = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    task: str = "classify"
