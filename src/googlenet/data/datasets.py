"""Datasets: the built-in digits, image folders, CIFAR-10/100. One type, ``ImageDataset``.

``open_dataset(spec, split)`` is the single entry point (train, eval and predict all use it):

    None / "digits"      scikit-learn's 1,797 real 8x8 handwritten digits (shipped with sklearn, no
                         download), upscaled to 32x32 and replicated to RGB; a fixed stratified
                         split: 1,257 train / 180 val / 360 test, the same on every machine.
    "cifar10"/"cifar100" torchvision's datasets under ``root`` (downloaded when online); val is a
                         seeded ``val_fraction`` of the training set, test is their test set.
    PATH                 an image folder, either PATH/train/<class>/*, PATH/val/<class>/* (and
                         optionally PATH/test/<class>/*), or PATH/<class>/* split per class by a
                         seeded ``val_fraction`` into train and val.

Every dataset item is ``(transform(rgb_pil_image), label)``; ``load(i)`` gives the untransformed
RGB image, which multi-crop evaluation needs. Image folders are scanned once when opened: every
file is fully decoded (in threads), and the ones that fail (corrupt, truncated, not an image) are
skipped and listed in ``dataset.skipped``, or, with ``strict=True``, stop everything with a
``UserError`` naming the file. Grayscale, RGBA, palette, CMYK and 16-bit files become RGB
(``imaging.load_image``).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .imaging import IMAGE_EXTENSIONS, ImageError, list_images, load_image
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = ["ImageDataset", "ArrayImageDataset", "FolderImageDataset", "open_dataset",
           "default_eval_split", "default_preprocess", "default_image_size", "BUILTIN",
           "SPLITS", "DIGITS_SIZE"]

SPLITS = ("train", "val", "test")
BUILTIN = ("digits", "cifar10", "cifar100")

# The built-in digits: 8x8 images upscaled (bilinear) to this side. 32 is the smallest input
# GoogLeNet accepts (model.MIN_INPUT_SIZE) and the fastest to train on a CPU.
DIGITS_SIZE = 32
DIGITS_TEST, DIGITS_VAL = 360, 180  # of 1,797; the rest (1,257) is the training set
DIGITS_SPLIT_SEED = 0  # fixed, not --seed: the test set must be the same for every run
# Per-channel mean/std of the upscaled training digits (white strokes on black).
DIGITS_MEAN, DIGITS_STD = (0.306,) * 3, (0.324,) * 3
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# ---------------------------------------------------------------------------------------------
# Dataset types
# ---------------------------------------------------------------------------------------------

class ImageDataset(torch.utils.data.Dataset):
    """Images with integer labels. ``classes[label]`` is the class name."""

    def __init__(self, classes: Sequence[str], targets: Sequence[int], *,
                 transform: Optional[Callable[[Image.Image], Any]] = None,
                 skipped: Optional[list[tuple[str, str]]] = None, name: str = "",
                 split: str = "") -> None:
        self.classes = list(classes)
        self.targets = [int(t) for t in targets]
        self.transform = transform
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.name = name
        self.split = split

    def __len__(self) -> int:
        return len(self.targets)

    def _image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def load(self, i: int) -> tuple[Image.Image, int]:
        """The i-th image as an RGB PIL image, untransformed, and its label."""
        return self._image(i), self.targets[i]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, label = self.load(i)
        return (self.transform(img) if self.transform is not None else img), label

    def class_counts(self) -> list[int]:
        return np.bincount(np.asarray(self.targets, dtype=np.int64),
                           minlength=len(self.classes)).tolist()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, split={self.split!r}, {len(self)} images, "
                f"{len(self.classes)} classes, {len(self.skipped)} skipped)")


class ArrayImageDataset(ImageDataset):
    """Images held in memory as one uint8 array ``(N, H, W, 3)`` (digits, CIFAR)."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], classes: Sequence[str],
                 **kw: Any) -> None:
        super().__init__(classes, targets, **kw)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
        self.images = images

    def _image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])  # (H, W, 3) uint8 -> RGB


class FolderImageDataset(ImageDataset):
    """Image files on disk, one label each.

    ``load(i)`` raises ``ImageError`` if file i cannot be read (it changed on disk after the scan,
    or the scan was skipped with ``verify=False``), so evaluation can skip and count it. Item
    access (``dataset[i]``, what training uses) instead replaces such a file by the next readable
    one, records it in ``skipped`` and warns, unless ``strict``.
    """

    def __init__(self, files: Sequence[str | os.PathLike], targets: Sequence[int],
                 classes: Sequence[str], *, strict: bool = False, **kw: Any) -> None:
        super().__init__(classes, targets, **kw)
        self.files = [str(f) for f in files]
        self.strict = strict

    def _image(self, i: int) -> Image.Image:
        return load_image(self.files[i])

    def __getitem__(self, i: int) -> tuple[Any, int]:
        for k in range(min(len(self), 16)):
            j = (i + k) % len(self)
            try:
                return super().__getitem__(j)
            except ImageError as e:
                if self.strict:
                    raise
                self.skipped.append((self.files[j], str(e)))
                warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
        raise UserError(f"{self.name}: 16 consecutive images from index {i} cannot be read; "
                        f"first: {self.files[i]}")


# ---------------------------------------------------------------------------------------------
# Built-in digits
# ---------------------------------------------------------------------------------------------

def _digits(split: str, transform: Any) -> ArrayImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()  # (1797, 8, 8) float in [0, 16], labels 0-9; ships inside scikit-learn
    idx = np.arange(len(d.target))
    rest, test = train_test_split(idx, test_size=DIGITS_TEST, stratify=d.target,
                                  random_state=DIGITS_SPLIT_SEED)
    train, val = train_test_split(rest, test_size=DIGITS_VAL, stratify=d.target[rest],
                                  random_state=DIGITS_SPLIT_SEED)
    pick = {"train": train, "val": val, "test": test}[split]
    small = np.round(d.images[pick] * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    big = np.stack([np.asarray(Image.fromarray(x).resize((DIGITS_SIZE, DIGITS_SIZE),
                                                         Image.Resampling.BILINEAR))
                    for x in small])  # (N, 32, 32)
    rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=-1))  # (N, 32, 32, 3)
    return ArrayImageDataset(rgb, d.target[pick], [str(c) for c in range(10)],
                             transform=transform, name="digits", split=split)


# ---------------------------------------------------------------------------------------------
# CIFAR through torchvision
# ---------------------------------------------------------------------------------------------

def default_data_root() -> Path:
    return Path(os.environ.get("GOOGLENET_DATA", Path.home() / ".cache" / "googlenet" / "data"))


def _seeded_holdout(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class seeded split of indices into (keep, holdout); holdout ~= fraction of each class."""
    rng = np.random.default_rng(seed)
    keep, hold = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)  # both sides keep at least one image of the class
        else:
            n = 0
        hold.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(hold))


def _cifar(name: str, split: str, transform: Any, *, root: Optional[str], download: bool,
           val_fraction: float, seed: int) -> ArrayImageDataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root_path = Path(root) if root else default_data_root()
    use_test = split == "test" or (split == "val" and val_fraction <= 0)
    try:
        ds = cls(str(root_path), train=not use_test, download=download)
    except RuntimeError as e:  # "Dataset not found or corrupted"
        raise UserError(f"{name}: not found (or corrupt) under {root_path} ({e}). Give the "
                        f"data root where it was downloaded, or allow the download",
                        key="data_root") from None
    except OSError as e:  # URLError and friends: offline
        raise UserError(f"{name}: could not download to {root_path} ({e}). Offline? Download it "
                        f"elsewhere (torchvision.datasets.{cls.__name__}) and give that data root",
                        key="data_root") from None
    images, targets = np.asarray(ds.data), np.asarray(ds.targets)  # (N, 32, 32, 3) uint8, (N,)
    if not use_test:
        keep, hold = _seeded_holdout(targets, val_fraction, seed)
        pick = keep if split == "train" else hold
        images, targets = images[pick], targets[pick]
    return ArrayImageDataset(np.ascontiguousarray(images), targets, list(ds.classes),
                             transform=transform, name=name, split=split)


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------

def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return list_images(folder)  # the same listing as predict's: hidden files and folders skipped


def _scan(files: list[Path], *, strict: bool, verify: bool) -> tuple[list[bool], list[tuple[str, str]]]:
    """Decode every file once (threads: Pillow releases the GIL while decoding).
    Returns which files are good and (file, reason) for the bad ones."""
    if not verify:
        return [True] * len(files), []

    def check(p: Path) -> Optional[str]:
        try:
            load_image(p)
            return None
        except ImageError as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        errors = list(pool.map(check, files))
    if strict:
        for p, err in zip(files, errors):
            if err is not None:
                raise UserError(f"{err} (--strict: stopping at the first bad file; drop --strict "
                                f"to skip such files)")
    return [e is None for e in errors], [(str(p), e) for p, e in zip(files, errors) if e is not None]


def _check_same_classes(root: Path, splits: dict[str, Path]) -> list[str]:
    names = {s: [d.name for d in _class_dirs(p)] for s, p in splits.items()}
    ref = names["train"]
    for s, got in names.items():
        if got != ref:
            missing = sorted(set(ref) - set(got))
            extra = sorted(set(got) - set(ref))
            raise UserError(
                f"{root}: the classes of {s}/ differ from train/: "
                + (f"missing in {s}/: {missing}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"only in {s}/: {extra}" if extra else "")
                + ". Every split needs the same class folders")
    return ref


def _folder(root: Path, split: str, transform: Any, *, strict: bool, seed: int,
            val_fraction: float, verify: bool) -> FolderImageDataset:
    try:
        os.stat(root)
    except FileNotFoundError:
        raise UserError(f"{root}: no such folder. --data takes an image folder (PATH/train/<class>/, "
                        f"PATH/val/<class>/ or PATH/<class>/), or one of {list(BUILTIN)}") from None
    except OSError as e:  # permission denied, name too long, ...: the real cause, not "no such"
        raise UserError(f"{root}: {e.strerror or e}") from None
    if not root.is_dir():
        raise UserError(f"{root}: not a folder. --data takes an image folder or one of {list(BUILTIN)}")
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" in split_dirs:
        if split not in split_dirs and split != "val":
            raise UserError(f"{root}: has no {split}/ folder; available splits: "
                            f"{sorted(split_dirs) + ([] if 'val' in split_dirs else ['val (held out of train/)'])}")
        classes = _check_same_classes(root, split_dirs)
        if split in split_dirs:
            base, holdout = split_dirs[split], None
        else:  # train/ without val/: hold out a seeded fraction of train/ as val
            base, holdout = split_dirs["train"], "val"
        if split == "train" and "val" not in split_dirs:
            holdout = "train"
    else:
        if split == "test":
            raise UserError(f"{root}: has no test/ folder (a PATH/<class>/ folder is split into "
                            f"train and val only); use the val split instead")
        classes = [d.name for d in _class_dirs(root)]
        base, holdout = root, split
    if not classes:
        loose = _image_files(root)
        raise UserError(f"{base}: no class folders" + (
            f" (found {len(loose)} images directly inside; put each class's images in its own "
            f"sub-folder, PATH/<class>/image.jpg)" if loose else
            " and no images: expected PATH/<class>/*.jpg or PATH/train/<class>/*.jpg"))

    files: list[Path] = []
    targets: list[int] = []
    for label, name in enumerate(classes):
        found = _image_files(base / name)
        if not found:
            raise UserError(f"{base / name}: class {name!r} has no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
        files += found
        targets += [label] * len(found)
    good, skipped = _scan(files, strict=strict, verify=verify)
    files = [f for f, g in zip(files, good) if g]
    targets = [t for t, g in zip(targets, good) if g]
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(classes))
    for label, n in enumerate(counts):
        if n == 0:
            raise UserError(f"{base / classes[label]}: class {classes[label]!r} has no readable "
                            f"images: every file in it failed to decode ({skipped[0][1]} ...)")
    if holdout is not None:
        keep, hold = _seeded_holdout(np.asarray(targets), val_fraction, seed)
        pick = hold if holdout == "val" else keep
        files = [files[i] for i in pick]
        targets = [targets[i] for i in pick]
    if not files:
        raise UserError(f"{root}: the {split} split is empty (val_fraction={val_fraction}); "
                        f"add a {split}/ folder or raise val_fraction")
    return FolderImageDataset(files, targets, classes, strict=strict, transform=transform,
                              skipped=skipped, name=str(root), split=split)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------

def _kind(spec: str | os.PathLike | None) -> str:
    if spec is None or str(spec) == "digits":
        return "digits"
    if str(spec).lower() in ("cifar10", "cifar100"):
        return str(spec).lower()
    return "folder"


def open_dataset(spec: str | os.PathLike | None, split: str, *, transform: Any = None,
                 strict: bool = False, seed: int = 0, val_fraction: float = 0.1,
                 root: Optional[str] = None, download: bool = True,
                 verify: bool = True) -> ImageDataset:
    """Open one split ("train", "val" or "test") of a dataset (see the module docstring).

    ``verify=False`` skips decoding every image of a folder when it is opened (for very large
    folders); unreadable files are then skipped, with a warning, when they are first loaded.
    Raises ``UserError`` for anything wrong with the data, before any training starts.
    """
    if split not in SPLITS:
        raise UserError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    kind = _kind(spec)
    if kind == "digits":
        return _digits(split, transform)
    if kind.startswith("cifar"):
        return _cifar(kind, split, transform, root=root, download=download,
                      val_fraction=val_fraction, seed=seed)
    return _folder(Path(spec).expanduser(), split, transform, strict=strict, seed=seed,
                   val_fraction=val_fraction, verify=verify)


def default_eval_split(spec: str | os.PathLike | None) -> str:
    """"test" where the dataset has a test split (digits, CIFAR, PATH/test/), else "val"."""
    if _kind(spec) != "folder":
        return "test"
    return "test" if (Path(spec).expanduser() / "test").is_dir() else "val"


def default_image_size(spec: str | os.PathLike | None) -> int:
    """The training input size a dataset gets by default: 32 for digits/CIFAR, 224 for folders."""
    return 224 if _kind(spec) == "folder" else 32


def default_preprocess(spec: str | os.PathLike | None, image_size: Optional[int] = None) -> Preprocess:
    """The eval-time pipeline for a dataset at ``image_size`` (stored with trained weights)."""
    kind = _kind(spec)
    size = image_size or default_image_size(spec)
    if kind == "digits":
        # The whole digit is the image: resize to the input size, no center-crop margin.
        return Preprocess(crop=size, resize=size, mean=DIGITS_MEAN, std=DIGITS_STD,
                          interpolation="bilinear",
                          note=f"built-in digits: 8x8 upscaled to {DIGITS_SIZE} px RGB, resized to "
                               f"{size}, normalised by the training set's mean/std")
    if kind.startswith("cifar"):
        return Preprocess(crop=size, resize=size, mean=CIFAR_MEAN, std=CIFAR_STD,
                          interpolation="bilinear",
                          note=f"{kind}: 32 px images resized to {size}, CIFAR mean/std")
    return Preprocess.for_size(size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                               note=f"image folder: shorter side to {round(size * 256 / 224)}, "
                                    f"center crop {size}, ImageNet mean/std")
