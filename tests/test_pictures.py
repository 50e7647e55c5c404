"""Pictures: ``googlenet summary --format svg|png`` draws every Table 1 module with its widths
(read back from the SVG's text), PNGs have the slide size, and ``predict --explain`` writes one
Grad-CAM heatmap per image at the image's own size."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet import cli
from googlenet.data.crops import multi_crop
from googlenet.data.preprocess import Preprocess
from googlenet.models import figure
from googlenet.models.googlenet import TABLE1, GoogLeNet, InceptionSpec
from googlenet.weights import save_weights

SVG = "{http://www.w3.org/2000/svg}"
SPECS = [s for s in TABLE1 if isinstance(s, InceptionSpec)]


def _svg_texts(path: Path) -> dict[str, str]:
    """SVG group id -> the text inside it (matplotlib writes an artist's gid as a <g id>)."""
    root = ET.parse(path).getroot()
    out = {}
    for g in root.iter(f"{SVG}g"):
        texts = ["".join(t.itertext()) for t in g.iter(f"{SVG}text")]
        if g.get("id") and texts:
            out[g.get("id")] = " ".join(texts)
    return out


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("variant,k5", [("paper", 5), ("torchvision", 3)])
def test_network_svg_has_every_module_and_width(tmp_path, variant, k5):
    out = tmp_path / "net.svg"
    assert cli.main(["summary", "--variant", variant, "--format", "svg", "--out", str(out)]) == 0
    texts = _svg_texts(out)
    all_text = " ".join(t.text or "" for t in ET.parse(out).getroot().iter(f"{SVG}text"))
    assert len(all_text) > 500  # real <text>, not glyph paths
    kernels = {"n1x1": 1, "n3x3red": 1, "n3x3": 3, "n5x5red": 1, "n5x5": k5, "pool_proj": 1}
    for spec in SPECS:
        assert texts[f"{spec.name}:name"] == spec.name
        for fld in figure.WIDTH_FIELDS:
            k = kernels[fld]
            assert texts[f"{spec.name}:{fld}"] == f"{k}\u00d7{k} {getattr(spec, fld)}", (spec.name, fld)
    assert texts["inception_3a:output"].endswith("28\u00d728\u00d7256")
    assert texts["inception_5b:output"].endswith("7\u00d77\u00d71024")
    assert "aux1" in texts["aux1:line0"] and "aux2" in texts["aux2:line0"]
    for layer in ("conv1", "pool1", "conv2", "pool2", "pool3", "pool4", "avgpool", "dropout", "fc"):
        assert f"{layer}:title" in texts, layer
    assert ("local response norm" in texts.get("norm1:title", "")) == (variant == "paper")
    assert "22 layers" in texts["title"]


def test_naive_figure_costs(tmp_path):
    from googlenet.models.summary import naive_comparison

    out = tmp_path / "n.svg"
    assert cli.main(["summary", "--inception", "naive", "--module", "inception_4e",
                     "--out", str(out)]) == 0  # format from the suffix
    texts = _svg_texts(out)
    row = next(r for r in naive_comparison()["rows"] if r["module"] == "inception_4e")
    assert texts["naive:cost"].startswith(f"{row['naive_same_input']['weights']:,} weights")
    assert texts["reduced:cost"].startswith(f"{row['reduced']['weights']:,} weights")
    assert texts["naive:out:detail"] == f"14\u00d714\u00d7{row['naive_same_input']['out_channels']}"
    assert texts["reduced:out:detail"] == "14\u00d714\u00d7832"
    assert "inception_4e" in texts["title"]


def test_png_size_and_atomic_default_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["summary", "--format", "png"]) == 0
    w, h = _png_size(tmp_path / "summary.png")
    assert (w, h) == (round(figure.FIGSIZE[0] * figure.DPI), round(figure.FIGSIZE[1] * figure.DPI))
    assert 1.7 < w / h < 1.8  # 16:9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.png"]  # no temp file left
    assert cli.main(["summary", "--format", "svg", "--module", "nope", "--inception", "naive"]) == 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    torch.manual_seed(0)
    model = GoogLeNet(variant="bn", num_classes=3, aux_logits=False)
    pre = Preprocess(crop=64, resize=72)
    save_weights(model, root / "w.safetensors", class_names=["a", "b", "c"], preprocess=pre)
    rng = np.random.default_rng(0)
    imgs = root / "imgs"
    (imgs / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)).save(imgs / "wide.jpg")
    Image.fromarray(rng.integers(0, 256, (120, 70, 3), dtype=np.uint8)).save(imgs / "sub" / "tall.png")
    return root, model, pre


def test_predict_explain_writes_one_captioned_picture_per_image(tiny, capsys):
    """One Grad-CAM picture per image, at a readable size (the 50-120 px images enlarged), of
    the top-1 class, at the deepest layer whose map is at least 7x7 at the 64 px input
    (inception_3b, 8x8), with the class and its probability recorded."""
    pytest.importorskip("captum")
    root, _, _ = tiny
    out = root / "heat"
    rc = cli.main(["predict", str(root / "imgs"), "--weights", str(root / "w.safetensors"),
                   "--explain", "--out", str(out), "--json", "--no-progress", "--workers", "1"])
    assert rc == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert sorted(p.name for p in out.iterdir()) == ["contact-sheet.png", "tall.gradcam.png",
                                                     "wide.gradcam.png"]
    for name in ("wide.gradcam.png", "tall.gradcam.png"):
        w, h = Image.open(out / name).size
        assert w >= 600 and h >= 350, (name, w, h)
    by_file = {Path(e["file"]).name: e for e in doc["explanations"]}
    top = {Path(p["file"]).name: p["top"][0] for p in doc["predictions"]}
    assert {k: v["class"] for k, v in by_file.items()} == {k: t["class"] for k, t in top.items()}
    assert all(e["layer"] == "inception_3b" and e["map_size"] == 8 for e in by_file.values())
    assert all(abs(e["prob"] - top[k]["prob"]) < 1e-6 for k, e in by_file.items())
    assert "layer inception_3b, a 8x8 map" in cap.err and "warning" not in cap.err


def test_explain_default_layer_has_a_7x7_map_and_coarser_ones_warn(tiny, capsys):
    pytest.importorskip("captum")
    from googlenet.infer.explain import pick_layer

    model = GoogLeNet(variant="bn", num_classes=3, aux_logits=False, init_weights=False).eval()
    assert pick_layer(model, 224) == ("inception_5b", 7)  # the paper's map
    assert pick_layer(model, 32) == ("conv2", 8)  # 5b is 1x1 there: a flat tint
    root, _, _ = tiny
    rc = cli.main(["predict", str(root / "imgs" / "wide.jpg"), "--weights",
                   str(root / "w.safetensors"), "--explain", "--explain-layer", "inception_5b",
                   "--out", str(root / "coarse"), "--no-progress"])
    assert rc == 0
    assert "warning: inception_5b's map is 2x2 at 64 px" in capsys.readouterr().err


def test_gradcam_matches_definition_and_lands_on_the_crop(tiny, tmp_path):
    """Captum's Grad-CAM equals the definition (ReLU of the gradient-weighted channel sum), and
    the overlay colours only the center crop's area of the original image."""
    pytest.importorskip("captum")
    from googlenet.infer import explain

    _, model, pre = tiny
    model = model.eval()
    x = torch.randn(1, 3, 64, 64)
    acts = {}
    h = model.inception_4e.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    score = model(x)[0, 1]
    h.remove()
    a = acts["a"]
    grad, = torch.autograd.grad(score, a)
    want = torch.relu((grad.mean((2, 3), keepdim=True) * a).sum(1))[0].detach()  # (4, 4)
    got = explain.gradcam(model, x, model.inception_4e, 1, tuple(want.shape))[0]
    torch.testing.assert_close(got, want / want.max(), rtol=1e-4, atol=1e-5)

    # a flat gray 100x50 image, resized to 144x72; its 64x64 center crop at (40, 4) is
    # (28, 3, 44, 44) in the original's pixels
    img = tmp_path / "flat.png"
    Image.new("RGB", (100, 50), (128, 128, 128)).save(img)
    box = explain._crop_in_original(100, 50, pre)
    heat = explain.gradcam(model, multi_crop(Image.open(img).convert("RGB"), pre, 1),
                           model.inception_4e, 0, (box[3], box[2]))[0].numpy()
    pic = np.asarray(explain.overlay(Image.open(img), heat, box)).astype(int)
    assert pic.shape == (50, 100, 3)
    dim = round(128 * explain.OUTSIDE)
    assert (abs(pic[:, :20] - dim) <= 1).all() and (abs(pic[:, 80:] - dim) <= 1).all()
    assert explain._crop_in_original(100, 50, pre) == (28, 3, 44, 44)
    assert (abs(pic[5:45, 30:70] - dim) > 5).any(axis=-1).all()  # the crop is coloured
    assert (abs(pic[:2] - dim) <= 1).all() and (abs(pic[48:] - dim) <= 1).all()
    # the picture: the image enlarged (100x50 -> at least 448 px high), a colour bar, a caption
    dst = explain.explain_image(model, img, pre, model.inception_4e, 0, tmp_path / "o.png",
                                caption="predicted b (41.0%)")
    assert min(Image.open(dst).size) >= 400


def test_explain_errors(tiny, monkeypatch, capsys):
    root, _, _ = tiny
    args = ["predict", str(root / "imgs"), "--weights", str(root / "w.safetensors"), "--explain",
            "--out", str(root / "e"), "--no-progress"]
    assert cli.main(args + ["--explain-layer", "inception_9z"]) == 2
    assert "--explain-layer: inception_9z: no such layer" in capsys.readouterr().err
    import builtins

    real = builtins.__import__

    def no_captum(name, *a, **k):
        if name.startswith("captum"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_captum)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "--explain: Grad-CAM needs captum" in err and "googlenet[explain]" in err


# -- detection drawings, the precision-recall plot, curves.png ------------------------------------

def test_detection_drawing_is_upscaled_with_a_colour_per_class():
    from googlenet.tasks.detect.evaluation import draw
    from googlenet.infer.pictures import PALETTE

    img = torch.full((3, 128, 128), 90, dtype=torch.uint8)
    det = {"boxes": torch.tensor([[10.0, 40, 50, 100], [70, 20, 120, 60]]),
           "labels": torch.tensor([0, 1]), "scores": torch.tensor([0.9, 0.8])}
    pic = draw(img, det, ["zero", "one"])
    assert pic.size == (512, 512)  # 128 px -> x4: labels a reader can read
    a = np.asarray(pic)
    assert tuple(a[300, 10 * 4 + 1]) == PALETTE[0] and tuple(a[150, 70 * 4 + 1]) == PALETTE[1]
    # each label on a background of its box's colour, above the box
    assert tuple(a[40 * 4 - 8, 10 * 4 + 3]) == PALETTE[0]


def test_pr_curve_legend_is_beside_the_data_in_percent():
    from googlenet.metrics.detection import pr_curve_figure, precision_recall

    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
              "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 1])}]
    gts = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 1])}]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = pr_curve_figure(precision_recall(preds, gts, 2), ["a", "b"])
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a  AP50 100.0%", "b  AP50 100.0%"]
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_curves_show_a_one_point_series_a_zero_lr_and_the_run():
    from googlenet.engine.logging import curves_figure

    rows = [{"epoch": 1, "lr": 1e-3, "train_loss": 2.0, "val_top1": 50.0},
            {"epoch": 2, "lr": 0.0, "train_loss": 1.0, "val_top1": 80.0, "val_top1_raw": 82.0}]
    groups = [("loss", [("train_loss", "train")]),
              ("accuracy (%)", [("val_top1", "val top-1"), ("val_top1_raw", "val top-1 (raw weights)")])]
    fig = curves_figure(rows, groups, title="run-1: classify, paper, digits, 10 steps")
    acc, lr = fig.axes[1], fig.axes[2]
    raw = next(ln for ln in acc.lines if ln.get_label().startswith("val top-1 (raw weights)"))
    assert raw.get_markersize() >= 10 and raw.get_label().endswith("82")
    assert lr.get_yscale() == "linear" and lr.get_ylim()[0] == 0.0  # lr 0 on the axis
    assert fig.get_suptitle() == "run-1: classify, paper, digits, 10 steps"
    partial = rows[:1] + [dict(rows[1], partial=1, epoch_fraction=0.5)]
    fig = curves_figure(partial, groups, title="r")
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 1.5] and "partial epoch" in fig.get_suptitle()
