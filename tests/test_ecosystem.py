"""GoogLeNet in the ecosystem: timm (model contract, registration, feature wrappers, data config,
a standard training loop), torchvision's FX feature extraction, torch.hub, the Hugging Face Hub
mixin, and safetensors conventions (``format: pt``, plain state dicts).

Tiny inputs (64x64, batch 2, 10 classes); parametrized over every registered model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

import googlenet
from googlenet import create_model, list_models, load_weights
from googlenet.data.preprocess import Preprocess
from googlenet.errors import UserError
from googlenet.interop.caffe import CAFFE_PREPROCESS
from googlenet.models.blocks import aux_pool as _aux_pool
from googlenet.models.googlenet import GoogLeNet
from googlenet.weights import save_weights

timm = pytest.importorskip("timm")
import googlenet.interop.timm  # noqa: E402,F401  registers the models with timm
from torchvision.models.feature_extraction import (  # noqa: E402
    create_feature_extractor, get_graph_node_names,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = list_models()  # googlenet, googlenet_bn, googlenet_torchvision
VARIANT = {"googlenet": "paper", "googlenet_bn": "bn", "googlenet_torchvision": "torchvision"}
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _timm(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10, **kw)


def _ours(name: str, **kw) -> GoogLeNet:
    return create_model(name, num_classes=10, **kw).eval()


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- timm: registration, feature wrappers, contract ------------------------------------------

def test_registered_with_timm():
    assert set(timm.list_models("googlenet*")) >= set(MODELS)
    # Filed under this package's name, as timm files its own under their model file's name
    # (inception_v3, resnet): list_models(module=...), list_modules()
    assert set(timm.list_models(module="googlenet")) == set(MODELS)
    assert "googlenet" in timm.list_modules() and "timm" not in timm.list_modules()


@pytest.mark.parametrize("feature_cls", ["list", "hook", "getter"])
@pytest.mark.parametrize("name", MODELS)
def test_timm_feature_wrappers(name, feature_cls):
    """FeatureListNet, FeatureHookNet and FeatureGetterNet give forward_intermediates' maps."""
    feats = _timm(name, features_only=True, feature_cls=feature_cls).eval()
    expected_cls = {"list": "FeatureListNet", "hook": "FeatureHookNet",
                    "getter": "FeatureGetterNet"}[feature_cls]
    assert type(feats).__name__ == expected_cls
    ref = _timm(name).eval()  # same seed: same weights
    with torch.no_grad():
        out = feats(X)
        want = ref.forward_intermediates(X, intermediates_only=True)
    assert feats.feature_info.channels() == [64, 192, 480, 832, 1024]
    assert feats.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert [tuple(o.shape) for o in out] == [(2, c, 64 // r, 64 // r) for c, r in
                                             zip([64, 192, 480, 832, 1024], [2, 4, 8, 16, 32])]
    for o, w in zip(out, want):
        _same(o, w)


def test_timm_feature_out_indices():
    feats = _timm("googlenet_bn", features_only=True, out_indices=(2, 4)).eval()
    assert feats.feature_info.channels() == [480, 1024]
    with torch.no_grad():
        assert [o.shape[1] for o in feats(X)] == [480, 1024]
    with pytest.raises(UserError, match="aux_logits"):
        _timm("googlenet_bn", features_only=True, aux_logits=True)


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates(name):
    model = _ours(name, aux_logits=False)
    with torch.no_grad():
        final, feats = model.forward_intermediates(X)
        last2 = model.forward_intermediates(X, indices=2, intermediates_only=True)
        picked_final, picked = model.forward_intermediates(X, indices=[-1, 0])
        early, early_feats = model.forward_intermediates(X, indices=[1], stop_early=True)
        features = model.forward_features(X)
    assert len(feats) == 5
    _same(final, features)
    for a, b in zip(last2, feats[3:]):
        _same(a, b)
    _same(picked_final, features)
    assert len(picked) == 2  # network order, whatever order was asked
    _same(picked[0], feats[0])
    _same(picked[1], feats[4])
    _same(early, feats[1])  # stopped after conv2 (the last level asked for)
    _same(early_feats[0], feats[1])
    with torch.no_grad():  # norm accepted (no final norm: a no-op)
        _same(model.forward_intermediates(X, indices=1, norm=True)[1][0], feats[4])
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(X, output_fmt="NHWC")
    with pytest.raises(ValueError, match="1..5"):
        model.forward_intermediates(X, indices=0)
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(X, indices=[-6])


@pytest.mark.parametrize("name", MODELS)
def test_prune_intermediate_layers(name):
    model = _ours(name)
    with torch.no_grad():
        _, want = model.forward_intermediates(X)
    assert model.prune_intermediate_layers([1, 2]) == [1, 2]
    assert isinstance(model.inception_4a, nn.Identity) and model.aux1 is None
    assert model.num_features == 480 and model.num_classes == 0
    with torch.no_grad():
        final, got = model.forward_intermediates(X, indices=[1, 2])
        pooled = model(X)
    _same(got[0], want[1])
    _same(got[1], want[2])
    _same(final, want[2])
    assert pooled.shape == (2, 480, 8, 8)  # no classifier, no pooling left


def test_classifier_and_global_pool():
    model = _ours("googlenet_bn", aux_logits=True)
    assert model.get_classifier() is model.fc
    model.reset_classifier(0, "")
    assert model.config["global_pool"] == "" and model.aux1.fc2.__class__ is nn.Identity
    with torch.no_grad():
        assert model(X).shape == (2, 1024, 2, 2)
    model.reset_classifier(7, "avg")
    assert model.train()(X).logits.shape == (2, 7)
    with pytest.raises(ValueError, match="global_pool='max' is not supported"):
        model.reset_classifier(7, "max")
    with pytest.raises(ValueError, match="num_classes=0"):
        model.reset_classifier(7, "")
    with pytest.raises(ValueError, match="num_classes=0"):
        GoogLeNet(global_pool="")
    rebuilt = GoogLeNet(**{**model.config, "num_classes": 0, "global_pool": ""})
    assert isinstance(rebuilt.avgpool, nn.Identity)


def test_drop_rate_is_dropout():
    assert GoogLeNet(variant="bn", drop_rate=0.1).dropout.p == 0.1
    model = GoogLeNet(variant="bn", drop_rate=0.1, dropout=0.1)
    assert model.config["dropout"] == 0.1 and "drop_rate" not in model.config
    with pytest.raises(ValueError, match="same setting"):
        GoogLeNet(drop_rate=0.1, dropout=0.3)
    # timm's train.py passes drop_rate (0.0 unless --drop) to every model
    assert _timm("googlenet", drop_rate=0.0).dropout.p == 0.0
    assert _timm("googlenet", drop_rate=0.25).config["dropout"] == 0.25


def test_grad_checkpointing_same_gradients(monkeypatch):
    import googlenet.models.googlenet as net

    calls = []
    real = net.checkpoint
    monkeypatch.setattr(net, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    model = create_model("paper", num_classes=10).train()
    y = torch.tensor([1, 2])

    def grads():
        model.zero_grad()
        out = model(X)
        (F.cross_entropy(out.logits, y) + 0.3 * F.cross_entropy(out.aux1, y)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(5)
    plain = grads()
    model.set_grad_checkpointing()
    torch.manual_seed(5)
    ckpt = grads()
    assert len(calls) == 9  # each inception module
    assert plain.keys() == ckpt.keys()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-5, atol=1e-7, msg=n)
    calls.clear()
    with torch.no_grad():
        model.eval()(X)
    assert not calls  # inference never checkpoints


def test_group_matcher():
    from timm.models import group_parameters

    model = _ours("googlenet", aux_logits=True)
    names = {n for n, _ in model.named_parameters()}
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    fine = group_parameters(model, model.group_matcher())
    assert len(coarse) == 5 and len(fine) == 11  # stem, stages 3/4/5 or 9 modules, head
    for groups in (coarse, fine):
        assert {n for g in groups.values() for n in g} == names
        assert all(n.startswith(("conv1.", "conv2")) for n in groups[0])
        assert {n.split(".")[0] for n in groups[max(groups)]} == {"fc", "aux1", "aux2"}
    assert {n.split(".")[0] for n in fine[1]} == {"inception_3a"}


def test_pretrained_cfg_of_a_fresh_model():
    model = GoogLeNet(variant="bn", num_classes=10)
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    assert cfg["first_conv"] == "conv1.conv" and cfg["classifier"] == ("fc", "aux1.fc2", "aux2.fc2")
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 224 / 256
    assert GoogLeNet(stem="separable", aux_logits=False).pretrained_cfg["first_conv"] == \
        "conv1.depthwise"
    assert GoogLeNet(aux_logits=False).pretrained_cfg["classifier"] == "fc"
    switched = _timm("googlenet", aux_logits=True, stem="separable").pretrained_cfg
    assert switched["first_conv"] == "conv1.depthwise"
    assert switched["classifier"] == ("fc", "aux1.fc2", "aux2.fc2")
    # timm's registered cfg and ours agree on everything timm's data pipeline reads
    t = _timm("googlenet_bn").pretrained_cfg
    for key in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode",
                "first_conv"):
        assert tuple(t[key]) == tuple(cfg[key]) if isinstance(cfg[key], tuple) else \
            t[key] == cfg[key], key


@pytest.mark.parametrize("preprocess,size", [(CAFFE_PREPROCESS, 224),
                                             (Preprocess.for_size(64), 64)], ids=["caffe", "64"])
def test_resolve_model_data_config(tmp_path, preprocess, size):
    """timm's data config of loaded weights is their stored preprocessing."""
    path = save_weights(_ours("googlenet", aux_logits=False), tmp_path / "w.safetensors",
                        preprocess=preprocess)
    cfg = timm.data.resolve_model_data_config(load_weights(path).model)
    assert cfg["input_size"] == (3, size, size)
    assert cfg["interpolation"] == "bilinear" and cfg["crop_mode"] == "center"
    assert cfg["crop_pct"] == pytest.approx(preprocess.crop / preprocess.resize)
    assert cfg["mean"] == pytest.approx(preprocess.mean)
    assert cfg["std"] == pytest.approx(preprocess.std)
    if preprocess is CAFFE_PREPROCESS:
        assert cfg["mean"] == pytest.approx((123 / 255, 117 / 255, 104 / 255))
        assert cfg["std"] == pytest.approx((1 / 255,) * 3)


@pytest.mark.parametrize("name", MODELS)
def test_standard_training_loop(name):
    """What timm.create_model returns trains with CrossEntropyLoss in a plain loop."""
    model = _timm(name).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.fc.weight.detach().clone()
    y = torch.tensor([3, 7])
    for _ in range(2):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(X), y)
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and not torch.equal(model.fc.weight, before)
    # the paper's three-loss training stays one switch away
    assert model.aux1 is None and _timm(name, aux_logits=True).train()(X)._fields == \
        ("logits", "aux1", "aux2")


def test_timm_pretrained_needs_a_source(tmp_path):
    with pytest.raises(UserError, match="timm hosts no weights"):
        timm.create_model("googlenet_bn", pretrained=True)
    ours = _ours("googlenet_bn", aux_logits=False)
    path = save_weights(ours, tmp_path / "w.safetensors")
    loaded = timm.create_model("googlenet_bn", pretrained=True, num_classes=10,
                               pretrained_cfg_overlay=dict(file=str(path), num_classes=10))
    with torch.no_grad():
        _same(loaded.eval()(X), ours(X))


# -- torchvision FX feature extraction --------------------------------------------------------

@pytest.mark.parametrize("aux", [True, False], ids=["aux", "no_aux"])
@pytest.mark.parametrize("name", MODELS)
def test_create_feature_extractor(name, aux):
    model = _ours(name, aux_logits=aux)
    train_nodes, eval_nodes = get_graph_node_names(model)
    assert {n.split(".")[0] for n in eval_nodes} >= {"inception_3b", "inception_5b", "fc"}
    assert any(n.startswith("aux1") for n in train_nodes) == aux
    extractor = create_feature_extractor(
        model, return_nodes={"inception_3b": "c3", "inception_4e": "c4", "fc": "logits"}).eval()
    with torch.no_grad():
        out = extractor(X)
        _, feats = model.forward_intermediates(X)
        _same(out["logits"], model(X))
    _same(out["c3"], feats[2])
    _same(out["c4"], feats[3])


@pytest.mark.slow
def test_fx_trace_keeps_paper_aux_pool_and_input_check():
    """At 224 the traced graph runs the paper's 5x5/3 aux pool, bit for bit as eager, and keeps
    the input check."""
    model = create_model("paper", num_classes=10).train()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 224, 224)
    torch.manual_seed(3)
    eager = model(x)
    torch.manual_seed(3)
    traced = graph(x)
    for a, b in zip(traced, eager):
        _same(a, b)
    with pytest.raises(ValueError, match="too small"):
        graph(torch.randn(1, 3, 16, 16))


def test_aux_pool_is_the_paper_pool_at_14():
    t = torch.randn(2, 8, 14, 14)
    _same(_aux_pool(t, True), F.avg_pool2d(t, 5, stride=3, ceil_mode=True))
    _same(_aux_pool(t, False), F.adaptive_avg_pool2d(t, 4))
    assert not torch.equal(_aux_pool(t, True), _aux_pool(t, False))
    s = torch.randn(2, 8, 4, 4)
    _same(_aux_pool(s, True), s)


# -- torch.hub ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_torch_hub_load_local(name):
    model = torch.hub.load(str(ROOT), name, source="local", num_classes=10)
    assert isinstance(model, GoogLeNet) and model.config["variant"] == VARIANT[name]
    assert not model.aux_logits and model.num_classes == 10
    assert model.train()(X).shape == (2, 10)  # a tensor, not a named tuple


def test_torch_hub_load_weights(tmp_path):
    ours = _ours("googlenet_bn")  # with aux heads
    path = save_weights(ours, tmp_path / "w.safetensors")
    model = torch.hub.load(str(ROOT), "googlenet_bn", source="local", weights=str(path))
    assert model.aux1 is None and not model.training
    with torch.no_grad():
        _same(model(X), ours(X))
    kept = torch.hub.load(str(ROOT), "googlenet_bn", source="local", weights=str(path),
                          aux_logits=True)
    assert kept.aux1 is not None
    with pytest.raises(UserError, match="'googlenet_bn' entry point"):
        torch.hub.load(str(ROOT), "googlenet", source="local", weights=str(path))


# -- Hugging Face Hub -----------------------------------------------------------------------------

def test_hub_save_and_from_pretrained(tmp_path):
    hub = pytest.importorskip("googlenet.interop.hub")
    ours = _ours("googlenet_bn", aux_logits=False)
    pre = Preprocess.for_size(64)
    model = hub.GoogLeNet.from_model(ours, class_names=[f"c{i}" for i in range(10)],
                                     preprocess=pre)
    assert isinstance(model, googlenet.GoogLeNet)
    model.save_pretrained(tmp_path / "repo")
    files = {p.name for p in (tmp_path / "repo").iterdir()}
    assert files == {"model.safetensors", "config.json", "README.md"}
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["variant"] == "bn" and config["num_classes"] == 10
    assert config["aux_logits"] is False and config["class_names"][3] == "c3"
    assert Preprocess.from_dict(config["preprocess"]) == pre
    card = (tmp_path / "repo" / "README.md").read_text()
    for text in ("library_name: googlenet", "variant: `bn`", "classes: 10",
                 "BatchNorm (eps 1e-3) after every convolution", "center-crop 64x64",
                 "no auxiliary classifiers"):
        assert text in card, text

    loaded = hub.GoogLeNet.from_pretrained(tmp_path / "repo")
    assert not loaded.training and loaded.class_names == config["class_names"]
    assert loaded.preprocess == pre
    assert timm.data.resolve_model_data_config(loaded)["input_size"] == (3, 64, 64)
    with torch.no_grad():
        _same(loaded(X), ours(X))
        _same(load_weights(tmp_path / "repo" / "model.safetensors").model(X), ours(X))
    assert hub.GoogLeNet.from_pretrained(tmp_path / "repo", num_classes=3).num_classes == 3
    with pytest.raises(UserError, match="cannot be changed"):
        hub.GoogLeNet.from_pretrained(tmp_path / "repo", stem="separable")


@pytest.mark.slow
def test_optional_dependencies_stay_optional():
    """Without timm and huggingface_hub the package imports and builds models; their interop
    modules say what to install."""
    code = (
        "import sys\n"
        "sys.modules['timm'] = sys.modules['huggingface_hub'] = None\n"
        "import googlenet\n"
        "assert googlenet.create_model('bn', num_classes=3).num_classes == 3\n"
        "for mod in ('hub', 'timm'):\n"
        "    try:\n"
        "        __import__('googlenet.interop.' + mod)\n"
        "    except ImportError as e:\n"
        "        print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pip install huggingface_hub" in r.stdout and "pip install timm" in r.stdout


# -- safetensors conventions and plain state dicts ----------------------------------------------

def test_format_pt_metadata(tmp_path):
    path = save_weights(_ours("googlenet"), tmp_path / "w.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["googlenet_format"] == "1"
    assert "format_version" not in meta
    meta["googlenet_format"] = "2"
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(tmp_path / "new.safetensors"), metadata=meta)
    with pytest.raises(UserError, match="newer googlenet"):
        load_weights(tmp_path / "new.safetensors")


def test_old_format_still_loads(tmp_path):
    ours = _ours("googlenet_torchvision", aux_logits=False)
    path = save_weights(ours, tmp_path / "w.safetensors", class_names=list("abcdefghij"))
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    del meta["googlenet_format"]
    meta.update(format="googlenet", format_version="1")  # as written before format=pt
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    loaded = load_weights(tmp_path / "old.safetensors")
    assert loaded.class_names == list("abcdefghij") and loaded.model.config == ours.config
    with torch.no_grad():
        _same(loaded.model(X), ours(X))


PLAIN_CASES = [
    pytest.param("googlenet", {}, ".safetensors", id="paper"),
    pytest.param("googlenet_bn", {}, ".safetensors", id="bn"),
    pytest.param("googlenet_torchvision", {}, ".safetensors", id="torchvision"),
    pytest.param("googlenet", dict(aux_logits=False, stem="separable", in_chans=1),
                 ".safetensors", id="paper-separable-gray"),
    pytest.param("googlenet_bn", dict(aux_logits=False, num_classes=0), ".pth",
                 id="bn-headless-pth"),
]


@pytest.mark.parametrize("name,kw,suffix", PLAIN_CASES)
def test_plain_state_dict(tmp_path, name, kw, suffix):
    """A state dict without metadata (the Hub's usual form) loads as a .pth state dict does:
    the config read off the keys, identical logits."""
    ours = create_model(name, **{"num_classes": 10, **kw}).eval()
    sd = {k: v.contiguous() for k, v in ours.state_dict().items()}
    path = tmp_path / f"plain{suffix}"
    if suffix == ".safetensors":
        save_file(sd, str(path), metadata={"format": "pt"})  # what the Hub's tools write
    else:
        torch.save(sd, path)
    loaded = load_weights(path)
    assert loaded.metadata["inferred_config"] is True and loaded.class_names is None
    assert loaded.model.config == ours.config
    x = torch.randn(2, ours.in_chans, 64, 64)
    with torch.no_grad():
        _same(loaded.model(x), ours(x))


def test_plain_torchvision_safetensors(tmp_path, random_torchvision_googlenet):
    tv = random_torchvision_googlenet(aux_logits=False, transform_input=True, num_classes=10)
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()},
              str(tmp_path / "tv.safetensors"))
    loaded = load_weights(tmp_path / "tv.safetensors")
    assert loaded.model.config["variant"] == "torchvision"
    assert loaded.model.config["transform_input"] is True  # as torchvision loads its weights
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(X), tv(X), rtol=1e-5, atol=1e-5)


def test_plain_state_dict_refusals(tmp_path):
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="without googlenet metadata .* not a GoogLeNet state"):
        load_weights(tmp_path / "other.safetensors")
    sd = _ours("googlenet", aux_logits=False).state_dict()
    sd["inception_3a.conv5x5.conv.weight"] = torch.zeros(32, 16, 3, 3)  # 3x3 without BN
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(UserError, match="odd.safetensors: the keys do not match a known "
                                        "variant .*'model_config' metadata"):
        load_weights(tmp_path / "odd.safetensors")


# -- the command line's conventions: one --device default, one --amp spelling, defaults shown --

def _flags(command: str) -> dict[str, "argparse.Action"]:
    from googlenet.cli import build_parser

    return {s: a for a in build_parser(command)._actions for s in a.option_strings}


def test_every_help_shows_the_defaults():
    """Each option that has a default says it in --help: argparse's formatter for the commands,
    the default recipe's values for train (whose flags default to SUPPRESS so recipes win)."""
    import argparse

    from googlenet.cli import COMMANDS, build_parser
    from googlenet.tasks import schemas

    fields = set(schemas().aliases)
    for command in COMMANDS:
        p = build_parser(command)
        fmt = p._get_formatter()
        for a in p._actions:
            if not a.option_strings or a.help == argparse.SUPPRESS or a.dest in ("help", "debug"):
                continue
            shown = (fmt._get_help_string(a) or "") % {"default": a.default, "prog": p.prog}
            has_default = a.default not in (None, argparse.SUPPRESS) or (
                command == "train" and a.dest in fields)
            if has_default:
                assert "default" in shown.lower(), (command, a.option_strings, shown)
            assert "(default: None)" not in shown and shown.count("default") <= 2, (command, shown)
    train = _flags("train")
    assert "(default: 12)" in train["--epochs"].help and "(default: paper)" in train["--variant"].help


HEAVY_MODULES = ("torch", "torchvision", "numpy", "PIL", "timm", "safetensors")


def test_help_does_not_import_torch():
    """`googlenet --help` and every `googlenet COMMAND --help` answer without importing torch
    (seconds and ~800 MB), torchvision or numpy: checked in a fresh interpreter by the modules
    loaded, not by a time. Each runs as `python -m googlenet ... --help` does (runpy)."""
    code = (
        "import contextlib, io, runpy, sys\n"
        "from googlenet.cli import COMMANDS\n"
        "runs = [[]] + [[c] for c in COMMANDS] + [['weights', 'list'], ['weights', 'download']]\n"
        "for args in runs:\n"
        "    sys.argv = ['googlenet', *args, '--help']\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            runpy.run_module('googlenet', run_name='__main__', alter_sys=True)\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (args, e.code)\n"
        "    assert 'usage: googlenet' in out.getvalue(), args\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]", f"--help imported {r.stdout.strip()}"


def test_one_device_default_and_one_amp_spelling():
    for command in ("train", "eval", "predict", "bench"):
        d = _flags(command)["--device"]
        assert d.default in ("auto", __import__("argparse").SUPPRESS) and "auto" in d.help
    for command in ("train", "eval", "predict"):
        amp = _flags(command)["--amp"]
        assert tuple(amp.choices) == ("none", "bf16", "fp16", "auto"), command
    from googlenet.cli import build_parser

    # eval/predict: a bare --amp is bf16 (eval's old switch), --amp fp16 as in train
    p = build_parser("eval")
    assert p.parse_args(["RUN", "--amp"]).amp == "bf16"
    assert p.parse_args(["RUN", "--amp", "fp16"]).amp == "fp16"
    assert p.parse_args(["RUN"]).amp == "none"


def test_predict_amp_maps_to_the_fast_modes(monkeypatch):
    from googlenet.infer import fast

    assert fast.with_amp("eager", "none") == "eager"
    assert fast.with_amp("eager", "bf16") == fast.with_amp("channels_last", "bf16") == "bf16"
    assert fast.with_amp("ov", "bf16") == "ov_bf16"
    assert fast.with_amp("fold", "fp16") == "fp16"
    # auto: bf16 only where the device has it natively, and never forced on a mode without one
    from googlenet.models.graph import native_bf16, resolve_amp

    want = "bf16" if native_bf16("cpu") else "none"
    assert resolve_amp("auto", "cpu") == want and resolve_amp("fp16", "cpu") == "fp16"
    assert fast.with_amp("eager", "auto") == ("bf16" if want == "bf16" else "eager")
    assert fast.with_amp("int8", "auto") == "int8"
    import googlenet.models.graph as graph

    monkeypatch.setattr(graph, "native_bf16", lambda device="cpu": False)  # an AVX2-only CPU
    assert resolve_amp("auto", "cpu") == "none" and fast.with_amp("ov", "auto") == "ov"
    assert not graph.amp_autocast("auto", "cpu").fast_dtype == torch.bfloat16 or \
        not graph.amp_autocast("auto", "cpu")._enabled
    with pytest.raises(UserError, match="--amp bf16 does not combine with --mode int8"):
        fast.with_amp("int8", "bf16")
    with pytest.raises(UserError, match="--mode eager"):
        fast.with_amp("ov_int8", "fp16")
    # fp16 inference is a CUDA mode: on the CPU it is refused with the reason
    why = fast.applies(GoogLeNet(variant="bn", num_classes=3, aux_logits=False), "fp16", "cpu")
    assert why == "fp16 runs on cuda only, not cpu"


def test_predict_amp_bf16_runs_the_bf16_mode(tmp_path, capsys):
    from PIL import Image

    from googlenet.cli import main

    model = GoogLeNet(variant="bn", num_classes=3, aux_logits=False).eval()
    save_weights(model, tmp_path / "m.safetensors", class_names=["a", "b", "c"],
                 preprocess=Preprocess(resize=64, crop=64))
    Image.new("RGB", (70, 70), (120, 30, 200)).save(tmp_path / "x.png")
    argv = ["predict", str(tmp_path / "x.png"), "--weights", str(tmp_path / "m.safetensors"),
            "--json", "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    ref = json.loads(capsys.readouterr().out)["predictions"][0]
    assert main(argv + ["--amp", "bf16"]) == 0
    out = capsys.readouterr()
    got = json.loads(out.out)
    assert got["predictions"][0]["top"][0]["class"] == ref["top"][0]["class"]
    assert got["mode"] == "bf16"
    assert main(argv + ["--mode", "int8", "--amp", "bf16"]) == 2
    assert "--amp bf16 does not combine with --mode int8" in capsys.readouterr().err
