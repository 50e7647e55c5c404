"""``googlenet eval``: top-1/top-5 with 1, 10 or 144 crops, ensembles, Table 3."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from ..data.crops import CROP_CHOICES
from ..errors import UserError
from ..fileio import check_writable_dir
from ..infer.modes import DEFAULT_BATCH_SIZE
from ..models.choices import AMP_CHOICES

if TYPE_CHECKING:
    import torch

    from ..weights.records import LoadedWeights


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


def _run_config(loaded: LoadedWeights) -> dict[str, Any]:
    cfg = loaded.metadata.get("config") if isinstance(loaded.metadata, dict) else None
    return cfg if isinstance(cfg, dict) else {}


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
    import numpy as np
    import torch

    from ..data import datasets as data_mod
    from ..engine.distributed import resolve_device
    from ..infer.evaluate import check_classes, evaluate_models, parse_crops
    from ..sources import load_weights

    crops = parse_crops(args.crops)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be 0 or more")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    device = resolve_device(args.device)
    workers = args.workers if args.workers is not None else (
        min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)

    models = [load_weights(w) for w in args.weights]
    names = list(args.weights)
    if any(m.task == "detect" for m in models):
        return _run_detection(args, models, names, device)
    check_classes(models, names=names)  # the models against each other, before opening data

    cfg = _run_config(models[0])
    spec = args.data
    if spec is None:
        trained_on = cfg.get("data")
        spec = trained_on if isinstance(trained_on, str) else None
        if spec is not None:
            print(f"data: {spec} (what {names[0]} was trained on; --data to change)",
                  file=sys.stderr)
    seed = args.seed if args.seed is not None else cfg.get("seed")
    val_fraction = (args.val_fraction if args.val_fraction is not None
                    else cfg.get("val_fraction"))
    split = args.split or data_mod.default_eval_split(spec)
    root = args.data_root or cfg.get("data_root")
    kw: dict[str, Any] = {"strict": args.strict, "root": root if isinstance(root, str) else None}
    if isinstance(seed, int):
        kw["seed"] = seed
    if isinstance(val_fraction, float):
        kw["val_fraction"] = val_fraction
    dataset = data_mod.open_dataset(spec, split, **kw)
    check_classes(models, dataset.classes, names=names, match=args.match_classes)
    n = len(dataset)
    if n == 0:
        raise UserError(f"{spec or 'digits'}: the {split} split has no images")
    indices = None
    if args.limit is not None and args.limit < n:
        indices = np.unique(np.linspace(0, n - 1, args.limit).round().astype(int)).tolist()

    info = {"data": spec or "digits", "split": split, "crops": list(crops),
            "models": [f"{m.model.config['variant']}, {m.preprocess.crop} px" for m in models],
            "weights": [m.source for m in models], "batch_size": args.batch_size,
            "torch": torch.__version__}
    report = evaluate_models(models, dataset, crops=crops, names=names,
                             batch_size=args.batch_size, workers=workers, device=device,
                             amp=args.amp, strict=args.strict, indices=indices,
                             match=args.match_classes, progress=False if args.no_progress else None,
                             info=info)
    _print_report(report, args)
    return 0


def _print_report(report: Any, args: argparse.Namespace) -> None:
    from ..infer.evaluate import MAX_CONFUSION_CLASSES

    text = sys.stderr if args.json else sys.stdout  # with --json, stdout is the JSON only
    print(file=text)
    for line in report.summary_lines():
        print(line, file=text)
    print(file=text)
    print(report.table_markdown(), file=text)
    if report.skipped:
        print(f"\n{len(report.skipped)} unreadable file(s) skipped (--strict stops instead):",
              file=text)
        for f, r in report.skipped[:20]:
            print(f"  {f}: {r}", file=text)
        if len(report.skipped) > 20:
            print(f"  ... and {len(report.skipped) - 20} more" +
                  (f" (all in {args.out}/results.md)" if args.out else ""), file=text)
    if args.out:
        written = report.save(args.out)
        print(f"\nsaved: {', '.join(str(p) for p in written)}", file=text)
        if len(report.class_names) > MAX_CONFUSION_CLASSES:
            print(f"(no confusion matrix: {len(report.class_names)} classes is more than "
                  f"{MAX_CONFUSION_CLASSES})", file=text)
    elif not args.json:
        print("\n(--out DIR saves the table as JSON/CSV/markdown and the confusion matrix)")
    if args.json:
        print(json.dumps(report.results(), indent=2))


def _run_detection(args: argparse.Namespace, models: list[LoadedWeights], names: list[str],
                   device: torch.device) -> int:
    """Detection runs: COCO AP (pycocotools), VOC07 AP50, per-class AP, a PR plot; several runs
    are an ensemble by box fusion (googlenet.infer.detect)."""
    from ..infer.detect import evaluate_runs

    if args.crops != ["1"]:
        raise UserError("--crops applies to classifiers; a detector sees each image once")
    report = evaluate_runs(models, names, spec=args.data, split=args.split, device=device,
                           batch_size=min(args.batch_size, 16), amp=args.amp, limit=args.limit,
                           strict=args.strict, root=args.data_root)
    print(f"data: {report.info['data']} {report.info['split']} split, {report.rows[0]['images']} "
          f"images at {report.info['size']} px", file=sys.stderr)
    text = sys.stderr if args.json else sys.stdout  # with --json, stdout is the JSON only
    for line in report.summary_lines():
        print(line, file=text)
    print(file=text)
    print(report.table_markdown(with_skipped=False), file=text)
    if report.skipped:
        print(f"\n{len(report.skipped)} file(s) or annotation(s) skipped, not scored (--strict "
              f"stops instead):", file=text)
        for line in report.skipped_lines(20):
            print(f"  {line}", file=text)
        if args.out and len(report.skipped) > 20:
            print(f"  (all in {args.out}/results.md and results.json)", file=text)
    if args.out:
        written = report.save(args.out)
        print(f"\nsaved: {', '.join(str(p) for p in written)}", file=text)
    elif not args.json:
        print("\n(--out DIR saves results.json/.md and the precision-recall plot)")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0
