"""Detection (paper §8, modern form): the GoogLeNet-FPN detector of every backbone variant trains
and keeps torchvision's output contract, empty images, config round trip, averaging and
channels_last, the detect task through the engine (resume after SIGKILL bit-exact), eval,
predict, and the ONNX export (with zero detections). Data: a tiny YOLO folder of 64 px images
(coloured squares, 2 classes; one image of each split has no objects)."""

from __future__ import annotations

import json
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

from googlenet.cli import main as cli_main
from googlenet.engine.optim import make_averaged
from googlenet.errors import UserError
from googlenet.models.detection import GoogLeNetDetector, intermediates
from googlenet.models.googlenet import VARIANTS, GoogLeNet
from googlenet.models.registry import model_from_config
from googlenet.sources import load_weights
from googlenet.tasks import get_task
from googlenet.tasks import resolve_config


def tiny_yolo(root: Path, n: dict | None = None) -> Path:
    """PATH/images/{split}/*.png + PATH/labels/{split}/*.txt + classes.txt (YOLO layout)."""
    n = n or {"train": 4, "val": 2, "test": 2}
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("red\ngreen\n")
    for k, (split, count) in enumerate(n.items()):
        rng = np.random.default_rng(k)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.integers(0, 40, (64, 64, 3)).astype(np.uint8)
            lines = []
            for _ in range(0 if i == 0 else 2):  # image 0: no objects
                s = int(rng.integers(14, 26))
                x, y = (int(v) for v in rng.integers(0, 64 - s, 2))
                c = int(rng.integers(0, 2))
                img[y:y + s, x:x + s, c] = 230
                lines.append(f"{c} {(x + s / 2) / 64} {(y + s / 2) / 64} {s / 64} {s / 64}")
            Image.fromarray(img).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines))
    return root


def _batch(size: int = 64) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 10.0, 30.0, 34.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]  # empty
    return images, targets


def _detector(arch: str = "fcos", variant: str = "bn", **kw) -> GoogLeNetDetector:
    torch.manual_seed(0)
    return GoogLeNetDetector(arch=arch, num_classes=2, variant=variant, min_size=64, max_size=64,
                             fpn_channels=64, head_convs=1, **kw)


def _check_outputs(out: list[dict[str, torch.Tensor]], n_images: int, num_classes: int) -> None:
    assert isinstance(out, list) and len(out) == n_images
    for o in out:
        assert set(o) == {"boxes", "scores", "labels"}
        k = o["scores"].shape[0]
        assert o["boxes"].shape == (k, 4) and o["boxes"].dtype == torch.float32
        assert o["labels"].shape == (k,) and o["labels"].dtype == torch.int64
        if k:
            assert o["labels"].min() >= 1 and o["labels"].max() <= num_classes  # 0: background
            assert torch.all(o["boxes"][:, 2:] >= o["boxes"][:, :2])
            assert torch.all((o["scores"] >= 0) & (o["scores"] <= 1))


# -- the model --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_detector_trains_every_variant_and_keeps_torchvision_contract(variant):
    model = _detector("fcos", variant, score_thresh=0.0)
    images, targets = _batch()  # the second image has no objects
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        loss_dict = model(images, targets)
        assert set(loss_dict) == {"classification", "bbox_regression", "bbox_ctrness"}
        loss = sum(loss_dict.values())
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        assert model.backbone.conv1.conv.weight.grad.abs().sum() > 0  # the trunk learns too
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        out = model(images)
    _check_outputs(out, 2, 2)
    assert out[0]["scores"].numel() > 0  # score_thresh 0: something comes out


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["retinanet", "fasterrcnn"])
def test_other_archs_train_and_predict(arch):
    model = _detector(arch)
    images, targets = _batch()
    loss = sum(model(images, targets).values())
    assert torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.no_grad():
        _check_outputs(model(images), 2, 2)


@pytest.mark.slow
def test_config_round_trip_and_channels_last_and_averaging():
    model = _detector("fcos", "bn", score_thresh=0.0)
    images, targets = _batch()
    rebuilt = model_from_config(json.loads(json.dumps(model.config)))
    assert isinstance(rebuilt, GoogLeNetDetector) and rebuilt.num_classes == 2
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        a, b = model(images), rebuilt(images)
    assert torch.equal(a[0]["boxes"], b[0]["boxes"])

    # As the engine does: channels_last weights (the list of images follows inside the backbone),
    # and a Polyak average (swa_utils, BN buffers included) of the detector.
    model.train().to(memory_format=torch.channels_last)
    avg = make_averaged(model, resolve_config("detect", {"task": "detect", "average": "mean"}).average)
    feats = {}

    def hook(module, inputs, output) -> None:
        feats["cl"] = output.is_contiguous(memory_format=torch.channels_last)

    model.detector.backbone.body.inception_3b.register_forward_hook(hook)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        sum(model(images, targets).values()).backward()
        opt.step()
        avg.update_parameters(model)
    assert feats["cl"]  # the batched images went channels_last with the weights
    bn = "detector.backbone.body.conv1.bn.running_mean"
    assert not torch.equal(avg.module.state_dict()[bn], torch.zeros(64))  # BN buffers averaged
    avg.module.eval()
    with torch.no_grad():
        _check_outputs(avg.module(images), 2, 2)


def test_intermediates_adapter_takes_both_return_types():
    net = GoogLeNet(variant="bn", num_classes=0, aux_logits=False).eval()
    x = torch.rand(1, 3, 64, 64)
    ref = intermediates(net, x, [2, 3, 4])
    assert [tuple(f.shape[1:]) for f in ref] == [(480, 8, 8), (832, 4, 4), (1024, 2, 2)]

    class TimmStyle(GoogLeNet):  # timm's (final, [intermediates]) / intermediates_only
        def forward_intermediates(self, x, indices=None, intermediates_only=False):
            feats = GoogLeNet.forward_intermediates(self, x, indices)
            return feats if intermediates_only else (feats[-1], feats)

    timm_net = TimmStyle(variant="bn", num_classes=0, aux_logits=False).eval()
    timm_net.load_state_dict(net.state_dict())
    for a, b in zip(ref, intermediates(timm_net, x, [2, 3, 4])):
        assert torch.equal(a, b)


def test_bad_detector_settings_are_refused():
    with pytest.raises(ValueError, match="arch"):
        GoogLeNetDetector(arch="yolo", num_classes=2)
    with pytest.raises(ValueError, match="multiple of 32"):
        GoogLeNetDetector(num_classes=2, fpn_channels=32)
    with pytest.raises(UserError, match="fpn_channels"):
        resolve_config("detect", {"task": "detect", "fpn_channels": "40"})
    with pytest.raises(UserError, match="arch"):
        resolve_config("detect", {"task": "detect", "arch": "yolo"})


def test_detect_task_defaults_to_the_detect_recipe(capsys):
    assert cli_main(["train", "--task", "detect", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "recipe detect" in out and "arch" in out
    cfg = resolve_config("detect", {"task": "detect"})
    assert cfg.model.arch == "fcos" and cfg.model.variant == "bn"
    assert cfg.system.amp == "auto" and cfg.model.pretrain == "digits"  # bf16 only where native
    assert get_task("detect").best_metric == "val_map"


# -- through the engine and the command line ----------------------------------------------------

# fp32 (the recipe's amp auto would pick bf16 on CPUs that have it): the same numbers everywhere,
# and bit-exact resume is an fp32 property.
SMALL = ["--task", "detect", "--image-size", "64", "--batch-size", "2", "--no-progress", "--amp", "none",
         "--workers", "0", "--set", "tensorboard=false", "--set", "plots=false",
         "--set", "fpn_channels=64", "--set", "head_convs=1", "--set", "det_score_thresh=0.0"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    """One finished detection run on the tiny folder (1 epoch, 2 steps)."""
    root = tmp_path_factory.mktemp("det")
    data = tiny_yolo(root / "data")
    out = root / "run"
    assert cli_main(["train", "--data", str(data), "--epochs", "1", "--out", str(out), *SMALL]) == 0
    return data, out


@pytest.mark.slow
def test_train_eval_predict_on_a_detection_run(det_run, tmp_path, capsys):
    data, run = det_run
    capsys.readouterr()
    res = json.loads((run / "results.json").read_text())
    assert res["eval_split"] == "test" and res["test_images"] == 2 and res["steps"] == 2
    rows = (run / "metrics.csv").read_text()
    assert "val_map" in rows and "train_loss_ctr" in rows
    loaded = load_weights(run)
    assert loaded.task == "detect" and loaded.class_names == ["red", "green"]
    assert isinstance(loaded.model, GoogLeNetDetector)

    # eval: COCO AP, VOC07, per-class, the PR plot; two runs = an ensemble row
    assert cli_main(["eval", str(run), str(run), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "COCO mAP@[.5:.95]" in out and "VOC07 AP50" in out and "ensemble of 2" in out
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert len(saved["rows"]) == 3 and (tmp_path / "ev" / "pr_curve.png").is_file()
    # --json: stdout is one JSON document, the same as results.json; the table goes to stderr
    assert cli_main(["eval", str(run), "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["rows"][0]["images"] == 2 and "COCO mAP@[.5:.95]" in cap.err

    # predict: text, JSON, drawn images
    img = data / "images" / "test" / "1.png"
    assert cli_main(["predict", str(img), str(data / "images" / "test" / "0.png"), "--weights",
                     str(run), "--json", "--score-thresh", "0", "--out", str(tmp_path / "drawn")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [Path(p["file"]).name for p in doc["predictions"]] == ["1.png", "0.png"]
    p = doc["predictions"][0]
    assert len(p["boxes"]) == len(p["names"]) == len(p["scores"]) > 0
    assert set(p["names"]) <= {"red", "green"}
    drawn = sorted(x.name for x in (tmp_path / "drawn").iterdir())
    assert drawn == ["0.png", "1.png", "contact-sheet.png"]
    assert Image.open(tmp_path / "drawn" / "1.png").size == (512, 512)  # 64 px, enlarged x8


@pytest.mark.slow
def test_a_max_steps_detection_run_has_curves_results_and_its_final_choice(tmp_path, capsys):
    """Stopped by --max-steps mid-epoch: curves.png is drawn, results.json counts the fraction
    of the epoch trained (not 0), mAP prints with a % sign, and the final model is the better
    of the EMA and the raw weights on val, the choice recorded in results.json and the weights."""
    import re

    data = tiny_yolo(tmp_path / "data", {"train": 4, "val": 2})  # 2 steps an epoch
    out = tmp_path / "run"
    assert cli_main(["train", "--data", str(data), "--epochs", "2", "--max-steps", "1",
                     "--out", str(out), *SMALL, "--set", "plots=true"]) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 0.5 and res["partial_epoch"] == {"epoch": 1, "steps": 1, "of": 2,
                                                              "stopped_by": "max_steps"}
    assert (out / "curves.png").is_file()
    assert re.search(r"val mAP \d+\.\d\d% AP50 \d+\.\d\d% \(raw weights mAP \d+\.\d\d%\)", printed)
    assert re.search(r"COCO mAP@\[\.5:\.95\] \d+\.\d\d%  AP50 \d+\.\d\d%", printed)
    choice = res["final_weights_choice"]
    assert choice["by"] == "val_map" and {"averaged", "raw"} <= set(choice)
    assert choice["chosen"] == ("raw" if choice["raw"] > choice["averaged"] else "averaged")
    assert f"final model: the {choice['chosen']} weights" in printed
    assert load_weights(out).metadata["final_weights"] == choice


def test_classification_checkpoint_is_refused_for_a_detection_run(tmp_path):
    data = tiny_yolo(tmp_path / "data")
    task = get_task("detect")
    cfg = resolve_config("detect", {"task": "detect", "data": str(data), "image_size": 64})
    from googlenet.engine.distributed import DistInfo
    from googlenet.weights.records import WeightsMeta

    td = task.setup_data(cfg, DistInfo())
    with pytest.raises(UserError, match="not a detector"):
        task.check_compatible(WeightsMeta(model_config={"variant": "bn"}, task="classify"), cfg, td,
                              "x.pt", "the checkpoint to resume")
    with pytest.raises(UserError, match="other classes"):
        task.check_compatible(WeightsMeta(model_config={"detector": "fcos", "variant": "bn",
                                                        "inception": "reduced", "stem": "paper"},
                                          class_names=["a", "b"], task="detect"),
                              cfg, td, "x.pt", "the checkpoint to resume")


@pytest.mark.slow
def test_onnx_export_round_trip_with_and_without_detections(det_run, tmp_path, capsys):
    from googlenet.interop.export import check_detector_onnx, export_detector_onnx

    data, run = det_run
    capsys.readouterr()
    assert cli_main(["export", "--weights", str(run), "--format", "onnx", "-o",
                     str(tmp_path / "det"), "--check-images", str(data / "images" / "test")]) == 0
    line = capsys.readouterr().out
    assert "ok" in line and "same detection counts True" in line

    model = load_weights(run).model
    model.detector.score_thresh = 1.01  # nothing passes: every output is empty (vision#1706)
    path = export_detector_onnx(model, tmp_path / "empty.onnx", size=64)
    r = check_detector_onnx(path, model, [torch.rand(3, 64, 64), torch.zeros(3, 64, 64)])
    assert r["same_counts"] and r["images_without_detections"] == 2


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    data = tiny_yolo(tmp_path / "data", {"train": 6, "val": 2})  # 2 epochs x 3 steps
    args = ["--data", str(data), *SMALL, "--epochs", "2", "--checkpoint-every", "2",
            "--deterministic", "--set", "average=mean"]
    cmd = [sys.executable, "-m", "googlenet", "train"]
    a, b = tmp_path / "a", tmp_path / "b"
    done = subprocess.run([*cmd, *args, "--out", str(a)], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen([*cmd, *args, "--out", str(b)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log, deadline = b / "train.log", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and "checkpoint: step 2 " in log.read_text():
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (b / "model.safetensors").exists()
    resumed = subprocess.run([*cmd, "--resume", str(b), "--no-progress"], env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    ca = torch.load(a / "checkpoint-last.pt", weights_only=True)
    cb = torch.load(b / "checkpoint-last.pt", weights_only=True)
    assert ca["run_state"]["step"] == cb["run_state"]["step"] == 6
    for part in ("model", "averaged_model"):
        for k, v in ca[part].items():
            assert torch.equal(v, cb[part][k]), (part, k)
    import csv

    rows = [[(r["train_loss"], r["val_map"]) for r in csv.DictReader(open(d / "metrics.csv"))]
            for d in (a, b)]
    assert rows[0] == rows[1]


@pytest.mark.slow
def test_rcnn_pipeline_trains_evaluates_and_ensembles(tmp_path, monkeypatch, capsys):
    """The paper's §8 pipeline: Selective Search regions -> GoogLeNet (C+1) -> NMS; proposal
    recall and count reported; two runs ensemble by softmax averaging."""
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path / "cache"))
    data = tiny_yolo(tmp_path / "data")
    run = tmp_path / "rcnn"
    assert cli_main(["train", "--data", str(data), "--arch", "rcnn", "--epochs", "1", "--out",
                     str(run), *SMALL, "--set", "rcnn_region_size=32"]) == 0
    out = capsys.readouterr().out
    assert "recall@.5" in out and "proposals/image" in out
    res = json.loads((run / "results.json").read_text())
    assert 0 <= res["test_proposal_recall50"] <= 100 and res["test_proposals_per_image"] > 0
    assert list((tmp_path / "cache" / "proposals").glob("ss-*.npy"))  # Selective Search cached
    loaded = load_weights(run)
    assert loaded.model.config["detector"] == "rcnn"
    assert loaded.model.config["proposals"]["base_k"] == 300
    assert cli_main(["eval", str(run), str(run)]) == 0
    assert "softmax averaged" in capsys.readouterr().out


def test_init_from_classification_weights_loads_the_backbone_with_their_normalisation(tmp_path):
    """--init with classification weights: the trunk takes them (classifier/aux dropped), the
    detector normalises with their mean/std; detection weights are refused for a new arch."""
    from googlenet.data.preprocess import Preprocess
    from googlenet.engine.distributed import DistInfo
    from googlenet.weights import save_weights

    torch.manual_seed(1)
    clf = GoogLeNet(variant="bn", num_classes=3)
    pre = Preprocess(crop=32, resize=36, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    save_weights(clf, tmp_path / "clf.safetensors", class_names=["a", "b", "c"], preprocess=pre)
    data = tiny_yolo(tmp_path / "data")
    cfg = resolve_config("detect", {"task": "detect", "data": str(data), "image_size": 64,
                                        "init": str(tmp_path / "clf.safetensors"),
                                        "fpn_channels": 64, "head_convs": 1})
    task = get_task("detect")
    td = task.setup_data(cfg, DistInfo())
    loaded = task.load_init(cfg, td)
    model = task.build_model(cfg, td)
    assert "classifier and aux heads dropped" in task.apply_init(model, loaded, cfg)
    assert torch.equal(model.backbone.inception_4e.conv3x3.conv.weight,
                       clf.inception_4e.conv3x3.conv.weight)
    assert model.config["image_mean"] == pytest.approx([0.1, 0.2, 0.3])
    assert td.meta.preprocess["mean"] == pytest.approx([0.1, 0.2, 0.3])  # saved with the run
    cfg.model.variant = "paper"
    with pytest.raises(UserError, match="another backbone"):
        task.load_init(cfg, td)


def test_digits_pretraining_starts_the_backbone_and_is_reused(tmp_path):
    """The detect recipe's pretrain = digits: a digits classifier is trained in OUT/pretrain (its
    checkpoints dropped once done), becomes --init, and is reused when the command runs again;
    it is skipped for --init and for data other than digits-detect."""
    from googlenet.engine.distributed import DistInfo
    from googlenet.tasks.detect.stages import pretrain_backbone

    out, lines = tmp_path / "run", []
    cfg = resolve_config("detect", {"task": "detect", "max_steps": 2, "out": str(out), "progress": False,
                                        "tensorboard": False, "plots": False})
    assert cfg.model.pretrain == "digits"
    cfg = pretrain_backbone(cfg, log=lines.append)
    pre = out / "pretrain"
    assert cfg.run.init == str(pre) and (pre / "model.safetensors").is_file()
    assert not list(pre.glob("checkpoint-*.pt"))
    loaded = load_weights(pre)
    assert loaded.task == "classify" and loaded.model.config["variant"] == cfg.model.variant
    stamp = (pre / "model.safetensors").stat().st_mtime_ns
    again = pretrain_backbone(resolve_config("detect", {"task": "detect", "max_steps": 2, "out": str(out)}),
                              log=lines.append)
    assert again.run.init == str(pre) and "reusing it" in lines[-1]
    assert (pre / "model.safetensors").stat().st_mtime_ns == stamp
    # the detector takes the classifier's trunk and normalisation
    data = tiny_yolo(tmp_path / "data")
    dcfg = resolve_config("detect", {"task": "detect", "data": str(data), "image_size": 64, "init": str(pre),
                                         "fpn_channels": 64, "head_convs": 1})
    task = get_task("detect")
    td = task.setup_data(dcfg, DistInfo())
    model = task.build_model(dcfg, td)
    task.apply_init(model, task.load_init(dcfg, td), dcfg)
    assert torch.equal(model.backbone.conv1.conv.weight, loaded.model.conv1.conv.weight)
    # skipped: --init given, or another dataset
    mine = resolve_config("detect", {"task": "detect", "init": "x.safetensors", "out": str(tmp_path / "b")})
    assert pretrain_backbone(mine, log=lines.append).run.init == "x.safetensors"
    other = pretrain_backbone(resolve_config("detect", {"task": "detect", "data": str(data),
                                                            "out": str(tmp_path / "c")}),
                              log=lines.append)
    assert other.run.init is None and "digits-detect only" in lines[-1]
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
