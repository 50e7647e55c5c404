"""What ``googlenet export`` writes, by name, as plain data: the formats with their file
suffixes, and the ONNX opsets. ``export.py`` writes them and re-exports these names.

No torch here, on purpose: ``googlenet export --help`` lists them without importing torch.
"""

from __future__ import annotations

__all__ = ["FORMATS", "DEFAULT_OPSET", "MIN_OPSET"]

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "export": ".pt2"}
DEFAULT_OPSET = 18
MIN_OPSET = 17
