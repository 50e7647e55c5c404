"""Weights as data: typed records (``records.py``: ``WeightsMeta``, ``TrainCheckpoint``,
``LoadedWeights``) and safe file I/O (``io.py``: atomic writes, ``torch.load`` restricted to
tensors, safetensors with metadata). Resolving a name or path to weights is
``googlenet.sources.load_weights``."""

from .io import (
    atomic_torch_save, atomic_write, from_checkpoint, load_safetensors, read_metadata,
    safe_torch_load, save_weights,
)
from .records import (
    CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS, LoadedWeights, TrainCheckpoint, WeightsMeta,
)

__all__ = ["atomic_torch_save", "atomic_write", "from_checkpoint", "load_safetensors",
           "read_metadata", "safe_torch_load", "save_weights", "CHECKPOINT_BEST",
           "CHECKPOINT_LAST", "FINAL_WEIGHTS", "LoadedWeights", "TrainCheckpoint", "WeightsMeta"]
