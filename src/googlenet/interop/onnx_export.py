"""ONNX export of a classifier through torch.onnx's torch.export-based exporter (the step the
``export`` command and the OpenVINO conversion share; ``export`` re-exports it)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import UserError
from ..models.googlenet import GoogLeNet
from ..models.graph import without_aux
from ..weights.io import atomic_write
from .formats import DEFAULT_OPSET, MIN_OPSET

__all__ = ["torch_max_opset", "MAX_OPSET", "INPUT_NAME", "OUTPUT_NAME", "check_opset",
           "export_program", "export_onnx"]


def torch_max_opset(name: str, default: int) -> int:
    from torch.onnx import _constants

    return int(getattr(_constants, name, default))


# The newest opset each torch.onnx exporter writes: above it, the torch.export-based exporter
# falls back to another opset with a traceback on stderr (and the file is not what was asked).
MAX_OPSET = torch_max_opset("ONNX_MAX_OPSET", DEFAULT_OPSET)
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def _batch_dim():
    return torch.export.Dim("batch", min=1, max=65536)


def check_opset(opset: int, lo: int, hi: int) -> None:
    """UserError (``--opset``) unless ``lo <= opset <= hi``: checked before anything is traced."""
    if not lo <= opset <= hi:
        raise UserError(f"opset {opset}: use {lo} to {hi} (the newest this torch "
                        f"{torch.__version__.split('+')[0]} exports)"
                        if opset > hi else f"opset {opset}: use {lo} or newer", key="opset")


def export_program(model: GoogLeNet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of the eval forward (no aux heads), batch dimension dynamic."""
    m = without_aux(model).cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.export.export(m, (example.cpu(),), dynamic_shapes={"x": {0: _batch_dim()}})


def export_onnx(model: GoogLeNet | torch.export.ExportedProgram, path: str | Path, *,
                example: torch.Tensor, opset: int = DEFAULT_OPSET,
                metadata: Optional[dict[str, Any]] = None) -> Path:
    """ONNX through torch.onnx's torch.export-based exporter; batch dynamic.

    ``model`` may be a GoogLeNet or an ExportedProgram from ``export_program`` (reused, so the
    model is not traced twice).
    """
    check_opset(opset, MIN_OPSET, MAX_OPSET)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = model if isinstance(model, torch.export.ExportedProgram) else export_program(model, example)
    # The exporter narrates each step on stdout; a command's stdout is for its own output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, (example.cpu(),), dynamo=True, opset_version=opset,
                                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                         verbose=False)
    import onnx  # optional dependency (googlenet[export])

    proto = onnx_program.model_proto
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"  # the exporter's name is "s77"
    for k, v in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return path
