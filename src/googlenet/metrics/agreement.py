"""How closely a fast mode or an export reproduces the fp32 eager logits: the tolerances per
precision class and the ``Agreement`` measured over a batch of images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import torch

__all__ = ["Tolerance", "TOLERANCES", "Agreement", "agreement", "check_agreement"]


@dataclass(frozen=True)
class Tolerance:
    """How far a mode may drift from fp32 eager.

    rel: max |logit - reference| / max |reference logit|, over a batch.
    top1: the fraction of images whose top-1 class must match the reference's. For the reduced
    precisions it is a target over many real images with a trained model (the benchmark), where
    a few near-ties may flip; fp32 modes must match on every image.
    """

    rel: float
    top1: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(rel=1e-4, top1=1.0),  # float rounding only (reassociated sums)
    "bf16": Tolerance(rel=5e-2, top1=0.99),  # 8-bit mantissa on every conv input and weight
    "int8": Tolerance(rel=1.5e-1, top1=0.99),  # 256 levels per tensor/channel
}


@dataclass
class Agreement:
    """How a mode's logits compare with the fp32 eager reference over ``n`` images."""

    n: int
    top1: float  # fraction of images with the same top-1 class
    max_abs_diff: float  # max |logit - reference logit|
    max_abs_ref: float  # max |reference logit|, the scale max_abs_diff is read against

    @property
    def rel(self) -> float:
        return self.max_abs_diff / max(self.max_abs_ref, 1e-12)

    def within(self, tol: Tolerance) -> bool:
        return self.rel <= tol.rel and self.top1 >= tol.top1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rel": self.rel}

    def __str__(self) -> str:
        return (f"top-1 agreement {self.top1:.2%} over {self.n} images, max |logit diff| "
                f"{self.max_abs_diff:.3g} ({self.rel:.2%} of max |logit| {self.max_abs_ref:.3g})")


def agreement(reference: torch.Tensor, logits: torch.Tensor) -> Agreement:
    """reference, logits: (N, classes) -> Agreement."""
    reference, logits = reference.float().cpu(), logits.float().cpu()
    if reference.shape != logits.shape:
        raise ValueError(f"shapes differ: {tuple(reference.shape)} vs {tuple(logits.shape)}")
    same = (reference.argmax(1) == logits.argmax(1)).float().mean().item()
    return Agreement(n=reference.shape[0], top1=same,
                     max_abs_diff=(reference - logits).abs().max().item(),
                     max_abs_ref=reference.abs().max().item())


def check_agreement(reference: Callable[[torch.Tensor], torch.Tensor],
                    candidate: Callable[[torch.Tensor], torch.Tensor],
                    batches: Iterable[torch.Tensor]) -> Agreement:
    """Run both on the same batches and compare (see ``agreement``)."""
    refs, outs = [], []
    with torch.inference_mode():
        for b in batches:
            refs.append(reference(b).float().cpu())
            outs.append(candidate(b).float().cpu())
    return agreement(torch.cat(refs), torch.cat(outs))
