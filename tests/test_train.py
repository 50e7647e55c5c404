"""googlenet train: recipes and their transforms, the aux-loss weighting, Polyak averaging, the
learning-rate schedule, config resolution, the run directory, resume after SIGKILL (bit-exact),
NaN handling, bad input, and a 2-process torchrun run on CPU."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.tasks import resolve_config
from googlenet.engine import config as config_lib
from googlenet.data.transforms import PCALighting, train_transform
from googlenet.engine.config import AverageConfig
from googlenet.engine.optim import lr_lambda, make_averaged, make_optimizer
from googlenet.engine.sampling import SeededDataset
from googlenet.engine.trainer import TrainingDiverged
from googlenet.tasks import train
from googlenet.tasks.classify import task as classification
from googlenet.tasks.classify.task import compute_loss
from googlenet.weights.records import TrainCheckpoint, WeightsMeta
from googlenet.cli import main as cli_main
from googlenet.data.datasets import default_preprocess
from googlenet.errors import UserError
from googlenet.models.googlenet import GoogLeNet, GoogLeNetOutputs
from googlenet.sources import load_weights
from googlenet.weights import save_weights

SMALL = ["--epochs", "1", "--batch-size", "2", "--image-size", "32", "--no-progress",
         "--workers", "0", "--set", "tensorboard=false", "--set", "plots=false"]


def _tiny_folder(root: Path, classes=("a", "b"), n_train=4, n_val=1) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.full((36, 36, 3), 60 + 120 * k, np.uint8)
                noise = rng.integers(0, 40, (36, 36, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"{i}.png")
    return root


def _cfg(data: Path, out: Path, **kw):
    recipe = kw.pop("recipe", "short")
    o = dict(data=str(data), out=str(out), epochs=1, batch_size=2, image_size=32, progress=False,
             tensorboard=False, plots=False, workers=0)
    o.update(kw)
    return resolve_config(recipe, o)


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- recipes and their transforms ------------------------------------------------------------

def test_recipes_resolve_and_paper_values():
    paper = resolve_config("paper")
    o, a = paper.optim, paper.augment
    assert (o.optimizer, o.momentum, o.schedule, o.gamma, o.step_epochs,
            paper.loss.aux_weight) == ("sgd", 0.9, "step", 0.96, 8.0, 0.3)
    assert a.crop_scale == (0.08, 1.0) and a.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert set(a.interpolations) == {"bilinear", "box", "nearest", "bicubic"}
    assert a.hflip == 0.5 and a.pca_lighting > 0 and a.brightness > 0
    assert paper.average.mode != "none" and paper.model.variant == "paper"
    short = resolve_config()  # the default recipe
    assert short.model.variant == "paper" and short.loss.aux_weight == 0.3 and short.run.epochs < 50
    assert resolve_config(overrides={"variant": "bn"}).model.variant == "bn"
    assert resolve_config(overrides={"model.variant": "bn"}).run.epochs == 8  # the bn case


def _crop_params(crop, n=3000):
    img = Image.new("RGB", (100, 100))
    out = []
    for _ in range(n):
        p = crop.make_params([img])
        out.append((p["height"] * p["width"] / 100**2, p["width"] / p["height"]))
    return np.array(out)


@pytest.mark.parametrize("recipe,scale", [("paper", (0.08, 1.0)), ("short", (0.8, 1.0))])
def test_crop_area_and_aspect_ranges(recipe, scale):
    cfg = resolve_config(recipe)
    tf = train_transform(cfg.augment, default_preprocess(None, 32))
    choice = tf.transforms[0]
    crops = choice.transforms
    assert len(crops) == 4
    stats = _crop_params(crops[0])
    area, ratio = stats[:, 0], stats[:, 1]
    # Integer pixel rounding widens the ranges a little at the small end.
    assert area.min() >= scale[0] * 0.9 and area.max() <= 1.0
    assert area.min() < scale[0] + 0.03 and area.max() > 0.95  # the whole range is used
    assert ratio.min() >= 0.75 * 0.93 and ratio.max() <= 4 / 3 * 1.07
    # On a square image a crop of area a fits only for ratios in [a, 1/a]: the extremes reachable.
    assert ratio.min() < max(0.75, scale[0]) + 0.05 and ratio.max() > min(4 / 3, 1 / scale[0]) - 0.05
    # Both flips of the aspect ratio are about as likely (log-uniform).
    assert 0.4 < np.mean(np.log(ratio) > 0) < 0.6


def test_interpolation_is_random_among_four_per_sample():
    cfg = resolve_config("paper")
    tf = train_transform(cfg.augment, default_preprocess(None, 32))
    choice = tf.transforms[0]
    modes = [c.interpolation.value for c in choice.transforms]
    assert sorted(modes) == ["bicubic", "bilinear", "box", "nearest"]
    assert choice.p == [0.25] * 4
    counts = dict.fromkeys(modes, 0)
    for c, m in zip(list(choice.transforms), modes):
        real = c.forward

        def counting(*a, _real=real, _m=m):
            counts[_m] += 1
            return _real(*a)

        c.forward = counting
    img = Image.new("RGB", (40, 40))
    torch.manual_seed(0)
    for _ in range(800):
        x = tf(img)
    assert x.shape == (3, 32, 32)
    assert all(150 < v < 250 for v in counts.values()), counts  # 200 expected each
    # Different interpolations really give different pixels.
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))
    outs = {}
    for c, m in zip(choice.transforms, modes):
        torch.manual_seed(1)
        outs[m] = c.__class__.forward(c, noisy)
    arrs = [np.asarray(v) for v in outs.values()]
    assert all(not np.array_equal(arrs[0], a) for a in arrs[1:])


def test_paper_photometric_and_flip_short_recipe_none():
    paper = train_transform(resolve_config("paper").augment, default_preprocess(None, 32))
    names = [type(t).__name__ for t in paper.transforms]
    assert names[:3] == ["RandomChoice", "RandomHorizontalFlip", "ColorJitter"]
    assert "PCALighting" in names
    short = train_transform(resolve_config("short").augment, default_preprocess(None, 32))
    assert "RandomHorizontalFlip" not in [type(t).__name__ for t in short.transforms]
    # PCA lighting adds one RGB offset to every pixel, along ImageNet's principal components.
    light = PCALighting(0.5)
    x = torch.rand(3, 8, 8)
    torch.manual_seed(3)
    d = light(x) - x
    assert torch.allclose(d, d[:, :1, :1].expand_as(d)) and d.abs().max() > 0


# -- loss, averaging, schedule ---------------------------------------------------------------

def test_aux_losses_weighted_point_three():
    torch.manual_seed(0)
    out = GoogLeNetOutputs(torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5))
    y = torch.tensor([0, 1, 2, 3])
    ce = torch.nn.functional.cross_entropy
    loss = compute_loss(out, y, aux_weight=0.3)
    expected = ce(out.logits, y) + 0.3 * ce(out.aux1, y) + 0.3 * ce(out.aux2, y)
    assert torch.allclose(loss.total, expected, atol=1e-6)
    assert torch.allclose(loss.aux1, ce(out.aux1, y))
    no_aux = compute_loss(out.logits, y)
    assert no_aux.aux1 is None and torch.allclose(no_aux.total, ce(out.logits, y))
    # The model's own training output goes through the same weighting.
    model = GoogLeNet(variant="bn", num_classes=3).train()
    o = model(torch.randn(2, 3, 32, 32))
    t = torch.tensor([0, 2])
    lo = compute_loss(o, t, aux_weight=0.3)
    assert torch.allclose(lo.total, ce(o.logits, t) + 0.3 * (ce(o.aux1, t) + ce(o.aux2, t)))


def test_per_sample_seeding_is_reproducible_and_skips_torch_manual_seed(monkeypatch):
    """One seed per sample (exact resume) must stay cheap: torch.manual_seed in a CUDA build
    queues lazy device seeding with a stack trace per call (~2 ms a sample), so the dataset
    seeds the CPU generator alone, and leaves the global RNG state as it found it."""
    data = SeededDataset(_ListDataset(train_transform(
        resolve_config("paper").augment, default_preprocess(None, 32))))
    a = data[(0, 123)][0]

    def forbidden(*_a, **_k):
        raise AssertionError("torch.manual_seed called per sample")

    monkeypatch.setattr(torch, "manual_seed", forbidden)
    state = torch.get_rng_state()
    assert torch.equal(data[(0, 123)][0], a) and not torch.equal(data[(0, 124)][0], a)
    assert torch.equal(torch.get_rng_state(), state)


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, transform):
        rng = np.random.default_rng(0)
        self.img = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
        self.transform = transform

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.transform(self.img), 0


def test_optimizers_use_the_fused_kernels():
    model = GoogLeNet(variant="bn", num_classes=3)
    for opt in ("adamw", "sgd"):
        o = make_optimizer(model, resolve_config(overrides={"optimizer": opt}).optim)
        assert o.defaults["fused"] is True, opt
        decay = {id(p) for p in o.param_groups[0]["params"]}
        assert all((p.ndim > 1) == (id(p) in decay) for p in model.parameters())


def test_polyak_mean_is_mean_of_iterates_and_ema_matches_formula():
    # BN brings an integer buffer (num_batches_tracked) that the averaging must survive.
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    iterates = []
    cfg = AverageConfig(mode="mean")
    avg = make_averaged(net, cfg)
    for k in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
        net.train()(torch.randn(4, 3))  # moves the BN running stats and counter
        iterates.append([t.detach().clone() for t in [*net.parameters(), *net.buffers()]])
        avg.update_parameters(net)
    averaged = [*avg.module.parameters(), *avg.module.buffers()]
    for i, p in enumerate(averaged):
        if p.is_floating_point():  # params and BN running stats: the mean of the iterates
            assert torch.allclose(p, torch.stack([it[i] for it in iterates]).mean(0), atol=1e-6)
        else:  # the batch counter: the latest
            assert int(p) == 5
    ema = make_averaged(net, AverageConfig(mode="ema", ema_decay=0.9))
    ref = None
    for it in iterates:
        with torch.no_grad():
            for p, v in zip(net.parameters(), it):
                p.copy_(v)
        ema.update_parameters(net)
        ref = [v.clone() for v in it] if ref is None else [0.9 * r + 0.1 * v for r, v in zip(ref, it)]
    for p, r in zip(ema.module.parameters(), ref):
        assert torch.allclose(p, r, atol=1e-6)
    assert make_averaged(net, AverageConfig(mode="none")) is None


def test_step_schedule_is_minus_4_percent_every_8_epochs():
    cfg = resolve_config("paper", {"epochs": 40})
    f = lr_lambda(cfg.optim, cfg.run.epochs, steps_per_epoch=10)
    assert f(0) == 1.0 and f(79) == 1.0 and f(80) == pytest.approx(0.96)
    assert f(16 * 10 + 5) == pytest.approx(0.96 ** 2)
    short = resolve_config("short", {"epochs": 10, "warmup_epochs": 1})
    g = lr_lambda(short.optim, short.run.epochs, steps_per_epoch=10)
    assert g(0) == pytest.approx(0.01) and g(10) == pytest.approx(1.0) and g(100) == pytest.approx(0.0)
    assert g(55) == pytest.approx(0.5)


# -- config ------------------------------------------------------------------------------------

def test_config_rejects_unknown_and_bad_values(tmp_path):
    with pytest.raises(UserError, match="unknown config key 'lrr'.*did you mean 'lr'"):
        resolve_config(overrides=config_lib.parse_set(["lrr=0.1"]))
    with pytest.raises(UserError, match="not a valid float"):
        resolve_config(overrides={"lr": "fast"})
    with pytest.raises(UserError, match="command line: model.variant = 'resnet': choose one of"):
        resolve_config(overrides={"variant": "resnet"})
    with pytest.raises(UserError, match="at least 32"):
        resolve_config(overrides={"image_size": "16"})
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\nbatchsize = 8\n")
    with pytest.raises(UserError, match="bad.toml: unknown config key 'batchsize'.*batch_size"):
        resolve_config(str(bad))
    good = tmp_path / "mine.toml"
    good.write_text('epochs = 3\ncrop_scale = [0.2, 1.0]\n[bn]\nlr = 0.5\n')
    c = resolve_config(str(good), {"crop_ratio": "0.5,2", "variant": "bn"})
    assert (c.run.epochs, c.augment.crop_scale, c.augment.crop_ratio, c.optim.lr) == (
        3, (0.2, 1.0), (0.5, 2.0), 0.5)
    assert resolve_config(str(good)).optim.lr != 0.5  # the [bn] table only applies to bn
    assert resolve_config(overrides={"dropout": "none", "compile": "true"}).system.compile is True
    assert cli_main(["train", "--set", "no_such_key=1"]) == 2


# -- a whole (tiny) run and its directory ----------------------------------------------------------

def test_tiny_run_writes_the_run_directory(tmp_path, capsys):
    data = _tiny_folder(tmp_path / "data")
    (data / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "run"
    res = train(_cfg(data, out, epochs=2, plots=True, tensorboard=True,
                               average_start_epoch=1))
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed and "final val accuracy" in printed
    assert "skipped 1 unreadable" in printed
    assert "broken.jpg" in (out / "train.log").read_text()
    for name in ("checkpoint-last.pt", "model.safetensors", "metrics.csv",
                 "config.toml", "results.json", "curves.png"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint-best.pt").exists()  # save_checkpoints last (the default)
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    for key in ("format", "version", "task", "model_config", "class_names", "preprocess", "model",
                "averaged_model", "optimizer", "scheduler", "run_state", "config", "rng"):
        assert key in ck, key
    for key in ("epoch", "step", "best_metric"):  # once, in run_state
        assert key not in ck and key in ck["run_state"], key
    assert ck["class_names"] == ["a", "b"] and ck["run_state"]["step"] == 8 and ck["run_state"]["epoch"] == 2
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in ck["model"])
    assert ck["config"]["version"] == 2 and ck["config"]["run"]["epochs"] == 2 and ck["preprocess"]["crop"] == 32
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in ("train_loss", "train_main_loss", "train_aux1_loss", "train_aux2_loss", "val_top1",
                "val_top5", "lr", "images_per_s"):
        assert math.isfinite(float(rows[-1][col])), col
    loaded = load_weights(out)
    assert loaded.class_names == ["a", "b"] and loaded.preprocess.crop == 32
    final = load_weights(out / "model.safetensors")
    # The final weights carry the training config, so `googlenet eval RUN` finds the run's data.
    assert final.metadata["config"]["data"]["path"] == str(data) and final.metadata["steps"] == 8
    results = json.loads((out / "results.json").read_text())
    chosen = results["final_weights_choice"]["chosen"]  # the better on val: averaged or raw
    assert final.metadata["final_weights"]["chosen"] == chosen and results["averaged"] == (chosen == "averaged")
    saved = ck["averaged_model"] if chosen == "averaged" else ck["model"]
    assert all(torch.equal(final.model.state_dict()[k], v) for k, v in saved.items())
    assert f"final model: the {chosen} weights" in printed
    assert results["val_images"] == 2 and results["epochs"] == 2 and "partial_epoch" not in results
    assert res["eval_split"] == "val"
    if (out / "tensorboard").exists():
        assert any((out / "tensorboard").iterdir())
    # A second run into the same directory is refused, not silently mixed.
    with pytest.raises(UserError, match="already holds a training run"):
        train(_cfg(data, out))


def test_nan_loss_stops_naming_the_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    data = _tiny_folder(tmp_path / "data")
    out = tmp_path / "run"
    real = compute_loss
    calls = {"n": 0}

    def poisoned(*a, **kw):
        loss = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 3:
            return loss._replace(total=loss.total * float("nan"))
        return loss

    monkeypatch.setattr(classification, "compute_loss", poisoned)
    cfg = _cfg(data, out, recipe="paper", aux_logits=False, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=r"nan at step 3 .*checkpoint-last.pt "
                                                         r"\(step 2\) is intact"):
        train(cfg)
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert ck["run_state"]["step"] == 2 and all(torch.isfinite(v).all() for v in ck["model"].values()
                                   if v.is_floating_point())


# -- bad input: errors before any training ---------------------------------------------------------

def _fake_checkpoint(path: Path, *, variant="paper", classes=("a", "b")) -> None:
    cfg = resolve_config(overrides={"variant": variant}).to_dict()
    model_config = dict(variant=variant, num_classes=len(classes), in_chans=3, aux_logits=True,
                        inception="reduced", stem="paper", transform_input=False, dropout=0.4,
                        aux_dropout=0.7)
    path.mkdir(parents=True)
    ckpt = TrainCheckpoint(meta=WeightsMeta(model_config=model_config, class_names=list(classes)),
                           model={}, optimizer={}, scheduler={}, config=cfg,
                           run_state={"epoch": 0, "epoch_step": 0, "step": 0})
    torch.save(ckpt.to_state(), path / "checkpoint-last.pt")


def test_resume_checkpoint_of_other_classes_or_variant_is_refused(tmp_path, capsys):
    data = _tiny_folder(tmp_path / "data")
    _fake_checkpoint(tmp_path / "r1", classes=("a", "z"))
    assert cli_main(["train", "--resume", str(tmp_path / "r1"), "--data", str(data)]) == 2
    assert "trained on other classes" in capsys.readouterr().err
    _fake_checkpoint(tmp_path / "r2", variant="bn")
    assert cli_main(["train", "--resume", str(tmp_path / "r2"), "--data", str(data),
                     "--variant", "paper"]) == 2
    assert "different network (variant: 'bn' there, 'paper' here)" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_init_weights_of_other_classes_are_refused(tmp_path, capsys):
    data = _tiny_folder(tmp_path / "data")
    w = tmp_path / "w.safetensors"
    save_weights(GoogLeNet(variant="paper", num_classes=3, init_weights=False), w,
                 class_names=["x", "y", "z"])
    assert cli_main(["train", "--data", str(data), "--init", str(w), *SMALL,
                     "--out", str(tmp_path / "run")]) == 2
    assert "3 classes there, 2 here" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


@pytest.mark.parametrize("case", ["empty", "no_images_class", "mismatch", "batch_too_big"])
def test_bad_data_is_refused_before_training(tmp_path, capsys, case):
    data = tmp_path / "data"
    if case == "empty":
        data.mkdir()
    else:
        _tiny_folder(data)
    if case == "no_images_class":
        (data / "train" / "c").mkdir()
        (data / "val" / "c").mkdir()
    if case == "mismatch":
        (data / "val" / "b").rename(data / "val" / "q")
    extra = ["--batch-size", "64"] if case == "batch_too_big" else []
    assert cli_main(["train", "--data", str(data), *SMALL, *extra,
                     "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert {"empty": "no class folders", "no_images_class": "'c' has no images",
            "mismatch": "differ from train/", "batch_too_big": "fewer than one step"}[case] in err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


# -- resume after SIGKILL: bit-exact ---------------------------------------------------------------

def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "googlenet", "train", *args]


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    """A run killed with SIGKILL mid-training and resumed ends with exactly the weights, averaged
    weights and optimizer state of a run that was never interrupted (CPU, deterministic)."""
    data = _tiny_folder(tmp_path / "data", n_train=3)  # 2 epochs x 3 steps
    args = ["--data", str(data), "--recipe", "paper", "--no-aux", "--epochs", "2",
            "--batch-size", "2", "--image-size", "32", "--checkpoint-every", "2",
            "--deterministic", "--no-progress", "--workers", "0", "--set", "tensorboard=false",
            "--set", "plots=false"]
    env = _subprocess_env()
    a, b = tmp_path / "a", tmp_path / "b"
    done = subprocess.run(_train_cmd(*args, "--out", str(a)), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(_train_cmd(*args, "--out", str(b)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = b / "train.log"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and "checkpoint: step 2 " in log.read_text():
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (b / "model.safetensors").exists()
    killed_at = torch.load(b / "checkpoint-last.pt", weights_only=True)["run_state"]["step"]
    assert 2 <= killed_at < 6

    resumed = subprocess.run(_train_cmd("--resume", str(b), "--no-progress"), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {b / 'checkpoint-last.pt'}" in resumed.stdout

    ca = torch.load(a / "checkpoint-last.pt", weights_only=True)
    cb = torch.load(b / "checkpoint-last.pt", weights_only=True)
    assert ca["run_state"]["step"] == cb["run_state"]["step"] == 6
    for part in ("model", "averaged_model"):
        for k, v in ca[part].items():
            assert torch.equal(v, cb[part][k]), (part, k)
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    fa, fb = load_weights(a / "model.safetensors"), load_weights(b / "model.safetensors")
    for k, v in fa.model.state_dict().items():
        assert torch.equal(v, fb.model.state_dict()[k]), k
    ma = [r["train_loss"] for r in csv.DictReader(open(a / "metrics.csv"))]
    mb = [r["train_loss"] for r in csv.DictReader(open(b / "metrics.csv"))]
    assert ma == mb


# -- DDP: two processes on CPU -------------------------------------------------------------------

def test_torchrun_two_processes_on_cpu(tmp_path):
    data = _tiny_folder(tmp_path / "data", n_train=4, n_val=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "googlenet", "train", "--data", str(data), "--no-aux", *SMALL, "--out", str(out)]
    done = subprocess.run(cmd, env=_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "x 2 processes" in log
    assert done.stdout.count("run directory:") == 2  # printed once at the start, once at the end
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["run_state"]["step"] == 2  # 8 images / (batch 2 x 2 processes)
    res = json.loads((out / "results.json").read_text())
    assert res["val_images"] == 4  # every val image counted once, summed over both ranks
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["val_top1"]))
    assert not list(out.glob("*.tmp"))


def test_bf16_autocast_and_max_steps(tmp_path):
    data = _tiny_folder(tmp_path / "data")
    out = tmp_path / "run"
    res = train(_cfg(data, out, recipe="paper", amp="bf16", aux_logits=False,
                               max_steps=1, epochs=3))
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    # Stopped after one step, mid-epoch, resumable from there.
    assert ck["run_state"]["step"] == 1 and ck["run_state"]["epoch_step"] == 1 and ck["run_state"]["epoch"] == 0
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())
    assert math.isfinite(res["val_top1"])


def test_fp16_autocast_scales_the_loss_and_resumes_the_scaler(tmp_path, capsys):
    """--amp fp16 trains through torch.amp.GradScaler (the CPU has one since torch 2.3): its
    state is in the checkpoint, a resumed run continues from that scale, weights stay fp32."""
    data = _tiny_folder(tmp_path / "data")
    out = tmp_path / "run"
    train(_cfg(data, out, amp="fp16", aux_logits=False, clip_grad_norm=5.0, max_steps=2, epochs=3))
    assert "mixed precision: fp16 autocast with a GradScaler" in capsys.readouterr().out
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert ck["run_state"]["step"] == 2
    scale = ck["scaler"]["scale"]
    # The scaler ran: its scale starts at 2**16 and only halves (an overflow) within 2 steps.
    assert scale in (2.0 ** 16, 2.0 ** 15, 2.0 ** 14) and ck["scaler"]["_growth_tracker"] >= 0
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())

    from googlenet.engine.checkpoint import load_resume
    from googlenet.engine.trainer import fit
    from googlenet.tasks import get_task

    run_dir, ckpt = load_resume(out)
    assert ckpt.scaler == ck["scaler"]
    cfg = resolve_config(base=ckpt.config, overrides={"max_steps": 3})
    fit(get_task(cfg.task), cfg, resume=ckpt, resume_dir=run_dir)
    ck2 = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert ck2["run_state"]["step"] == 3 and ck2["scaler"]["scale"] <= scale
    # Without fp16 no scaler state is written.
    train(_cfg(data, tmp_path / "fp32", aux_logits=False, max_steps=1, epochs=1))
    assert torch.load(tmp_path / "fp32" / "checkpoint-last.pt", weights_only=True)["scaler"] is None


# -- which checkpoints a run keeps, the final model, progress off a terminal, a busy machine -------

@pytest.mark.parametrize("keep", ["last", "best", "all", "none"])
def test_save_checkpoints_keeps_what_it_says(tmp_path, keep):
    data = _tiny_folder(tmp_path / "data", n_train=2)  # 2 epochs x 2 steps
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=2, aux_logits=False, save_checkpoints=keep))
    names = {p.name for p in out.iterdir() if p.name.endswith((".pt", ".safetensors"))}
    assert names == {"last": {"checkpoint-last.pt", "model.safetensors"},
                     "best": {"checkpoint-last.pt", "model-best.safetensors", "model.safetensors"},
                     "all": {"checkpoint-last.pt", "checkpoint-best.pt", "model.safetensors"},
                     "none": {"model.safetensors"}}[keep]
    if keep == "best":  # the best epoch's evaluated weights, as a weights file
        best = load_weights(out / "model-best.safetensors")
        assert best.class_names == ["a", "b"] and best.metadata["epoch"] in (1, 2)
    if keep == "none":
        from googlenet.engine.checkpoint import load_resume

        with pytest.raises(UserError, match="no checkpoint-last.pt"):
            load_resume(out)


def test_final_model_is_the_better_of_averaged_and_raw(tmp_path, monkeypatch, capsys):
    """The averaged weights score 10% on validation, the raw ones 90%: the raw weights are the
    final model, and the log, results.json and the weights' metadata say so."""
    from googlenet.engine import trainer

    real_avg, real_eval = trainer.make_averaged, classification.ClassificationTask.evaluate

    def marked(model, cfg):
        avg = real_avg(model, cfg)
        avg.module._averaged_copy = True
        return avg

    def fake(self, model, loader, device, cfg):
        res = real_eval(self, model, loader, device, cfg)
        return dict(res, top1=10.0 if getattr(model, "_averaged_copy", False) else 90.0)

    monkeypatch.setattr(trainer, "make_averaged", marked)
    monkeypatch.setattr(classification.ClassificationTask, "evaluate", fake)
    data = _tiny_folder(tmp_path / "data", n_train=2)
    out = tmp_path / "run"
    res = train(_cfg(data, out, aux_logits=False, average="ema", ema_decay=0.5, average_start_epoch=0))
    assert "final model: the raw weights (val_top1 90.00% against 10.00% for the averaged" in capsys.readouterr().out
    assert res["final_weights_choice"] == {"chosen": "raw", "by": "val_top1", "averaged": 10.0,
                                           "raw": 90.0, "why": res["final_weights_choice"]["why"]}
    assert res["averaged"] is False and res["val_top1"] == 90.0
    ck = torch.load(out / "checkpoint-last.pt", weights_only=True)
    final = load_weights(out)
    assert final.metadata["averaged"] is False and final.metadata["final_weights"]["chosen"] == "raw"
    assert all(torch.equal(final.model.state_dict()[k], v) for k, v in ck["model"].items())
    # final_weights=averaged (what `googlenet experiment` sets): the averaged ones, unasked
    res = train(_cfg(data, tmp_path / "avg", aux_logits=False, average="ema", ema_decay=0.5, average_start_epoch=0,
                     final_weights="averaged"))
    assert res["final_weights_choice"]["chosen"] == "averaged" and res["val_top1"] == 10.0


def test_progress_lines_off_a_terminal_and_a_busy_machine_warning(tmp_path, monkeypatch, capsys):
    """Off a terminal (stderr is a pipe or file: nohup, CI) a line every log_every steps with the
    ETA, in train.log too; a 1-minute load average over the CPUs is said once, at the start."""
    import googlenet.engine.logging as run_logging

    monkeypatch.setattr(run_logging.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    data = _tiny_folder(tmp_path / "data", n_train=4)  # 4 steps an epoch
    out = tmp_path / "run"
    train(_cfg(data, out, aux_logits=False, progress=True, log_every=2, plots=True))
    printed = capsys.readouterr()
    lines = [ln for ln in printed.out.splitlines() if "step " in ln and "ETA" in ln]
    assert [ln.split("step ")[1].split()[0] for ln in lines] == ["2/4"], printed.out
    assert "img/s" in lines[0] and "this epoch" in lines[0] and "run" in lines[0]
    assert "step 2/4" in (out / "train.log").read_text()
    assert printed.out.count("warning: 1-min load average 64.0 on") == 1
    assert "will take longer than on a quiet machine" in printed.out


def test_step_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    import io

    from googlenet.engine.logging import StepProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for tty, want in ((True, []), (False, ["3/6"])):  # none at the epoch's end: its line follows
        stream = Tty() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        said: list[str] = []
        bar = StepProgress(enabled=True, log=said.append, epoch=1, epochs=2, steps=6, done=0,
                           images=0.0, every=3)
        for k in range(1, 7):
            bar.update(done=k, step=k, total_steps=12, loss=1.0, images=2.0 * k)
        bar.close()
        assert [s.split("step ")[1].split()[0] for s in said] == want
        assert ("epoch 1/2" in stream.getvalue()) == tty  # tqdm's bar, on the terminal only


def test_max_steps_run_has_curves_and_says_how_far_it_got(tmp_path):
    """A run stopped by max_steps mid-epoch: curves.png, metrics.csv's partial row with the
    fraction trained, and results.json's epochs as trained (not 0)."""
    data = _tiny_folder(tmp_path / "data", n_train=4)  # 4 steps an epoch
    out = tmp_path / "run"
    res = train(_cfg(data, out, aux_logits=False, epochs=3, max_steps=3, plots=True))
    assert (out / "curves.png").is_file()
    assert res["epochs"] == 0.75 and res["steps"] == 3
    assert res["partial_epoch"] == {"epoch": 1, "steps": 3, "of": 4, "stopped_by": "max_steps"}
    row = list(csv.DictReader(open(out / "metrics.csv")))[-1]
    assert row["partial"] == "1" and float(row["epoch_fraction"]) == 0.75
    assert load_weights(out).metadata["epochs"] == 0.75
