"""Classification metrics, one implementation each: top-k hits and the confusion matrix."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["topk_hits", "confusion_matrix"]


def topk_hits(scores: torch.Tensor, labels: torch.Tensor, k: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scores (B, K) (logits or probabilities), labels (B,) -> (top-1 hit (B,) bool, top-k hit
    (B,) bool, top-1 prediction (B,)). ``k`` is capped at the number of classes."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # (B, k)
    hit = top == labels[:, None]
    return hit[:, 0], hit.any(1), top[:, 0]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted."""
    # One bincount; sklearn.metrics.confusion_matrix gives the same but importing sklearn
    # (scipy.stats) costs ~4 s on a small CPU, more than a whole small evaluation.
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predictions, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
