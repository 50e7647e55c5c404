"""Every named choice of the network and of how it runs, as plain data: the variants and what
distinguishes them, the inception and stem kinds, the ablation switches, the input sizes it takes
(and the feature map they give), the mixed-precision spellings.

No torch here, on purpose: the command line offers these choices in ``--help`` (and
``engine/config.py`` validates settings against them) without importing torch, which takes
seconds. ``googlenet.py`` builds the network from them and re-exports them, so
``from googlenet.models.googlenet import VARIANTS`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Variant", "VARIANTS", "INCEPTION_KINDS", "STEMS", "HEADS", "NORMS", "MIN_INPUT_SIZE",
           "feature_grid", "AMP_CHOICES", "LOADERS", "BACKBONE_KEYS"]

# The settings that make a GoogLeNet trunk (its layers' shapes), in a model config and in a
# training config alike: what a classifier and a detector's backbone, or a run and its resume,
# must agree on for weights to move between them.
BACKBONE_KEYS = ("variant", "inception", "stem")

@dataclass(frozen=True)
class Variant:
    """What distinguishes one GoogLeNet variant from another. Everything else is shared."""

    name: str
    batchnorm: bool  # BN after every conv (and then no conv bias)
    bn_eps: float
    lrn: bool  # LRN after pool1 and after conv2 (Caffe: size 5, alpha 1e-4, beta 0.75, k 1)
    kernel5x5: int  # kernel of the "#5x5" branch: 5 in the paper, 3 in torchvision
    pool4_kernel: int  # the max pool before 5a: 3x3/2 in the paper, 2x2/2 in torchvision
    dropout: float  # before the final linear layer
    aux_dropout: float
    aux_pool: str  # "paper": avgpool 5x5/3 when the tap is 14x14 (adaptive otherwise); "adaptive"
    init: str  # "caffe" (Xavier, bias 0.2) or "torchvision" (truncated normal, std 0.01)


VARIANTS: dict[str, Variant] = {
    # As published and as BVLC Caffe trained it.
    "paper": Variant("paper", batchnorm=False, bn_eps=0.0, lrn=True, kernel5x5=5, pool4_kernel=3,
                     dropout=0.4, aux_dropout=0.7, aux_pool="paper", init="caffe"),
    # Departure from the paper (it predates BatchNorm): BN after every conv replaces LRN and conv
    # biases. The topology, real 5x5 kernels included, is the paper's; it trains far more easily.
    "bn": Variant("bn", batchnorm=True, bn_eps=1e-3, lrn=False, kernel5x5=5, pool4_kernel=3,
                  dropout=0.4, aux_dropout=0.7, aux_pool="paper", init="caffe"),
    # torchvision.models.googlenet, reproduced so its state dicts load and give the same logits.
    # Its departures: BN (eps 1e-3), no LRN, a 3x3 conv in the "5x5" branch (pytorch/vision#906),
    # a 2x2 max pool before 5a, dropout 0.2, adaptive 4x4 aux pooling, truncated-normal init.
    "torchvision": Variant("torchvision", batchnorm=True, bn_eps=1e-3, lrn=False, kernel5x5=3,
                           pool4_kernel=2, dropout=0.2, aux_dropout=0.7, aux_pool="adaptive",
                           init="torchvision"),
}
INCEPTION_KINDS = ("reduced", "naive")
STEMS = ("paper", "separable")
# Ablation switches (``googlenet experiment``), not paper variants; the defaults are the paper's.
HEADS = ("gap", "fc")  # global average pooling (§5) | flatten + fully connected (the ablation)
NORMS = ("lrn", "bn", "none")  # override the variant's normalisation (None: the variant's)

# Smallest accepted input: 32x32 gives 1x1 after the last max pool.
MIN_INPUT_SIZE = 32


def feature_grid(size: int, pool4_kernel: int = 3) -> int:
    """Side of inception 5b's output map for a ``size`` x ``size`` input (7 at 224, 1 at 32):
    conv1 7x7/2 pad 3, then four ceil-mode max pools /2 (the last one ``pool4_kernel`` wide)."""
    def pool(n: int, k: int) -> int:
        out = -(-(n - k) // 2) + 1
        if (out - 1) * 2 >= n:  # PyTorch's ceil mode: no window may start past the input
            out -= 1
        return max(out, 1)

    n = (size + 2 * 3 - 7) // 2 + 1
    for k in (3, 3, 3, pool4_kernel):
        n = pool(n, k)
    return n


# The one spelling of mixed precision across commands (train/eval/predict --amp). "auto": bf16
# where the device runs it natively (models/graph.py: native_bf16), else none: never an emulated
# precision.
AMP_CHOICES = ("none", "bf16", "fp16", "auto")
# The training input pipeline for image folders (googlenet.data.gpu_pipeline): gpu decodes and
# augments JPEGs on the device, cpu does everything in the loader workers, auto picks gpu for
# JPEG folders on a GPU.
LOADERS = ("auto", "cpu", "gpu")
