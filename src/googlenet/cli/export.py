"""``googlenet export``: ONNX, TorchScript or torch.export, checked against eager. The arguments
are checked here; the task unit of the weights (googlenet.tasks.unit_for_weights) exports."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..interop.formats import (
    DEFAULT_OPSET, DETECTOR_MIN_OPSET, DETECTOR_OPSET, FORMATS, MIN_OPSET,
)
from . import deprecated_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, metavar="SPEC",
                   help="run directory, checkpoint, .safetensors, 'imagenet', torchvision .pth, "
                        "or caffe:FILE")
    p.add_argument("--format", nargs="+", choices=list(FORMATS), default=None,
                   dest="formats", help="what to write (default: all three; a detector: onnx; "
                                        "--precision other than fp32: its own files)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (as --out of train, eval and predict); unset: RUN/export "
                        "for a run directory, else the current folder")
    p.add_argument("--name", default=None, metavar="NAME",
                   help="file name without extension (NAME.onnx, NAME.torchscript.pt, NAME.pt2, "
                        "NAME.int8.onnx, ...); unset: model for a run directory, else googlenet")
    deprecated_option(p, "-o", "prefix", "--out DIR --name NAME", metavar="PREFIX")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset ({MIN_OPSET} up to the newest this torch writes; a "
                        f"detector: {DETECTOR_MIN_OPSET} up to its exporter's newest, default "
                        f"{DETECTOR_OPSET})")
    p.add_argument("--image-size", type=int, default=None,
                   help="input height/width of the export; unset: the weights' crop size")
    p.add_argument("--check-images", default=None, metavar="PATH",
                   help="image file or folder to check the exports on; unset: the built-in "
                        "digits test images, preprocessed as the weights say")
    p.add_argument("--check-count", type=int, default=32, help="how many images to check on")
    p.add_argument("--precision", choices=["fp32", "int8", "bf16", "fp16"], default="fp32",
                   help="fp32: --format's files. int8: ONNX QDQ (onnxruntime quantize_static) "
                        "and OpenVINO IR (NNCF), calibrated on --calibration-images; bf16: "
                        "OpenVINO IR run in bf16 (CPUs with native bf16); fp16: ONNX with fp16 "
                        "weights and activations. Each with a PATH.json sidecar: calibration "
                        "record and measured agreement")
    p.add_argument("--calibration-images", default=None, metavar="PATH",
                   help="int8: image file or folder to calibrate on (as `predict "
                        "--calibration-images`); unset: the built-in digits train images, "
                        "preprocessed as the weights say")
    p.add_argument("--calibration-count", type=int, default=256,
                   help="int8: how many calibration images")


def _prefix(args: argparse.Namespace) -> Path:
    """The output path without extension: --out DIR / --name NAME (defaults: RUN/export/model
    for a run directory, else ./googlenet), or the deprecated -o PREFIX as given."""
    if getattr(args, "prefix", None):
        if args.out or args.name:
            raise UserError("-o PREFIX is the old spelling of --out DIR --name NAME; give one or "
                            "the other", key="out")
        return Path(args.prefix)
    if args.name is not None and (not args.name or Path(args.name).name != args.name):
        raise UserError(f"--name {args.name!r}: a file name without a folder (the folder is "
                        f"--out)", key="name")
    run = Path(args.weights).is_dir()
    return (Path(args.out or (Path(args.weights) / "export" if run else "."))
            / (args.name or ("model" if run else "googlenet")))


def run(args: argparse.Namespace) -> int:
    from ..sources import load_weights
    from ..tasks import unit_for_weights

    if args.check_count < 1:
        raise UserError("--check-count must be at least 1")
    loaded = load_weights(args.weights)
    return unit_for_weights([loaded]).export(args, loaded, lambda: _prefix(args))






