"""googlenet.data: the built-in digits, image folders (layouts, bad files, bad layouts), CIFAR
through torchvision against a tiny file in CIFAR's own format."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.data.datasets import (DIGITS_SIZE, default_eval_split, default_image_size,
                            default_preprocess, open_dataset)
from googlenet.errors import UserError


def _img(path, size=(40, 36), mode="RGB", value=None, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if value is None else \
        np.full((size[1], size[0], 3), value, np.uint8)
    Image.fromarray(arr).convert(mode).save(path, format=fmt)
    return path


def _folder(root, classes=("ant", "bee", "cat"), n=5, ext=".png"):
    for c in classes:
        for i in range(n):
            _img(root / c / f"{i}{ext}")
    return root


# -- built-in digits ------------------------------------------------------------------------

def test_digits_fixed_split():
    sets = {s: open_dataset(None, s) for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [1257, 180, 360]
    for d in sets.values():
        assert d.classes == [str(i) for i in range(10)]
        assert min(d.class_counts()) >= 0.09 * len(d) and max(d.class_counts()) <= 0.11 * len(d)
    # Disjoint: no image appears in two splits (digits has a handful of exact duplicates, so
    # compare the split's index sets through the images' bytes only within tolerance).
    keys = {s: {d.images[i].tobytes() for i in range(len(d))} for s, d in sets.items()}
    assert len(keys["test"] & keys["train"]) <= 3 and len(keys["val"] & keys["train"]) <= 3
    # Same split every time, independent of the seed.
    again = open_dataset("digits", "test", seed=123)
    assert np.array_equal(again.images, sets["test"].images) and again.targets == sets["test"].targets
    img, label = sets["train"].load(0)
    assert img.mode == "RGB" and img.size == (DIGITS_SIZE, DIGITS_SIZE) and label == sets["train"].targets[0]
    a = np.asarray(img)
    assert np.array_equal(a[..., 0], a[..., 2]) and a.max() > 200  # grey replicated, full range


def test_digits_transform_and_defaults():
    pre = default_preprocess(None, 48)
    ds = open_dataset(None, "val", transform=pre.eval_transform())
    x, y = ds[3]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and isinstance(y, int)
    assert abs(float(x.mean())) < 1.0  # normalised
    assert default_eval_split(None) == "test" and default_eval_split("cifar10") == "test"
    assert default_image_size(None) == 32 and default_image_size("/some/folder") == 224
    assert default_preprocess("/x", 224).resize == 256


# -- image folders -----------------------------------------------------------------------------

def test_train_val_layout(tmp_path):
    _folder(tmp_path / "train", n=4)
    _folder(tmp_path / "val", n=2, ext=".jpg")
    tr = open_dataset(tmp_path, "train")
    va = open_dataset(tmp_path, "val")
    assert tr.classes == va.classes == ["ant", "bee", "cat"]
    assert len(tr) == 12 and len(va) == 6 and tr.class_counts() == [4, 4, 4]
    assert default_eval_split(tmp_path) == "val"
    with pytest.raises(UserError, match="no test/"):
        open_dataset(tmp_path, "test")
    _folder(tmp_path / "test", n=1, ext=".webp")
    assert default_eval_split(tmp_path) == "test" and len(open_dataset(tmp_path, "test")) == 3


def test_class_folder_split_is_seeded_and_disjoint(tmp_path):
    _folder(tmp_path, n=10)
    tr = open_dataset(tmp_path, "train", val_fraction=0.2, seed=1)
    va = open_dataset(tmp_path, "val", val_fraction=0.2, seed=1)
    assert len(tr) == 24 and len(va) == 6 and va.class_counts() == [2, 2, 2]
    assert not set(tr.files) & set(va.files)
    assert open_dataset(tmp_path, "val", val_fraction=0.2, seed=1).files == va.files
    assert open_dataset(tmp_path, "val", val_fraction=0.2, seed=2).files != va.files
    with pytest.raises(UserError, match="no test/"):
        open_dataset(tmp_path, "test")


def test_formats_and_modes_become_rgb(tmp_path):
    root = tmp_path / "d"
    _img(root / "a" / "rgb.jpg")
    _img(root / "a" / "gray.png", mode="L")
    _img(root / "a" / "rgba.png", mode="RGBA")
    _img(root / "a" / "pal.png", mode="P")
    _img(root / "a" / "cmyk.jpg", mode="CMYK")
    _img(root / "a" / "x.webp")
    _img(root / "a" / "x.bmp")
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(root / "a" / "deep16.png")
    _img(root / "b" / "0.png")
    ds = open_dataset(root, "train", val_fraction=0.0)
    assert len(ds) == 9 and not ds.skipped
    for i in range(len(ds)):
        img, _ = ds.load(i)
        assert img.mode == "RGB"
    deep = ds.files.index(str(root / "a" / "deep16.png"))
    assert abs(int(np.asarray(ds.load(deep)[0])[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1


def test_corrupt_files_skipped_listed_or_strict(tmp_path):
    _folder(tmp_path / "train", n=3)
    _folder(tmp_path / "val", n=1)
    (tmp_path / "train" / "ant" / "text.jpg").write_bytes(b"this is not an image")
    good = (tmp_path / "train" / "bee" / "0.png").read_bytes()
    (tmp_path / "train" / "bee" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored: not an image extension")
    ds = open_dataset(tmp_path, "train")
    assert len(ds) == 9
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in ds.skipped) == ["cut.png", "text.jpg"]
    assert all(reason for _, reason in ds.skipped)
    with pytest.raises(UserError, match=r"(cut\.png|text\.jpg).*--strict"):
        open_dataset(tmp_path, "train", strict=True)


@pytest.mark.parametrize("case", ["missing", "empty", "loose_files", "empty_class",
                                  "unreadable_class", "mismatch"])
def test_bad_folders_raise_user_errors(tmp_path, case):
    root = tmp_path / "data"
    if case == "empty":
        root.mkdir()
    elif case == "loose_files":
        _img(root / "a.png")
    elif case == "empty_class":
        _folder(root, classes=("a", "b"), n=2)
        (root / "c").mkdir()
    elif case == "unreadable_class":
        _folder(root, classes=("a",), n=2)
        (root / "b").mkdir()
        (root / "b" / "x.jpg").write_bytes(b"junk")
    elif case == "mismatch":
        _folder(root / "train", classes=("a", "b"), n=2)
        _folder(root / "val", classes=("a", "c"), n=1)
    expect = {"missing": "no such folder", "empty": "no class folders",
              "loose_files": "own sub-folder", "empty_class": "'c' has no images",
              "unreadable_class": "'b' has no readable images",
              "mismatch": r"missing in val/: \['b'\]; only in val/: \['c'\]"}[case]
    with pytest.raises(UserError, match=expect):
        open_dataset(root, "train")


# -- CIFAR through torchvision, from a tiny file in CIFAR's format ---------------------------------

def _write_cifar(root, monkeypatch, name: str, n_train: int = 40, n_test: int = 10):
    """Files in exactly torchvision's expected layout (pickled dicts, uint8 rows of 3*32*32), with
    the class's md5 table patched to these files' sums so torchvision's integrity check passes."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    n_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def write(fname, obj):
        (folder / fname).write_bytes(pickle.dumps(obj))
        return [fname, hashlib.md5((folder / fname).read_bytes()).hexdigest()]

    def batch(n, offset):
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        data[:, 0] = np.arange(n) + offset  # image id in the first red pixel
        return {"data": data, label_key: [(i + offset) % n_classes for i in range(n)]}

    per = n_train // len(cls.train_list)
    train_list = [write(f, batch(per, i * per)) for i, (f, _) in enumerate(cls.train_list)]
    test_list = [write(cls.test_list[0][0], batch(n_test, 200))]
    meta = write(cls.meta["filename"], {cls.meta["key"]: [f"class{i}" for i in range(n_classes)]})
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": meta[1]})


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_local_files(tmp_path, monkeypatch, name):
    _write_cifar(tmp_path, monkeypatch, name)
    tr = open_dataset(name, "train", root=str(tmp_path), download=False, val_fraction=0.25)
    va = open_dataset(name, "val", root=str(tmp_path), download=False, val_fraction=0.25)
    te = open_dataset(name, "test", root=str(tmp_path), download=False)
    assert len(tr) + len(va) == 40 and len(te) == 10
    # val: a seeded quarter of each class (CIFAR-10: 4 images per class; CIFAR-100 here: <= 1
    # image per class, which stays in train)
    assert len(va) == (10 if name == "cifar10" else 0)
    n_classes = 10 if name == "cifar10" else 100
    assert len(tr.classes) == n_classes and tr.classes[3] == "class3"
    ids = lambda d: {int(d.images[i, 0, 0, 0]) for i in range(len(d))}  # noqa: E731
    assert not ids(tr) & ids(va) and ids(te) == set(range(200, 210))
    img, label = te.load(4)
    assert img.size == (32, 32) and img.mode == "RGB" and label == 4
    x, _ = open_dataset(name, "test", root=str(tmp_path), download=False,
                        transform=default_preprocess(name, 32).eval_transform())[0]
    assert x.shape == (3, 32, 32)


def test_cifar_missing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_dataset("cifar10", "train", root=str(tmp_path), download=False)


def test_file_broken_after_scan(tmp_path):
    """load(i) raises for a file that broke after the scan (eval skips and counts it); item access
    (training) moves on to the next readable image, or raises with strict."""
    from googlenet.data.imaging import ImageError

    _folder(tmp_path, classes=("a",), n=3)
    ds = open_dataset(tmp_path, "train", val_fraction=0.0)
    Path(ds.files[0]).write_bytes(b"broken now")
    with pytest.raises(ImageError, match="0.png"):
        ds.load(0)
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        img, label = ds[0]
    assert img.size == (40, 36) and ds.skipped[-1][0] == ds.files[0]
    ds.strict = True
    with pytest.raises(ImageError):
        ds[0]
