"""The network's settings as a config section (``model`` of a task's config): what
``GoogLeNet(...)`` is built with, kept apart from how it is trained (as nanoGPT keeps
``GPTConfig`` in its model file). Torch-free: ``googlenet train --help`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..settings import PROB, Range, setting
from .choices import BACKBONE_KEYS, HEADS, INCEPTION_KINDS, NORMS, STEMS, VARIANTS

__all__ = ["ModelConfig"]


@dataclass
class ModelConfig:
    variant: str = setting("paper", choices=VARIANTS)  # paper (LRN, no BN) | bn | torchvision
    aux_logits: bool = setting(True)
    inception: str = setting("reduced", choices=INCEPTION_KINDS)  # reduced | naive
    stem: str = setting("paper", choices=STEMS)  # paper | separable
    dropout: Optional[float] = setting(None, range=PROB)  # None: the variant's (0.4 paper)
    aux_dropout: Optional[float] = setting(None, range=PROB)  # None: the variant's (0.7 paper)
    # Ablations (`googlenet experiment`), not paper variants; the defaults are the paper's.
    width: float = setting(1.0, range=Range(0, 16, lo_open=True))  # x every Table 1 width (>= 1 channel)
    head: str = setting("gap", choices=HEADS)  # gap (§5: global average pooling) | fc (flatten + linear)
    norm: str = setting("variant", choices=("variant", *NORMS))  # variant (its own) | lrn | bn | none

    def backbone(self) -> dict[str, Any]:
        """The settings a model config (weights metadata) records for the trunk."""
        return {k: getattr(self, k) for k in BACKBONE_KEYS}

    @property
    def norm_override(self) -> Optional[str]:
        """``GoogLeNet(norm=...)``: None keeps the variant's own normalisation."""
        return None if self.norm == "variant" else self.norm
