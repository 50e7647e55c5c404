"""`googlenet eval` (evaluate.py): top-1/top-k, softmax averaging over crops and models, the
Table 3 rows, the confusion matrix, bad input and unreadable files.

Known-answer tests use a tiny colour classifier on solid-colour images, so the right accuracy is
known exactly; the GoogLeNet tests use random 32 px networks saved and loaded like real weights.
"""

import json
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from googlenet import cli
from googlenet.data.crops import multi_crop
from googlenet.errors import UserError
from googlenet.infer.evaluate import (
    EvalReport, EvalRow, _plan, check_classes, crop_probs, evaluate_models, image_probs,
    parse_crops,
)
from googlenet.metrics.classification import topk_hits
from googlenet.weights.records import TrainCheckpoint, WeightsMeta
from googlenet.data.imaging import ImageError, list_images, load_image
from googlenet.models.googlenet import GoogLeNet
from googlenet.data.preprocess import Preprocess
from googlenet.sources import load_weights
from googlenet.weights import LoadedWeights, save_weights

COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
RAW32 = Preprocess.for_size(32, mean=(0, 0, 0), std=(1, 1, 1))  # pixels stay in [0, 1]


# -- fixtures ---------------------------------------------------------------------------------

class FolderDataset:
    """The ImageDataset contract (classes, skipped, samples, load) over PATH/<class>/*, read
    lazily: unreadable files raise ImageError at load time, as in a DataLoader worker."""

    def __init__(self, root):
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [(p, self.classes.index(p.parent.name)) for p in list_images(root)]
        self.skipped = []

    def __len__(self):
        return len(self.samples)

    def load(self, i):
        path, label = self.samples[i]
        return load_image(path), label


class ColourNet(nn.Module):
    """Logits = scale x mean of each colour channel, in ``order``: a classifier whose answers on
    solid-colour images are known. Counts the crops it sees per forward pass."""

    def __init__(self, order=(0, 1, 2), scale=50.0):
        super().__init__()
        self.order, self.scale, self.num_classes = list(order), scale, 3
        self.config = {"variant": "colour"}
        self.calls = []

    def forward(self, x):  # (N, 3, H, W) -> (N, 3)
        self.calls.append(x.shape[0])
        return self.scale * x.mean((2, 3))[:, self.order]


def colour_weights(order=(0, 1, 2), scale=50.0, names=("blue", "green", "red")):
    # class index = sorted folder name: blue 0, green 1, red 2; RGB channel 0 is red.
    # order (2, 1, 0) maps channels (b, g, r) onto classes (blue, green, red): all correct.
    return LoadedWeights(model=ColourNet(order, scale), preprocess=RAW32,
                         class_names=list(names), source=f"colour{tuple(order)}")


def _write_images(root, per_class=2, sizes=((40, 48), (56, 40), (44, 44))):
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            w, h = sizes[j % len(sizes)]
            Image.new("RGB", (w, h), rgb).save(root / name / f"{j}.png")
    return root


@pytest.fixture
def colour_folder(tmp_path):
    return _write_images(tmp_path / "colours")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Two different random 32 px GoogLeNets for the colour classes, saved as safetensors, with
    sharpened classifiers so that they disagree and their softmaxes are far from uniform."""
    d = tmp_path_factory.mktemp("nets")
    paths = []
    for seed, variant in [(0, "bn"), (1, "paper")]:
        torch.manual_seed(seed)
        m = GoogLeNet(variant=variant, num_classes=3, aux_logits=False).eval()
        with torch.no_grad():
            m.fc.weight.mul_(300.0)
        paths.append(save_weights(m, d / f"{variant}.safetensors", class_names=["blue", "green", "red"],
                                  preprocess=Preprocess.for_size(32)))
    return [str(p) for p in paths]


def _noise_folder(root, n_per_class=2):
    g = torch.Generator().manual_seed(0)
    for name in ("blue", "green", "red"):
        (root / name).mkdir(parents=True)
        for j in range(n_per_class):
            w, h = (40, 52) if j % 2 else (52, 40)
            a = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(a).save(root / name / f"{j}.png")
    return root


# -- the arithmetic ----------------------------------------------------------------------------

def test_topk_hits_known_case():
    probs = torch.tensor([
        [0.50, 0.20, 0.10, 0.08, 0.07, 0.05],  # label 0: top-1 hit
        [0.50, 0.20, 0.10, 0.08, 0.07, 0.05],  # label 4: top-5 only
        [0.50, 0.20, 0.10, 0.08, 0.07, 0.05],  # label 5: miss (6th)
        [0.05, 0.07, 0.08, 0.10, 0.20, 0.50],  # label 4: top-5 (2nd)
    ])
    labels = torch.tensor([0, 4, 5, 4])
    h1, h5, pred = topk_hits(probs, labels, 5)
    assert h1.tolist() == [True, False, False, False]
    assert h5.tolist() == [True, True, False, True]
    assert pred.tolist() == [0, 0, 0, 5]
    row = EvalRow((0,), 1, k=5)
    row.add(probs, labels)
    assert (row.n, row.correct1, row.correctk) == (4, 1, 3)
    assert row.top1 == 25.0 and row.top5 == 75.0 and row.top1_err == 75.0 and row.top5_err == 25.0
    # fewer than 5 classes: top-5 is top-K, always a hit
    _, hk, _ = topk_hits(probs[:, :3].softmax(1), torch.tensor([2, 2, 1, 0]), 5)
    assert hk.all()


def test_parse_crops():
    assert parse_crops(["144", "1", "10"]) == (1, 10, 144)
    assert parse_crops(["1,10", 10]) == (1, 10)
    for bad in (["5"], ["ten"], ["1", "12"], []):
        with pytest.raises(UserError, match="--crops"):
            parse_crops(bad)


def test_plan_scores_1_crop_from_the_10_crop_pass():
    assert _plan([1]) == [(1, [1])]
    assert _plan([1, 10, 144]) == [(10, [1, 10]), (144, [144])]
    assert _plan([144, 1]) == [(1, [1]), (144, [144])]


# -- known answers on solid colours ------------------------------------------------------------

def test_known_accuracy_table_and_confusion(colour_folder, tmp_path):
    ds = FolderDataset(colour_folder)
    right = colour_weights(order=(2, 1, 0))  # blue, green, red channels -> classes 0, 1, 2
    swapped = colour_weights(order=(1, 2, 0), scale=1.0)  # red right, blue<->green, unsure
    rep = evaluate_models([right, swapped], ds, crops=(1, 10), names=["right", "swapped"],
                          progress=False)
    assert [(r.models, r.crops) for r in rep.rows] == [
        ((0,), 1), ((0,), 10), ((1,), 1), ((1,), 10), ((0, 1), 1), ((0, 1), 10)]
    assert rep.num_images == 6 and rep.k == 3
    assert rep.row((0,), 1).top1 == 100.0 and rep.row((0,), 10).top1 == 100.0
    sw = rep.row((1,), 10)
    assert sw.correct1 == 2 and sw.top1 == pytest.approx(100 / 3) and sw.top5 == 100.0
    # the sure model outvotes the unsure one in the softmax average
    assert rep.row((0, 1), 10).top1 == 100.0
    cm = rep.confusion(sw)
    assert cm.tolist() == [[0, 2, 0], [2, 0, 0], [0, 0, 2]]  # rows: true blue, green, red
    table = rep.table_markdown()
    lines = table.splitlines()
    assert lines[0].startswith("| models | crops | cost | top-1 err % | top-3 err %")
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == [
        "1 (right)", "1 (right)", "1 (swapped)", "1 (swapped)", "2 (ensemble)", "2 (ensemble)"]
    assert lines[5].split("|")[3].strip() == "10" and "66.67" in lines[5]  # swapped, 10 crops
    assert lines[7].split("|")[3].strip() == "20"  # cost of 2 models x 10 crops
    files = rep.save(tmp_path / "out")
    assert {p.name for p in files} == {"results.json", "results.csv", "results.md",
                                       "confusion.png", "confusion.csv"}
    with Image.open(tmp_path / "out" / "confusion.png") as im:
        assert im.format == "PNG" and im.width > 100
    d = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(d["rows"]) == 6 and d["rows"][3]["top1_err"] == pytest.approx(66.6667, abs=1e-3)
    assert d["confusion"]["row"] == "2 (ensemble)" and d["confusion"]["crops"] == 10


def test_no_confusion_png_above_50_classes(tmp_path):
    names = [f"c{i}" for i in range(60)]
    row = EvalRow((0,), 1, k=5)
    row.add(torch.eye(60)[:4], torch.tensor([0, 1, 2, 3]))
    rep = EvalReport(rows=[row], model_names=["m"], class_names=names, labels=np.arange(4),
                     indices=np.arange(4), skipped=[], seconds={1: 0.1})
    files = rep.save(tmp_path)
    assert "confusion.png" not in {p.name for p in files}
    assert "60 classes > 50" in json.loads((tmp_path / "results.json").read_text())["confusion"]["skipped"]


def test_144_crops_each_image_averages_144_in_bounded_batches(colour_folder):
    ds = FolderDataset(colour_folder)
    w = colour_weights(order=(2, 1, 0))
    rep = evaluate_models([w], ds, crops=(144,), batch_size=50, progress=False)
    assert rep.row((0,), 144).top1 == 100.0
    calls = w.model.calls
    assert sum(calls) == 144 * 6 and max(calls) <= 50  # 144 crops per image, chunked


def test_crop_and_model_averaging_on_googlenets(nets, tmp_path):
    """Ensemble = mean over models of (mean over crops of softmax), checked image by image."""
    root = _noise_folder(tmp_path / "noise", n_per_class=1)
    ds = FolderDataset(root)
    models = [load_weights(p) for p in nets]
    rep = evaluate_models(models, ds, crops=(1, 10), progress=False)
    rep144 = evaluate_models(models, ds, crops=(144,), indices=[1], progress=False)  # 1 image
    assert len(rep.rows) == 6 and rep.num_images == 3 and rep144.num_images == 1
    for r, c in [(rep, 1), (rep, 10), (rep144, 144)]:
        ens_preds = r.row((0, 1), c).predictions()
        singles = [r.row((i,), c).predictions() for i in (0, 1)]
        for j, i in enumerate(r.indices):
            img = ds.load(i)[0]
            per_model = []
            for m in models:
                x = multi_crop(img, m.preprocess, c)  # (c, 3, 32, 32)
                with torch.no_grad():
                    per_model.append(m.model(x).softmax(-1).mean(0))  # (3,)
            ens = image_probs(models, img, c)
            torch.testing.assert_close(ens, (per_model[0] + per_model[1]) / 2, atol=1e-5, rtol=0)
            assert ens_preds[j] == ens.argmax().item()
            assert [s[j] for s in singles] == [p.argmax().item() for p in per_model]
    # the models disagree somewhere, so the ensemble is not just one of them
    assert (rep.row((0,), 1).predictions() != rep.row((1,), 1).predictions()).any()
    # the 1-crop row from the 10-crop pass equals a 1-crop pass of its own
    alone = evaluate_models(models, ds, crops=(1,), progress=False)
    for key in [((0,), 1), ((1,), 1), ((0, 1), 1)]:
        assert (alone.row(*key).predictions() == rep.row(*key).predictions()).all()


# -- bad input -------------------------------------------------------------------------------

def test_class_checks():
    a = colour_weights()
    with pytest.raises(UserError, match="trained on 3 classes .*the data has 3 classes .*match-classes index"):
        check_classes([a], ["cat", "dog", "eel"])
    with pytest.raises(UserError, match="another order"):
        check_classes([a], ["red", "green", "blue"])
    with pytest.raises(UserError, match="data has 2 classes"):
        check_classes([a], ["blue", "green"])
    assert check_classes([a], ["x", "y", "z"], match="index") == ["x", "y", "z"]
    b = colour_weights(names=("b", "g", "r"))
    with pytest.raises(UserError, match="cannot be an ensemble"):
        check_classes([a, b], names=["A", "B"])
    four = colour_weights()
    four.model.num_classes = 4
    four.class_names = None
    with pytest.raises(UserError, match="B and A cannot be an ensemble: B has 4 unnamed classes"):
        check_classes([a, four], names=["A", "B"])


def _corrupt_folder(root):
    _write_images(root)
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR")
    (root / "green" / "notes.jpg").write_text("not an image")
    return root


def test_unreadable_files_skipped_and_counted_or_strict(tmp_path):
    ds = FolderDataset(_corrupt_folder(tmp_path / "bad"))
    assert len(ds) == 8
    w = colour_weights(order=(2, 1, 0))
    rep = evaluate_models([w], ds, crops=(1, 10), progress=False)
    assert rep.num_images == 6 and rep.row((0,), 10).n == 6 and rep.row((0,), 1).top1 == 100.0
    assert sorted(p.split("/")[-1] for p, _ in rep.skipped) == ["broken.png", "notes.jpg"]
    with pytest.raises(UserError, match=r"broken\.png|notes\.jpg") as e:
        evaluate_models([w], ds, crops=(1,), strict=True, progress=False)
    assert "strict evaluation stops at the first unreadable file" in str(e.value)


def test_all_unreadable_is_an_error(tmp_path):
    root = tmp_path / "junk"
    for name in COLOURS:
        (root / name).mkdir(parents=True)
        (root / name / "a.png").write_text("nope")
    ds = FolderDataset(root)
    with pytest.raises(UserError, match="none of the 3 images could be read"):
        evaluate_models([colour_weights()], ds, progress=False)
    ds.samples = []
    with pytest.raises(UserError, match="no images"):
        evaluate_models([colour_weights()], ds, progress=False)


def test_crop_probs_chunks():
    net = ColourNet()
    x = torch.rand(7, 3, 32, 32)
    p = crop_probs(net, x, batch_size=3)
    assert net.calls == [3, 3, 1] and p.shape == (7, 3)
    torch.testing.assert_close(p.sum(1), torch.ones(7))


# -- the command line ------------------------------------------------------------------------

def _split_folder(root, corrupt=False):
    """root/train/<class>/ and root/test/<class>/ of random images (test: 2 per class)."""
    g = torch.Generator().manual_seed(1)
    for split, n in (("train", 1), ("test", 2)):
        for name in ("blue", "green", "red"):
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                a = torch.randint(0, 256, (36 + 8 * j, 44, 3), dtype=torch.uint8, generator=g)
                Image.fromarray(a.numpy()).save(root / split / name / f"{j}.png")
    if corrupt:
        (root / "test" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return root


def _eval(*argv):
    return cli.main(["eval", *map(str, argv), "--workers", "0", "--no-progress"])


def test_cli_ensemble_table_and_files(nets, tmp_path, capsys):
    data = _split_folder(tmp_path / "data", corrupt=True)
    out = tmp_path / "out"
    assert _eval(*nets, "--data", data, "--crops", "1", "10", "--out", out) == 0
    text = capsys.readouterr().out
    assert "data: " in text and "(test split), 6 images, 3 classes, 1 unreadable files skipped" in text
    assert "broken.png" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 6  # header + (2 models + ensemble) x 2 crop counts
    assert [ln.split("|")[1].strip().split(" ")[0] for ln in table[1:]] == ["1"] * 4 + ["2"] * 2
    d = json.loads((out / "results.json").read_text())
    assert d["images"] == 6 and d["k"] == 3 and len(d["skipped"]) == 1
    assert d["skipped"][0]["file"].endswith("broken.png")
    assert [(r["models"], r["crops"], r["cost"]) for r in d["rows"]] == [
        (1, 1, 1), (1, 10, 10), (1, 1, 1), (1, 10, 10), (2, 1, 2), (2, 10, 20)]
    for r in d["rows"]:
        assert r["top1_err"] == pytest.approx(100 - r["top1_acc"]) and r["top5_acc"] == 100.0
        assert r["top1_acc"] == pytest.approx(100 * r["top1_correct"] / 6, abs=1e-4)
    with Image.open(out / "confusion.png") as im:
        assert im.format == "PNG"
    cm = np.loadtxt(out / "confusion.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    assert cm.sum() == 6 and (cm.sum(1) == 2).all()
    assert (out / "results.md").read_text().count("| 2 (ensemble) |") == 2
    assert (out / "results.csv").read_text().count("\n") == 7

    # --strict stops at the corrupt file, naming it
    assert _eval(nets[0], "--data", data, "--strict") == 2
    assert "broken.png" in capsys.readouterr().err


def test_cli_default_digits_and_limit(tmp_path, capsys):
    torch.manual_seed(0)
    m = GoogLeNet(variant="bn", num_classes=10, aux_logits=False).eval()
    path = save_weights(m, tmp_path / "digits.safetensors", class_names=[str(i) for i in range(10)],
                        preprocess=Preprocess(crop=32, resize=32))
    assert _eval(path, "--limit", "12", "--batch-size", "5") == 0
    text = capsys.readouterr().out
    assert "data: digits (test split), 12 images, 10 classes" in text
    assert "| models | crops | cost | top-1 err % | top-5 err % |" in text


def test_cli_data_defaults_to_the_runs(nets, tmp_path, capsys):
    """A run whose checkpoint records its training data is evaluated on that data."""
    data = _split_folder(tmp_path / "data")
    lw = load_weights(nets[0])
    run = tmp_path / "run"
    run.mkdir()
    ckpt = TrainCheckpoint(
        meta=WeightsMeta(model_config=lw.model.config, class_names=lw.class_names,
                         preprocess=json.loads(lw.preprocess.to_json())),
        model=lw.model.state_dict(), optimizer={}, scheduler={},
        config={"data": str(data), "seed": 0, "val_fraction": 0.1},
        run_state={"epoch": 1, "epoch_step": 0, "step": 1})
    torch.save(ckpt.to_state(), run / "checkpoint-last.pt")
    assert _eval(run, "--limit", "2") == 0
    text = capsys.readouterr().out
    assert f"data: {data} (test split), 2 images, 3 classes" in text


@pytest.mark.parametrize("case", ["classes", "ensemble", "crops", "missing", "empty", "device"])
def test_cli_bad_input(case, nets, tmp_path, capsys):
    data = tmp_path / "data"
    for name in ("cat", "dog", "eel"):
        (data / name).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (40, 40), (j * 90, 0, 0)).save(data / name / f"{j}.png")
    if case == "classes":
        argv, msg = [nets[0], "--data", data], "trained on 3 classes (blue, green, red) but the data has 3 classes (cat, dog, eel)"
    elif case == "ensemble":
        four = save_weights(GoogLeNet(variant="bn", num_classes=4, aux_logits=False),
                            tmp_path / "four.safetensors", preprocess=Preprocess.for_size(32))
        argv, msg = [nets[0], four, "--data", data], "cannot be an ensemble"
    elif case == "crops":
        argv, msg = [nets[0], "--data", data, "--crops", "1", "12"], "--crops 12: not a crop count; choose from 1, 10, 144"
    elif case == "missing":
        argv, msg = [nets[0], tmp_path / "nope.safetensors"], "nope.safetensors: no such file"
    elif case == "empty":
        (tmp_path / "empty" / "a").mkdir(parents=True)
        argv, msg = [nets[0], "--data", tmp_path / "empty"], "has no images"
    else:
        argv, msg = [nets[0], "--device", "cuda:0" if not torch.cuda.is_available() else "tpu"], "--device"
    assert _eval(*argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
