"""``googlenet predict``: classify images or folders of images (or find objects in them, with
the weights of a detection run); a contact sheet of the predictions is saved as a picture. The
arguments are checked here; the task unit of the weights (googlenet.tasks.unit_for_weights)
predicts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from ..data.crops import CROP_CHOICES
from ..errors import UserError
from ..infer.modes import DEFAULT_BATCH_SIZE
from ..models.choices import AMP_CHOICES
from . import deprecated_option

DEFAULT_TOPK = 5
CALIBRATION_IMAGES = 256  # for the int8 modes: --calibration-count's default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    p.add_argument("--weights", required=True, metavar="SPEC",
                   help="a `googlenet train` run directory or checkpoint, a .safetensors file, "
                        "'imagenet' (torchvision's weights), a torchvision .pth, or caffe:FILE")
    p.add_argument("-k", "--topk", type=int, default=DEFAULT_TOPK, help="classes to show per image")
    p.add_argument("--crops", type=int, choices=CROP_CHOICES, default=1,
                   help="test-time crops per image, softmax averaged (§7 of the paper)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="most crops in one forward pass, as `eval --batch-size` (a detection run: "
                        "at most 16 images, each at its full size)")
    p.add_argument("--mode", default="eager",
                   help="inference runtime: eager, fold, channels_last, int8, ort, ort_int8, "
                        "compile, ov, ov_int8 (googlenet.infer.fast); precision is --amp")
    p.add_argument("--amp", nargs="?", const="bf16", default="none", choices=AMP_CHOICES,
                   help="mixed precision, as `train --amp`: bf16 (a bare --amp too) on the torch "
                        "modes or OpenVINO (--mode ov); fp16 on CUDA; auto: bf16 where native")
    p.add_argument("--calibration-images", default=None, metavar="PATH",
                   help="image file or folder to calibrate the int8 modes on (as `export "
                        "--calibration-images`); unset: the input images")
    p.add_argument("--calibration-count", type=int, default=CALIBRATION_IMAGES,
                   help="int8 modes: how many calibration images")
    deprecated_option(p, "--calibration", "calibration_images", "--calibration-images PATH")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads; unset: torch's choice")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads decoding images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--explain", action="store_true",
                   help="also write a Grad-CAM picture of the top-1 class over each image "
                        "(captioned, with a colour bar) into the output folder as "
                        "IMAGE_STEM.gradcam.png (needs captum: pip install 'googlenet[explain]')")
    p.add_argument("--explain-layer", default=None, metavar="LAYER",
                   help="layer for --explain: a stage (conv1 ... inception_5b) or dotted "
                        "submodule; unset: the deepest with at least a 7x7 map at the weights' "
                        "input size (inception_5b at 224 px, conv2 at 32 px)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder: contact-sheet.png (the images with their predictions), "
                        "the --explain pictures and, for a detection run, each image with its "
                        "boxes drawn (DIR/<name>.png); unset: predict/ in the run directory (in "
                        "the weights file's folder; runs/ for a named model), numbered "
                        "predict-2/, ... so nothing is overwritten, and no per-image drawings")
    p.add_argument("--no-sheet", action="store_true",
                   help="write no contact sheet (then nothing is written without --out or "
                        "--explain)")
    g = p.add_argument_group("detection runs (weights of `googlenet train --task detect`)")
    g.add_argument("--score-thresh", type=float, default=0.3,
                   help="show detections scoring at least this")


def _out_dir(args: argparse.Namespace) -> Optional[Path]:
    """Where the pictures go: --out, else a fresh predict/ (predict-2/, ...) in the run
    directory (a weights file's folder; runs/ for a named model such as imagenet); None when
    there is nothing to write (--no-sheet, no --explain) or the default place is not writable
    (said on stderr: the predictions themselves do not need it)."""
    from ..fileio import check_writable_dir

    if args.out is not None:
        check_writable_dir(args.out, "--out")
        return Path(args.out)
    if args.no_sheet and not args.explain:
        return None
    w = Path(args.weights)
    base = w if w.is_dir() else (w.parent if w.is_file() else Path("runs"))
    out, i = base / "predict", 1
    while out.exists():
        i += 1
        out = base / f"predict-{i}"
    try:
        check_writable_dir(out, "--out")
    except UserError as e:
        print(f"googlenet predict: no pictures written ({e}); pass --out DIR", file=sys.stderr)
        return None
    return out


def _check_args(args: argparse.Namespace) -> None:
    """Bad numbers and modes, before anything is loaded; --mode + --amp -> one fast mode."""
    from ..engine.distributed import resolve_device
    from ..infer import fast

    if args.topk < 1:
        raise UserError(f"--topk {args.topk}: must be at least 1")
    if args.calibration_count < 1:
        raise UserError(f"--calibration-count {args.calibration_count}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")
    if args.mode not in fast.MODES:
        raise UserError(f"--mode {args.mode}: choose one of {', '.join(fast.MODES)}")
    args.mode = fast.with_amp(args.mode, args.amp, resolve_device(args.device))


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.distributed import resolve_device
    from ..infer.predict import collect_inputs
    from ..sources import load_weights
    from ..tasks import unit_for_weights

    _check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    files, failures = collect_inputs(args.inputs)
    loaded = load_weights(args.weights)
    return unit_for_weights([loaded]).predict(args, loaded, files, failures, device,
                                              out_dir=lambda: _out_dir(args))


