"""BVLC Caffe bvlc_googlenet import (googlenet.caffe), checked against OpenCV's DNN module.

OpenCV's Caffe importer is an independent implementation of Caffe's layers (LRN, ceil-mode
pooling, padding, concat order, InnerProduct flattening). The tests write a caffemodel with random
weights plus a deploy prototxt of the network, run OpenCV on Caffe-style input (BGR, 0-255, minus
the mean) and the converted model on the same images through the carried preprocessing, and
require the same probabilities.
"""

from __future__ import annotations

import copy
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.interop import caffe, caffe_schema
from googlenet.cli import main as cli_main
from googlenet.errors import UserError
from googlenet.models.googlenet import GoogLeNet
from googlenet.interop.torchvision import imagenet_categories
from googlenet.sources import load_weights

cv2 = pytest.importorskip("cv2")

CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
PEAK = 4.0  # std of the calibrated logits: a peaked softmax, so a 1e-4 tolerance means something


def _images(n: int = 3, size: int = 256) -> list[np.ndarray]:
    """Smooth random RGB uint8 images (upsampled noise plus a gradient), HWC."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 80, size, dtype=np.float32)
    out = []
    for i in range(n):
        low = rng.integers(0, 256, (8 + 4 * i, 8 + 4 * i, 3), dtype=np.uint8)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        img = 0.7 * img + ramp[None, :, None] * (1 if i % 2 else -1) + 40
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _random_paper_model(num_classes: int = 1000, aux: bool = True, seed: int = 0) -> GoogLeNet:
    """Paper GoogLeNet with He-scaled random weights (activations keep their size through 22
    layers), non-zero biases, and classifiers scaled so the softmaxes are peaked."""
    model = GoogLeNet(variant="paper", num_classes=num_classes, aux_logits=aux,
                      init_weights=False).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=g)
                m.bias.normal_(0, 2.0, generator=g)
    return model


def _calibrate(model: GoogLeNet, x: torch.Tensor) -> None:
    """Set each classifier (fc, aux fc2) so its logits on ``x`` vary by image with std PEAK."""
    fcs = [model.fc] + [h.fc2 for h in (model.aux1, model.aux2) if h is not None]
    seen: dict = {}
    hooks = [fc.register_forward_hook(lambda m, i, o: seen.__setitem__(m, i[0])) for fc in fcs]
    hooks += [getattr(model, tap).register_forward_hook(
        lambda m, i, o, tap=tap: seen.__setitem__(tap, o))
        for tap in ("inception_4a", "inception_4d")]
    with torch.no_grad():
        model(x)
        for head, tap in ((model.aux1, "inception_4a"), (model.aux2, "inception_4d")):
            if head is not None:
                head(seen[tap])
        for fc in fcs:
            # Deep random nets map every image to nearly the same features; classify what sets
            # the images apart (bias cancels the shared part, plus noise) so predictions differ.
            inp = seen[fc]
            mu = inp.mean(0)
            fc.weight.mul_(PEAK / torch.nn.functional.linear(inp - mu, fc.weight).std())
            noise = torch.randn(fc.bias.shape, generator=torch.Generator().manual_seed(1))
            fc.bias.copy_(0.5 * noise - fc.weight @ mu)
    for h in hooks:
        h.remove()


def _caffe_input(pre, images: list[np.ndarray]) -> torch.Tensor:
    """Our side: each RGB image through the preprocessing carried with the converted weights."""
    tf = pre.eval_transform()
    return torch.stack([tf(Image.fromarray(im)) for im in images])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("caffe")
    images = _images()
    source = _random_paper_model()
    _calibrate(source, _caffe_input(caffe.CAFFE_PREPROCESS, images))
    layers = caffe.caffe_layers(source)
    caffe.write_caffemodel(d / "net.caffemodel", layers)
    caffe.write_caffemodel(d / "legacy.caffemodel", layers, legacy=True)
    (d / "aux.prototxt").write_text(caffe.caffe_prototxt(aux=True, batch=len(images)))
    return SimpleNamespace(dir=d, images=images, source=source, layers=layers,
                           model=d / "net.caffemodel", legacy=d / "legacy.caffemodel",
                           prototxt=d / "aux.prototxt")


@pytest.fixture(scope="module")
def converted(files):
    return caffe.load_caffemodel(files.model)


# -- the core check: OpenCV (Caffe semantics) vs the converted model ---------------------------

@pytest.fixture(scope="module")
def opencv_probs(files):
    """OpenCV's prob, loss1/prob, loss2/prob on Caffe's own input: BGR, 0-255, minus the BGR
    mean, the center 224 crop of each 256 image."""
    net = cv2.dnn.readNetFromCaffe(str(files.prototxt), str(files.model))
    bgr = [im[16:240, 16:240, ::-1].copy() for im in files.images]
    net.setInput(cv2.dnn.blobFromImages(bgr, 1.0, (224, 224), CAFFE_MEAN_BGR, swapRB=False))
    return [torch.from_numpy(o.reshape(len(bgr), -1))
            for o in net.forward(["prob", "loss1/prob", "loss2/prob"])]


def test_matches_opencv_caffe(files, converted, opencv_probs):
    ref = opencv_probs
    model = converted.model
    assert not model.training
    x = _caffe_input(converted.preprocess, files.images)  # RGB in [0,1] -> normalised
    assert x.shape == (3, 3, 224, 224)
    taps = {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: taps.__setitem__(n, o))
             for n in ("inception_4a", "inception_4d")]
    with torch.no_grad():
        probs = [model(x).softmax(1), model.aux1(taps["inception_4a"]).softmax(1),
                 model.aux2(taps["inception_4d"]).softmax(1)]
    for h in hooks:
        h.remove()
    for name, ours, theirs in zip(("prob", "loss1/prob", "loss2/prob"), probs, ref):
        assert ours.shape == theirs.shape == (3, 1000)
        print(f"{name}: max |prob diff| vs OpenCV {(ours - theirs).abs().max().item():.2g}, "
              f"top prob {ours.max(1).values.min().item():.2f}..{ours.max(1).values.max().item():.2f}")
        # Peaked, not ~uniform (1e-3), so the tolerance below is a real constraint.
        assert ours.max(1).values.min() > 0.05, name
        assert (ours - theirs).abs().max().item() <= 1e-4, name
        assert torch.equal(ours.topk(5).indices, theirs.topk(5).indices), name
    # The images do not all collapse onto one prediction.
    assert len(set(probs[0].argmax(1).tolist())) > 1


def _mistake(model: GoogLeNet, kind: str) -> GoogLeNet:
    model = copy.deepcopy(model)
    with torch.no_grad():
        if kind == "conv1 not flipped to RGB":
            model.conv1.conv.weight.copy_(model.conv1.conv.weight.flip(1))
        elif kind == "no LRN after pool1":
            model.norm1 = torch.nn.Identity()
        elif kind == "floor-mode pool1":
            model.pool1.ceil_mode = False
        elif kind == "one conv bias off by 0.01":
            model.inception_3a.conv1x1.conv.bias.add_(0.01)
    return model


@pytest.mark.parametrize("kind", ["conv1 not flipped to RGB", "no LRN after pool1",
                                  "floor-mode pool1", "one conv bias off by 0.01"])
def test_parity_check_catches_mistakes(files, converted, opencv_probs, kind):
    """The 1e-4 tolerance is a real constraint: small, plausible conversion mistakes break it."""
    x = _caffe_input(converted.preprocess, files.images)
    with torch.no_grad():
        probs = _mistake(converted.model, kind)(x).softmax(1)
    diff = (probs - opencv_probs[0]).abs().max().item()
    print(f"{kind}: max |prob diff| vs OpenCV {diff:.2g}")
    assert diff > 1e-4


def test_round_trip_weights_and_aux_heads(files, converted):
    src, got = files.source.state_dict(), converted.model.state_dict()
    assert set(src) == set(got)
    for k in src:
        assert torch.equal(src[k], got[k]), k
    # The aux heads' weights came from loss1/* and loss2/*.
    aux1 = {l.name: l for l in files.layers}["loss1/fc"].blobs[0]
    assert torch.equal(converted.model.aux1.fc1.weight, torch.from_numpy(aux1))
    assert converted.model.aux_logits and converted.model.aux2 is not None


def test_conv1_flipped_to_rgb(files, converted):
    bgr = {l.name: l for l in files.layers}["conv1/7x7_s2"].blobs[0]  # as stored in the file
    w = converted.model.conv1.conv.weight
    for rgb_idx, bgr_idx in ((0, 2), (1, 1), (2, 0)):
        assert torch.equal(w[:, rgb_idx], torch.from_numpy(bgr[:, bgr_idx]))


def test_preprocess_and_class_names(converted):
    pre = converted.preprocess
    assert (pre.crop, pre.resize) == (224, 256)
    v = torch.arange(256.0)
    for c, mean_rgb in enumerate((123.0, 117.0, 104.0)):
        # (x/255 - mean) / std == x - mean_rgb, the Caffe input on the 0-255 scale
        assert ((v / 255 - pre.mean[c]) / pre.std[c] - (v - mean_rgb)).abs().max() < 1e-4
    assert converted.class_names == imagenet_categories() and len(converted.class_names) == 1000
    assert converted.metadata["caffe_format"] == "layer"
    assert converted.metadata["bvlc_release"] is False


def test_legacy_v1_format_converts_to_same_tensors(files, converted):
    legacy = caffe.load_caffemodel(files.legacy)
    assert legacy.metadata["caffe_format"] == "layers (V1)"
    net = caffe.read_caffemodel(files.legacy)
    ip = {l.name: l for l in net.layers}["loss3/classifier"]
    assert ip.legacy_shapes and ip.blobs[0].shape == (1, 1, 1000, 1024)  # num/channels/height/width
    a, b = converted.model.state_dict(), legacy.model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _field(number: int, payload: bytes | int | float) -> bytes:
    """One protobuf field on the wire: varint, fixed32 float, or length-delimited bytes."""
    if isinstance(payload, bytes):
        return caffe_schema.varint(number << 3 | 2) + caffe_schema.varint(len(payload)) + payload
    if isinstance(payload, float):
        return caffe_schema.varint(number << 3 | 5) + struct.pack("<f", payload)
    return caffe_schema.varint(number << 3) + caffe_schema.varint(payload)


@pytest.mark.parametrize("legacy", [False, True])
def test_unknown_fields_are_skipped(files, converted, tmp_path, legacy):
    """Real caffemodels carry many more fields (layer params, learning-rate multipliers, the
    input declaration, ...) than the few declared here; they must be skipped."""
    net = caffe_schema.classes()["NetParameter"].FromString(
        (files.legacy if legacy else files.model).read_bytes())
    net.MergeFromString(_field(3, b"data") + _field(4, 10) + _field(6, _field(1, 1)))
    for lp in (net.layers if legacy else net.layer):
        if legacy:  # blobs_lr (7), weight_decay (8), convolution_param (10) {num_output: 64}
            extra = _field(7, 1.0) + _field(7, 2.0) + _field(8, 1.0) + _field(10, _field(1, 64))
        else:  # bottom (3), param (6) {lr_mult: 1}, convolution_param (106), include (8)
            extra = (_field(3, b"data") + _field(6, _field(3, 1.0)) + _field(106, _field(1, 64))
                     + _field(8, _field(1, 1)))
        lp.MergeFromString(extra)
    path = tmp_path / "extra.caffemodel"
    path.write_bytes(net.SerializeToString())
    got = caffe.load_caffemodel(path).model.state_dict()
    want = converted.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_deploy_only_model_without_aux_other_classes(tmp_path):
    """A deploy caffemodel (no loss1/loss2) with 10 classes: aux_logits=False, no class names;
    OpenCV reads it with the generated deploy prototxt."""
    src = _random_paper_model(num_classes=10, aux=False, seed=1)
    path = caffe.write_caffemodel(tmp_path / "deploy.caffemodel", caffe.caffe_layers(src))
    lw = load_weights(f"caffe:{path}")
    assert lw.model.aux1 is None and lw.model.config["aux_logits"] is False
    assert lw.model.num_classes == 10 and lw.class_names is None
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(caffe.caffe_prototxt(num_classes=10))
    net = cv2.dnn.readNetFromCaffe(str(proto), str(path))
    assert "loss3/classifier" in net.getLayerNames() and "loss1/fc" not in net.getLayerNames()


def test_drop_aux(files):
    lw = caffe.load_caffemodel(files.model, aux=False)
    assert lw.model.aux1 is None and lw.model.aux2 is None and not lw.model.aux_logits
    assert not any(k.startswith("aux") for k in lw.model.state_dict())


# -- errors -----------------------------------------------------------------------------------

def _png_bytes(tmp_path) -> bytes:
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "x.png")
    return (tmp_path / "x.png").read_bytes()


@pytest.mark.parametrize("kind,match", [
    ("truncated", "truncated"),
    ("random", "not a readable Caffe .caffemodel"),
    ("png", "PNG image"),
    ("other_protobuf", "no Caffe layers"),
    ("prototxt", "text .prototxt"),
    ("empty", "empty file"),
    ("missing", "no such file"),
])
def test_foreign_or_damaged_file_is_a_user_error(files, tmp_path, kind, match):
    from google.protobuf import descriptor_pb2

    data = {
        "truncated": lambda: files.model.read_bytes()[:2_000_000],
        "random": lambda: np.random.default_rng(0).bytes(10_000),
        "png": lambda: _png_bytes(tmp_path),
        # A valid protobuf of another schema (a FileDescriptorSet holding one file).
        "other_protobuf": lambda: descriptor_pb2.FileDescriptorSet(file=[
            descriptor_pb2.FileDescriptorProto(name="a.proto")]).SerializeToString(),
        "prototxt": lambda: files.prototxt.read_bytes(),
        "empty": lambda: b"",
    }
    path = tmp_path / f"{kind}.caffemodel"
    if kind != "missing":
        path.write_bytes(data[kind]())
    with pytest.raises(UserError, match=match) as e:
        caffe.load_caffemodel(path)
    assert str(path) in str(e.value)


def _edit(files, tmp_path, edit) -> str:
    layers = [caffe.CaffeLayer(l.name, l.type, list(l.blobs)) for l in files.layers]
    return caffe.write_caffemodel(tmp_path / "edited.caffemodel", edit(layers))


def test_missing_layer(files, tmp_path):
    path = _edit(files, tmp_path, lambda ls: [l for l in ls if l.name != "inception_4c/5x5"])
    with pytest.raises(UserError, match=r"missing.*'inception_4c/5x5'.*inception_4c\.conv5x5"):
        caffe.load_caffemodel(path)


def test_extra_learnable_layer(files, tmp_path):
    extra = caffe.CaffeLayer("loss3/classifier_style", "InnerProduct",
                             [np.zeros((20, 1024), np.float32), np.zeros(20, np.float32)])
    path = _edit(files, tmp_path, lambda ls: ls + [extra])
    with pytest.raises(UserError, match="unexpected learnable layer.*loss3/classifier_style"):
        caffe.load_caffemodel(path)


def test_misshaped_blob_names_layer_and_shapes(files, tmp_path):
    def edit(ls):
        for l in ls:
            if l.name == "inception_3b/3x3":  # a 3x3 conv stored as 5x5
                l.blobs[0] = np.zeros((192, 128, 5, 5), np.float32)
        return ls

    path = _edit(files, tmp_path, edit)
    with pytest.raises(UserError, match=r"'inception_3b/3x3' weight has shape \(192, 128, 5, 5\), "
                                        r"expected \(192, 128, 3, 3\)"):
        caffe.load_caffemodel(path)


def test_missing_bias_blob(files, tmp_path):
    def edit(ls):
        for l in ls:
            if l.name == "conv2/3x3":
                l.blobs = l.blobs[:1]
        return ls

    with pytest.raises(UserError, match=r"'conv2/3x3' .* 1 blob\(s\), expected 2"):
        caffe.load_caffemodel(_edit(files, tmp_path, edit))


# -- the command line ---------------------------------------------------------------------------

def test_convert_cli_and_loaders_agree(files, tmp_path, capsys):
    out = tmp_path / "bvlc.safetensors"
    proto = tmp_path / "deploy.prototxt"
    assert cli_main(["convert", "caffe", str(files.model), "--out", str(out),
                     "--prototxt", str(proto)]) == 0
    printed = capsys.readouterr().out
    assert "1000 classes" in printed and str(out) in printed
    a, b = load_weights(out), load_weights(f"caffe:{files.model}")
    assert a.class_names == b.class_names == imagenet_categories()
    assert a.preprocess == b.preprocess == caffe.CAFFE_PREPROCESS
    assert a.model.config == b.model.config
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 60
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))
    assert "loss3/classifier" in proto.read_text()


def test_convert_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(_png_bytes(tmp_path))
    assert cli_main(["convert", "caffe", str(bad), "--out", str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "bad.caffemodel" in err and "PNG image" in err and "Traceback" not in err
    assert not (tmp_path / "o.safetensors").exists()
    assert cli_main(["convert", "caffe", str(bad), "--out", str(tmp_path / "o.pt")]) == 2
    assert ".safetensors" in capsys.readouterr().err
