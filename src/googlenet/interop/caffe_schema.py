"""The Caffe side of the ``bvlc_googlenet`` conversion, shared by reading (``caffe``) and writing
(``caffe_write``): the protobuf messages built at run time (just the fields used, numbers from
BVLC's ``caffe.proto``), the layer records, and the Caffe-name <-> module-name map."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..models.blocks import AUX_TAPS, TABLE1, InceptionSpec

__all__ = ["BRANCHES", "AUX_CAFFE", "V1_TYPES", "V1_NAMES", "MESSAGES", "classes", "varint",
           "CaffeLayer", "CaffeNet", "caffe_layer_map"]

# Caffe layer names (BVLC's train_val/deploy prototxt) -> our module names, per inception branch.
BRANCHES = (("1x1", "conv1x1"), ("3x3_reduce", "reduce3x3"), ("3x3", "conv3x3"),
             ("5x5_reduce", "reduce5x5"), ("5x5", "conv5x5"), ("pool_proj", "pool_proj"))
AUX_CAFFE = {"aux1": "loss1", "aux2": "loss2"}  # aux1 sits on 4a (loss1), aux2 on 4d (loss2)

# V1LayerParameter.LayerType values of the layer types written or named here.
V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "Pooling": 17, "ReLU": 18, "LRN": 15,
             "Concat": 3, "Dropout": 6, "Softmax": 20, "SoftmaxWithLoss": 21, "Data": 5,
             "Accuracy": 1, "Split": 22}
V1_NAMES = {v: k for k, v in V1_TYPES.items()}


# message -> [(field, number, type, label, message type)]. Numbers as in BVLC's caffe.proto.
# Strings are read as bytes so a foreign file with non-UTF-8 bytes there cannot raise on access.
# V1LayerParameter.type is Caffe's LayerType enum; on the wire an enum is a varint, so int32 reads
# it and keeps values this table does not know.
MESSAGES: dict[str, list[tuple[str, int, str, str, str]]] = {
    "BlobShape": [("dim", 1, "int64", "repeated", "")],
    "BlobProto": [
        ("num", 1, "int64", "optional", ""), ("channels", 2, "int64", "optional", ""),
        ("height", 3, "int64", "optional", ""), ("width", 4, "int64", "optional", ""),
        ("data", 5, "float", "repeated", ""), ("shape", 7, "message", "optional", "BlobShape"),
        ("double_data", 8, "double", "repeated", ""),
    ],
    "LayerParameter": [
        ("name", 1, "bytes", "optional", ""), ("type", 2, "bytes", "optional", ""),
        ("bottom", 3, "bytes", "repeated", ""), ("top", 4, "bytes", "repeated", ""),
        ("blobs", 7, "message", "repeated", "BlobProto"),
    ],
    "V1LayerParameter": [
        ("bottom", 2, "bytes", "repeated", ""), ("top", 3, "bytes", "repeated", ""),
        ("name", 4, "bytes", "optional", ""), ("type", 5, "int32", "optional", ""),
        ("blobs", 6, "message", "repeated", "BlobProto"),
    ],
    "NetParameter": [
        ("name", 1, "bytes", "optional", ""),
        ("layers", 2, "message", "repeated", "V1LayerParameter"),
        ("layer", 100, "message", "repeated", "LayerParameter"),
    ],
}
PACKAGE = "googlenet_caffe"


@lru_cache(maxsize=1)
def classes() -> dict[str, Any]:
    """Message classes for ``MESSAGES``, in a private descriptor pool (no clash with a real
    caffe_pb2 that the user may also have imported)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    types = {"int64": F.TYPE_INT64, "int32": F.TYPE_INT32, "float": F.TYPE_FLOAT,
             "double": F.TYPE_DOUBLE, "bytes": F.TYPE_BYTES, "message": F.TYPE_MESSAGE}
    labels = {"optional": F.LABEL_OPTIONAL, "repeated": F.LABEL_REPEATED}
    fd = descriptor_pb2.FileDescriptorProto(name=f"{PACKAGE}.proto", package=PACKAGE,
                                            syntax="proto2")
    for msg_name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=msg_name)
        for name, number, type_, label, msg_type in fields:
            f = msg.field.add(name=name, number=number, type=types[type_], label=labels[label])
            if msg_type:
                f.type_name = f".{PACKAGE}.{msg_type}"
            if label == "repeated" and type_ in ("int64", "float", "double"):
                f.options.packed = True  # caffe.proto declares these [packed = true]
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)

    def cls(name: str) -> Any:
        desc = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)  # pragma: no cover

    return {name: cls(name) for name in MESSAGES}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@dataclass
class CaffeLayer:
    """One layer of a caffemodel: its name, type and parameter blobs (shaped float32 arrays)."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)
    legacy_shapes: bool = False  # shapes came from num/channels/height/width (always 4-D)


@dataclass
class CaffeNet:
    name: str
    layers: list[CaffeLayer]
    format: str  # "layer" (current) or "layers (V1)" (legacy)


def caffe_layer_map(aux: bool = True) -> dict[str, str]:
    """BVLC bvlc_googlenet layer name -> ``paper`` module whose .weight/.bias it holds."""
    m = {"conv1/7x7_s2": "conv1.conv", "conv2/3x3_reduce": "conv2_reduce.conv",
         "conv2/3x3": "conv2.conv"}
    for row in TABLE1:
        if isinstance(row, InceptionSpec):
            for caffe_branch, ours in BRANCHES:
                m[f"{row.name}/{caffe_branch}"] = f"{row.name}.{ours}.conv"
    if aux:
        for head in AUX_TAPS.values():
            loss = AUX_CAFFE[head]
            m.update({f"{loss}/conv": f"{head}.conv.conv", f"{loss}/fc": f"{head}.fc1",
                      f"{loss}/classifier": f"{head}.fc2"})
    m["loss3/classifier"] = "fc"
    return m
