"""Batches made ready on the device one step ahead: the task's ``prepare_batch`` (moving tensors
to the GPU; decoding and augmenting JPEGs there with ``--loader gpu``) runs for batch k+1 on a
side CUDA stream while the training step of batch k runs on the main one.

Without a GPU ``prepare_batch`` simply runs in line. Nothing here changes what is trained: the
sampler's position is counted in trained steps (engine/sampling.py), so a batch prepared ahead
and then dropped (``max_steps``, a checkpoint, an interruption) is trained again on resume.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

import torch

__all__ = ["prefetched"]


def _record(obj: Any, stream: "torch.cuda.Stream") -> None:
    """Tell the caching allocator that tensors made on the side stream are used on ``stream``
    (else their memory could be handed out again while the step still reads it)."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            obj.record_stream(stream)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _record(o, stream)
    elif isinstance(obj, dict):
        for o in obj.values():
            _record(o, stream)


def prefetched(batches: Iterable[Any], prepare: Optional[Callable[[Any, torch.device], Any]],
               device: torch.device) -> Iterator[Any]:
    """``prepare(batch, device)`` of every batch, each made one batch ahead on a side stream on a
    GPU (in line elsewhere, or when ``prepare`` is None: the batches as they are)."""
    if prepare is None:
        yield from batches
        return
    if device.type != "cuda":
        for b in batches:
            yield prepare(b, device)
        return
    side = torch.cuda.Stream(device)
    main = torch.cuda.current_stream(device)

    def stage(batch: Any) -> Any:
        side.wait_stream(main)  # inputs the main stream still writes (none usually) come first
        with torch.cuda.stream(side):
            return prepare(batch, device)

    it = iter(batches)
    first = next(it, None)
    ready = None if first is None else stage(first)
    while ready is not None:
        main.wait_stream(side)  # batch k is complete before the step uses it...
        _record(ready, main)
        current = ready
        upcoming = next(it, None)
        ready = None if upcoming is None else stage(upcoming)  # ...and k+1 is queued behind it
        yield current
