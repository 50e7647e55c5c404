"""R-CNN's region proposals, once for training and inference: Selective Search (the paper's
settings, cached on disk per image) plus, with ``rcnn_extra_proposals=RUN``, that detection run's
``EXTRA_PROPOSALS`` best boxes per image as the stand-in for the paper's 200 MultiBox proposals
(MultiBox itself is not reproduced). A trained R-CNN model saves its Selective Search settings and
extra run in its config (``proposals``, ``extra_proposals``); ``model_proposals`` reads them back,
so evaluation and prediction see the proposals training saw."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ...data.proposals import selective_search
from ...errors import UserError
from ...models.detection import to_image
from ...sources import load_weights

__all__ = ["RCNN_MAX_PROPOSALS", "EXTRA_PROPOSALS", "SELECTIVE_SEARCH", "proposal_cache_dir",
           "ExtraProposer", "extra_proposer", "image_proposals", "model_proposals"]

RCNN_MAX_PROPOSALS = 300  # Selective Search boxes kept per image (in its ranking order)
EXTRA_PROPOSALS = 200  # the paper's MultiBox count

# The paper's Selective Search: fast mode, superpixel size doubled (k = 300; OpenCV's: 150).
SELECTIVE_SEARCH = dict(mode="fast", base_k=300, inc_k=300, max_proposals=RCNN_MAX_PROPOSALS)


def proposal_cache_dir() -> Path:
    """Where Selective Search results are cached ($GOOGLENET_CACHE or ~/.cache/googlenet)."""
    return Path(os.environ.get("GOOGLENET_CACHE", "~/.cache/googlenet")).expanduser() / "proposals"


class ExtraProposer:
    """A modern detection run's ``EXTRA_PROPOSALS`` best boxes per image: the stand-in for the
    paper's 200 MultiBox proposals (labelled as such in the logs; MultiBox is not reproduced)."""

    def __init__(self, run: str) -> None:
        loaded = load_weights(run)
        if loaded.task != "detect" or loaded.model.config.get("detector") == "rcnn":
            raise UserError(f"{run}: rcnn_extra_proposals takes a run of a modern detector "
                            f"(--arch fcos/retinanet/fasterrcnn)", key="rcnn_extra_proposals")
        self.model = loaded.model.eval()
        self.model.detector.score_thresh = 0.0  # every box is a candidate; the best 200 stay

    @torch.no_grad()
    def __call__(self, image: Any) -> torch.Tensor:
        det = self.model([to_image(image, torch.device("cpu"))])[0]
        return det["boxes"][:EXTRA_PROPOSALS]


@functools.lru_cache(maxsize=2)
def extra_proposer(run: str) -> ExtraProposer:
    """The ``ExtraProposer`` of ``run``, loaded once (evaluation asks for it batch after batch)."""
    return ExtraProposer(run)


def image_proposals(image: Any, extra: Optional[ExtraProposer] = None,
                    settings: Optional[dict[str, Any]] = None) -> torch.Tensor:
    """One image's proposals (K, 4) float XYXY: Selective Search (``settings``, default
    ``SELECTIVE_SEARCH``; cached) + the ``extra`` proposer's boxes when given."""
    ss = selective_search(image, **(settings or SELECTIVE_SEARCH), cache_dir=proposal_cache_dir())
    return ss if extra is None else torch.cat([ss, extra(image).float().reshape(-1, 4)])


def model_proposals(model: torch.nn.Module, images: Sequence[Any]) -> list[torch.Tensor]:
    """The proposals an R-CNN model (``RegionClassifier``) was trained with, for each image: its
    saved Selective Search settings and extra run."""
    cfg = model.config
    extra = extra_proposer(cfg["extra_proposals"]) if cfg.get("extra_proposals") else None
    return [image_proposals(im, extra, cfg["proposals"]) for im in images]
