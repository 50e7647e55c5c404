"""Training configuration: typed defaults, then a recipe file, then command-line overrides.

``TrainConfig``'s defaults are the paper's choices where the paper (or BVLC Caffe's solver, where
the paper is silent) gives one. A recipe is a TOML file of ``key = value`` lines for the fields
below (``src/googlenet/recipes/*.toml``; ``--recipe NAME`` or ``--recipe PATH.toml``), optionally
followed by per-variant tables (``[bn]``: keys that apply on top when ``variant = "bn"``).
Command-line flags and ``--set key=value`` come last. An unknown key, in a recipe or on the
command line, is an error that names the closest known key. The resolved config is saved in every
run directory (``config.toml``) and checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError
from ..models.choices import (  # plain data: the command line's --help reads this module
    AMP_CHOICES, HEADS, INCEPTION_KINDS, LOADERS, MIN_INPUT_SIZE, NORMS, STEMS, VARIANTS,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "short"


@dataclass
class TrainConfig:
    # -- task -----------------------------------------------------------------------------------
    task: str = "classify"  # what is trained (googlenet.tasks): classify | detect

    # -- data -----------------------------------------------------------------------------------
    data: Optional[str] = None  # None: built-in digits; "cifar10"/"cifar100"; or an image folder
    data_root: Optional[str] = None  # CIFAR's folder; None: $GOOGLENET_DATA, else ~/.cache/googlenet/data
    val_fraction: float = 0.1  # held out of the training images when there is no val split
    strict: bool = False  # stop at the first unreadable image instead of skipping it
    image_size: int = 0  # training/eval input side; 0: the dataset's default (digits 32, folders 224)
    workers: int = -1  # DataLoader worker processes; -1: 0 for in-memory data, else min(8, cores - 1)

    # -- model ----------------------------------------------------------------------------------
    variant: str = "paper"  # paper (LRN, no BN) | bn | torchvision
    aux_logits: bool = True
    inception: str = "reduced"  # reduced | naive
    stem: str = "paper"  # paper | separable
    dropout: Optional[float] = None  # None: the variant's (0.4 paper)
    aux_dropout: Optional[float] = None  # None: the variant's (0.7 paper)
    init: Optional[str] = None  # start from these weights (run dir / .safetensors / .pt)
    pretrain: str = "none"  # detect, no init: "digits" first trains a digits classifier in OUT/pretrain
    # Ablations (`googlenet experiment`), not paper variants; the defaults are the paper's.
    width: float = 1.0  # multiplier on every Table 1 width and the stem's (rounded, >= 1)
    head: str = "gap"  # gap (§5: global average pooling) | fc (flatten + linear; fixed input size)
    norm: str = "variant"  # variant (its own) | lrn | bn | none

    # -- detection (task = "detect"; googlenet.models.detection, googlenet.tasks.rcnn) -------------
    arch: str = "fcos"  # fcos | retinanet | fasterrcnn (GoogLeNet FPN) | rcnn (the paper's §8)
    fpn_channels: int = 128  # FPN width (torchvision's detectors: 256)
    head_convs: int = 2  # conv layers per head branch (torchvision's FCOS/RetinaNet: 4)
    anchor_scale: float = 2.0  # anchor base size in strides (fcos: 2 = torchvision's assignment)
    det_score_thresh: float = 0.05  # eval/predict: detections below this score are dropped
    det_nms_thresh: float = 0.5  # eval/predict: per-class NMS IoU
    scale_jitter: tuple[float, float] = (0.75, 1.25)  # detection training: image scale range
    rcnn_extra_proposals: Optional[str] = None  # rcnn: + a detection run's top-200 boxes (MultiBox stand-in)
    rcnn_fg_fraction: float = 0.25  # rcnn: foreground share of a batch of regions (R-CNN: 1:3)
    rcnn_region_size: int = 64  # rcnn: proposals are warped to this square (R-CNN: 227)

    # -- optimisation -----------------------------------------------------------------------------
    epochs: int = 250  # Caffe's bvlc_googlenet: 2.4M iterations at batch 32 ~ 60 epochs quick / 250
    batch_size: int = 32  # per process (Caffe: 32)
    optimizer: str = "sgd"  # sgd (the paper) | adamw
    lr: float = 0.01  # Caffe's base_lr
    momentum: float = 0.9  # §6
    nesterov: bool = False
    weight_decay: float = 2e-4  # Caffe's; not applied to biases and norm weights
    lr_schedule: str = "step"  # step (§6: x lr_gamma every lr_step_epochs) | cosine | linear
    lr_step_epochs: float = 8.0  # §6: "decreasing the learning rate by 4% every 8 epochs"
    lr_gamma: float = 0.96
    warmup_epochs: float = 0.0  # linear warmup from lr/100; not in the paper
    aux_weight: float = 0.3  # §5: aux losses added with weight 0.3
    label_smoothing: float = 0.0  # not in the paper
    clip_grad_norm: float = 0.0  # 0: off; not in the paper

    # -- Polyak averaging (§6), torch.optim.swa_utils.AveragedModel ---------------------------------
    average: str = "mean"  # mean (Polyak-Juditsky: uniform mean of the iterates) | ema | none
    ema_decay: float = 0.999
    average_start_epoch: float = 0.0  # iterates before this epoch are not averaged
    # The final model (model.safetensors): better = the averaged or the raw weights, whichever
    # scores higher on validation (an EMA of a short run can lag far behind) | averaged = always
    # the averaged ones (the paper's §6; what `googlenet experiment` measures)
    final_weights: str = "better"

    # -- training augmentation (§6) ------------------------------------------------------------------
    crop_scale: tuple[float, float] = (0.08, 1.0)  # fraction of the image area
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio, sampled log-uniformly
    interpolations: tuple[str, ...] = ("bilinear", "box", "nearest", "bicubic")  # one per sample
    hflip: float = 0.5
    brightness: float = 0.4  # ColorJitter strengths (Howard's photometric distortions)
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.0
    pca_lighting: float = 0.1  # AlexNet's PCA lighting noise, std of the eigenvalue scale

    # -- system ------------------------------------------------------------------------------------
    device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16 (autocast; fp16 adds a GradScaler) | auto (bf16 where native)
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    # Image folders: gpu = JPEGs decoded (nvJPEG) and augmented on the device, the workers only
    # read files | cpu = all in the loader workers | auto = gpu for JPEG folders on a GPU
    loader: str = "auto"
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    threads: int = 0  # torch intra-op threads per process; 0: torch's default (split over ranks)

    # -- run directory -------------------------------------------------------------------------------
    out: Optional[str] = None  # run directory; None: runs/<date>-<time>-<variant>-<data>
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: at epoch ends)
    # Which checkpoints a run keeps: last = checkpoint-last.pt (what --resume continues) | best =
    # that + the best epoch's weights as model-best.safetensors (weights only) | all = that +
    # checkpoint-best.pt (a whole checkpoint of the best epoch) | none = no checkpoint (no resume)
    save_checkpoints: str = "last"
    eval_every: int = 1  # validate every N epochs (and after the last)
    max_steps: int = 0  # stop after this many optimizer steps in total (0: no limit); for tests
    tensorboard: bool = True  # write TensorBoard logs when tensorboard is installed
    plots: bool = True  # PNG curves at the end of the run
    progress: bool = True  # tqdm progress bar; off a terminal (nohup, CI): a line every log_every steps
    log_every: int = 0  # off a terminal: a progress line every N steps; 0: ~10 an epoch, <= 50 steps apart

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


# Choices of the string settings; the model's come from its own tables (no second list).
CHOICES: dict[str, tuple[str, ...]] = {
    "variant": tuple(VARIANTS),
    "arch": ("fcos", "retinanet", "fasterrcnn", "rcnn"),
    "inception": INCEPTION_KINDS,
    "stem": STEMS,
    "head": HEADS,
    "norm": ("variant", *NORMS),
    "optimizer": ("sgd", "adamw"),
    "lr_schedule": ("step", "cosine", "linear"),
    "average": ("mean", "ema", "none"),
    "amp": AMP_CHOICES,
    "loader": LOADERS,
    "pretrain": ("none", "digits"),
    "save_checkpoints": ("last", "best", "all", "none"),
    "final_weights": ("better", "averaged"),
}
INTERPOLATIONS = ("bilinear", "box", "nearest", "bicubic")


@dataclass(frozen=True)
class Range:
    """Accepted values of a numeric setting: ``lo``..``hi``, each end open or closed."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        return (math.isfinite(v) and (self.lo < v if self.lo_open else self.lo <= v)
                and (v < self.hi if self.hi_open else v <= self.hi))

    def __str__(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else repr(float(x))

        return (f"{'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}"
                f"{')' if self.hi_open else ']'}")


# Every numeric setting's accepted values (tests check that no numeric field lacks one). Upper
# bounds are far beyond any sensible value; they exist so that a typo (lr=1e5, epochs=1e9) or a
# damaged saved config is refused with its key named, instead of training to NaN or overflowing.
UNIT, PROB = Range(0, 1), Range(0, 1, hi_open=True)  # [0, 1], [0, 1)
RANGES: dict[str, Range] = {
    "val_fraction": PROB,
    "image_size": Range(0, 2048),  # 0: the dataset's default; else >= MIN_INPUT_SIZE (below)
    "workers": Range(-1, 256),
    "dropout": PROB, "aux_dropout": PROB,
    "epochs": Range(1, 1_000_000),
    "batch_size": Range(1, 65_536),
    "lr": Range(0, 10, lo_open=True),
    "momentum": PROB,
    "weight_decay": PROB,
    "lr_step_epochs": Range(0, 1_000_000, lo_open=True),
    "lr_gamma": Range(0, 1, lo_open=True),
    "warmup_epochs": Range(0, 1_000_000),
    "aux_weight": Range(0, 100),
    "label_smoothing": PROB,
    "clip_grad_norm": Range(0, 1e6),
    "ema_decay": Range(0, 1, lo_open=True, hi_open=True),
    "average_start_epoch": Range(0, 1_000_000),
    "crop_scale": Range(0, 1, lo_open=True),  # each of (min, max)
    "crop_ratio": Range(0, 100, lo_open=True),
    "hflip": UNIT,
    "brightness": Range(0, 10), "contrast": Range(0, 10), "saturation": Range(0, 10),
    "hue": Range(0, 0.5),  # ColorJitter's own limit
    "pca_lighting": Range(0, 10),
    "seed": Range(0, 2**32 - 1),
    "threads": Range(0, 4096),
    "checkpoint_every": Range(0, 1e12),
    "eval_every": Range(1, 1_000_000),
    "max_steps": Range(0, 1e12),
    "log_every": Range(0, 1e12),
    "width": Range(0, 16, lo_open=True),  # ablation: multiplier on every Table 1 width
    # detection
    "fpn_channels": Range(64, 1024),  # and a multiple of 32 (below)
    "head_convs": Range(1, 16),
    "anchor_scale": Range(0, 64, lo_open=True),
    "det_score_thresh": UNIT, "det_nms_thresh": UNIT, "rcnn_fg_fraction": UNIT,
    "scale_jitter": Range(0, 10, lo_open=True),  # each of (min, max)
    "rcnn_region_size": Range(0, 1024),  # and >= MIN_INPUT_SIZE (below)
}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def _unknown(key: str, source: str) -> UserError:
    close = difflib.get_close_matches(key, field_names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UserError(f"{source}: unknown config key {key!r}{hint} (known keys: "
                     f"`googlenet train --help-config`)")


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check/convert ``value`` (from TOML, or a string from the command line) to ``key``'s type."""
    hint = _hints()[key]
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint

    def bad(why: str = "") -> UserError:
        accepted = f"; accepted: {RANGES[key]}" if key in RANGES else ""
        return UserError(f"{source}: {key} = {value!r} is not a valid "
                         f"{getattr(base, '__name__', str(base))}{why}{accepted}")

    if isinstance(value, str) and value.strip().lower() in ("none", "null", "") and optional:
        return None
    if value is None:
        if optional:
            return None
        raise bad()
    origin = typing.get_origin(base)
    if origin is tuple:
        args = typing.get_args(base)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad()
        elem = args[0]
        out = tuple(_scalar(elem, x, bad) for x in items if not (isinstance(x, str) and not x.strip()))
        if len(args) == 2 and args[1] is not Ellipsis and len(out) != len(args):
            raise bad(f" (expected {len(args)} values)")
        result: Any = out
    else:
        result = _scalar(base, value, bad)
    _validate(key, result, source)
    return result


def _scalar(typ: Any, value: Any, bad: Any) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise bad(" (use true or false)")
    if typ is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())  # exact, however large ("12345678901234567890")
        except ValueError:
            pass
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(f):
            raise bad(" (not a finite number)")
        if f != int(f):
            raise bad()
        return int(f)
    if typ is float:
        if isinstance(value, bool):
            raise bad()
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise bad() from None
    if typ is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad()
        return str(value).strip()
    raise bad()


def _validate(key: str, v: Any, source: str) -> None:
    def fail(why: str) -> None:
        raise UserError(f"{source}: {key} = {v!r}: {why}")

    if key in CHOICES and v not in CHOICES[key]:
        fail(f"choose one of {list(CHOICES[key])}")
    if key == "interpolations":
        if not v or any(m not in INTERPOLATIONS for m in v):
            fail(f"each must be one of {list(INTERPOLATIONS)}")
    if key in RANGES and v is not None:
        values = v if isinstance(v, tuple) else (v,)
        if not all(x in RANGES[key] for x in values):
            kind = "a whole number" if isinstance(values[0], int) else "a finite number"
            fail(f"must be {kind} in {RANGES[key]}"
                 + (" (each value)" if isinstance(v, tuple) else ""))
    if key == "image_size" and v != 0 and v < MIN_INPUT_SIZE:
        fail(f"GoogLeNet needs inputs of at least {MIN_INPUT_SIZE} px (0 picks the dataset's "
             f"default)")
    if key in ("crop_scale", "crop_ratio") and not v[0] <= v[1]:
        fail("need min <= max")
    if key == "fpn_channels" and v % 32:
        fail("must be a multiple of 32 (the detection heads' GroupNorm has 32 groups)")
    if key == "rcnn_region_size" and v < MIN_INPUT_SIZE:
        fail(f"GoogLeNet needs inputs of at least {MIN_INPUT_SIZE} px")
    if key == "scale_jitter" and not v[0] <= v[1]:
        fail("need min <= max")


def recipe_path(name: str) -> Path:
    """A recipe name (``paper``, ``short``) or a path to a TOML file."""
    p = Path(name).expanduser()
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise UserError(f"--recipe {name}: no such file")
        return p
    builtin = RECIPES_DIR / f"{name}.toml"
    if not builtin.is_file():
        raise UserError(f"--recipe {name}: unknown recipe; built in: {list_recipes()}, or pass a "
                        f".toml file")
    return builtin


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def read_recipe(name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A recipe's flat ``key = value`` lines, and its per-variant tables (``[bn]`` etc.), whose
    keys apply on top when that variant is trained."""
    path = recipe_path(name)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    flat = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    bad = [k for k in tables if k not in CHOICES["variant"]]
    if bad:
        raise UserError(f"{path}: unknown table(s) {bad}: a recipe is flat `key = value` lines, plus "
                        f"optional per-variant tables named {list(CHOICES['variant'])}")
    for v, t in tables.items():
        nested = [k for k, x in t.items() if isinstance(x, dict)]
        if nested:
            raise UserError(f"{path}: [{v}] must hold plain `key = value` lines, not {nested}")
    return flat, tables


def parse_set(items: list[str]) -> dict[str, str]:
    """``["lr=0.1", "crop_scale=0.3,1"]`` -> ``{"lr": "0.1", "crop_scale": "0.3,1"}``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE (e.g. --set lr=0.05)")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def apply(cfg: TrainConfig, updates: dict[str, Any], source: str) -> TrainConfig:
    known = set(field_names())
    for k, v in updates.items():
        if k not in known:
            raise _unknown(k, source)
        setattr(cfg, k, _coerce(k, v, f"{source}"))
    return cfg


def resolve(recipe: Optional[str] = None, overrides: Optional[dict[str, Any]] = None,
            *, base: Optional[dict[str, Any]] = None) -> TrainConfig:
    """defaults -> recipe (or ``base``, a saved config) -> the recipe's table for the chosen
    variant -> overrides (command line)."""
    cfg = TrainConfig()
    overrides = dict(overrides or {})
    if base is not None:
        apply(cfg, base, "saved config")
    else:
        name = recipe or DEFAULT_RECIPE
        source = str(recipe_path(name))
        flat, tables = read_recipe(name)
        apply(cfg, flat, source)
        variant = (_coerce("variant", overrides["variant"], "command line")
                   if "variant" in overrides else cfg.variant)
        if variant in tables:
            apply(cfg, tables[variant], f"{source} [{variant}]")
    if overrides:
        apply(cfg, overrides, "command line")
    return cfg


def to_toml(d: dict[str, Any]) -> str:
    """A flat dict of str/int/float/bool/None/list -> TOML text (None values are left out)."""
    lines = []
    for k, v in d.items():
        if v is None:
            lines.append(f"# {k} = (none)")
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _type_name(t: Any) -> str:
    args = typing.get_args(t)
    if type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or none"
    if typing.get_origin(t) is tuple:
        return "list of " + _type_name(args[0])
    return getattr(t, "__name__", str(t))


def describe(cfg: Optional[TrainConfig] = None) -> str:
    """Every key with its type and the value ``cfg`` has (default: the typed defaults), and the
    typed default beside it where they differ; for ``--help-config`` (the comments next to the
    fields of ``TrainConfig`` in googlenet/engine/config.py say what each one does)."""
    hints = _hints()
    rows = []
    for f in fields(TrainConfig):
        tn = _type_name(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        value = getattr(cfg, f.name) if cfg is not None else default
        choice = f"  {{{', '.join(CHOICES[f.name])}}}" if f.name in CHOICES else ""
        note = f"  (default {_plain(default)!r})" if _plain(value) != _plain(default) else ""
        rows.append(f"  {f.name:<20} {tn:<15} {_plain(value)!r}{note}{choice}")
    return "\n".join(rows)
