"""GoogLeNet (Inception v1), built from the paper's Table 1.

Szegedy et al. 2014, "Going Deeper with Convolutions" (arXiv 1409.4842). Where the paper is silent
the BVLC Caffe reproduction (``models/bvlc_googlenet``) is the reference.

Layout, as in timm: configs (Table 1, as data), then blocks (both in ``blocks.py``), then the
network (here, with its timm/torchvision contract: forward_features, forward_intermediates,
feature_info, reset_classifier). One code path serves every variant; they differ only in their
``Variant`` record, which lives with the other named choices in ``choices.py`` (plain data
without torch, so the command line can list them at once). The argument checks are in
``arguments.py``, the torchvision key map in ``torchvision_keys.py``, the registry and builders
in ``registry.py``, timm's helpers (index selection, pretrained_cfg) in ``contract.py``. The
parts' names are importable from here as well.

TorchScript: ``torch.jit.script`` compiles every variant, as it does torchvision's GoogLeNet, and
so does an FX graph of it. Hence no ``from __future__ import annotations`` here (FX copies the
forward's annotations into the code it generates, where TorchScript cannot read a string), and
the forward's stage loop has a spelled-out twin for TorchScript (``_trunk_scripted``).
"""

from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch
import torch.fx
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .arguments import check_ablation, check_args, check_global_pool, check_input_shape, same_dropout
from .blocks import (
    AUX_FC, AUX_TAPS, SEPARABLE_DEPTH_MULTIPLIER, STEM_CONV1, STEM_CONV2, STEM_CONV2_REDUCE, TABLE1,
    AuxHead, ConvBlock, Inception, InceptionSpec, SeparableConvBlock, TorchvisionInputTransform,
    max_pool, scale_width, scaled_spec,
)
from .choices import HEADS, MIN_INPUT_SIZE, NORMS, VARIANTS, Variant, feature_grid
from .lrn import LocalResponseNorm
from .contract import group_matcher as _group_matcher
from .contract import pretrained_cfg_from, take_indices
from .torchvision_keys import torchvision_key, torchvision_keys_hook

__all__ = [
    "InceptionSpec", "TABLE1", "Variant", "VARIANTS", "GoogLeNet", "GoogLeNetOutputs",
    "Inception", "AuxHead", "ConvBlock", "SeparableConvBlock", "TorchvisionInputTransform",
    "MIN_INPUT_SIZE", "torchvision_key", "HEADS", "NORMS", "scale_width", "feature_grid",
    "AUX_TAPS", "SEPARABLE_DEPTH_MULTIPLIER",
]


torch.fx.wrap("check_input_shape")


def _fx_tracing() -> bool:
    """Whether torch.fx.symbolic_trace is running (torch.utils.checkpoint cannot be traced)."""
    fx = torch.fx._symbolic_trace
    check = getattr(fx, "is_fx_symbolic_tracing", None) or getattr(fx, "is_fx_tracing")
    return check()


class GoogLeNetOutputs(NamedTuple):
    """What ``forward`` returns in training mode with aux heads; in eval it returns ``logits``."""

    logits: torch.Tensor
    aux1: torch.Tensor
    aux2: torch.Tensor


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

class GoogLeNet(nn.Module):
    """GoogLeNet as in Table 1 and Figure 3.

    Output contract (one type per mode, pytorch/vision#1273): in eval mode, and in training mode
    without aux heads, ``forward`` returns the logits tensor ``(N, num_classes)``; in training mode
    with aux heads it returns ``GoogLeNetOutputs(logits, aux1, aux2)``.

    Aux heads default: ``aux_logits=True`` here and in ``googlenet.create_model``, because the
    paper trains with them (§5) and ``googlenet train`` passes its ``aux_logits`` setting
    explicitly. A standard training loop (``loss_fn(model(x), y)``) needs a tensor, so the entry
    points built for outside loops default to ``aux_logits=False``: ``timm.create_model`` (after
    ``import googlenet.interop.timm``) and ``torch.hub.load`` (``hubconf.py``).

    timm's model contract: ``forward_features`` / ``forward_head(pre_logits=)``,
    ``forward_intermediates`` / ``prune_intermediate_layers`` over ``feature_info``,
    ``get_classifier`` / ``reset_classifier(num_classes, global_pool)``, ``group_matcher``,
    ``set_grad_checkpointing``, ``drop_rate`` (another name for ``dropout``, the keyword timm's
    train.py passes), and ``pretrained_cfg`` (input size, mean/std, crop; filled from the stored
    preprocessing when weights are loaded), so ``timm.data.resolve_model_data_config`` works.

    Ablation switches (``googlenet experiment``), not paper variants; their defaults build the
    paper's network, with the same state-dict keys:

    - ``width``: multiplies every Table 1 width and the stem's (rounded, >= 1); the aux heads
      keep theirs. Used to trim the naive network to the reduced one's compute.
    - ``head``: ``"gap"`` (§5: global average pooling, then the linear layer) or ``"fc"`` (flatten
      the (num_features, h, w) map of 5b into the linear layer, as before NIN). The FC head's size
      depends on h x w, so it needs ``img_size`` and accepts only that input size (at 32 px the
      map is 1x1 and "fc" is the same function as "gap").
    - ``norm``: ``"lrn"`` (the paper's), ``"bn"`` or ``"none"``, replacing the variant's
      normalisation (None: the variant's). BN keeps the variant's eps (1e-3 if it has none).
    """

    def __init__(self, *, variant: str = "paper", num_classes: int = 1000, in_chans: int = 3,
                 aux_logits: bool = True, inception: str = "reduced", stem: str = "paper",
                 transform_input: bool = False, dropout: Optional[float] = None,
                 aux_dropout: Optional[float] = None, init_weights: bool = True,
                 drop_rate: Optional[float] = None, global_pool: str = "avg",
                 width: float = 1.0, head: str = "gap", norm: Optional[str] = None,
                 img_size: Optional[int] = None) -> None:
        super().__init__()
        dropout = same_dropout(dropout, drop_rate)
        check_args(variant, num_classes, in_chans, inception, stem, transform_input, global_pool)
        check_ablation(width, head, norm, img_size)
        v = VARIANTS[variant]
        self.variant = v
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.aux_logits = aux_logits
        self.inception_kind = inception
        self.stem_kind = stem
        self.transform_input = transform_input
        self.drop_rate = v.dropout if dropout is None else float(dropout)
        aux_drop = v.aux_dropout if aux_dropout is None else float(aux_dropout)
        # Everything needed to rebuild this model; saved with weights and checkpoints. (Not
        # annotated here: torch.jit.script warns about an annotated dict attribute in __init__.)
        self.config = dict(
            variant=variant, num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
            inception=inception, stem=stem, transform_input=transform_input,
            dropout=self.drop_rate, aux_dropout=aux_drop, global_pool=global_pool,
            width=float(width), head=head,
            norm=norm, img_size=img_size if head == "fc" else None)
        self.width_mult, self.head_kind, self.norm_kind = float(width), head, norm
        self.img_size = img_size if head == "fc" else None
        use_bn, use_lrn = {None: (v.batchnorm, v.lrn), "bn": (True, False),
                           "lrn": (False, True), "none": (False, False)}[norm]
        bn_eps = v.bn_eps or 1e-3
        stem1, stem2r, stem2 = (scale_width(c, self.width_mult)
                                for c in (STEM_CONV1, STEM_CONV2_REDUCE, STEM_CONV2))

        conv = partial(ConvBlock, batchnorm=use_bn, bn_eps=bn_eps)
        # Caffe's LRN (size 5, alpha 1e-4, beta 0.75, k 1); models/lrn.py computes the same function
        # as nn.LocalResponseNorm with a hand-written backward, several times faster on a CPU.
        lrn = (lambda: LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)) if use_lrn else nn.Identity

        self.input_transform = TorchvisionInputTransform() if transform_input else nn.Identity()
        self._build_stem(conv, lrn, stem1, stem2r, stem2, use_bn, bn_eps)

        self.num_features = self._build_stages(conv, stem2, v)  # 1024 for the reduced module

        if aux_logits:
            for tap, head in AUX_TAPS.items():
                self.add_module(head, AuxHead(self.tap_channels[tap], num_classes, conv=conv,
                                              dropout=aux_drop, pool=v.aux_pool))
        else:
            self.aux1 = self.aux2 = None

        # Head: avgpool 7x7/1 (global at a 224 input, so adaptive pooling is the same op and
        # also serves other sizes) -> dropout -> linear.
        # head="fc" (ablation): no pooling; the linear layer sees the whole (C, g, g) map.
        # global_pool="" (timm, with num_classes=0): forward_head returns the unpooled map.
        self.global_pool = global_pool
        pooled = self.head_kind == "gap" and bool(global_pool)
        self.avgpool = nn.AdaptiveAvgPool2d(1) if pooled else nn.Identity()
        grid = feature_grid(img_size, v.pool4_kernel) if self.head_kind == "fc" else 1
        self.head_features = self.num_features * grid * grid
        self.dropout = nn.Dropout(self.drop_rate)
        self.fc = nn.Linear(self.head_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head_hidden_size = self.head_features
        self.grad_checkpointing = False

        self.feature_info = [
            dict(num_chs=stem1, reduction=2, module="conv1"),
            dict(num_chs=stem2, reduction=4, module="conv2"),
            dict(num_chs=self.tap_channels["inception_3b"], reduction=8, module="inception_3b"),
            dict(num_chs=self.tap_channels["inception_4e"], reduction=16, module="inception_4e"),
            dict(num_chs=self.tap_channels["inception_5b"], reduction=32, module="inception_5b"),
        ]
        self.pretrained_cfg = pretrained_cfg_from(None, self)  # replaced when weights load
        self._register_load_state_dict_pre_hook(torchvision_keys_hook)
        if init_weights:
            self.init_weights()

    # -- construction (called by __init__ in this order: module order fixes the init) --------

    def _build_stem(self, conv: Callable[..., nn.Module], lrn: Callable[[], nn.Module],
                    stem1: int, stem2r: int, stem2: int, use_bn: bool, bn_eps: float) -> None:
        # Stem (Table 1 rows 1-4). Caffe's order: conv1 -> pool1 -> norm1 -> conv2 -> norm2 -> pool2.
        if self.stem_kind == "separable":
            self.conv1 = SeparableConvBlock(self.in_chans, stem1, 7, stride=2, padding=3,
                                            batchnorm=use_bn, bn_eps=bn_eps)
        else:
            self.conv1 = conv(self.in_chans, stem1, 7, stride=2, padding=3)  # (N, 64, 112, 112)
        self.pool1 = max_pool(3, 2)  # (N, 64, 56, 56)
        self.norm1 = lrn()
        self.conv2_reduce = conv(stem1, stem2r, 1)
        self.conv2 = conv(stem2r, stem2, 3, padding=1)  # (N, 192, 56, 56)
        self.norm2 = lrn()
        self.pool2 = max_pool(3, 2)  # (N, 192, 28, 28)

    def _build_stages(self, conv: Callable[..., nn.Module], channels: int, v: Variant) -> int:
        """The Inception stages and pools from TABLE1; returns the channels out of 5b."""
        # Inception stages, built from TABLE1; widths are tracked so the naive module can widen.
        self.stage_names: list[str] = ["conv1", "pool1", "norm1", "conv2_reduce", "conv2",
                                       "norm2", "pool2"]
        self.tap_channels: dict[str, int] = {}
        for row in TABLE1:
            if isinstance(row, str):
                kernel = v.pool4_kernel if row == "pool4" else 3
                self.add_module(row, max_pool(kernel, 2))  # 28 -> 14 (pool3), 14 -> 7 (pool4)
                self.stage_names.append(row)
                continue
            block = Inception(channels, scaled_spec(row, self.width_mult), conv=conv, kernel5x5=v.kernel5x5,
                              naive=self.inception_kind == "naive")
            self.add_module(row.name, block)
            self.stage_names.append(row.name)
            channels = block.out_channels
            self.tap_channels[row.name] = channels
        return channels

    # -- weights ---------------------------------------------------------------------------

    def classifiers(self) -> list[nn.Module]:
        """The final linear layers (main and aux), whose bias Caffe initialises to 0."""
        heads = [self.fc] + [h.fc2 for h in (self.aux1, self.aux2) if h is not None]
        return [h for h in heads if isinstance(h, nn.Linear)]

    def init_weights(self) -> None:
        if self.variant.init == "caffe":
            # Caffe's "xavier" filler scales by fan-in only: U(-sqrt(3/fan_in), +sqrt(3/fan_in)),
            # which is kaiming_uniform_ with a=1 (not nn.init.xavier_uniform_, which also uses
            # fan_out). bvlc_googlenet sets conv/FC biases to 0.2 and classifier biases to 0.
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(m.weight, a=1.0)
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0.2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            for m in self.classifiers():
                nn.init.zeros_(m.bias)
        else:  # torchvision's GoogLeNet init, draw for draw (same seed, same weights)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    # Biases (the linear layers'; its convs have none) keep PyTorch's default.
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    # -- timm's model contract ------------------------------------------------------------

    __jit_unused_properties__ = ["default_cfg"]  # a dict of mixed types: not for TorchScript

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for ``pretrained_cfg``."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise lr decay: stem, inception modules (per stage
        when ``coarse``), then the head (fc and the aux classifiers)."""
        return _group_matcher(self.stage_names, coarse)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """In training, recompute each inception module in the backward pass instead of keeping
        its activations (``torch.utils.checkpoint``): less memory, about one more forward of
        compute. As with any checkpointed BatchNorm (timm's models too), BN running statistics
        are updated once more during the recomputation."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New, freshly initialised final layers (main and aux) for ``num_classes`` outputs.

        ``global_pool`` (timm's): ``"avg"`` (the paper's global average pool) or ``""`` (no
        pooling: ``forward_head`` returns the feature map; needs ``num_classes=0``); ``None``
        keeps the current one.
        """
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        if global_pool is not None:
            check_global_pool(global_pool, num_classes)
            self.global_pool = global_pool
            pooled = bool(global_pool) and self.head_kind == "gap"
            self.avgpool = nn.AdaptiveAvgPool2d(1) if pooled else nn.Identity()
            self.config["global_pool"] = global_pool
        else:
            check_global_pool(self.global_pool, num_classes)
        self.num_classes = num_classes
        self.config["num_classes"] = num_classes

        def linear(n_in: int) -> nn.Module:
            if num_classes == 0:
                return nn.Identity()
            layer = nn.Linear(n_in, num_classes)  # the variant's init, as in init_weights
            if self.variant.init == "caffe":
                nn.init.kaiming_uniform_(layer.weight, a=1.0)
                nn.init.zeros_(layer.bias)
            else:  # torchvision's: PyTorch's default bias
                nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01, a=-2, b=2)
            return layer

        device = next(self.parameters()).device
        self.fc = linear(self.head_features).to(device).train(self.training)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = linear(AUX_FC).to(device).train(self.training)

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> list[int]:
        """Drop the stages after the deepest feature level in ``indices`` (timm's semantics;
        returns the kept absolute indices). Pruning the end or ``prune_head`` also removes the
        classifier and the aux heads. ``prune_norm`` is accepted for timm and does nothing:
        GoogLeNet has no final norm layer. A pruned model no longer matches ``config``."""
        take, max_index = take_indices(len(self.feature_info), indices)
        last = self.stage_names.index(self.feature_info[max_index]["module"])
        for name in self.stage_names[last + 1:]:
            setattr(self, name, nn.Identity())
        pruned_end = max_index < len(self.feature_info) - 1
        if pruned_end:
            self.num_features = self.feature_info[max_index]["num_chs"]
            self.head_features = self.head_hidden_size = self.num_features
        if prune_head or pruned_end:
            self.aux1 = self.aux2 = None
            self.aux_logits = self.config["aux_logits"] = False
            self.reset_classifier(0, "")
        return take

    # -- forward ---------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError for input this network cannot take, saying what it accepts."""
        check_input_shape(x, self.in_chans, self.img_size)

    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        module = getattr(self, name)
        if (self.grad_checkpointing and self.training and name in self.tap_channels
                and torch.is_grad_enabled() and not torch.jit.is_tracing() and not _fx_tracing()):
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def _trunk(self, x: torch.Tensor, *, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        x = self.input_transform(x)
        aux: list[torch.Tensor] = []
        for name in self.stage_names:
            x = self._stage(name, x)
            if with_aux and name in AUX_TAPS:
                aux.append(getattr(self, AUX_TAPS[name])(x))
        return x, aux  # x: (N, 1024, H/32, W/32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_features, H/32, W/32): the output of inception 5b."""
        return self._trunk(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)  # (N, C, 1, 1); head="fc" or global_pool="": unchanged (N, C, g, g)
        if self.global_pool != "" or self.head_kind == "fc":
            x = torch.flatten(x, 1)  # (N, num_features) or, head="fc", (N, C * g * g)
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Feature maps at the levels of ``feature_info`` (strides 2 to 32), as timm defines it.

        ``indices``: None for all five levels, an int n for the last n, or a list of levels
        (negative from the end); maps come back in network order. Returns ``(final,
        intermediates)``, ``final`` being the last stage run (inception 5b unless
        ``stop_early``), or only ``intermediates`` with ``intermediates_only``. ``stop_early``
        stops after the deepest level asked for. ``norm`` is accepted and does nothing:
        GoogLeNet has no final norm. ``output_fmt``: "NCHW" only. The aux heads do not run.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r} is not supported: GoogLeNet's features "
                             f"are NCHW (permute them yourself for NHWC)")
        take, max_index = take_indices(len(self.feature_info), indices)
        wanted = {self.feature_info[i]["module"] for i in take}
        names = self.stage_names
        if stop_early:
            names = names[:names.index(self.feature_info[max_index]["module"]) + 1]
        self.check_input(x)
        x = self.input_transform(x)
        intermediates: list[torch.Tensor] = []
        for name in names:
            x = self._stage(name, x)
            if name in wanted:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def _trunk_scripted(self, x: torch.Tensor,
                        with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``_trunk`` for TorchScript, which cannot fetch a module by a name held in a variable
        (``getattr(self, name)``): the stages of ``stage_names``, spelled out in its order (a
        test compares the two on every variant). No gradient checkpointing under TorchScript."""
        self.check_input(x)
        x = self.input_transform(x)
        x = self.norm1(self.pool1(self.conv1(x)))  # (N, 64, H/4, W/4)
        x = self.pool2(self.norm2(self.conv2(self.conv2_reduce(x))))  # (N, 192, H/8, W/8)
        x = self.pool3(self.inception_3b(self.inception_3a(x)))  # (N, 480, H/16, W/16)
        x = self.inception_4a(x)
        aux: list[torch.Tensor] = []
        if with_aux and self.aux1 is not None:
            aux.append(self.aux1(x))
        x = self.inception_4d(self.inception_4c(self.inception_4b(x)))
        if with_aux and self.aux2 is not None:
            aux.append(self.aux2(x))
        x = self.pool4(self.inception_4e(x))  # (N, 832, H/32, W/32)
        x = self.inception_5b(self.inception_5a(x))  # (N, 1024, H/32, W/32)
        return x, aux

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, GoogLeNetOutputs]:
        with_aux = self.training and self.aux_logits
        if torch.jit.is_scripting():
            x, aux = self._trunk_scripted(x, with_aux)
        else:
            x, aux = self._trunk(x, with_aux=with_aux)
        logits = self.forward_head(x)
        if with_aux:
            return GoogLeNetOutputs(logits, aux[0], aux[1])
        return logits
