"""``googlenet export``: ONNX, TorchScript or torch.export, checked against eager."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..weights.io import check_writable_dir
from ..interop.export import (
    DEFAULT_OPSET, FORMATS, MIN_OPSET, TOLERANCE, check_export, check_images, export_metadata,
    export_onnx, export_program, export_torchscript, save_program,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="SPEC",
                   help="run directory, checkpoint, .safetensors, 'imagenet', torchvision .pth, "
                        "or caffe:FILE")
    p.add_argument("--format", nargs="+", choices=list(FORMATS), default=list(FORMATS),
                   dest="formats", help="what to write")
    p.add_argument("-o", "--out", default=None, metavar="PREFIX",
                   help="output path without extension (PREFIX.onnx, PREFIX.torchscript.pt, "
                        "PREFIX.pt2); unset: RUN/export/model for a run directory, else "
                        "./googlenet")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    p.add_argument("--image-size", type=int, default=None,
                   help="input height/width of the export; unset: the weights' crop size")
    p.add_argument("--check-images", default=None, metavar="PATH",
                   help="image file or folder to check the exports on; unset: the built-in "
                        "digits test images, preprocessed as the weights say")
    p.add_argument("--check-count", type=int, default=32, help="how many images to check on")


def _default_prefix(weights: str) -> Path:
    p = Path(weights)
    return p / "export" / "model" if p.is_dir() else Path("googlenet")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..sources import load_weights

    loaded = load_weights(args.weights)
    pre = loaded.preprocess
    if args.image_size is not None:
        if args.image_size < 32:
            raise UserError(f"--image-size {args.image_size}: GoogLeNet needs 32 or more")
        pre = replace(pre, crop=args.image_size, resize=max(pre.resize, args.image_size))
    if args.check_count < 1:
        raise UserError("--check-count must be at least 1")
    model = loaded.model.eval()
    prefix = Path(args.out) if args.out else _default_prefix(args.weights)
    check_writable_dir(prefix.parent, "--out")  # before the exports are traced, not after
    x, where = check_images(args.check_images, pre, args.check_count)
    meta = export_metadata(model, pre, loaded.class_names)
    print(f"weights: {loaded.source} (variant {model.config['variant']}, "
          f"{model.num_classes} classes); input {x.shape[1]}x{pre.crop}x{pre.crop}, dynamic batch; "
          f"aux heads left out", file=sys.stderr)
    example = x[:2] if len(x) >= 2 else x.repeat(2, 1, 1, 1)
    program = None
    failed = False
    for fmt in args.formats:
        path = Path(str(prefix) + FORMATS[fmt])
        if fmt == "torchscript":
            export_torchscript(model, path, example=example, metadata=meta)
        else:
            program = program or export_program(model, example)
            if fmt == "export":
                save_program(program, path, meta)
            else:
                export_onnx(program, path, example=example, opset=args.opset, metadata=meta)
        a = check_export(fmt, path, model, x)
        ok = a.max_abs_diff <= TOLERANCE[fmt] * max(1.0, a.max_abs_ref) and a.top1 == 1.0
        failed |= not ok
        print(f"{fmt:12s} {path}  max |logit diff| {a.max_abs_diff:.2e}, top-1 agreement "
              f"{a.top1:.2%} on {where}  {'ok' if ok else 'MISMATCH'}")
    return 1 if failed else 0
