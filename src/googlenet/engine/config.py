"""The run's configuration: the engine's sections, and how a config is resolved and saved.

A training config is a task's config class (``googlenet.tasks``: ``ClassifyConfig``,
``DetectConfig``, ...), which extends ``RunConfig`` below (the engine's own sections: ``run``,
``optim``, ``average``, ``system``) with the task's (``model``, ``data``, ``augment``, ...). Each
field's accepted values are declared on it (googlenet/settings.py), and one validation reads them.

Settings come from the typed defaults, then a recipe, then the command line. A recipe is a TOML
file (``recipes/*.toml``; ``--recipe NAME`` or ``--recipe PATH.toml``) of sections
(``[optim]`` ``lr = 1e-3``) and ``[[case]]`` tables applied on top when their ``when`` matches
(``when = {"model.variant" = "bn"}``). ``--set optim.lr=0.1`` (or the flat ``--set lr=0.1``)
comes last. An unknown key is an error that names the closest known one. The resolved config is
saved in every run directory (``config.toml``) and checkpoint, with ``version = 2``; configs
and recipes without sections (version 1: flat ``key = value`` lines, per-variant tables
``[bn]``) still load, their flat keys read as the aliases of the sectioned ones.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence

from ..errors import UserError
from ..models.choices import AMP_CHOICES
from ..settings import PROB, Range, aliases, as_dict, coerce, flatten, leaves, section
from ..settings import set_path, setting, to_toml, unknown_key
from ..settings import describe as describe  # noqa: PLC0414  (re-exported for --help-config)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["RunConfig", "RunSection", "OptimConfig", "AverageConfig", "SystemConfig", "Schemas",
           "VERSION", "resolve", "read_saved", "to_dotted", "parse_set", "read_recipe", "recipe_path",
           "list_recipes", "to_toml", "describe", "DEFAULT_RECIPE", "RECIPES_DIR"]

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "short"
VERSION = 2  # of saved configs and recipes: 1 = flat keys (before sections), 2 = sections

_BIG = 1e12  # step counts: far beyond any run, so that a typo or a damaged file is refused


@dataclass
class RunSection:
    """How long, in what batches, where to, and what the run keeps."""

    epochs: int = setting(250, range=Range(1, 1_000_000))  # Caffe's bvlc_googlenet ~ 250 epochs
    batch_size: int = setting(32, range=Range(1, 65_536))  # per process (Caffe: 32)
    max_steps: int = setting(0, range=Range(0, _BIG))  # stop after N optimizer steps (0: no limit)
    init: Optional[str] = setting(None, identity=False)  # start from these weights (run/.safetensors/.pt)
    out: Optional[str] = setting(None)  # run directory; None: runs/<date>-<time>-<the task's label>
    checkpoint_every: int = setting(0, range=Range(0, _BIG))  # also every N steps (0: epoch ends)
    # last = checkpoint-last.pt (what --resume continues) | best = that + the best epoch's
    # weights (model-best.safetensors) | all = that + checkpoint-best.pt | none = no checkpoint
    save_checkpoints: str = setting("last", choices=("last", "best", "all", "none"))
    eval_every: int = setting(1, range=Range(1, 1_000_000))  # validate every N epochs (and last)
    tensorboard: bool = setting(True)  # TensorBoard logs when tensorboard is installed
    plots: bool = setting(True)  # PNG curves at the end of the run
    progress: bool = setting(True)  # tqdm bar; off a terminal: a line every log_every steps
    log_every: int = setting(0, range=Range(0, _BIG))  # 0: ~10 lines an epoch, <= 50 steps apart


@dataclass
class OptimConfig:
    """The optimiser and the learning-rate schedule (§6 and Caffe's bvlc_googlenet solver)."""

    optimizer: str = setting("sgd", choices=("sgd", "adamw"))  # sgd (the paper) | adamw
    lr: float = setting(0.01, range=Range(0, 10, lo_open=True))  # Caffe's base_lr
    momentum: float = setting(0.9, range=PROB)  # §6
    nesterov: bool = setting(False)  # SGD: Nesterov momentum (not the paper's)
    weight_decay: float = setting(2e-4, range=PROB)  # Caffe's; not on biases and norm weights
    # step (§6: x gamma every step_epochs) | cosine | linear
    schedule: str = setting("step", choices=("step", "cosine", "linear"), alias="lr_schedule")
    # §6: "decreasing the learning rate by 4% every 8 epochs"
    step_epochs: float = setting(8.0, range=Range(0, 1_000_000, lo_open=True), alias="lr_step_epochs")
    gamma: float = setting(0.96, range=Range(0, 1, lo_open=True), alias="lr_gamma")  # step factor
    warmup_epochs: float = setting(0.0, range=Range(0, 1_000_000))  # linear from lr/100; not the paper's
    clip_grad_norm: float = setting(0.0, range=Range(0, 1e6))  # 0: off; not in the paper


@dataclass
class AverageConfig:
    """Polyak averaging (§6), torch.optim.swa_utils.AveragedModel."""

    # mean (Polyak-Juditsky: uniform mean of the iterates) | ema | none
    mode: str = setting("mean", choices=("mean", "ema", "none"), alias="average")
    # mode ema: weight of the average at each step (0.999: a horizon of ~1,000 steps)
    ema_decay: float = setting(0.999, range=Range(0, 1, lo_open=True, hi_open=True))
    # iterates before this epoch are not averaged
    start_epoch: float = setting(0.0, range=Range(0, 1_000_000), alias="average_start_epoch")
    # model.safetensors: better = the averaged or the raw weights, whichever validates higher (an
    # EMA of a short run can lag far behind) | averaged = always the averaged ones (§6)
    final_weights: str = setting("better", choices=("better", "averaged"))


@dataclass
class SystemConfig:
    """Where and how the steps run."""

    device: str = setting("auto")  # auto (cuda when present) | cpu | cuda | cuda:N
    # none | bf16 | fp16 (autocast; fp16 adds a GradScaler) | auto (bf16 where native)
    amp: str = setting("none", choices=AMP_CHOICES)
    channels_last: bool = setting(True)  # NHWC activations (faster convolutions on CPU and GPU)
    compile: bool = setting(False)  # torch.compile the model
    seed: int = setting(0, range=Range(0, 2**32 - 1))  # weights, data order, augmentation, splits
    deterministic: bool = setting(False)  # torch.use_deterministic_algorithms (bit-exact resume)
    threads: int = setting(0, range=Range(0, 4096))  # intra-op threads per process; 0: torch's
    workers: int = setting(-1, range=Range(-1, 256))  # loader processes; -1: 0 in memory, else min(8, cores-1)


@dataclass
class RunConfig:
    """The engine's part of every training config; a task's config class extends it with the
    task's own sections (googlenet.tasks)."""

    KIND: ClassVar[str] = "train"  # how messages name a run of this config ("--task detect")

    task: str = setting("classify")  # which task trains (googlenet.tasks)
    run: RunSection = section(RunSection)
    optim: OptimConfig = section(OptimConfig)
    average: AverageConfig = section(AverageConfig)
    system: SystemConfig = section(SystemConfig)

    def to_dict(self) -> dict[str, Any]:
        """What config.toml, checkpoints and results.json hold (``version`` first)."""
        return {"version": VERSION, **as_dict(self)}

    def label(self) -> str:
        """The default run directory's name after the date (runs/<date>-<time>-<label>)."""
        return self.task

    def title(self) -> str:
        """What curves.png's title says of the run besides its directory and task."""
        return ""

    def summary(self) -> str:
        """What the run's first "model:" line says of the model besides its class."""
        return ""


@dataclass(frozen=True)
class Schemas:
    """The config classes of every task: ``pick`` chooses one from the settings a run is given
    (dotted keys: ``task``, ``model.arch``); ``all`` lists them for the flat aliases and for
    keys of another task found in a version-1 config."""

    pick: Callable[[Mapping[str, Any]], type]
    all: Sequence[type]

    @functools.cached_property
    def aliases(self) -> dict[str, str]:
        return aliases(self.all)

    @functools.cached_property
    def known(self) -> set[str]:
        return {p for cls in self.all for p in leaves(cls)} | set(self.aliases)

    def dotted(self, key: str, source: str) -> str:
        """A key as given (dotted or a flat alias) -> its dotted path."""
        key = key.strip().replace("-", "_")
        if key == "task" or ("." in key and key in self.known):
            return key
        if key in self.aliases:
            return self.aliases[key]
        raise unknown_key(key, sorted(self.known), source)


def to_dotted(d: Mapping[str, Any], schemas: Schemas, source: str, *,
               strict: bool = True) -> dict[str, Any]:
    """Settings as nested tables and/or keys (dotted or flat) -> by dotted key; ``strict=False``
    leaves out the keys this googlenet does not know instead of refusing them."""
    out = {}
    for k, v in flatten(d).items():
        if k == "version":
            continue
        try:
            out[schemas.dotted(k, source)] = v
        except UserError:
            if strict:
                raise
    return out


def read_saved(d: Mapping[str, Any], schemas: Schemas, source: str = "saved config", *,
               strict: bool = True) -> dict[str, Any]:
    """A saved config (a run's config.toml, a checkpoint's or a weights file's, either version)
    -> its settings by dotted key. ``strict=False``: keys this googlenet does not know are left
    out instead of refused (what a weights file says about its training is informative only)."""
    version = d.get("version", 1)
    if version not in (1, VERSION):
        raise UserError(f"{source}: config version {version!r} is not one this googlenet reads "
                        f"(1-{VERSION}); a newer googlenet wrote it")
    return to_dotted(d, schemas, source, strict=strict)  # version 1: flat aliases


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


Case = tuple[dict[str, Any], dict[str, Any]]  # (when: settings to match, settings to apply)


def read_recipe(name: str, schemas: Schemas) -> tuple[dict[str, Any], list[Case]]:
    """A recipe's settings by dotted key, and its cases (applied when their ``when`` matches)."""
    path = recipe_path(name)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None
    source = str(path)
    cases = raw.pop("case", [])
    if raw.get("version", 1) == 1 and not cases and not _has_sections(raw, schemas):
        return _read_flat_recipe(raw, schemas, source)
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise UserError(f"{path}: `case` must be [[case]] tables")
    out = []
    for i, c in enumerate(cases):
        when = c.pop("when", None)
        if not isinstance(when, dict) or not when:
            raise UserError(f"{path}: [[case]] {i + 1} needs `when = {{\"KEY\" = VALUE}}`")
        out.append((to_dotted(when, schemas, f"{source} [[case]] {i + 1}"),
                    to_dotted(c, schemas, f"{source} [[case]] {i + 1}")))
    return to_dotted(raw, schemas, source), out


def _has_sections(raw: Mapping[str, Any], schemas: Schemas) -> bool:
    names = {p.split(".")[0] for cls in schemas.all for p in leaves(cls) if "." in p}
    return any(isinstance(v, dict) and k in names for k, v in raw.items())


def _read_flat_recipe(raw: Mapping[str, Any], schemas: Schemas, source: str) -> tuple[dict[str, Any], list[Case]]:
    """Version 1: flat keys, and tables named after a variant (``[bn]``) applied for it."""
    variant = schemas.aliases["variant"]
    choices = next(leaves(c)[variant].choices for c in schemas.all if variant in leaves(c))
    flat = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    bad = [k for k in tables if k not in (choices or ())]
    if bad:
        raise UserError(f"{source}: unknown table(s) {bad}: a recipe holds sections "
                        f"(`googlenet train --help-config`) and [[case]] tables, or (version 1) "
                        f"flat `key = value` lines and per-variant tables named {list(choices or ())}")
    cases: list[Case] = []
    for v, t in tables.items():
        nested = [k for k, x in t.items() if isinstance(x, dict)]
        if nested:
            raise UserError(f"{source}: [{v}] must hold plain `key = value` lines, not {nested}")
        cases.append(({variant: v}, to_dotted(t, schemas, f"{source} [{v}]")))
    return to_dotted(flat, schemas, source), cases


def parse_set(items: list[str]) -> dict[str, str]:
    """``["lr=0.1", "augment.crop_scale=0.3,1"]`` -> ``{"lr": "0.1", ...}`` (keys as given)."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE (e.g. --set optim.lr=0.05)")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def _apply(cfg: RunConfig, settings: Mapping[str, Any], source: str, *,
           foreign_ok: bool, schemas: Schemas) -> None:
    own = leaves(type(cfg))
    for path, value in settings.items():
        if path in own:
            set_path(cfg, path, coerce(own[path], value, source))
        elif not foreign_ok:  # another task's key, given for this one
            where = " or ".join(f"`{c.KIND}`" for c in schemas.all if path in leaves(c))
            raise UserError(f"{source}: {path} is a setting of {where}, not of this "
                            f"{cfg.KIND} run (`googlenet train --task {cfg.task} --help-config` "
                            f"lists its keys)")


def _matches(when: Mapping[str, Any], raw: Mapping[str, Any], cls: type, source: str) -> bool:
    own = leaves(cls)
    for path, want in when.items():
        if path not in own:
            return False
        try:
            have = coerce(own[path], raw[path], "") if path in raw else own[path].default
        except UserError:  # a bad value: refused, naming where it came from, when applied
            return False
        if have != coerce(own[path], want, f"{source} when"):
            return False
    return True


def resolve(schemas: Schemas, recipe: Optional[str] = None,
            overrides: Optional[Mapping[str, Any]] = None, *,
            base: Optional[Mapping[str, Any]] = None) -> RunConfig:
    """defaults -> the recipe (or ``base``, a saved config) -> the recipe's cases that match ->
    ``overrides`` (the command line: flat or dotted keys), into the config class
    ``schemas.pick`` chooses for the task these settings name."""
    over = to_dotted(overrides or {}, schemas, "command line")
    if base is not None:
        first, cases, source, foreign_ok = read_saved(base, schemas), [], "saved config", True
    else:
        name = recipe or DEFAULT_RECIPE
        # a recipe may hold settings for several tasks (the paper's for classify and detect)
        source, (first, cases), foreign_ok = str(recipe_path(name)), read_recipe(name, schemas), True
    raw = {**first, **over}
    cls = schemas.pick(raw)
    cfg = cls()
    _apply(cfg, first, source, foreign_ok=foreign_ok, schemas=schemas)
    for i, (when, settings) in enumerate(cases):
        if _matches(when, raw, cls, f"{source} [[case]] {i + 1}"):
            _apply(cfg, settings, f"{source} [[case]] {i + 1}", foreign_ok=foreign_ok,
                   schemas=schemas)
    _apply(cfg, over, "command line", foreign_ok=False, schemas=schemas)
    return cfg
