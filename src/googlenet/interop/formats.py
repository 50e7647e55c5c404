"""What ``googlenet export`` writes, by name, as plain data: the formats with their file
suffixes, and the ONNX opsets. ``export.py`` writes them and re-exports these names.

No torch here, on purpose: ``googlenet export --help`` lists them without importing torch.
"""

from __future__ import annotations

__all__ = ["FORMATS", "DEFAULT_OPSET", "MIN_OPSET", "DETECTOR_OPSET", "DETECTOR_MIN_OPSET",
           "PRECISION_FILES"]

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "export": ".pt2"}
DEFAULT_OPSET = 18
MIN_OPSET = 17
DETECTOR_OPSET = 17  # detectors go through the TorchScript-based exporter (dynamo=False)
DETECTOR_MIN_OPSET = 11
# --precision other than fp32 -> the files it writes: (runtime, suffix after the prefix)
PRECISION_FILES = {"int8": (("onnx", ".int8.onnx"), ("openvino", ".int8.xml")),
                   "bf16": (("openvino", ".bf16.xml"),),
                   "fp16": (("onnx", ".fp16.onnx"),)}
