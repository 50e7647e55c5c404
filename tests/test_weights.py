"""Weights in and out: safetensors with metadata, training checkpoints, run directories,
torchvision's ImageNet weights (through torchvision's own cache, no network), and the refusals
that keep untrusted files from running code."""

from __future__ import annotations

import json
import os
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from googlenet.errors import UserError
from googlenet import create_model
from googlenet.models.googlenet import GoogLeNet
from googlenet.data.preprocess import Preprocess
from googlenet.sources import load_weights
from googlenet.weights.records import TrainCheckpoint, WeightsMeta
from googlenet.weights import (
    CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS, atomic_torch_save, atomic_write,
    from_checkpoint, read_metadata, safe_torch_load, save_weights,
)

CLASSES = ["cat", "dog", "bird"]


def _model(variant: str = "bn", **kw) -> GoogLeNet:
    """A small-output model with non-trivial BN buffers (so saving them is actually tested)."""
    model = create_model(variant, num_classes=kw.pop("num_classes", len(CLASSES)), **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model.eval()


def _logits(model: GoogLeNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


# -- safetensors ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant,kwargs", [
    ("paper", {}),
    ("bn", dict(in_chans=1, stem="separable", aux_logits=False)),
    ("torchvision", dict(transform_input=True)),
], ids=["paper", "bn-gray-separable-noaux", "torchvision-transform_input"])
def test_safetensors_roundtrip(variant, kwargs, tmp_path):
    model = _model(variant, **kwargs)
    gray = kwargs.get("in_chans", 3) == 1
    pre = Preprocess.for_size(64, grayscale=gray, note="test",
                              **(dict(mean=(0.5,), std=(0.25,)) if gray else {}))
    path = save_weights(model, tmp_path / "w.safetensors", class_names=CLASSES, preprocess=pre)

    loaded = load_weights(path)
    assert loaded.model.config == model.config
    assert loaded.class_names == CLASSES
    assert loaded.preprocess == pre and loaded.preprocess.note == "test"
    assert loaded.source == str(path)
    assert not loaded.model.training
    x = torch.randn(2, kwargs.get("in_chans", 3), 64, 64)
    torch.testing.assert_close(_logits(loaded.model, x), _logits(model, x), rtol=0, atol=0)
    for k, v in model.state_dict().items():  # buffers too (BN running stats, counters)
        assert torch.equal(loaded.model.state_dict()[k], v), k


def test_metadata_readable_without_googlenet(tmp_path):
    """The metadata is plain safetensors string metadata: any safetensors reader sees it."""
    model = _model("torchvision", transform_input=True)
    path = save_weights(model, tmp_path / "w.safetensors", class_names=CLASSES)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(model.state_dict())
    assert meta["format"] == "pt" and meta["googlenet_format"] == "1"  # the Hub's convention
    assert meta["variant"] == "torchvision"
    assert meta["num_classes"] == "3"
    assert json.loads(meta["class_names"]) == CLASSES
    assert json.loads(meta["model_config"])["transform_input"] is True
    assert Preprocess.from_json(meta["preprocess"]) == Preprocess()
    assert read_metadata(path) == meta


def test_save_rejects_wrong_number_of_class_names(tmp_path):
    with pytest.raises(ValueError, match="2 class names for a model with 3 outputs"):
        save_weights(_model(), tmp_path / "w.safetensors", class_names=["a", "b"])


def test_safetensors_without_metadata(tmp_path):
    """A plain state dict loads, its config read off the keys (tests/test_ecosystem.py has
    more); other tensors without our metadata are refused."""
    path = tmp_path / "plain.safetensors"
    model = _model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    assert load_weights(path).model.config == model.config
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(UserError, match=rf"{path}: safetensors file without googlenet metadata"):
        load_weights(path)


def test_safetensors_not_safetensors(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match=rf"{path}: not a readable safetensors file"):
        load_weights(path)


def test_mismatched_shapes(tmp_path):
    """Metadata says 3 classes, tensors are for 5: the error names the file and the tensor."""
    path = save_weights(_model(), tmp_path / "w.safetensors",
                        state_dict=_model(num_classes=5).state_dict())
    with pytest.raises(UserError, match=rf"{path}: weights do not fit") as e:
        load_weights(path)
    # torch's details, not just its "Error(s) in loading state_dict" headline
    assert "size mismatch for aux1.fc2.weight" in str(e.value)
    assert "torch.Size([5, 1024]) from checkpoint" in str(e.value)
    assert str(e.value).endswith("(and 3 more)")  # fc2.bias of aux2, fc.weight, fc.bias


# -- training checkpoints and run directories ---------------------------------------------------

def _checkpoint(model: GoogLeNet, averaged: GoogLeNet | None) -> dict:
    return TrainCheckpoint(
        meta=WeightsMeta(model_config=model.config, class_names=CLASSES,
                         preprocess=json.loads(Preprocess.for_size(64).to_json())),
        model=model.state_dict(), optimizer={}, scheduler={}, config={},
        averaged_model=averaged.state_dict() if averaged is not None else None,
        run_state={"epoch": 3, "epoch_step": 0, "step": 120}).to_state()


def test_training_checkpoint_prefers_averaged_model(tmp_path):
    raw, avg = _model(), _model()
    x = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(_logits(raw, x), _logits(avg, x))
    path = tmp_path / "ckpt.pt"
    torch.save(_checkpoint(raw, avg), path)

    loaded = load_weights(path)
    torch.testing.assert_close(_logits(loaded.model, x), _logits(avg, x), rtol=0, atol=0)
    assert loaded.class_names == CLASSES
    assert loaded.preprocess == Preprocess.for_size(64)
    assert loaded.metadata == {"epoch": 3, "step": 120, "config": {}}

    not_averaged = from_checkpoint(safe_torch_load(path), str(path), averaged=False)
    torch.testing.assert_close(_logits(not_averaged.model, x), _logits(raw, x), rtol=0, atol=0)
    torch.save(_checkpoint(raw, None), path)  # no averaged weights (yet): the raw ones
    torch.testing.assert_close(_logits(load_weights(path).model, x), _logits(raw, x),
                               rtol=0, atol=0)


def test_checkpoint_missing_keys(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": _model().state_dict()}, path)
    with pytest.raises(UserError, match="neither a googlenet checkpoint nor a torchvision"):
        load_weights(path)
    with pytest.raises(UserError, match="x.pt: not a googlenet training checkpoint"):
        from_checkpoint({"model": {}}, "x.pt")
    ckpt = _checkpoint(_model(), None)
    del ckpt["model_config"]
    with pytest.raises(UserError, match=r"x.pt: training checkpoint without \['model_config'\]"):
        from_checkpoint(ckpt, "x.pt")
    with pytest.raises(UserError, match="x.pt: training checkpoint version 99 was written by a "
                                        "newer googlenet"):
        from_checkpoint({**_checkpoint(_model(), None), "version": 99}, "x.pt")


def test_checkpoint_bad_config(tmp_path):
    path = tmp_path / "ckpt.pt"
    ckpt = _checkpoint(_model(), None)
    ckpt["model_config"] = {**ckpt["model_config"], "variant": "resnet"}
    torch.save(ckpt, path)
    with pytest.raises(UserError,
                       match=rf"{path}: saved model config .* is not valid: unknown variant"):
        load_weights(path)


def test_preprocess_values_are_checked(tmp_path):
    # Normalize would silently broadcast 3 means over 1 grey channel into 3 channels.
    with pytest.raises(ValueError, match="mean has 3 values for 1-channel input"):
        Preprocess(grayscale=True)
    with pytest.raises(ValueError, match="std has 2 values"):
        Preprocess(std=(0.2, 0.2))
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocess(std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="crop <= resize"):
        Preprocess(crop=64, resize=32)
    path = tmp_path / "ckpt.pt"
    ckpt = _checkpoint(_model(), None)
    ckpt["preprocess"] = {"crop": 224, "resize": 256, "mean": [0.5, 0.5]}
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=rf"{path}: saved preprocessing .* is not valid: mean has 2"):
        load_weights(path)


def test_run_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    best, last, final = _model(), _model(), _model()
    x = torch.randn(2, 3, 64, 64)

    with pytest.raises(UserError, match=rf"{run}: a directory without {FINAL_WEIGHTS}"):
        load_weights(run)
    # a run in progress: last, then best once there is one
    atomic_torch_save(_checkpoint(last, None), run / CHECKPOINT_LAST)
    assert load_weights(run).source == str(run / CHECKPOINT_LAST)
    atomic_torch_save(_checkpoint(best, None), run / CHECKPOINT_BEST)
    loaded = load_weights(run)
    assert loaded.source == str(run / CHECKPOINT_BEST)
    torch.testing.assert_close(_logits(loaded.model, x), _logits(best, x), rtol=0, atol=0)
    # a finished run: its final (averaged) model, the one `train` reports
    save_weights(final, run / FINAL_WEIGHTS, class_names=CLASSES)
    loaded = load_weights(run)
    assert loaded.source == str(run / FINAL_WEIGHTS)
    torch.testing.assert_close(_logits(loaded.model, x), _logits(final, x), rtol=0, atol=0)


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path / 'nope.pt'}: no such file or directory"):
        load_weights(tmp_path / "nope.pt")


def test_create_model_with_weights(tmp_path):
    model = _model("bn")
    path = save_weights(model, tmp_path / "w.safetensors", class_names=CLASSES)
    x = torch.randn(2, 3, 64, 64)
    same = create_model("bn", weights=str(path))
    torch.testing.assert_close(_logits(same, x), _logits(model, x), rtol=0, atol=0)
    fresh_head = create_model("bn", weights=str(path), num_classes=5)
    assert _logits(fresh_head, x).shape == (2, 5)
    torch.testing.assert_close(fresh_head.forward_features(x), model.forward_features(x))
    with pytest.raises(ValueError, match="cannot be changed"):
        create_model("bn", weights=str(path), in_chans=1)


# -- untrusted files --------------------------------------------------------------------------

class _Payload:
    """Unpickling this would call open(marker, "w"): code execution on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model_config": {}, "model": _Payload(marker)}, path)
    assert not marker.exists()

    with pytest.raises(UserError, match=rf"{path}: refused to load: .*could run arbitrary code"
                                        r".*Unsupported global: GLOBAL io.open"):
        safe_torch_load(path)
    with pytest.raises(UserError, match="refused to load"):
        load_weights(path)
    assert not marker.exists()

    # The payload is real: an unrestricted unpickler does run it (what weights_only prevents).
    with open(path, "rb") as f:
        torch.load(f, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("content", [b"hello", b"", bytes(range(256)) * 4],
                         ids=["text", "empty", "binary"])
def test_safe_torch_load_not_a_torch_file(tmp_path, content):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"{path}: not a readable PyTorch file"):
        safe_torch_load(path)


def test_safe_torch_load_missing(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path / 'missing.pt'}: no such file"):
        safe_torch_load(tmp_path / "missing.pt")


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"old content")

    def failing_writer(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing_writer)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["weights.bin"]  # no temporary file left behind

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new content"))
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["weights.bin"]


# -- torchvision's ImageNet weights ---------------------------------------------------------------

@pytest.fixture
def torchvision_imagenet_file(torch_home, random_torchvision_googlenet):
    """A stand-in for GoogLeNet_Weights.IMAGENET1K_V1 (random weights, the real file's keys:
    aux heads included) placed where torchvision's download code looks first, its cache."""
    from torchvision.models import GoogLeNet_Weights

    tv = random_torchvision_googlenet(aux_logits=True, transform_input=True)
    url = GoogLeNet_Weights.IMAGENET1K_V1.url
    cached = torch_home / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    torch.save(tv.state_dict(), cached)
    return cached, tv


def _check_torchvision_import(loaded, tv) -> None:
    from torchvision.models import GoogLeNet_Weights

    cfg = loaded.model.config
    assert (cfg["variant"], cfg["transform_input"], cfg["aux_logits"], cfg["num_classes"]) == \
        ("torchvision", True, True, 1000)
    assert loaded.class_names == GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(loaded.class_names) == 1000 and loaded.class_names[0] == "tench"
    assert (loaded.preprocess.crop, loaded.preprocess.resize) == (224, 256)
    x = torch.randn(2, 3, 64, 64)
    want = _logits(tv, x)
    assert want.std() > 0.1
    torch.testing.assert_close(_logits(loaded.model, x), want, rtol=0, atol=1e-5)
    # and the transform matters: without it the same weights give other logits
    plain = create_model("torchvision", transform_input=False)
    plain.load_state_dict(loaded.model.state_dict())
    assert (_logits(plain, x) - want).abs().max() > 1e-2


def test_imagenet_from_torchvision_cache(torchvision_imagenet_file, monkeypatch):
    cached, tv = torchvision_imagenet_file

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download although the file is in torchvision's cache")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    loaded = load_weights("imagenet")
    assert loaded.source == "torchvision:IMAGENET1K_V1"
    _check_torchvision_import(loaded, tv)


def test_imagenet_from_local_file(torchvision_imagenet_file, tmp_path):
    cached, tv = torchvision_imagenet_file
    local = tmp_path / "googlenet.pth"
    local.write_bytes(cached.read_bytes())
    loaded = load_weights(local)
    assert loaded.source == str(local)
    _check_torchvision_import(loaded, tv)


def test_imagenet_offline_without_cache(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError, match=r"could not download torchvision's GoogLeNet weights .*"
                                        r"Offline\? .*--weights PATH.pth"):
        load_weights("imagenet")
