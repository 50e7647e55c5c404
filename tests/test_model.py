"""GoogLeNet model: every variant and switch, the output contract, the paper's numbers,
parity with torchvision, export round trips, and bad input.

Modelled on timm's tests/test_models.py: parametrized over variants, tiny inputs (32-64 px,
batch 2), real assertions on numbers. The naive-inception network has ~104M parameters, so it
is built once per module (``naive_model``) and used sparingly.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from googlenet import create_model, list_models
from googlenet.models.googlenet import (
    TABLE1, ConvBlock, GoogLeNet, GoogLeNetOutputs, Inception, SeparableConvBlock,
    TorchvisionInputTransform, torchvision_key,
)
from googlenet.models.registry import MODEL_ALIASES, list_variants

VARIANTS = tuple(list_variants())  # every registered model: a new registration is tested too
SWITCHES = {
    "default": {},
    "classes10": dict(num_classes=10),
    "gray": dict(in_chans=1),
    "chans4": dict(in_chans=4),
    "no_aux": dict(aux_logits=False),
    "separable": dict(stem="separable"),
}
CONTRACT_CASES = [
    pytest.param(v, kw, id=f"{v}-{name}")
    for v, (name, kw) in itertools.product(VARIANTS, SWITCHES.items())
] + [pytest.param("torchvision", dict(transform_input=True), id="torchvision-transform_input")]


def _spec(name: str):
    return next(r for r in TABLE1 if not isinstance(r, str) and r.name == name)


def _pool_out(n: int, k: int, s: int = 2) -> int:
    """PyTorch's ceil-mode pooled size, padding 0 (docs of nn.MaxPool2d)."""
    out = -(-(n - k) // s) + 1
    return out - 1 if (out - 1) * s >= n else out


def _feature_size(n: int, pool4_kernel: int) -> int:
    """Spatial size after inception 5b: conv 7x7/2 pad 3, then four 3x3/2 ceil-mode max pools
    (the last one 2x2/2 in the torchvision variant). 224 -> 7, 64 -> 2, 32 -> 1, 45 -> 1."""
    n = (n + 2 * 3 - 7) // 2 + 1
    for k in (3, 3, 3, pool4_kernel):
        n = _pool_out(n, k)
    return n


def _loss(out, num_classes: int) -> torch.Tensor:
    """Cross-entropy on random targets, aux losses weighted 0.3 (§5). A plain ``out.sum()``
    would not do: its gradient is constant over the batch, and BatchNorm in training mode maps
    a batch-constant gradient to zero, hiding every layer below the last BN."""
    logits = [out.logits, out.aux1, out.aux2] if isinstance(out, GoogLeNetOutputs) else [out]
    target = torch.randint(0, num_classes, (logits[0].shape[0],))
    return sum(w * F.cross_entropy(z, target) for w, z in zip((1.0, 0.3, 0.3), logits))


def _check_gradients(model: nn.Module) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, f"all-zero gradients: {zero}"


def _check_contract(model: GoogLeNet, x: torch.Tensor, num_classes: int, aux: bool) -> None:
    n = x.shape[0]
    fs = _feature_size(x.shape[-2], model.variant.pool4_kernel), \
        _feature_size(x.shape[-1], model.variant.pool4_kernel)

    model.eval()
    with torch.no_grad():
        y = model(x)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        head = model.forward_head(feats)
    # Eval: a plain tensor, never a tuple, aux heads or not (pytorch/vision#1273).
    assert type(y) is torch.Tensor and y.shape == (n, num_classes)
    assert torch.isfinite(y).all()
    assert feats.shape == (n, model.num_features, *fs)
    assert pre.shape == (n, model.num_features)
    torch.testing.assert_close(head, y, rtol=0, atol=0)  # forward == head(features)

    model.train()
    out = model(x)
    if aux:
        assert isinstance(out, GoogLeNetOutputs)
        assert out._fields == ("logits", "aux1", "aux2")
        for t in out:
            assert t.shape == (n, num_classes) and torch.isfinite(t).all()
    else:
        assert type(out) is torch.Tensor and out.shape == (n, num_classes)
        assert torch.isfinite(out).all()
    model.zero_grad(set_to_none=True)
    _loss(out, num_classes).backward()
    _check_gradients(model)  # aux heads included when they exist


@pytest.fixture(scope="module")
def naive_model() -> GoogLeNet:
    """bn variant, naive inception (Figure 2a), separable stem, aux heads: ~104M parameters."""
    torch.manual_seed(0)
    return create_model("bn", inception="naive", stem="separable", num_classes=10)


# -- every variant and switch -----------------------------------------------------------------

@pytest.mark.parametrize("variant,kwargs", CONTRACT_CASES)
def test_forward_contract(variant, kwargs):
    model = create_model(variant, **kwargs)
    nc, c = kwargs.get("num_classes", 1000), kwargs.get("in_chans", 3)
    assert model.num_features == 1024
    assert model.config == {**model.config, **kwargs, "variant": variant}
    _check_contract(model, torch.randn(2, c, 64, 64), nc, kwargs.get("aux_logits", True))


def test_naive_contract(naive_model):
    # Naive modules pass the pool branch through, so widths grow: 3a is 64+128+32+192 = 416.
    assert naive_model.inception_3a.out_channels == 416
    assert naive_model.num_features == naive_model.inception_5b.out_channels > 1024
    assert not hasattr(naive_model.inception_3a, "reduce3x3")
    assert naive_model.inception_3a.pool_proj is None
    _check_contract(naive_model, torch.randn(2, 3, 32, 32), 10, aux=True)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(32, 32), (45, 77)], ids=["32", "45x77"])
def test_small_and_odd_sizes(variant, size):
    """32x32 is the smallest input; odd, non-square sizes follow the ceil-mode arithmetic; the
    aux heads adapt their pooling to whatever tap size they get."""
    _check_contract(create_model(variant, num_classes=7), torch.randn(2, 3, *size), 7, aux=True)


def test_paper_aux_heads_at_224():
    """At 224 the aux heads see 14x14 taps and use the paper's avgpool 5x5/3 (-> 4x4)."""
    model = create_model("paper", num_classes=10).train()
    taps = {}
    for name in ("inception_4a", "inception_4d"):
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: taps.update({name: o}))
    out = model(torch.randn(2, 3, 224, 224))
    assert taps["inception_4a"].shape == (2, 512, 14, 14)
    assert taps["inception_4d"].shape == (2, 528, 14, 14)
    assert F.avg_pool2d(taps["inception_4a"], 5, stride=3, ceil_mode=True).shape[-2:] == (4, 4)
    assert [t.shape for t in out] == [(2, 10)] * 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_feature_info_matches_intermediates(variant):
    model = create_model(variant, aux_logits=False).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, feats = model.forward_intermediates(x)
        last = model.forward_features(x)
        picked = model.forward_intermediates(x, indices=[1, -1], intermediates_only=True)
    assert len(feats) == len(model.feature_info) == 5
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]
    assert [i["num_chs"] for i in model.feature_info] == [64, 192, 480, 832, 1024]
    for info, f in zip(model.feature_info, feats):
        assert f.shape == (2, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])
    torch.testing.assert_close(feats[-1], last, rtol=0, atol=0)
    torch.testing.assert_close(final, last, rtol=0, atol=0)
    assert [f.shape for f in picked] == [feats[1].shape, feats[-1].shape]
    with pytest.raises(ValueError, match="indices is empty"):
        model.forward_intermediates(x, indices=[])
    with pytest.raises(ValueError, match=r"indices \[5\] out of range: feature_info has 5"):
        model.forward_intermediates(x, indices=[5])


def test_feature_info_naive(naive_model):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = naive_model.eval().forward_intermediates(x, indices=[2, 3, 4],
                                                         intermediates_only=True)
    infos = naive_model.feature_info[2:]
    assert [f.shape[1] for f in feats] == [i["num_chs"] for i in infos]
    assert feats[-1].shape[1] == naive_model.num_features


@pytest.mark.parametrize("variant", VARIANTS)
def test_reset_classifier(variant):
    model = create_model(variant)
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(5)
    assert model.num_classes == model.config["num_classes"] == 5
    assert model.eval()(x).shape == (2, 5)
    assert [t.shape for t in model.train()(x)] == [(2, 5)] * 3
    if variant != "torchvision":  # Caffe's init: classifier biases 0
        assert model.fc.bias.abs().sum() == 0

    model.reset_classifier(0)  # no classifier: forward returns pooled features
    model.eval()
    with torch.no_grad():
        y = model(x)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
    assert y.shape == (2, 1024)
    torch.testing.assert_close(y, pre)
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_rebuilds_same_model(variant):
    model = create_model(variant, num_classes=10, in_chans=1, stem="separable", aux_logits=False)
    clone = GoogLeNet(**model.config)
    assert clone.config == model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


def test_variant_layouts():
    """What each variant changes, checked on the built modules (the README's variants table)."""
    paper, bn, tv = (create_model(v) for v in VARIANTS)

    def count(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())

    # paper: LRN x2, conv biases, no BN, real 5x5, 3x3/2 pool before 5a, dropout 0.4 / aux 0.7
    assert count(paper, nn.LocalResponseNorm) == 2 and count(paper, nn.BatchNorm2d) == 0
    lrn = paper.norm1
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert all(m.bias is not None for m in paper.modules() if isinstance(m, nn.Conv2d))
    # Caffe's init: "xavier" (fan-in uniform, bound sqrt(3 / fan_in)), bias 0.2, classifiers 0
    w = paper.inception_3a.conv3x3.conv.weight
    assert w.abs().max() <= (3 / w[0].numel()) ** 0.5 and w.std() > 0.5 * (1 / w[0].numel()) ** 0.5
    assert (paper.conv1.conv.bias == 0.2).all() and (paper.aux1.fc1.bias == 0.2).all()
    assert all((h.bias == 0).all() for h in (paper.fc, paper.aux1.fc2, paper.aux2.fc2))
    # bn: BN after every conv, no conv bias, no LRN; same kernels as the paper
    n_conv = count(bn, nn.Conv2d)
    assert count(bn, nn.BatchNorm2d) == n_conv and count(bn, nn.LocalResponseNorm) == 0
    assert all(m.bias is None for m in bn.modules() if isinstance(m, nn.Conv2d))
    assert bn.inception_3a.conv5x5.bn.eps == 1e-3
    for model, k5, pool4, drop in ((paper, 5, 3, 0.4), (bn, 5, 3, 0.4), (tv, 3, 2, 0.2)):
        assert model.inception_3a.conv5x5.conv.kernel_size == (k5, k5)
        assert model.pool4.kernel_size == pool4 and model.pool4.ceil_mode
        assert model.dropout.p == drop and model.aux1.dropout.p == 0.7
    # torchvision's input transform is a visible module, and only when asked for
    assert isinstance(create_model("torchvision", transform_input=True).input_transform,
                      TorchvisionInputTransform)
    assert isinstance(tv.input_transform, nn.Identity)
    # separable stem: depthwise 7x7 x8, then pointwise to 64
    sep = create_model("paper", stem="separable").conv1
    assert isinstance(sep, SeparableConvBlock)
    assert sep.depthwise.weight.shape == (24, 1, 7, 7) and sep.conv.weight.shape == (64, 24, 1, 1)


def test_registry():
    assert {"googlenet", "googlenet_bn", "googlenet_torchvision"} <= set(list_models())
    for name, variant in (("googlenet", "paper"), ("googlenet_bn", "bn"),
                          ("googlenet_torchvision", "torchvision"), ("bn", "bn")):
        assert create_model(name, aux_logits=False).config["variant"] == variant


# -- the paper's numbers ------------------------------------------------------------------------

def _weights(module: nn.Module) -> int:
    """Conv/linear weights, biases excluded (Table 1's params column)."""
    return sum(p.numel() for n, p in module.named_parameters() if n.endswith("weight"))


def _multiply_adds(module: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() / 2  # the counter counts a multiply-add as 2 flops


def test_paper_parameter_count():
    model = create_model("paper", aux_logits=False)
    assert sum(p.numel() for p in model.parameters()) == 6_998_552


def test_paper_multiply_adds():
    model = create_model("paper", aux_logits=False).eval()
    macs = _multiply_adds(model, torch.randn(1, 3, 224, 224))
    assert macs == pytest.approx(1.58e9, rel=0.01)


@pytest.mark.parametrize("naive,weights,madds,channels", [
    (True, 387_072, 303.5e6, 416),
    (False, 163_328, 128.0e6, 256),
], ids=["naive", "reduced"])
def test_inception_3a_cost(naive, weights, madds, channels):
    block = Inception(192, _spec("inception_3a"), conv=ConvBlock, naive=naive)
    x = torch.randn(1, 192, 28, 28)
    assert _weights(block) == weights
    assert _multiply_adds(block, x) == pytest.approx(madds, abs=0.05e6)
    assert block(x).shape == (1, channels, 28, 28) and block.out_channels == channels


def test_separable_stem_cost():
    conv1 = create_model("paper", stem="separable").conv1
    x = torch.randn(1, 3, 224, 224)
    assert _weights(conv1) == 7 * 7 * 3 * 8 + 3 * 8 * 64 == 2_712
    assert _multiply_adds(conv1, x) == pytest.approx(34.0e6, abs=0.05e6)
    assert conv1(x).shape == (1, 64, 112, 112)


# -- parity with torchvision --------------------------------------------------------------------

@pytest.mark.parametrize("aux,transform_input", [(True, False), (False, False), (True, True)],
                         ids=["aux", "no_aux", "aux-transform_input"])
def test_torchvision_parity(aux, transform_input, random_torchvision_googlenet):
    tv = random_torchvision_googlenet(aux_logits=aux, transform_input=transform_input)
    ours = create_model("torchvision", aux_logits=aux, transform_input=tv.transform_input)
    ours.load_state_dict(tv.state_dict())  # torchvision's own key names, no renaming by hand
    ours.eval()
    for shape in [(2, 3, 224, 224), (2, 3, 96, 128)]:
        x = torch.randn(shape)
        with torch.no_grad():
            want, got = tv(x), ours(x)
        assert want.std() > 0.1, "logits too small for a 1e-5 tolerance to mean anything"
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    if aux:  # training mode: same dropout masks from the same seed, so the aux heads match too
        tv.train(), ours.train()
        x = torch.randn(2, 3, 224, 224)
        torch.manual_seed(1)
        want = tv(x)
        torch.manual_seed(1)
        got = ours(x)
        # torchvision's tuple is (logits, aux_logits2, aux_logits1); ours is (logits, aux1, aux2)
        for a, b in ((got.logits, want.logits), (got.aux1, want.aux_logits1),
                     (got.aux2, want.aux_logits2)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("aux", [True, False], ids=["aux", "no_aux"])
def test_torchvision_fresh_init(aux):
    """A fresh torchvision variant is torchvision's fresh GoogLeNet: from the same seed, the same
    weights (truncated normal, std 0.01, for conv and linear weights; BN 1 and 0; the linear
    biases left at PyTorch's default) and so the same logits."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=aux, init_weights=True).eval()
    torch.manual_seed(0)
    ours = create_model("torchvision", aux_logits=aux).eval()
    theirs = {torchvision_key(k): v for k, v in tv.state_dict().items()}
    assert list(theirs) == list(ours.state_dict())
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0, msg=key)
    assert ours.fc.bias.abs().max() > 0  # PyTorch's default bias, U(-1/sqrt(1024), 1/sqrt(1024))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=1e-6)


# -- export -------------------------------------------------------------------------------------

# One case per variant; between them they cover every op an export must handle: LRN and real
# 5x5 convs (paper), BN plus the depthwise separable stem on 1-channel input (bn), the 2x2 pool
# and the explicit input transform (torchvision). Aux heads are on in all of them: an eval-mode
# export must still have exactly one output, the logits (pytorch/vision#2161).
EXPORT_CASES = {
    "paper": ("paper", {}),
    "bn-separable-gray": ("bn", dict(stem="separable", in_chans=1)),
    "torchvision": ("torchvision", dict(transform_input=True)),
}


def _export_model(case: str) -> tuple[GoogLeNet, torch.Tensor]:
    variant, kwargs = EXPORT_CASES[case]
    model = create_model(variant, num_classes=10, aux_logits=True, **kwargs).eval()
    return model, torch.randn(2, kwargs.get("in_chans", 3), 64, 64)


def _trace(model: nn.Module, x: torch.Tensor):
    with warnings.catch_warnings():
        # The input checks become constants of the trace; torch 2.9+ also marks TorchScript
        # as deprecated in favour of torch.export, which the next test covers.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.trace(model, x, check_trace=False)  # checked below, on another batch


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_jit_trace_roundtrip(case, tmp_path):
    model, x = _export_model(case)
    torch.jit.save(_trace(model, x), tmp_path / "model.pt")
    loaded = torch.jit.load(tmp_path / "model.pt")
    x3 = torch.randn(3, *x.shape[1:])  # another batch size than the one traced
    with torch.no_grad():
        want, got = model(x3), loaded(x3)
    assert type(got) is torch.Tensor and got.shape == want.shape == (3, 10)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_jit_trace_naive(naive_model):
    """The naive module traces too (not saved: its ~104M parameters would be a 400 MB file)."""
    model = naive_model.eval()
    traced = _trace(model, torch.randn(2, 3, 32, 32))
    x3 = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x3), model(x3), rtol=0, atol=1e-5)


def _script(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+: TorchScript is deprecated
        return torch.jit.script(module)


def _compare_train_mode(model: nn.Module, other: nn.Module, x: torch.Tensor) -> None:
    """Training mode with aux heads: both give GoogLeNetOutputs with the same values, dropout
    masks included (same seed, same ops in the same order)."""
    model.train(), other.train()
    torch.manual_seed(1)
    want = model(x)
    torch.manual_seed(1)
    got = other(x)
    assert isinstance(want, GoogLeNetOutputs) and tuple(got._fields) == GoogLeNetOutputs._fields
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("aux", [True, False], ids=["aux", "no_aux"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_torchscript(variant, aux):
    """torch.jit.script compiles every variant, as it does torchvision's GoogLeNet, and the
    scripted model keeps the output contract and the values: logits in eval, GoogLeNetOutputs in
    training with aux heads, the input check's message."""
    model = create_model(variant, num_classes=10, aux_logits=aux).eval()
    scripted = _script(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = scripted(x), model(x)
    assert type(got) is torch.Tensor and got.shape == (2, 10)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    with pytest.raises(Exception, match=r"31x31 pixels is too small"):
        scripted(torch.randn(1, 3, 31, 31))
    if aux:
        _compare_train_mode(model, scripted, x)


@pytest.mark.parametrize("kwargs", [dict(transform_input=True), dict(stem="separable", in_chans=1),
                                    dict(head="fc", img_size=64), dict(norm="none")],
                         ids=["transform_input", "separable-gray", "fc_head", "no_norm"])
def test_torchscript_switches(kwargs):
    model = create_model("torchvision", num_classes=10, aux_logits=False, **kwargs).eval()
    x = torch.randn(2, kwargs.get("in_chans", 3), 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(_script(model)(x), model(x), rtol=0, atol=1e-5)


def test_torchscript_naive(naive_model):
    model = naive_model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(_script(model)(x), model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("aux", [True, False], ids=["aux", "no_aux"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fx_trace_then_torchscript(variant, aux):
    """An FX graph of the model (torch.fx.symbolic_trace: what timm's and torchvision's feature
    extractors build on) scripts too, with the same values; with aux heads the training-mode
    graph, which runs them, as well."""
    model = create_model(variant, num_classes=10, aux_logits=aux).eval()
    x = torch.randn(2, 3, 64, 64)
    scripted = _script(torch.fx.symbolic_trace(model))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=1e-5)
    if aux:
        _compare_train_mode(model, _script(torch.fx.symbolic_trace(model.train())), x)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_and_onnx_roundtrip(case, tmp_path):
    """torch.export with a dynamic batch, saved and loaded; then the same ExportedProgram to
    ONNX (opset 18, torch's dynamo exporter) run by onnxruntime. One test, so the export
    (seconds) is done once even when pytest-xdist spreads tests over workers."""
    model, x = _export_model(case)
    x3 = torch.randn(3, *x.shape[1:])  # another batch size than the one exported
    with torch.no_grad():
        want = model(x3)

    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    torch.export.save(ep, tmp_path / "model.pt2")
    loaded = torch.export.load(tmp_path / "model.pt2").module()
    with torch.no_grad():
        got = loaded(x3)
    assert type(got) is torch.Tensor and got.shape == (3, 10)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path / "model.onnx"
    torch.onnx.export(ep, (x,), str(path), opset_version=18, input_names=["input"],
                      output_names=["logits"], dynamo=True, verbose=False)
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [o.name for o in proto.graph.output] == ["logits"]  # no aux outputs
    assert not proto.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x3.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=1e-4)


# -- bad input ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_model():
    return create_model("bn", num_classes=10).eval()


@pytest.mark.parametrize("shape,match", [
    ((2, 1, 64, 64), r"expects input of shape \(N, 3, H, W\)"),
    ((2, 4, 64, 64), r"expects input of shape \(N, 3, H, W\)"),
    ((3, 64, 64), r"expects input of shape \(N, 3, H, W\), got \(3, 64, 64\)"),
    ((2, 3, 31, 31), r"31x31 pixels is too small: GoogLeNet accepts 32x32 and larger"),
    ((2, 3, 64, 20), r"64x20 pixels is too small"),
])
def test_bad_input_shape(small_model, shape, match):
    x = torch.randn(shape)
    for fn in (small_model, small_model.forward_features, small_model.forward_intermediates):
        with pytest.raises(ValueError, match=match):
            fn(x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(variant="resnet"),
     r"unknown variant 'resnet'; choose one of \['bn', 'paper', 'torchvision'\]"),
    (dict(inception="fancy"), r"unknown inception 'fancy'; choose one of \['reduced', 'naive'\]"),
    (dict(stem="deep"), r"unknown stem 'deep'; choose one of \['paper', 'separable'\]"),
    (dict(num_classes=-1), r"num_classes must be an integer >= 0, got -1"),
    (dict(num_classes=2.5), r"num_classes must be an integer >= 0"),
    (dict(in_chans=0), r"in_chans must be an integer >= 1, got 0"),
    (dict(transform_input=True, in_chans=1), r"transform_input applies to 3-channel RGB input"),
])
def test_bad_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GoogLeNet(**kwargs)


def test_create_model_unknown_name():
    names = r"\['googlenet', 'googlenet_bn', 'googlenet_torchvision'\]"
    with pytest.raises(ValueError, match=rf"unknown model 'resnet50'; choose one of {names}"):
        create_model("resnet50")


def test_every_registered_model_has_a_variant():
    assert {MODEL_ALIASES[v] for v in list_variants()} == set(list_models())
    for v in list_variants():
        assert create_model(MODEL_ALIASES[v]).config["variant"] == v
