"""GoogLeNet as a detection backbone: an FPN over inception 3b / 4e / 5b (strides 8 / 16 / 32)
under torchvision's FCOS, RetinaNet or Faster R-CNN.

The paper (§8) detects with R-CNN: Selective Search proposals classified by the network
(googlenet.tasks.rcnn). This module is the modern counterpart the paper could not have: the same
network, trained end to end as a one- or two-stage detector. Everything but the backbone adapter
is torchvision's: ``FeaturePyramidNetwork`` (with ``LastLevelP6P7`` for FCOS/RetinaNet, P6 from
P5, as the FCOS and RetinaNet papers, or ``LastLevelMaxPool`` for Faster R-CNN), the
``AnchorGenerator``, the heads, the losses, the post-processing and ``GeneralizedRCNNTransform``
(resize to ``min_size``/``max_size``, normalise with the backbone's mean/std, pad to a multiple
of 32).

Output contract: torchvision's. Training mode, ``model(images, targets)`` -> dict of losses;
eval mode, ``model(images)`` -> one ``{"boxes" (K, 4) xyxy px, "scores" (K,), "labels" (K,)}``
per image, labels ``1..num_classes`` (0 is torchvision's background; targets use 1..C too). ``images`` is a list of
float (3, H, W) tensors in [0, 1] of any size.

Departures from torchvision's reference detectors, for small images on a CPU (see
``GoogLeNetDetector``): FPN width 128 instead of 256, head depth ``head_convs`` (2) instead of
4, anchor sizes two strides wide instead of four (objects of 10-60 px in 128-px images).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from .googlenet import MIN_INPUT_SIZE, GoogLeNet
from .precision import MixedPrecisionPlan

__all__ = ["ARCHS", "GoogLeNetFPN", "GoogLeNetDetector", "intermediates", "FEATURE_INDICES",
           "to_image", "to_model_targets", "from_model_outputs", "RegionClassifier", "rcnn_detect"]

ARCHS = ("fcos", "retinanet", "fasterrcnn")
# feature_info entries the FPN reads: inception_3b (stride 8), 4e (16), 5b (32).
FEATURE_INDICES = (2, 3, 4)


def intermediates(model: GoogLeNet, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
    """``model.forward_intermediates`` as a list of maps, whichever return type it has: the list
    itself (this package's first form) or timm's ``(final, [intermediates])``; with timm's
    ``intermediates_only=True`` when the method takes it (decided from its signature, not by
    trying, so tracing sees one path)."""
    takes_only = "intermediates_only" in inspect.signature(model.forward_intermediates).parameters
    if takes_only:
        out = model.forward_intermediates(x, indices=list(indices), intermediates_only=True)
    else:
        out = model.forward_intermediates(x, indices=list(indices))
    if isinstance(out, tuple):  # timm's (final, intermediates)
        out = out[1]
    return list(out)


class GoogLeNetFPN(nn.Module):
    """GoogLeNet trunk -> FPN. ``forward(x (N, 3, H, W))`` -> OrderedDict of ``out_channels``
    maps, "0" (H/8) "1" (H/16) "2" (H/32), then "p6" "p7" (LastLevelP6P7) or "pool" (max pool)."""

    def __init__(self, body: GoogLeNet, *, out_channels: int = 128, extra: str = "p6p7") -> None:
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        super().__init__()
        self.body = body
        in_channels = [body.feature_info[i]["num_chs"] for i in FEATURE_INDICES]  # 480, 832, 1024
        # P6 from P5 (FPN output, out_channels wide), as torchvision's FCOS and RetinaNet.
        blocks = {"p6p7": lambda: LastLevelP6P7(out_channels, out_channels),
                  "pool": LastLevelMaxPool}
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=blocks[extra]())
        self.out_channels = out_channels
        self.num_levels = len(FEATURE_INDICES) + (2 if extra == "p6p7" else 1)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        # The engine may have made the weights channels_last; the batched images (stacked by
        # GeneralizedRCNNTransform from a list) are contiguous, so follow the weights here.
        if self.body.conv2.conv.weight.is_contiguous(memory_format=torch.channels_last) \
                and not self.body.conv2.conv.weight.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)
        feats = intermediates(self.body, x, FEATURE_INDICES)  # (N, 480, H/8, W/8) ... (N, 1024, H/32, W/32)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def _anchor_sizes(levels: int, scale: float) -> tuple[tuple[int, ...], ...]:
    # One base size per level: scale x stride (stride 8 for the first level, doubling).
    return tuple((int(round(scale * 8 * 2 ** i)),) for i in range(levels))


class GoogLeNetDetector(nn.Module):
    """A torchvision detector (``arch``: fcos | retinanet | fasterrcnn) on a GoogLeNet FPN.

    ``num_classes`` counts object classes (C); labels in targets and outputs are 1..C, 0 being
    torchvision's background. ``config`` rebuilds
    the model (``googlenet.models.registry.model_from_config``).
    """

    def __init__(self, *, arch: str = "fcos", num_classes: int, variant: str = "bn",
                 inception: str = "reduced", stem: str = "paper", fpn_channels: int = 128,
                 head_convs: int = 2, anchor_scale: float = 2.0, min_size: int = 128,
                 max_size: int = 128, image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225),
                 transform_input: bool = False, score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_img: int = 100,
                 init_weights: bool = True) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown detector arch {arch!r}; choose one of {list(ARCHS)}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if min_size < MIN_INPUT_SIZE or max_size < min_size:
            raise ValueError(f"need {MIN_INPUT_SIZE} <= min_size <= max_size, got {min_size}, "
                             f"{max_size}")
        if head_convs < 1 or fpn_channels < 64 or fpn_channels % 32:
            # FCOS's head has GroupNorm(32): with one channel per group, the 1x1 P7 of a small
            # image leaves GroupNorm a single value per group (an error when traced for ONNX).
            raise ValueError(f"need head_convs >= 1 and fpn_channels a multiple of 32, at least "
                             f"64 (the heads' GroupNorm), got {head_convs}, {fpn_channels}")
        self.arch = arch
        self.num_classes = num_classes
        self.config: dict[str, Any] = dict(
            detector=arch, num_classes=num_classes, variant=variant, inception=inception,
            stem=stem, fpn_channels=fpn_channels, head_convs=head_convs,
            anchor_scale=float(anchor_scale), min_size=min_size, max_size=max_size,
            image_mean=[float(m) for m in image_mean], image_std=[float(s) for s in image_std],
            transform_input=bool(transform_input),
            score_thresh=float(score_thresh), nms_thresh=float(nms_thresh),
            detections_per_img=detections_per_img)
        # The trunk only: no classifier, no aux heads (a classifier's are dropped on loading).
        body = GoogLeNet(variant=variant, num_classes=0, aux_logits=False, inception=inception,
                         stem=stem, transform_input=transform_input, init_weights=init_weights)
        backbone = GoogLeNetFPN(body, out_channels=fpn_channels,
                                extra="pool" if arch == "fasterrcnn" else "p6p7")
        common = dict(min_size=min_size, max_size=max_size, image_mean=list(image_mean),
                      image_std=list(image_std))
        builder = {"fcos": _fcos, "retinanet": _retinanet, "fasterrcnn": _fasterrcnn}[arch]
        # Faster R-CNN's softmax has a background output (index 0): C + 1 classes, labels 1..C
        # as they are. FCOS and RetinaNet score each class with its own sigmoid and have no
        # background output: their heads get C classes (0..C-1), and forward shifts labels by
        # one each way, so every arch speaks torchvision's 1..C and never predicts 0.
        self.label_shift = 0 if arch == "fasterrcnn" else 1
        self.detector = builder(backbone, num_classes + 1 - self.label_shift, self.config, common)
        # Mixed precision (models/precision.py): the trunk + FPN and the heads run under the
        # caller's autocast; anchors, box coding, matching, losses and postprocessing in float32.
        self.precision = MixedPrecisionPlan()
        for m in _autocast_islands(self.detector):
            self.precision.island(m)

    @property
    def backbone(self) -> GoogLeNet:
        """The GoogLeNet trunk (where classification weights go)."""
        return self.detector.backbone.body

    def forward(self, images: list[torch.Tensor],
                targets: Optional[list[dict[str, torch.Tensor]]] = None) -> Any:
        k = self.label_shift
        if targets is not None and k:
            targets = [{**t, "labels": t["labels"] - k} for t in targets]
        with self.precision.float32(images[0].device.type if len(images) else "cpu"):
            out = self.detector(images, targets)
        if isinstance(out, list) and k:  # eval: detections
            out = [{**o, "labels": o["labels"] + k} for o in out]
        return out


def _autocast_islands(detector: nn.Module) -> list[nn.Module]:
    """The parts of a torchvision detector that run under autocast: the backbone (trunk + FPN)
    and the heads' convolutions and linear layers. Everything else (transform, anchors, box
    coder, matching, losses, RoI pooling's box arithmetic, postprocessing, NMS) stays float32."""
    parts = [detector.backbone]
    if hasattr(detector, "head"):  # FCOS, RetinaNet
        parts.append(detector.head)
    else:  # Faster R-CNN: the RPN's conv head, the box head's MLP and its predictor
        parts += [detector.rpn.head, detector.roi_heads.box_head, detector.roi_heads.box_predictor]
    return parts


def _fcos(backbone: GoogLeNetFPN, n: int, cfg: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    # FCOS reads one "anchor" per location only for its size s_l: level l takes the objects
    # whose largest regression target is in [4 s_l, 8 s_l]. s_l = anchor_scale / 2 x stride:
    # anchor_scale 2 is torchvision's assignment (s_l = stride), 1 moves objects a level finer.
    sizes = _anchor_sizes(backbone.num_levels, cfg["anchor_scale"] / 2)
    anchors = AnchorGenerator(sizes, ((1.0,),) * len(sizes))
    head = FCOSHead(backbone.out_channels, 1, n, num_convs=cfg["head_convs"])
    return FCOS(backbone, n, anchor_generator=anchors, head=head,
                score_thresh=cfg["score_thresh"], nms_thresh=cfg["nms_thresh"],
                detections_per_img=cfg["detections_per_img"], **common)


def _retinanet(backbone: GoogLeNetFPN, n: int, cfg: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    from functools import partial

    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.retinanet import RetinaNetHead

    # Three scales per octave and three aspect ratios, as the RetinaNet paper; the base size
    # is anchor_scale x stride (torchvision: 4 x stride, 32 px at P3).
    base = _anchor_sizes(backbone.num_levels, cfg["anchor_scale"])
    sizes = tuple(tuple(int(round(b * 2 ** (k / 3))) for k in range(3)) for (b,) in base)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    # GroupNorm in the head (torchvision's retinanet_resnet50_fpn_v2): trains from scratch.
    head = RetinaNetHead(backbone.out_channels, anchors.num_anchors_per_location()[0], n,
                         norm_layer=partial(nn.GroupNorm, 16))
    _trim_head(head.classification_head.conv, cfg["head_convs"])
    _trim_head(head.regression_head.conv, cfg["head_convs"])
    return RetinaNet(backbone, n, anchor_generator=anchors, head=head,
                     score_thresh=cfg["score_thresh"], nms_thresh=cfg["nms_thresh"],
                     detections_per_img=cfg["detections_per_img"], **common)


def _trim_head(conv: nn.Sequential, keep: int) -> None:
    """RetinaNetHead has no depth argument (FCOSHead has): keep its first ``keep`` blocks."""
    while len(conv) > keep:
        del conv[len(conv) - 1]


def _fasterrcnn(backbone: GoogLeNetFPN, n: int, cfg: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    sizes = _anchor_sizes(backbone.num_levels, cfg["anchor_scale"])
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    pooler = MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    # A 256-wide box head instead of torchvision's 1024: tens of objects per small image.
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, 256)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    return FasterRCNN(backbone, None, rpn_anchor_generator=anchors, box_roi_pool=pooler,
                      box_head=box_head, box_predictor=FastRCNNPredictor(256, n),
                      rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
                      rpn_batch_size_per_image=128, box_batch_size_per_image=128,
                      box_score_thresh=cfg["score_thresh"], box_nms_thresh=cfg["nms_thresh"],
                      box_detections_per_img=cfg["detections_per_img"], **common)


# -- the contract's conversions (dataset side <-> torchvision side) ------------------------------

def to_image(img: Any, device: torch.device) -> torch.Tensor:
    """A dataset image (tv_tensors.Image / tensor, uint8 or float in [0, 1]) -> float (3, H, W)."""
    t = img.as_subclass(torch.Tensor) if isinstance(img, torch.Tensor) else torch.as_tensor(img)
    t = t.to(device, non_blocking=True)
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def to_model_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Dataset targets (labels 0..C-1, BoundingBoxes) -> torchvision's (labels 1..C, plain)."""
    return [{"boxes": t["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4).to(device),
             "labels": t["labels"].as_subclass(torch.Tensor).long().to(device) + 1}
            for t in targets]


def from_model_outputs(outputs: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """torchvision's detections (labels 1..C) -> CPU float32 with the dataset's labels 0..C-1."""
    return [{"boxes": o["boxes"].detach().float().cpu(), "scores": o["scores"].detach().float().cpu(),
             "labels": o["labels"].detach().cpu() - 1} for o in outputs]


# -- the paper's §8: R-CNN with GoogLeNet as the region classifier -------------------------------

class RegionClassifier(nn.Module):
    """§8's region classifier: GoogLeNet with C + 1 outputs (0: background) over proposals
    warped to ``region_size`` (R-CNN's context padding: ``context`` px of the warped region show
    the image around the box). ``forward(regions (R, 3, S, S) float in [0, 1])`` -> logits
    (R, C + 1), or ``GoogLeNetOutputs`` in training with aux heads. Proposals, warping and
    detection (``rcnn_detect``) are the caller's: Selective Search lives in googlenet.data.
    No box regression, as the paper ("lack of time")."""

    def __init__(self, *, num_classes: int, region_size: int = 64, context: int = 5,
                 image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), min_size: int = 128,
                 max_size: int = 128, score_thresh: float = 0.05, nms_thresh: float = 0.3,
                 detections_per_img: int = 100, variant: str = "bn", inception: str = "reduced",
                 stem: str = "paper", aux_logits: bool = True, transform_input: bool = False,
                 dropout: Optional[float] = None, aux_dropout: Optional[float] = None,
                 proposals: Optional[dict[str, Any]] = None, extra_proposals: Optional[str] = None,
                 init_weights: bool = True) -> None:
        super().__init__()
        if region_size < MIN_INPUT_SIZE or not 0 <= 2 * context < region_size:
            raise ValueError(f"need region_size >= {MIN_INPUT_SIZE} and 0 <= 2 * context < "
                             f"region_size, got {region_size}, {context}")
        self.num_classes = num_classes
        self.classifier = GoogLeNet(variant=variant, num_classes=num_classes + 1,
                                    aux_logits=aux_logits, inception=inception, stem=stem,
                                    transform_input=transform_input, dropout=dropout,
                                    aux_dropout=aux_dropout, init_weights=init_weights)
        self.register_buffer("mean", torch.tensor(image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(image_std).view(1, 3, 1, 1), persistent=False)
        self.config: dict[str, Any] = dict(
            detector="rcnn", num_classes=num_classes, region_size=region_size, context=context,
            image_mean=[float(m) for m in image_mean], image_std=[float(s) for s in image_std],
            min_size=min_size, max_size=max_size, score_thresh=float(score_thresh),
            nms_thresh=float(nms_thresh), detections_per_img=detections_per_img,
            variant=variant, inception=inception, stem=stem, aux_logits=aux_logits,
            transform_input=transform_input, dropout=self.classifier.drop_rate,
            aux_dropout=self.classifier.config["aux_dropout"],
            # Selective Search's settings (googlenet.data.proposals.selective_search keywords)
            # and the detection run whose boxes were added (the MultiBox stand-in), if any.
            proposals=dict(proposals or {}), extra_proposals=extra_proposals)

    @property
    def backbone(self) -> GoogLeNet:
        return self.classifier

    def forward(self, regions: torch.Tensor) -> Any:  # (R, 3, S, S) in [0, 1]
        return self.classifier((regions - self.mean) / self.std)


@torch.no_grad()
def rcnn_detect(models: Sequence[RegionClassifier], images: Sequence[torch.Tensor],
                proposals: Sequence[torch.Tensor], warp: Any, *, batch_size: int = 256,
                device: Optional[torch.device] = None) -> list[dict[str, torch.Tensor]]:
    """R-CNN detection: each image's proposals (K, 4) warped (``warp(image, boxes, size,
    context=...)``, googlenet.data.proposals.warp_regions), classified by every model, softmax
    averaged over the models (the paper's ensemble of six), then per class: score > threshold,
    NMS (``batched_nms``), the best ``detections_per_img``. Labels 1..C (torchvision's)."""
    from torchvision.ops import batched_nms

    cfg = models[0].config
    device = device or next(models[0].parameters()).device
    out = []
    for image, boxes in zip(images, proposals):
        regions = warp(image, boxes, cfg["region_size"], context=cfg["context"])  # (K, 3, S, S)
        probs = torch.zeros(len(boxes), cfg["num_classes"] + 1)
        for m in models:
            m.eval()
            probs += torch.cat([m(r.to(device)).float().softmax(-1).cpu()
                                for r in regions.split(batch_size)] or [probs[:0]])
        probs /= len(models)
        scores = probs[:, 1:]  # (K, C): no background
        k, c = torch.nonzero(scores > cfg["score_thresh"], as_tuple=True)
        b, s, lab = boxes.float()[k], scores[k, c], c + 1
        keep = batched_nms(b, s, lab, cfg["nms_thresh"])[:cfg["detections_per_img"]]
        out.append({"boxes": b[keep], "scores": s[keep], "labels": lab[keep]})
    return out
