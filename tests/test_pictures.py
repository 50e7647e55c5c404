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


def test_predict_explain_writes_one_heatmap_per_image(tiny, capsys):
    pytest.importorskip("captum")
    root, _, _ = tiny
    out = root / "heat"
    rc = cli.main(["predict", str(root / "imgs"), "--weights", str(root / "w.safetensors"),
                   "--explain", "--out", str(out), "--json", "--no-progress", "--workers", "1"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["tall.gradcam.png", "wide.gradcam.png"]
    assert Image.open(out / "wide.gradcam.png").size == (90, 50)
    assert Image.open(out / "tall.gradcam.png").size == (70, 120)
    by_file = {Path(e["file"]).name: e for e in doc["explanations"]}
    top1 = {Path(p["file"]).name: p["top"][0]["class"] for p in doc["predictions"]}
    assert {k: v["class"] for k, v in by_file.items()} == top1
    assert all(e["layer"] == "inception_5b" for e in by_file.values())


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
    dst = explain.explain_image(model, img, pre, model.inception_4e, 0, tmp_path / "o.png")
    pic = np.asarray(Image.open(dst)).astype(int)
    assert pic.shape == (50, 100, 3)
    dim = round(128 * explain.OUTSIDE)
    assert (abs(pic[:, :20] - dim) <= 1).all() and (abs(pic[:, 80:] - dim) <= 1).all()
    assert explain._crop_in_original(100, 50, pre) == (28, 3, 44, 44)
    assert (abs(pic[5:45, 30:70] - dim) > 5).any(axis=-1).all()  # the crop is coloured
    assert (abs(pic[:2] - dim) <= 1).all() and (abs(pic[48:] - dim) <= 1).all()


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
