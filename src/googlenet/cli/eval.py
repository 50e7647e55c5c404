"""``googlenet eval``: top-1/top-5 with 1, 10 or 144 crops, ensembles, Table 3; COCO/VOC AP of
detection runs. The arguments are checked here; the task unit of the weights
(googlenet.tasks.unit_for_weights) evaluates."""

from __future__ import annotations

import argparse
import os

from ..data.crops import CROP_CHOICES
from ..errors import UserError
from ..fileio import check_writable_dir
from ..infer.modes import DEFAULT_BATCH_SIZE
from ..models.choices import AMP_CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", nargs="+", metavar="RUN_OR_WEIGHTS",
                   help="run directories of `googlenet train`, .safetensors/.pt files, 'imagenet' "
                        "(torchvision's weights) or caffe:FILE.caffemodel; several = an ensemble "
                        "(softmax averaged over models)")
    p.add_argument("--data", default=None,
                   help="'digits' (built in), 'cifar10', 'cifar100', or an image folder "
                        "(PATH/<class>/* or PATH/{train,val,test}/<class>/*). Default: the data the "
                        "first run was trained on when its checkpoint records it, else digits")
    p.add_argument("--split", choices=["train", "val", "test"], default=None,
                   help="default: test where the data has one, else val")
    p.add_argument("--crops", nargs="+", default=["1"], metavar="N",
                   help=f"test-time crops per image, any of {', '.join(map(str, CROP_CHOICES))}: "
                        "center crop; 4 corners + center, mirrored; the paper's 144 (§7). Several "
                        "fill Table 3 in one run, e.g. --crops 1 10 144")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="save results.json/.csv/.md and confusion.png/.csv here")
    p.add_argument("--json", action="store_true",
                   help="print the results (what --out saves as results.json) as JSON on stdout; "
                        "the table goes to stderr")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="most crops in one forward pass (bounds memory with 144 crops)")
    p.add_argument("--workers", type=int, default=None,
                   help="data-loading processes (decode + crop); 0 = in the main process. "
                        "Default: 0 on CPU (the forward pass needs every core; cropping is a few "
                        "%% of the time), min(4, CPUs) with CUDA")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--amp", nargs="?", const="bf16", default="none", choices=AMP_CHOICES,
                   help="mixed precision of the forward pass, as `train --amp`: bf16 (also what "
                        "a bare --amp means), fp16 (GPUs without bf16) or auto (bf16 where native)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image instead of skipping and counting it")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate N images spread evenly over the split (a quick look)")
    p.add_argument("--match-classes", choices=["names", "index"], default="names",
                   help="'names': the data's class names must equal the model's; 'index': only "
                        "the count (same classes, same order, other names)")
    p.add_argument("--data-root", default=None,
                   help="where cifar10/cifar100 live or are downloaded to (default: the run's, "
                        "else $GOOGLENET_DATA, else ~/.cache/googlenet/data)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the train/val split of a single image folder (default: the "
                        "run's, else 0); must match training")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="validation fraction of a single image folder (default: the run's, else "
                        "0.1); must match training")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if not args.out:
        return _run(args)
    check_writable_dir(args.out, "--out")  # before the evaluation, not after it
    # One eval per --out at a time (as one training per run directory): two at once would mix
    # their results.json, results.md and plots. The lock is RUN/.lock, as training's.
    from ..engine.checkpoint import RunLock
    from ..weights.io import fs_error

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise fs_error(e, args.out, "cannot create") from None
    with RunLock(args.out):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..engine.distributed import resolve_device
    from ..infer.evaluate import parse_crops
    from ..sources import load_weights
    from ..tasks import unit_for_weights

    parse_crops(args.crops)  # a bad --crops is reported before any weights are read
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be 0 or more")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    device = resolve_device(args.device)

    models = [load_weights(w) for w in args.weights]
    names = list(args.weights)
    return unit_for_weights(models).evaluate(args, models, names, device)
