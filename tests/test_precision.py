"""Mixed precision by construction (models/precision.py), checked by dtype on the CPU: under bf16
autocast every detector's trunk and heads run in bf16 while its anchors, box coding, matching,
losses, postprocessing and NMS see float32 tensors only, with autocast off. On CUDA, box math in
bf16 stopped FCOS from learning its boxes; CI has no GPU, so the rule is tested here, where the
CPU's autocast lowers the same convolutions."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import pytest
import torch
import torch.nn as nn
import torchvision.models.detection._utils as det_utils
from torchvision.ops import boxes as box_ops

from googlenet.models.detection import GoogLeNetDetector
from googlenet.models.precision import MixedPrecisionPlan, to_float32

ARCHS = ("fcos", "retinanet", "fasterrcnn")


def _detector(arch: str) -> GoogLeNetDetector:
    torch.manual_seed(0)
    return GoogLeNetDetector(arch=arch, num_classes=2, variant="bn", min_size=64, max_size=64,
                             fpn_channels=64, head_convs=1, score_thresh=0.0)


def _batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 10.0, 30.0, 34.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[20.0, 4.0, 50.0, 40.0]]), "labels": torch.tensor([2])}]
    return images, targets


class Spy:
    """Records, for each wrapped function, the dtypes of its floating tensor arguments and whether
    autocast was on when it ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, set[torch.dtype], bool]] = []

    def wrap(self, name: str, fn):
        def spied(*args, **kwargs):
            dtypes: set[torch.dtype] = set()

            def collect(v):
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    dtypes.add(v.dtype)
                elif isinstance(v, (list, tuple)):
                    for x in v:
                        collect(x)
                elif isinstance(v, dict):
                    for x in v.values():
                        collect(x)

            for v in list(args) + list(kwargs.values()):
                collect(v)
            self.calls.append((name, dtypes, torch.is_autocast_enabled("cpu")))
            return fn(*args, **kwargs)

        return spied


@pytest.fixture
def spy(monkeypatch):
    """Every box-math and loss entry point torchvision's three detectors use, spied on."""
    import torchvision.models.detection.fcos as fcos
    import torchvision.models.detection.retinanet as retinanet
    import torchvision.models.detection.roi_heads as roi_heads
    import torchvision.models.detection.rpn as rpn
    import torch.nn.functional as F

    s = Spy()
    for mod in (fcos, retinanet):
        monkeypatch.setattr(mod, "sigmoid_focal_loss", s.wrap("sigmoid_focal_loss", mod.sigmoid_focal_loss))
    monkeypatch.setattr(fcos, "generalized_box_iou_loss",
                        s.wrap("generalized_box_iou_loss", fcos.generalized_box_iou_loss))
    monkeypatch.setattr(retinanet, "_box_loss", s.wrap("_box_loss", retinanet._box_loss))
    monkeypatch.setattr(roi_heads, "fastrcnn_loss", s.wrap("fastrcnn_loss", roi_heads.fastrcnn_loss))
    for name in ("binary_cross_entropy_with_logits", "smooth_l1_loss", "l1_loss", "cross_entropy"):
        monkeypatch.setattr(F, name, s.wrap(name, getattr(F, name)))
    for cls in (det_utils.BoxCoder, det_utils.BoxLinearCoder):
        for name in ("encode", "decode", "encode_single", "decode_single"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, s.wrap(f"{cls.__name__}.{name}", getattr(cls, name)))
    monkeypatch.setattr(det_utils.Matcher, "__call__", s.wrap("Matcher", det_utils.Matcher.__call__))
    for name in ("batched_nms", "box_iou", "clip_boxes_to_image", "remove_small_boxes"):
        monkeypatch.setattr(box_ops, name, s.wrap(f"box_ops.{name}", getattr(box_ops, name)))
    monkeypatch.setattr(rpn, "box_ops", box_ops)
    return s


def _conv_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The output dtypes of every convolution in ``model`` during one forward (hooks)."""
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    return seen, hooks


@pytest.mark.parametrize("arch", ARCHS)
def test_under_bf16_autocast_box_math_and_losses_see_float32_only(arch, spy):
    model = _detector(arch).train()
    images, targets = _batch()
    convs, hooks = _conv_dtypes(model)
    anchors = []
    gen = model.detector.anchor_generator if arch != "fasterrcnn" else model.detector.rpn.anchor_generator
    hooks.append(gen.register_forward_hook(lambda m, i, o: anchors.extend(a.dtype for a in o)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert convs == {torch.bfloat16}, "the trunk, FPN and heads must still run under autocast"
    assert anchors and set(anchors) == {torch.float32}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    called = {name for name, _, _ in spy.calls}
    want = {"fcos": {"sigmoid_focal_loss", "generalized_box_iou_loss", "BoxLinearCoder.encode"},
            "retinanet": {"sigmoid_focal_loss", "_box_loss", "Matcher"},
            "fasterrcnn": {"fastrcnn_loss", "Matcher", "box_ops.batched_nms"}}[arch]
    assert want <= called, f"the spies missed {want - called}"
    bad = [(n, d, a) for n, d, a in spy.calls if a or d - {torch.float32, torch.float64}]
    assert not bad, f"box math or a loss ran in low precision or under autocast: {bad[:5]}"

    # Inference: decoding, score thresholds and NMS in float32 too; detections are float32.
    spy.calls.clear()
    convs.clear()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
    assert convs == {torch.bfloat16}
    assert any(n == "box_ops.batched_nms" for n, _, _ in spy.calls)
    bad = [(n, d, a) for n, d, a in spy.calls if a or d - {torch.float32, torch.float64}]
    assert not bad, f"postprocessing ran in low precision or under autocast: {bad[:5]}"
    assert all(o["boxes"].dtype == torch.float32 and o["scores"].dtype == torch.float32 for o in out)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("arch", ARCHS)
def test_without_autocast_islands_change_nothing(arch):
    """Without autocast the plan is a no-op: the same losses as the bare torchvision detector, and
    state-dict keys, deepcopy (EMA) and printing are those of the plain modules."""
    import copy

    model = _detector(arch).train()
    images, targets = _batch()
    torch.manual_seed(1)
    a = model(images, targets)
    torch.manual_seed(1)
    shift = model.label_shift
    b = model.detector(images, [{**t, "labels": t["labels"] - shift} for t in targets])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(".module." in k for k in model.state_dict())
    twin = copy.deepcopy(model)
    assert twin.detector.backbone._precision_plan is twin.precision  # the copy's own plan
    assert twin.precision is not model.precision
    assert "FCOSHead" in repr(model) or arch != "fcos"


def test_fp16_autocast_keeps_losses_float32_for_the_grad_scaler():
    """--amp fp16: the GradScaler scales a float32 loss whose box terms were computed in
    float32 (fp16 would overflow GIoU's areas at a few hundred pixels)."""
    model = _detector("fcos").train()
    images, targets = _batch()
    with torch.autocast("cpu", dtype=torch.float16):
        losses = model(images, targets)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(sum(losses.values())).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_to_float32_keeps_container_types():
    Pair = namedtuple("Pair", "a b")
    x = torch.ones(2, dtype=torch.bfloat16)
    out = to_float32({"o": OrderedDict(p=x), "l": [x, (x, 3)], "n": Pair(x, torch.ones(1, dtype=torch.int64)),
                      "d": torch.ones(1, dtype=torch.float64)})
    assert type(out["o"]) is OrderedDict and out["o"]["p"].dtype == torch.float32
    assert out["l"][0].dtype == torch.float32 and out["l"][1][1] == 3
    assert isinstance(out["n"], Pair) and out["n"].b.dtype == torch.int64
    assert out["d"].dtype == torch.float64


def test_plan_restores_the_callers_autocast():
    plan = MixedPrecisionPlan()
    lin = plan.island(nn.Linear(4, 4))
    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with plan.float32("cpu"):
            assert not torch.is_autocast_enabled("cpu")
            y = lin(x)
            assert y.dtype == torch.float32
            assert (x @ x.T).dtype == torch.float32  # between islands: float32
        assert torch.is_autocast_enabled("cpu")
    assert plan.dtype is None
    assert type(lin).__name__ == "Linear" and isinstance(lin, nn.Linear)
    assert lin(x).dtype == torch.float32
