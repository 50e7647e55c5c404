"""``googlenet predict``: classify images or folders of images."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..data.crops import CROP_CHOICES
from ..errors import UserError
from ..models.choices import AMP_CHOICES

if TYPE_CHECKING:  # run() imports what needs torch, so --help does not wait for it
    import torch

    from ..data.preprocess import Preprocess
    from ..infer.predict import Prediction

DEFAULT_TOPK = 5
CALIBRATION_IMAGES = 256  # for the int8 modes, when --calibration is not given


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    p.add_argument("--weights", required=True, metavar="SPEC",
                   help="a `googlenet train` run directory or checkpoint, a .safetensors file, "
                        "'imagenet' (torchvision's weights), a torchvision .pth, or caffe:FILE")
    p.add_argument("-k", "--topk", type=int, default=DEFAULT_TOPK, help="classes to show per image")
    p.add_argument("--crops", type=int, choices=CROP_CHOICES, default=1,
                   help="test-time crops per image, softmax averaged (§7 of the paper)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--batch-size", type=int, default=32, help="crops per forward pass")
    p.add_argument("--mode", default="eager",
                   help="inference runtime: eager, fold, channels_last, int8, ort, ort_int8, "
                        "compile, ov, ov_int8 (googlenet.infer.fast); precision is --amp")
    p.add_argument("--amp", nargs="?", const="bf16", default="none", choices=AMP_CHOICES,
                   help="mixed precision, as `train --amp`: bf16 (a bare --amp too) on the torch "
                        "modes or OpenVINO (--mode ov); fp16 on CUDA; auto: bf16 where native")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help=f"images to calibrate the int8 modes on; unset: the first "
                        f"{CALIBRATION_IMAGES} input images")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads; unset: torch's choice")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads decoding images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--explain", action="store_true",
                   help="also write a Grad-CAM heatmap of the top-1 class over each image, at the "
                        "image's size, into --out (needs captum: pip install 'googlenet[explain]')")
    p.add_argument("--explain-layer", default="inception_5b", metavar="LAYER",
                   help="layer for --explain: a stage (conv1 ... inception_5b) or dotted submodule")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where pictures go: the --explain heatmaps (IMAGE_STEM.gradcam.png; "
                        "default gradcam/), or, for a detection run, each image with its boxes "
                        "drawn (DIR/<name>.png)")
    g = p.add_argument_group("detection runs (weights of `googlenet train --task detect`)")
    g.add_argument("--score-thresh", type=float, default=0.3,
                   help="show detections scoring at least this")


def _calibration(spec: Optional[str], files: Sequence[Path], pre: Preprocess) -> torch.Tensor:
    import torch

    from ..data.crops import multi_crop
    from ..data.imaging import ImageError, list_images, load_image

    pool = list_images(spec) if spec else list(files)
    if spec and not Path(spec).is_dir():
        raise UserError(f"--calibration {spec}: not a folder of images")
    imgs = []
    for f in pool[:CALIBRATION_IMAGES]:
        try:
            imgs.append(multi_crop(load_image(f), pre, 1))
        except ImageError:
            continue
    if not imgs:
        raise UserError("no readable calibration images for the int8 mode: pass --calibration DIR")
    return torch.cat(imgs)


def _check_explain(args: argparse.Namespace, model: torch.nn.Module) -> None:
    """captum installed and --explain-layer in the model, before any image is classified."""
    from ..infer.explain import require_captum, resolve_layer

    require_captum()
    resolve_layer(model, args.explain_layer)
    if args.out is None:
        args.out = "gradcam"


def _explain(args: argparse.Namespace, model: torch.nn.Module, predictions: Sequence[Prediction],
             pre: Preprocess, names: Optional[Sequence[str]], device: torch.device) -> list:
    """Grad-CAM of each prediction's top-1 class into --out (googlenet.infer.explain)."""
    from ..infer.explain import explain_files

    explained = explain_files(model, [p.file for p in predictions],
                              [p.classes[0] for p in predictions], pre, args.out,
                              layer=args.explain_layer, class_names=names, device=device)
    print(f"explain: wrote {len(explained)} Grad-CAM heatmaps (top-1 class, layer "
          f"{args.explain_layer}) to {args.out}", file=sys.stderr)
    return explained


def _check_args(args: argparse.Namespace) -> None:
    """Bad numbers and modes, before anything is loaded; --mode + --amp -> one fast mode."""
    from ..engine.distributed import resolve_device
    from ..infer import fast

    if args.topk < 1:
        raise UserError(f"--topk {args.topk}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")
    if args.mode not in fast.MODES:
        raise UserError(f"--mode {args.mode}: choose one of {', '.join(fast.MODES)}")
    args.mode = fast.with_amp(args.mode, args.amp, resolve_device(args.device))


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..infer import fast
    from ..engine.distributed import resolve_device
    from ..infer.predict import (
        Prediction, collect_inputs, describe_preprocess, iter_batches, topk,
    )
    from ..sources import load_weights

    _check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    files, failures = collect_inputs(args.inputs)
    loaded = load_weights(args.weights)
    if loaded.task == "detect":
        return _run_detection(args, loaded, files, failures, device)
    if args.explain:
        _check_explain(args, loaded.model)
    pre = loaded.preprocess
    names = loaded.class_names
    model = loaded.model.eval()
    print(f"weights: {loaded.source} (variant {model.config['variant']}, {model.num_classes} "
          f"classes{'' if names else ', no class names'})", file=sys.stderr)
    print(f"preprocessing: {describe_preprocess(pre)}"
          + ("; then the model's own input_transform (to [-1, 1], as torchvision)"
             if model.config.get("transform_input") else ""), file=sys.stderr)

    calibration = None
    if fast.MODES[args.mode].needs_calibration:
        calibration = _calibration(args.calibration, files, pre)
    runner = fast.prepare(model, args.mode, device=device, calibration=calibration,
                          image_size=pre.crop, threads=args.threads)
    for note in runner.notes:
        print(f"mode {args.mode}: {note}", file=sys.stderr)

    for f in failures:  # paths that named nothing: reported first, once
        print(f"googlenet predict: error: {f.error}", file=sys.stderr)
    predictions: list[Prediction] = []
    per_batch = max(1, args.batch_size // args.crops)
    bar = tqdm(total=len(files), unit="img", disable=True if args.no_progress or len(files) < 2 else None,
               file=sys.stderr, desc="predict")
    for good, crops, bad in iter_batches(files, pre, args.crops, per_batch, args.workers):
        for f in bad:
            bar.write(f"googlenet predict: error: {f.error}", file=sys.stderr)
        failures += bad
        if good:
            x = torch.cat(crops)  # (images * crops, C, crop, crop)
            probs = torch.cat([runner(part).float().softmax(-1).cpu()
                               for part in x.split(args.batch_size)])
            probs = probs.view(len(good), args.crops, -1).mean(1)  # softmax averaged over crops
            for f, (cls, nm, pr) in zip(good, topk(probs, args.topk, names)):
                p = Prediction(str(f), cls, nm, pr)
                predictions.append(p)
                if not args.json:
                    bar.write(f"{p.file}: " + ", ".join(f"{n} {q:.1%}" for n, q in zip(nm, pr)),
                              file=sys.stdout)
        bar.update(len(good) + len(bad))
    bar.close()

    explained = _explain(args, model, predictions, pre, names, device) if args.explain else []
    if args.json:
        doc = {"weights": loaded.source, "variant": model.config["variant"],
               "preprocess": asdict(pre), "crops": args.crops, "mode": args.mode,
               "predictions": [p.to_dict() for p in predictions],
               "errors": [asdict(f) for f in failures]}
        if args.explain:
            doc["explanations"] = [e.to_dict() for e in explained]
        print(json.dumps(doc, indent=1))
    if failures:
        print(f"googlenet predict: {len(failures)} of {len(predictions) + len(failures)} inputs "
              f"failed", file=sys.stderr)
        return 1
    return 0


def _run_detection(args: argparse.Namespace, loaded, files, failures, device) -> int:  # noqa: ANN001
    """Boxes, class names and scores per image (text or --json); --out DIR: images with the
    boxes drawn (torchvision.utils.draw_bounding_boxes)."""
    from ..infer.detect import predict_files

    if not 0 <= args.score_thresh <= 1:
        raise UserError(f"--score-thresh {args.score_thresh}: must be in [0, 1]")
    cfg = loaded.model.config
    print(f"weights: {loaded.source} ({cfg['detector']} on GoogLeNet {cfg['variant']}, "
          f"{loaded.model.num_classes} classes, {cfg['min_size']} px)", file=sys.stderr)
    results, bad = predict_files(loaded, files, device=device, score_thresh=args.score_thresh,
                                 batch_size=min(args.batch_size, 16), out=args.out, amp=args.amp)
    errors = [asdict(f) for f in failures] + [{"file": f, "error": why} for f, why in bad]
    if args.json:
        print(json.dumps({"weights": loaded.source, "task": "detect",
                          "score_thresh": args.score_thresh, "predictions": results,
                          "errors": errors}, indent=1))
    else:
        for r in results:
            dets = ", ".join(f"{n} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                             for n, s, b in zip(r["names"], r["scores"], r["boxes"]))
            print(f"{r['file']}: {len(r['names'])} object(s)" + (f": {dets}" if dets else ""))
    for e in errors:
        print(f"googlenet predict: error: {e['error']}", file=sys.stderr)
    if args.out:
        print(f"drawn images: {args.out}", file=sys.stderr)
    return 1 if errors else 0
