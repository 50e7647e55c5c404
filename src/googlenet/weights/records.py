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
           "CHECKPOINT_VERSION", "CHECKPOINT_LAST", "CHECKPOINT_BEST", "FINAL_WEIGHTS", "WeightsMeta",
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
CHECKPOINT_BEST = "checkpoint-best.pt"
FINAL_WEIGHTS = "model.safetensors"

# Bounds on a weights file's model config (untrusted input): num_classes=1e9 would allocate a
# 4 TB classifier before anything else is checked. 100,000 covers ImageNet-21k (21,841 classes)
# with room to spare; in_chans beyond 64 is no image.
MAX_NUM_CLASSES = 100_000
MAX_IN_CHANS = 64


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
            except ValueError as e:
                raise UserError(f"{source}: metadata {key!r} is not valid JSON ({e}); the file "
                                f"is damaged or was not written by googlenet") from None

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
        for key, hi in (("num_classes", MAX_NUM_CLASSES), ("in_chans", MAX_IN_CHANS)):
            v = cfg.get(key)
            if v is None and key == "in_chans":
                continue
            lo = 0 if key == "num_classes" else 1
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise UserError(f"{source}: model config {key} = {v!r} is not a whole number in "
                                f"[{lo}, {hi:,}]; the file is damaged or not a googlenet model")
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
        if not isinstance(self.task, str):
            raise UserError(f"{source}: task must be a name, got {self.task!r}")
        return self

    def preprocess_obj(self, source: str) -> Preprocess:
        if self.preprocess is None:
            return Preprocess()
        try:
            return Preprocess.from_dict(self.preprocess)
        except (TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: saved preprocessing {self.preprocess} is not valid: "
                            f"{e}") from None


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

    def to_state(self) -> dict[str, Any]:
        """The dict ``torch.save`` writes (plain containers and tensors: weights_only loads)."""
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "task": self.meta.task,
            "model_config": dict(self.meta.model_config), "class_names": self.meta.class_names,
            "preprocess": self.meta.preprocess, "model": self.model,
            "averaged_model": self.averaged_model, "averaged_n": self.averaged_n,
            "optimizer": self.optimizer, "scheduler": self.scheduler,
            "run_state": self.run_state, "config": self.config, "rng": self.rng,
            "world_size": self.world_size, "scaler": self.scaler,
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
                   scaler=d.get("scaler") if isinstance(d.get("scaler"), dict) else None)

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
