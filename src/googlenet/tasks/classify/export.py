"""The classification unit's ``googlenet export``: ONNX, TorchScript or torch.export (or a
reduced precision's files), each checked against eager."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch

from ...data.crops import multi_crop
from ...data.datasets import open_dataset
from ...data.imaging import list_images
from ...data.preprocess import MAX_CROP
from ...errors import UserError
from ...fileio import check_writable_dir
from ...interop import export as interop_export  # looked up when called: tests replace them
from ...interop.formats import FORMATS, MIN_OPSET, PRECISION_FILES
from ...metrics.agreement import TOLERANCES
from ...weights.records import LoadedWeights

__all__ = ["export"]


def _check_formats(args: argparse.Namespace) -> None:
    """--precision other than fp32 writes its own files (PRECISION_FILES): a --format it does
    not write is refused, not ignored."""
    if args.precision == "fp32":
        args.formats = args.formats or list(FORMATS)
        return
    writes = [runtime for runtime, _ in PRECISION_FILES[args.precision]]
    other = [f for f in args.formats or [] if f not in writes]
    if other:
        raise UserError(f"--precision {args.precision} writes {' and '.join(writes)} files, not "
                        f"{' or '.join(other)}; drop --format (or export fp32)", key="formats")


def export(args: argparse.Namespace, loaded: LoadedWeights, prefix_of: Callable[[], Path]) -> int:
    """``googlenet export`` of a classifier: --format's files (fp32) or --precision's, each
    checked against eager on real images. ``prefix_of()``: the output path without extension."""
    interop_export.check_opset(args.opset, MIN_OPSET, interop_export.MAX_OPSET)  # before anything is traced
    _check_formats(args)
    pre = loaded.preprocess
    if args.image_size is not None:
        if not 32 <= args.image_size <= MAX_CROP:
            raise UserError(f"--image-size {args.image_size}: GoogLeNet needs 32 to {MAX_CROP}")
        pre = replace(pre, crop=args.image_size, resize=max(pre.resize, args.image_size))
    model = loaded.model.eval()
    prefix = prefix_of()
    check_writable_dir(prefix.parent, "--out")  # before the exports are traced, not after
    x, where = interop_export.check_images(args.check_images, pre, args.check_count)
    meta = interop_export.export_metadata(model, pre, loaded.class_names)
    print(f"weights: {loaded.source} (variant {model.config['variant']}, "
          f"{model.num_classes} classes); input {x.shape[1]}x{pre.crop}x{pre.crop}, dynamic batch; "
          f"aux heads left out", file=sys.stderr)
    example = x[:2] if len(x) >= 2 else x.repeat(2, 1, 1, 1)
    if args.precision != "fp32":
        return _export_precision(args, model, pre, meta, prefix, x, example, where)
    program = None
    failed = False
    for fmt in args.formats:
        path = Path(str(prefix) + FORMATS[fmt])
        if fmt == "torchscript":
            interop_export.export_torchscript(model, path, example=example, metadata=meta)
        else:
            program = program or interop_export.export_program(model, example)
            if fmt == "export":
                interop_export.save_program(program, path, meta)
            else:
                interop_export.export_onnx(program, path, example=example, opset=args.opset, metadata=meta)
        a = interop_export.check_export(fmt, path, model, x)
        ok = a.max_abs_diff <= interop_export.TOLERANCE[fmt] * max(1.0, a.max_abs_ref) and a.top1 == 1.0
        failed |= not ok
        print(f"{fmt:12s} {path}  max |logit diff| {a.max_abs_diff:.2e}, top-1 agreement "
              f"{a.top1:.2%} on {where}  {'ok' if ok else 'MISMATCH'}")
    return 1 if failed else 0


def _calibration(args: argparse.Namespace, pre) -> tuple[torch.Tensor, dict]:
    """(N, C, crop, crop) calibration images and the record of what they were."""
    if args.calibration_count < 1:
        raise UserError("--calibration-count must be at least 1")
    if args.calibration_images is None:
        ds = open_dataset("digits", "train")
        n = min(args.calibration_count, len(ds))
        imgs = [ds.load(i)[0] for i in range(n)]
        source = {"dataset": "digits (built-in)", "split": "train", "indices": [0, n]}
    else:
        x, _ = interop_export.check_images(args.calibration_images, pre, args.calibration_count,
                            what="--calibration-images")
        p = Path(args.calibration_images)
        files = (list_images(p) if p.is_dir() else [p])[:args.calibration_count]
        return x, {"source": str(p), "files": [str(f) for f in files], "count": len(x),
                   "preprocess": asdict(pre), "crops": "center (1 per image)"}
    x = torch.cat([multi_crop(im, pre, 1) for im in imgs])
    return x, {"source": source, "count": len(x), "preprocess": asdict(pre),
               "crops": "center (1 per image)"}


def _export_precision(args, model, pre, meta, prefix: Path, x: torch.Tensor,
                      example: torch.Tensor, where: str) -> int:
    calib, record = (_calibration(args, pre) if args.precision == "int8" else (None, None))
    tol = TOLERANCES["bf16" if args.precision in ("bf16", "fp16") else args.precision]
    written = interop_export.export_precision(model, args.precision, prefix, example=example, check_x=x,
                               calibration=list(calib.split(32)) if calib is not None else None,
                               calibration_record=record, metadata=meta, opset=args.opset)
    failed = False
    for runtime, path, a in written:
        ok = a.within(tol)
        failed |= not ok
        print(f"{args.precision} {runtime:9s} {path}  max |logit diff| {a.max_abs_diff:.2e} "
              f"({a.rel:.2%} of max |logit|), top-1 agreement {a.top1:.2%} on {where}  "
              + ("ok" if ok else f"BELOW TARGET (top-1 agreement >= {tol.top1:.0%}, logit diff "
                                 f"<= {tol.rel:.0%} of max |logit|)") + f" (sidecar {path}.json)")
    if failed:
        print(f"googlenet export: the {args.precision} files do not reproduce the fp32 model "
              f"closely enough (see above); calibrate on more or more typical images "
              f"(--calibration-images, --calibration-count), or use another precision",
              file=sys.stderr)
    return 1 if failed else 0
