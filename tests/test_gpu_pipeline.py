"""The GPU input pipeline (data/gpu_pipeline.py, ``--loader gpu``) on CPU tensors: the same code
that runs on a GPU, so its semantics are checked without one. The draws (crop area and aspect,
flips, photometric factors and order, PCA lighting) come from the per-sample seeded generator
and stay inside the recipe's ranges; each photometric step equals torchvision's functional op;
with augmentation off the output is the resized, normalised image; files nvJPEG cannot take go
through the CPU decode; unreadable bytes are skipped and named; and a training run with it
resumes exactly."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from googlenet.cli import main as cli_main
from googlenet.data import gpu_pipeline as gp
from googlenet.data.datasets import open_dataset
from googlenet.engine.prefetch import prefetched
from googlenet.engine.sampling import SeededDataset, sample_seed

PAPER = dict(size=32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
             interpolations=("bilinear", "box", "nearest", "bicubic"), hflip=0.5, brightness=0.4,
             contrast=0.4, saturation=0.4, hue=0.1, pca_lighting=0.1)
OFF = dict(size=32, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), interpolations=("bilinear",),
           hflip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, pca_lighting=0.0)


def _picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.sin(xx / 5.0) * 60 + np.cos(yy / 4.0) * 60 + 120
    img = np.stack([base, 255 - base, base * 0.5 + 60], -1) + rng.normal(0, 5, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _folder(root: Path, n: int = 6, size=(48, 40)) -> Path:
    """root/train/{a,b}/*.jpg and root/val/{a,b}/*.jpg; plus one PNG in train/a."""
    for split, k in (("train", n), ("val", 2)):
        for c in ("a", "b"):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                Image.fromarray(_picture(*size, seed=i + 10 * (c == "b"))).save(d / f"{i}.jpg", quality=92)
    Image.fromarray(_picture(*size, seed=99)).save(root / "train" / "a" / "png.png")
    return root


def test_draws_are_seeded_and_inside_the_recipe_ranges():
    p = gp.AugmentParams(**PAPER)
    draws = []
    for i in range(400):
        torch.manual_seed(sample_seed(0, 0, i))
        draws.append(p.draw(500, 375))
    torch.manual_seed(sample_seed(0, 0, 7))
    assert torch.equal(p.draw(500, 375), draws[7])  # a function of (seed, epoch, index) only
    d = torch.stack(draws)
    top, left, h, w = d[:, 1], d[:, 2], d[:, 3], d[:, 4]
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 375).all() and (left + w <= 500).all()
    area, aspect = h * w / (500 * 375), w / h
    assert area.min() >= 0.08 - 0.01 and area.max() <= 1.0
    assert aspect.min() >= 0.75 - 0.02 and aspect.max() <= 4 / 3 + 0.02
    assert set(d[:, 0].long().tolist()) == {0, 1, 2, 3}  # every interpolation is used
    assert 0.4 < d[:, 5].mean() < 0.6  # flips
    orders = d[:, 6:10].long()
    assert all(sorted(o.tolist()) == [0, 1, 2, 3] for o in orders)
    for k, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.1, 0.1)]):
        f = d[:, 10 + k]
        assert f.min() >= lo and f.max() <= hi and f.std() > 0.05 * (hi - lo)
    assert abs(d[:, 14:17].std().item() - 0.1) < 0.02


def test_draws_with_augmentation_off_are_the_identity():
    d = gp.AugmentParams(**OFF).draw(40, 40)
    assert d[1:5].tolist() == [0, 0, 40, 40] and d[5] == 0
    assert d[10:14].tolist() == [1.0, 1.0, 1.0, 0.0] and not d[14:].any()


@pytest.mark.parametrize("op,fn", [(0, TF.adjust_brightness), (1, TF.adjust_contrast),
                                   (2, TF.adjust_saturation), (3, TF.adjust_hue)])
def test_each_photometric_step_is_torchvisions(op, fn):
    """Per-sample factors applied to a batch equal torchvision's functional op with that
    sample's factor."""
    aug = gp.GpuAugment(gp.AugmentParams(**{**OFF, "brightness": 0.5, "contrast": 0.5,
                                            "saturation": 0.5, "hue": 0.2}), [0.5] * 3, [0.5] * 3)
    x = torch.rand(3, 3, 8, 8)
    params = torch.zeros(3, gp.N_PARAMS)
    params[:, 6:10] = torch.tensor([op] + [o for o in range(4) if o != op], dtype=torch.float32)
    factors = [0.7, 1.3, 1.0] if op < 3 else [-0.15, 0.1, 0.0]
    params[:, 10:14] = torch.tensor(gp._IDENTITY_FACTORS)
    params[:, 10 + op] = torch.tensor(factors)
    out = aug._photometric(x.clone(), params)
    for i, f in enumerate(factors):
        assert torch.allclose(out[i], fn(x[i], f), atol=1e-5), (op, f)


def test_order_of_the_photometric_steps_follows_each_sample():
    aug = gp.GpuAugment(gp.AugmentParams(**{**OFF, "brightness": 0.5, "contrast": 0.5}),
                        [0.5] * 3, [0.5] * 3)
    x = torch.rand(2, 3, 8, 8)
    params = torch.zeros(2, gp.N_PARAMS)
    params[:, 10:14] = torch.tensor([1.5, 0.5, 1.0, 0.0])
    params[0, 6:10] = torch.tensor([0, 1, 2, 3.0])  # brightness, then contrast
    params[1, 6:10] = torch.tensor([1, 0, 2, 3.0])  # contrast, then brightness
    out = aug._photometric(x.clone(), params)
    assert torch.allclose(out[0], TF.adjust_contrast(TF.adjust_brightness(x[0], 1.5), 0.5), atol=1e-6)
    assert torch.allclose(out[1], TF.adjust_brightness(TF.adjust_contrast(x[1], 0.5), 1.5), atol=1e-6)


def _batch(ds, indices, seed=0):
    items = [SeededDataset(ds)[(i, sample_seed(seed, 0, i))] for i in indices]
    return gp.encoded_collate(items)


def test_encoded_items_hand_jpegs_to_the_decoder_and_decode_the_rest(tmp_path):
    root = _folder(tmp_path / "data")
    cmyk = root / "train" / "b" / "cmyk.jpg"
    Image.fromarray(_picture(48, 40, 3)).convert("CMYK").save(cmyk)
    rotated = root / "train" / "b" / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the picture is 40 wide, 48 high once upright
    Image.fromarray(_picture(48, 40, 4)).save(rotated, exif=exif)
    grey = root / "train" / "b" / "grey.jpg"
    Image.fromarray(_picture(48, 40, 5)[..., 0]).save(grey)
    train = open_dataset(str(root), "train")
    ds = gp.EncodedImages(train, gp.AugmentParams(**OFF))
    kinds = {}
    for i, f in enumerate(train.files):
        payload, params, label, idx = ds[i]
        assert idx == i and label == train.targets[i]
        kinds[Path(f).name] = (payload.dim(), params[1:5].tolist())
    # With crops off, the crop is the central square: (top, left, h, w) tell the size read.
    assert kinds["0.jpg"] == (1, [0, 4, 40, 40]) and kinds["grey.jpg"][0] == 1  # bytes for nvJPEG
    assert kinds["png.png"][0] == 3 and kinds["cmyk.jpg"][0] == 3  # decoded on the CPU
    assert kinds["rot.jpg"] == (3, [4, 0, 40, 40])  # EXIF applied: 40 wide, 48 high


def test_with_augmentation_off_the_output_is_the_resized_normalised_image(tmp_path):
    root = _folder(tmp_path / "data", size=(40, 40))
    train = open_dataset(str(root), "train")
    params = gp.AugmentParams(**OFF)
    ds = gp.EncodedImages(train, params)
    aug = gp.GpuAugment(params, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], files=train.files)
    x, labels = aug(_batch(ds, range(len(ds))), torch.device("cpu"))
    assert x.shape == (len(ds), 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert labels.tolist() == train.targets
    for i in range(len(ds)):
        ref = TF.resize(TF.pil_to_tensor(train.load(i)[0]).float() / 255, [32, 32], antialias=True)
        ref = TF.normalize(ref, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
        assert (x[i] - ref).abs().mean() < 0.03  # libjpeg vs Pillow's decode, same resize


def test_flip_and_every_interpolation_run_and_stay_finite(tmp_path):
    root = _folder(tmp_path / "data")
    train = open_dataset(str(root), "train")
    params = gp.AugmentParams(**PAPER)
    ds = gp.EncodedImages(train, params)
    aug = gp.GpuAugment(params, [0.5] * 3, [0.25] * 3, files=train.files)
    batch = _batch(ds, range(len(ds)))
    flat, sizes, pixels, params, labels, index = batch
    assert (sizes < 0).sum() == len(pixels) == 1 and flat.numel() == sizes.clamp_min(0).sum()
    for mode in range(4):  # each interpolation on every sample
        p = params.clone()
        p[:, 0] = mode
        x, _ = aug((flat, sizes, pixels, p, labels, index), torch.device("cpu"))
        assert torch.isfinite(x).all() and x.shape[1:] == (3, 32, 32)
    p = params.clone()
    p[:, 5], p[:, 6:] = 0, gp.AugmentParams(**OFF).draw(48, 40)[6:]
    plain, _ = aug((flat, sizes, pixels, p, labels, index), torch.device("cpu"))
    p[:, 5] = 1
    flipped, _ = aug((flat, sizes, pixels, p, labels, index), torch.device("cpu"))
    assert torch.allclose(flipped, plain.flip(-1))


def test_undecodable_bytes_are_replaced_and_named(tmp_path):
    root = _folder(tmp_path / "data")
    train = open_dataset(str(root), "train")
    params = gp.AugmentParams(**OFF)
    ds = gp.EncodedImages(train, params)
    aug = gp.GpuAugment(params, [0.5] * 3, [0.25] * 3, files=train.files)
    items = [SeededDataset(ds)[(i, i)] for i in (0, 1, 2)]
    broken = torch.frombuffer(bytearray(b"\xff\xd8\xff" + b"\x00" * 64), dtype=torch.uint8)
    items[1] = (broken, *items[1][1:])
    batch = gp.encoded_collate(items)
    labels = batch[4]
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        x, lab = aug(batch, torch.device("cpu"))
    assert x.shape[0] == 3 and lab[1] == labels[0]  # replaced by a readable sample of the batch
    assert aug.skipped and aug.skipped[0][0] == train.files[1]


def test_jpeg_folders_are_recognised():
    assert gp.is_jpeg_folder(["a.jpg", "b.JPEG", "c.png"])
    assert not gp.is_jpeg_folder(["a.png", "b.png", "c.jpg"]) and not gp.is_jpeg_folder([])


def test_prefetched_runs_in_line_off_the_gpu():
    seen = []
    out = list(prefetched([1, 2, 3], lambda b, d: seen.append(b) or b * 10, torch.device("cpu")))
    assert out == [10, 20, 30] and seen == [1, 2, 3]
    assert list(prefetched([1, 2], None, torch.device("cpu"))) == [1, 2]


ARGS = ["--variant", "bn", "--no-aux", "--batch-size", "4", "--image-size", "32", "--workers",
        "0", "--no-progress", "--device", "cpu", "--set", "tensorboard=false", "--set",
        "plots=false", "--set", "average=none", "--deterministic"]


def test_training_with_the_gpu_loader_resumes_exactly(tmp_path):
    """--loader gpu on the CPU (the same code): a run stopped after 3 steps and resumed ends with
    the weights of an uninterrupted run: the draws depend on (seed, epoch, index) only."""
    from safetensors.torch import load_file

    root = _folder(tmp_path / "data")
    full, part = tmp_path / "full", tmp_path / "part"
    common = ["train", "--data", str(root), "--loader", "gpu", "--epochs", "2", *ARGS]
    assert cli_main([*common, "--out", str(full)]) == 0
    assert cli_main([*common, "--out", str(part), "--max-steps", "3"]) == 0
    assert cli_main(["train", "--resume", str(part), "--max-steps", "0"]) == 0
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (full / "train.log").read_text()
    assert "loader gpu" in log
    assert json.loads((full / "results.json").read_text())["epochs"] == 2


def test_loader_choice(tmp_path, monkeypatch, capsys):
    from googlenet.tasks.classify import task as C

    root = _folder(tmp_path / "data")
    train = open_dataset(str(root), "train")
    assert C._loader("auto", train, torch.device("cpu")) == "cpu"
    assert C._loader("auto", train, torch.device("cuda", 0)) == "gpu"
    assert C._loader("cpu", train, torch.device("cuda", 0)) == "cpu"
    code = cli_main(["train", "--loader", "gpu", "--epochs", "1", "--out", str(tmp_path / "r"), *ARGS])
    assert code == 2 and "--loader: loader gpu decodes image files" in capsys.readouterr().err
