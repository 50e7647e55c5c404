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

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from ..data.crops import multi_crop
from ..data.imaging import IMAGE_EXTENSIONS, ImageError, list_images, load_image
from ..data.preprocess import Preprocess


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
        try:
            os.stat(p)
        except FileNotFoundError:
            pass  # "no such file or folder" below
        except OSError as e:  # a name too long, permission denied: the real cause, named
            failures.append(Failure(str(p), f"{p}: {e.strerror or e}"))
            continue
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
        img = load_image(path)
    except ImageError as e:
        return e
    try:
        return multi_crop(img, pre, n_crops)  # (n_crops, C, crop, crop)
    except ImageError as e:  # too large once resized: refused before resizing
        return ImageError(f"{path}: {e}")


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
