"""``googlenet predict``: classify image files and folders of images.

    googlenet predict photo.jpg --weights imagenet           # torchvision's ImageNet weights
    googlenet predict images/ --weights runs/digits --json   # a trained run, machine-readable
    googlenet predict a.jpg --weights RUN --crops 144        # the paper's 144 crops, averaged

The weights bring their preprocessing (size, crop, mean/std, interpolation; for torchvision's
ImageNet weights also the explicit [-1, 1] input transform), which is printed, never guessed.
Folders are read recursively (by extension) and classified in batches, with a progress bar.

A file that cannot be used (missing, unreadable, corrupt or truncated, not an image, over
Pillow's decompression-bomb limit) gets one line on stderr naming it and why; every other file
is still classified. The exit status is 0 when every file was classified, 1 when any failed, and
2 for a bad argument (e.g. weights that cannot be loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from .crops import CROP_CHOICES, multi_crop
from .errors import UserError
from .imaging import IMAGE_EXTENSIONS, ImageError, list_images, load_image
from .preprocess import Preprocess

DEFAULT_TOPK = 5
CALIBRATION_IMAGES = 256  # for the int8 modes, when --calibration is not given


@dataclass
class Prediction:
    file: str
    classes: list[int]  # top-k class indices, most probable first
    names: list[str]
    probs: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "top": [{"class": c, "name": n, "prob": p} for c, n, p in
                                           zip(self.classes, self.names, self.probs)]}


@dataclass
class Failure:
    file: str
    error: str


def collect_inputs(paths: Sequence[str]) -> tuple[list[Path], list[Failure]]:
    """Command-line paths -> image files (folders expanded recursively, in sorted order) and
    failures for paths that name nothing usable. A file given explicitly is kept whatever its
    extension: ``load_image`` decides whether it is an image."""
    files: list[Path] = []
    failures: list[Failure] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            found = list_images(p)
            if not found:
                failures.append(Failure(str(p), f"{p}: folder contains no images "
                                                 f"(looked for {', '.join(IMAGE_EXTENSIONS)} files)"))
            files += found
        elif p.exists():
            files.append(p)
        else:
            failures.append(Failure(str(p), f"{p}: no such file or folder"))
    return files, failures


def _load(path: Path, pre: Preprocess, n_crops: int) -> torch.Tensor | ImageError:
    try:
        return multi_crop(load_image(path), pre, n_crops)  # (n_crops, C, crop, crop)
    except ImageError as e:
        return e


def iter_batches(files: Sequence[Path], pre: Preprocess, n_crops: int, images_per_batch: int,
                 workers: int) -> Iterator[tuple[list[Path], list[torch.Tensor], list[Failure]]]:
    """Decode and crop files in threads (Pillow releases the GIL while decoding), in order;
    yield (files, crops per file, failures) for every ``images_per_batch`` files."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(files), images_per_batch):
            chunk = list(files[start:start + images_per_batch])
            good, crops, bad = [], [], []
            for f, r in zip(chunk, pool.map(lambda f: _load(f, pre, n_crops), chunk)):
                if isinstance(r, ImageError):
                    bad.append(Failure(str(f), str(r)))
                else:
                    good.append(f)
                    crops.append(r)
            yield good, crops, bad


def topk(probs: torch.Tensor, k: int, class_names: Optional[Sequence[str]]) -> list[tuple[list[int], list[str], list[float]]]:
    """probs (B, K) -> per row: top-k indices, names, probabilities."""
    k = min(k, probs.shape[1])
    p, idx = probs.topk(k, dim=1)  # (B, k)
    out = []
    for pi, ii in zip(p.tolist(), idx.tolist()):
        names = [class_names[i] if class_names and i < len(class_names) else f"class {i}" for i in ii]
        out.append((ii, names, [float(x) for x in pi]))
    return out


def describe_preprocess(pre: Preprocess) -> str:
    s = (f"resize shorter side to {pre.resize} ({pre.interpolation}), center crop {pre.crop}, "
         f"mean {tuple(round(m, 4) for m in pre.mean)}, std {tuple(round(v, 4) for v in pre.std)}"
         + (", grayscale" if pre.grayscale else ""))
    return s + (f" [{pre.note}]" if pre.note else "")


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
                   help="inference mode: eager, fold, channels_last, bf16, int8, ort, ort_int8, "
                        "compile (see googlenet.fast)")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help=f"images to calibrate the int8 modes on; unset: the first "
                        f"{CALIBRATION_IMAGES} input images")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads; unset: torch's choice")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads decoding images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _calibration(spec: Optional[str], files: Sequence[Path], pre: Preprocess) -> torch.Tensor:
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


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import fast
    from .evaluate import resolve_device
    from .weights import load_weights

    if args.topk < 1:
        raise UserError(f"--topk {args.topk}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.mode not in fast.MODES:
        raise UserError(f"--mode {args.mode}: choose one of {', '.join(fast.MODES)}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    files, failures = collect_inputs(args.inputs)
    loaded = load_weights(args.weights)
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

    if args.json:
        doc = {"weights": loaded.source, "variant": model.config["variant"],
               "preprocess": asdict(pre), "crops": args.crops, "mode": args.mode,
               "predictions": [p.to_dict() for p in predictions],
               "errors": [asdict(f) for f in failures]}
        print(json.dumps(doc, indent=1))
    if failures:
        print(f"googlenet predict: {len(failures)} of {len(predictions) + len(failures)} inputs "
              f"failed", file=sys.stderr)
        return 1
    return 0
