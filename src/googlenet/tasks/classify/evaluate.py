"""The classification unit's ``googlenet eval``: top-1/top-5 with 1, 10 or 144 crops, ensembles,
Table 3 (googlenet.infer.evaluate does the counting)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np
import torch

from ...data import datasets as data_mod
from ...errors import UserError
from ...infer.evaluate import MAX_CONFUSION_CLASSES, check_classes, evaluate_models, parse_crops
from ...weights.records import LoadedWeights
from .. import saved_settings

__all__ = ["evaluate"]


def _run_config(loaded: LoadedWeights) -> dict[str, Any]:
    """The settings the weights were trained with (dotted keys), where the file records them."""
    cfg = loaded.metadata.get("config") if isinstance(loaded.metadata, dict) else None
    return saved_settings(cfg, strict=False)


def evaluate(args: argparse.Namespace, models: list[LoadedWeights], names: list[str],
             device: torch.device) -> int:
    """``googlenet eval`` of classifiers: top-1/top-5 over 1, 10 or 144 crops per image, each
    model and (several) their ensemble; the table printed, and saved with --out."""
    crops = parse_crops(args.crops)
    workers = args.workers if args.workers is not None else (
        min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
    check_classes(models, names=names)  # the models against each other, before opening data

    cfg = _run_config(models[0])
    spec = args.data
    if spec is None:
        trained_on = cfg.get("data.path")
        spec = trained_on if isinstance(trained_on, str) else None
        if spec is not None:
            print(f"data: {spec} (what {names[0]} was trained on; --data to change)",
                  file=sys.stderr)
    seed = args.seed if args.seed is not None else cfg.get("system.seed")
    val_fraction = (args.val_fraction if args.val_fraction is not None
                    else cfg.get("data.val_fraction"))
    split = args.split or data_mod.default_eval_split(spec)
    root = args.data_root or cfg.get("data.root")
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
