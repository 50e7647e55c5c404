"""``googlenet export``: ONNX, TorchScript or torch.export, checked against eager."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..fileio import check_writable_dir
from ..interop.formats import (
    DEFAULT_OPSET, DETECTOR_MIN_OPSET, DETECTOR_OPSET, FORMATS, MIN_OPSET, PRECISION_FILES,
)
from . import deprecated_option

if TYPE_CHECKING:
    import torch


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


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..interop.export import (
        MAX_OPSET, TOLERANCE, check_export, check_images, check_opset, export_metadata,
        export_onnx, export_program, export_torchscript, save_program,
    )
    from ..data.preprocess import MAX_CROP
    from ..sources import load_weights

    if args.check_count < 1:
        raise UserError("--check-count must be at least 1")
    loaded = load_weights(args.weights)
    if loaded.task == "detect":
        return _export_detector(args, loaded)
    check_opset(args.opset, MIN_OPSET, MAX_OPSET)  # before anything is traced
    _check_formats(args)
    pre = loaded.preprocess
    if args.image_size is not None:
        if not 32 <= args.image_size <= MAX_CROP:
            raise UserError(f"--image-size {args.image_size}: GoogLeNet needs 32 to {MAX_CROP}")
        pre = replace(pre, crop=args.image_size, resize=max(pre.resize, args.image_size))
    model = loaded.model.eval()
    prefix = _prefix(args)
    check_writable_dir(prefix.parent, "--out")  # before the exports are traced, not after
    x, where = check_images(args.check_images, pre, args.check_count)
    meta = export_metadata(model, pre, loaded.class_names)
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


def _export_detector(args: argparse.Namespace, loaded) -> int:  # noqa: ANN001  (LoadedWeights)
    """A detection run: ONNX only (its post-processing has no TorchScript/torch.export path
    here), checked with onnxruntime against eager on real images and a blank one."""
    from ..interop.export import (
        DETECTOR_MAX_OPSET, check_detector_onnx, check_opset, detector_check_images,
        export_detector_onnx,
    )

    if args.formats not in (None, ["onnx"]):
        raise UserError("a detector exports to ONNX only: use --format onnx (or leave it out)",
                        key="formats")
    if args.precision != "fp32":
        raise UserError(f"--precision {args.precision}: a detector exports fp32 ONNX only "
                        f"(reduced precision is for classifiers)", key="precision")
    if loaded.model.config.get("detector") == "rcnn":
        raise UserError(f"{args.weights}: an R-CNN run (--arch rcnn) does not export: its "
                        f"proposals come from OpenCV's Selective Search, outside the network; "
                        f"export a detector of --arch fcos, retinanet or fasterrcnn")
    model = loaded.model.eval()
    cfg = model.config
    size = args.image_size or int(cfg["min_size"])
    if not 32 <= size <= 4096:
        raise UserError(f"--image-size {size}: GoogLeNet needs 32 to 4096")
    path = Path(str(_prefix(args)) + ".onnx")
    opset = args.opset if args.opset != DEFAULT_OPSET else DETECTOR_OPSET
    check_opset(opset, DETECTOR_MIN_OPSET, DETECTOR_MAX_OPSET)
    check_writable_dir(path.parent, "--out")  # before the export is traced, not after
    meta = {"format": "googlenet-detector", "model_config": cfg, "class_names": loaded.class_names,
            "input": "image: float (3, H, W) RGB in [0, 1]; normalised inside the graph",
            "outputs": "boxes (K, 4) xyxy px, scores (K,), labels (K,) = class index + 1"}
    print(f"weights: {loaded.source} ({cfg['detector']} on GoogLeNet {cfg['variant']}, "
          f"{model.num_classes} classes); input 3x{size}x{size}, one image", file=sys.stderr)
    export_detector_onnx(model, path, size=size, opset=opset, metadata=meta)
    images, where = detector_check_images(args.check_images, size, args.check_count)
    r = check_detector_onnx(path, model, images)
    ok = r["same_counts"] and r["same_labels"] and r["max_abs_diff"] <= 1e-3
    print(f"onnx         {path}  max |box/score diff| {r['max_abs_diff']:.2e}, same detection "
          f"counts {r['same_counts']}, same labels {r['same_labels']} on {where} "
          f"({r['images_without_detections']} without detections)  {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def _calibration(args: argparse.Namespace, pre) -> tuple[torch.Tensor, dict]:
    """(N, C, crop, crop) calibration images and the record of what they were."""
    from dataclasses import asdict

    import torch

    from ..data.crops import multi_crop
    from ..data.datasets import open_dataset
    from ..interop.export import check_images

    if args.calibration_count < 1:
        raise UserError("--calibration-count must be at least 1")
    if args.calibration_images is None:
        ds = open_dataset("digits", "train")
        n = min(args.calibration_count, len(ds))
        imgs = [ds.load(i)[0] for i in range(n)]
        source = {"dataset": "digits (built-in)", "split": "train", "indices": [0, n]}
    else:
        x, _ = check_images(args.calibration_images, pre, args.calibration_count,
                            what="--calibration-images")
        from ..data.imaging import list_images

        p = Path(args.calibration_images)
        files = (list_images(p) if p.is_dir() else [p])[:args.calibration_count]
        return x, {"source": str(p), "files": [str(f) for f in files], "count": len(x),
                   "preprocess": asdict(pre), "crops": "center (1 per image)"}
    x = torch.cat([multi_crop(im, pre, 1) for im in imgs])
    return x, {"source": source, "count": len(x), "preprocess": asdict(pre),
               "crops": "center (1 per image)"}


def _export_precision(args, model, pre, meta, prefix: Path, x: torch.Tensor,
                      example: torch.Tensor, where: str) -> int:
    from ..metrics.agreement import TOLERANCES
    from ..interop.export import export_precision

    calib, record = (_calibration(args, pre) if args.precision == "int8" else (None, None))
    tol = TOLERANCES["bf16" if args.precision in ("bf16", "fp16") else args.precision]
    written = export_precision(model, args.precision, prefix, example=example, check_x=x,
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
