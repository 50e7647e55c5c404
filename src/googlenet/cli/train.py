"""``googlenet train``: argument parsing and the choice between a new run and a resumed one.
Everything else is the engine's (googlenet.engine.trainer.fit) and the task's
(googlenet.tasks). What imports torch is imported in ``run``, so ``--help`` does not wait
for it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..engine import config as config_lib
from ..errors import UserError
from ..fileio import check_writable_dir
from ..settings import get_path, leaves
from ..tasks import CONFIG_TASKS, dotted, resolve_config, schemas, unit_for_command_line, \
    unit_for_config
from . import (EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_FILESYSTEM, EXIT_INTERNAL, EXIT_INTERRUPTED,
               EXIT_OK, EXIT_OUT_OF_MEMORY)

def _choices(key: str) -> tuple[str, ...]:
    """The accepted values of a setting (flat key), as its section declares them."""
    return next(leaf.choices for cls in schemas().all for leaf in leaves(cls).values()
                if leaf.alias == key and leaf.choices)


# Arguments of this command that are not config keys.
_NOT_CONFIG = {"set", "recipe", "resume", "auto_resume", "help_config", "debug", "_run"}

# Every exit status a training run can end with (googlenet --help explains each).
_EPILOG = ("multi-process / multi-node: torchrun --nproc_per_node N -m googlenet train ...; "
           f"see googlenet/engine/distributed.py. Exit status: {EXIT_OK} done, "
           f"{EXIT_BAD_INPUT} bad input, {EXIT_DIVERGED} the loss diverged (NaN/inf), "
           f"{EXIT_FILESYSTEM} file system (e.g. the run directory in use), "
           f"{EXIT_OUT_OF_MEMORY} out of memory, {EXIT_INTERNAL} internal error, "
           f"{EXIT_INTERRUPTED} interrupted (continue with --resume); `googlenet --help` "
           f"explains each.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train GoogLeNet. With no arguments: the paper's network (LRN, no BN) on the built-in "
        "digits with the short recipe. Settings come from the typed defaults, then --recipe, "
        "then these flags and --set KEY=VALUE (see --help-config for every key).")
    p.epilog = _EPILOG
    g = p.add_argument_group("what to train on")
    g.add_argument("--task", choices=sorted(CONFIG_TASKS), default=argparse.SUPPRESS,
                   help="classify (default) or detect (recipe 'detect' unless --recipe is given; "
                        "data: digits-detect, a COCO/VOC/YOLO folder, voc2007)")
    g.add_argument("--arch", choices=_choices("arch"), default=argparse.SUPPRESS,
                   help="detector (--task detect): fcos (default), retinanet, fasterrcnn on a "
                        "GoogLeNet FPN, or rcnn (the paper's §8 pipeline)")
    g.add_argument("--data", default=argparse.SUPPRESS, metavar="PATH|cifar10|cifar100",
                   help="image folder (PATH/train/<class>/, PATH/val/<class>/ or PATH/<class>/), "
                        "cifar10, cifar100; default: the built-in digits")
    g.add_argument("--data-root", default=argparse.SUPPRESS,
                   help="where CIFAR is stored or downloaded to (default: $GOOGLENET_DATA, else "
                        "~/.cache/googlenet/data)")
    g.add_argument("--strict", action="store_true", default=argparse.SUPPRESS,
                   help="stop at the first unreadable image instead of skipping it")
    g = p.add_argument_group("recipe and model")
    g.add_argument("--recipe", default=argparse.SUPPRESS, metavar="NAME|FILE.toml",
                   help=f"built in: {', '.join(config_lib.list_recipes())} (default "
                        f"{config_lib.DEFAULT_RECIPE})")
    g.add_argument("--set", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override any config key (SECTION.KEY, or its flat name), e.g. --set "
                        "augment.crop_scale=0.3,1 --set average.mode=ema")
    g.add_argument("--help-config", action="store_true", default=argparse.SUPPRESS,
                   help="list every config key with the value this command line would use (the "
                        "recipe's, for the chosen variant), and exit")
    g.add_argument("--variant", choices=_choices("variant"), default=argparse.SUPPRESS)
    g.add_argument("--inception", choices=_choices("inception"), default=argparse.SUPPRESS)
    g.add_argument("--stem", choices=_choices("stem"), default=argparse.SUPPRESS)
    g.add_argument("--no-aux", dest="aux_logits", action="store_false", default=argparse.SUPPRESS,
                   help="train without the auxiliary classifiers")
    g.add_argument("--init", default=argparse.SUPPRESS, metavar="WEIGHTS",
                   help="start from these weights (run dir, .safetensors, .pt)")
    g.add_argument("--pretrain", choices=_choices("pretrain"), default=argparse.SUPPRESS,
                   help="--task detect on digits-detect without --init: digits first trains the "
                        "variant's digits classifier in RUN_DIR/pretrain (~30 s on 2 cores) and "
                        "starts the backbone from it (default: digits, the detect recipe's; none "
                        "otherwise)")
    g.add_argument("--epochs", type=int, default=argparse.SUPPRESS)
    g.add_argument("--batch-size", type=int, default=argparse.SUPPRESS, help="per process")
    g.add_argument("--lr", type=float, default=argparse.SUPPRESS)
    g.add_argument("--image-size", type=int, default=argparse.SUPPRESS, help="input side in pixels (>= 32)")
    g.add_argument("--seed", type=int, default=argparse.SUPPRESS)
    _add_run_arguments(p.add_argument_group("run"))
    _show_defaults(p)


def _add_run_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--out", default=argparse.SUPPRESS, metavar="RUN_DIR",
                   help="run directory (default runs/<date>-<time>-<variant>-<data>)")
    g.add_argument("--resume", default=argparse.SUPPRESS, metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (its saved config; flags given "
                        "here override it, e.g. --epochs to train longer)")
    g.add_argument("--auto-resume", action="store_true", default=argparse.SUPPRESS,
                   help="resume --out if it holds a checkpoint, else start it (safe to always "
                        "pass; implied when torchrun restarts the workers)")
    g.add_argument("--checkpoint-every", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="also checkpoint every N steps inside an epoch")
    g.add_argument("--save-checkpoints", choices=_choices("save_checkpoints"),
                   default=argparse.SUPPRESS,
                   help="which checkpoints the run keeps: last = checkpoint-last.pt, what --resume "
                        "continues (a third of a checkpoint is the optimizer); best = that + the "
                        "best epoch's weights (model-best.safetensors); all = that + "
                        "checkpoint-best.pt (a whole checkpoint of the best epoch); none = no "
                        "checkpoint (the run cannot be resumed)")
    g.add_argument("--max-steps", type=int, default=argparse.SUPPRESS, help="stop after N steps in total")
    g.add_argument("--device", default=argparse.SUPPRESS, help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--workers", type=int, default=argparse.SUPPRESS, help="data loader processes")
    g.add_argument("--loader", choices=_choices("loader"), default=argparse.SUPPRESS,
                   help="image folders: gpu reads files in the workers and decodes (nvJPEG) and "
                        "augments JPEGs on the device; cpu does it all in the workers; auto is "
                        "gpu for JPEG folders on a GPU")
    g.add_argument("--amp", choices=_choices("amp"), default=argparse.SUPPRESS,
                   help="mixed precision: bf16 (autocast to bfloat16; CPUs with AVX512-BF16/AMX, "
                        "recent GPUs), fp16 (autocast to float16 with torch.amp.GradScaler; "
                        "GPUs without bf16) or auto (bf16 where the device has it natively, else "
                        "fp32: the detect recipe's)")
    g.add_argument("--compile", action="store_true", default=argparse.SUPPRESS, help="torch.compile the model")
    g.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=argparse.SUPPRESS)
    g.add_argument("--deterministic", action="store_true", default=argparse.SUPPRESS,
                   help="deterministic algorithms (bit-exact resume)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="no progress bar on a terminal, and no progress lines elsewhere (a line "
                        "every log_every steps when the output is a file or pipe); the per-epoch "
                        "lines remain")


# What the "automatic" values of a few keys mean, for --help.
_AUTO: dict[str, dict[Any, str]] = {
    "image_size": {0: "0, the data's size: 32 for the digits, 224 for folders"},
    "workers": {-1: "-1, none for in-memory data, else min(8, cores - 1)"},
    "max_steps": {0: "0, no limit"},
    "checkpoint_every": {0: "0, at the end of each epoch only"},
}


def _show_defaults(p: argparse.ArgumentParser) -> None:
    """Each flag's help ends with its default, the value the default recipe gives it. The flags
    themselves default to SUPPRESS (a recipe's value must win over an untyped flag), which is why
    argparse's ArgumentDefaultsHelpFormatter cannot show them."""
    base = resolve_config(config_lib.DEFAULT_RECIPE, {})
    own = {leaf.alias: path for path, leaf in leaves(type(base)).items()}
    for a in p._actions:
        if a.dest not in own or not a.option_strings or "default" in (a.help or ""):
            continue  # (a help that already names its default keeps its own words)
        v = get_path(base, own[a.dest])
        if isinstance(a, argparse._StoreFalseAction):  # --no-X: whether X is on
            shown = f"{a.dest.replace('_', ' ')} {'on' if v else 'off'}"
        elif isinstance(a, argparse._StoreTrueAction):
            shown = "on" if v else "off"
        else:
            shown = _AUTO.get(a.dest, {}).get(v, "none" if v is None else v)
        a.help = (a.help + " " if a.help else "") + f"(default: {shown})".replace("%", "%%")
    p.description += (f" The defaults shown are the {config_lib.DEFAULT_RECIPE} recipe's for "
                      f"the {base.model.variant} variant; another --recipe, --variant or --task "
                      f"changes them (--help-config lists the values a command line gets).")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys this command line sets: --set KEY=VALUE, then the flags (every flag whose
    destination is a config key)."""
    out: dict[str, Any] = dict(config_lib.parse_set(getattr(args, "set", [])))
    fields = set(schemas().aliases)
    for key, v in vars(args).items():
        if key in fields and key not in _NOT_CONFIG:
            out[key] = v
    return dotted(out)


def elastic_restart() -> bool:
    """True in workers that torchrun restarted after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def default_recipe(over: dict[str, Any]) -> str:
    """The recipe when --recipe is not given: the task unit's (``detect`` for --task detect,
    else the default)."""
    return unit_for_command_line(over).recipe


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import load_resume
    from ..engine.stages import run_stages
    from ..engine.trainer import fit
    from ..weights.records import CHECKPOINT_LAST

    over = overrides(args)
    resume, recipe = getattr(args, "resume", None), getattr(args, "recipe", None)
    if not resume:
        recipe = recipe or default_recipe(over)
    if getattr(args, "help_config", False):
        cfg = resolve_config(recipe, over)
        print(f"config keys of the {cfg.task} task by section (recipe files and --set "
              f"SECTION.KEY=VALUE; the flat name in parentheses is accepted too), with the values "
              f"this command would use (recipe {recipe}, {cfg.summary() or cfg.task}):")
        print(config_lib.describe(cfg))
        return 0
    out = over.get("run.out")
    if not resume and out and (getattr(args, "auto_resume", False) or elastic_restart()) \
            and (Path(out) / CHECKPOINT_LAST).is_file():
        resume = out
    if resume:
        if getattr(args, "recipe", None):
            raise UserError("--recipe cannot be combined with --resume: a resumed run keeps its "
                            "saved config (override single keys with flags or --set)")
        if out and Path(out).resolve() != Path(resume).resolve():
            raise UserError(f"--out {out} with --resume {resume}: a resumed run stays in its own "
                            f"directory; leave out --out")
        run_dir, ckpt = load_resume(resume)
        check_writable_dir(run_dir, "--resume")
        over.pop("run.out", None)
        cfg = resolve_config(base=ckpt.config, overrides=over)
        cfg.run.out = str(run_dir)
        fit(unit_for_config(cfg).task(), cfg, resume=ckpt, resume_dir=run_dir)
    else:
        cfg = resolve_config(recipe, over)
        check_writable_dir(cfg.run.out or "runs", "--out")  # before the data is read, not after
        unit = unit_for_config(cfg)
        cfg = run_stages(unit.stages, cfg)  # e.g. the detector's backbone pretraining
        fit(unit.task(), cfg)
    return 0
