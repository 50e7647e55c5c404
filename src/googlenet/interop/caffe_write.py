"""The reverse of ``caffe``: a ``paper`` GoogLeNet as Caffe layers (``caffe_layers``), written as a
.caffemodel (``write_caffemodel``), and a deploy prototxt of the network (``caffe_prototxt``), so
the model runs in Caffe or OpenCV's DNN module (the tests check the conversion against OpenCV)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..models.blocks import (
    AUX_CONV, AUX_FC, AUX_TAPS, STEM_CONV1, STEM_CONV2, STEM_CONV2_REDUCE, TABLE1,
)
from ..models.googlenet import GoogLeNet
from .caffe_schema import AUX_CAFFE, V1_TYPES, CaffeLayer, caffe_layer_map, classes, varint

__all__ = ["caffe_layers", "write_caffemodel", "caffe_prototxt"]


def caffe_layers(model: GoogLeNet) -> list[CaffeLayer]:
    """The learnable layers of a ``paper`` model under BVLC's names, conv1 flipped back to BGR.

    Only meaningful for weights that expect Caffe's input (BGR after the flip, 0-255 minus the
    mean), such as converted ones: the file carries no preprocessing.
    """
    c = model.config
    if (c["variant"], c["inception"], c["stem"], c["transform_input"], c["in_chans"]) != \
            ("paper", "reduced", "paper", False, 3) or model.num_classes == 0:
        raise ValueError("only the paper variant (reduced inception, paper stem, 3 input channels, "
                         "a classifier) has a bvlc_googlenet layout")
    sd = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    layers = []
    for caffe_name, ours in caffe_layer_map(aux=model.aux1 is not None).items():
        w, b = sd[f"{ours}.weight"], sd[f"{ours}.bias"]
        if caffe_name == "conv1/7x7_s2":
            w = w.flip(1)  # RGB -> BGR input channels
        kind = "Convolution" if w.dim() == 4 else "InnerProduct"
        layers.append(CaffeLayer(caffe_name, kind, [w.numpy(), b.numpy()]))
    return layers


def _blob(blob: Any, arr: np.ndarray, legacy: bool) -> None:
    arr = np.ascontiguousarray(arr, dtype="<f4")
    if legacy:
        n, c, h, w = (1,) * (4 - arr.ndim) + arr.shape
        blob.num, blob.channels, blob.height, blob.width = n, c, h, w
    else:
        blob.shape.dim.extend(arr.shape)
    # BlobProto.data (field 5, packed float) as the wire bytes it is: tag, length, little-endian
    # float32s: much faster than extending the repeated field from Python (section "caffe" of
    # benchmarks/results/notes.md); the parse that follows is protobuf's own.
    raw = arr.tobytes()
    blob.MergeFromString(bytes([5 << 3 | 2]) + varint(len(raw)) + raw)


def write_caffemodel(path: str | Path, layers: list[CaffeLayer], *, name: str = "GoogleNet",
                     legacy: bool = False) -> Path:
    """Write ``layers`` as a binary .caffemodel, in the current ``layer`` format or (``legacy``)
    the V1 ``layers`` format with num/channels/height/width blob shapes."""
    from ..weights.io import atomic_write

    c = classes()
    net = c["NetParameter"](name=name.encode())
    for layer in layers:
        if legacy:
            lp = net.layers.add(name=layer.name.encode(), type=V1_TYPES[layer.type])
        else:
            lp = net.layer.add(name=layer.name.encode(), type=layer.type.encode())
        for arr in layer.blobs:
            _blob(lp.blobs.add(), arr, legacy)
    data = net.SerializeToString()
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def caffe_prototxt(*, num_classes: int = 1000, aux: bool = False, batch: int = 10,
                   size: int = 224, name: str = "GoogleNet") -> str:
    """A deploy prototxt of bvlc_googlenet, generated from Table 1 (``model.TABLE1``).

    Layer names, LRN settings (size 5, alpha 1e-4, beta 0.75), pooling (Caffe rounds up), pads and
    concat order follow BVLC's ``models/bvlc_googlenet/deploy.prototxt``; ends in ``prob``
    (Softmax). ``aux=True`` adds the two auxiliary heads of train_val.prototxt with Softmax outputs
    ``loss1/prob`` and ``loss2/prob`` in place of their losses.
    """
    out = [f'name: "{name}"',
           'layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n  input_param { shape: { '
           f'dim: {batch} dim: 3 dim: {size} dim: {size} }} }}\n}}']

    def layer(lname: str, type_: str, bottoms: list[str], top: str, params: str = "") -> None:
        lines = [f'  name: "{lname}"', f'  type: "{type_}"']
        lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{top}"']
        if params:
            lines.append(f"  {params}")
        out.append("layer {\n" + "\n".join(lines) + "\n}")

    def conv(lname: str, relu: str, bottom: str, n: int, k: int, stride: int = 1,
             pad: int = 0) -> str:
        p = f"num_output: {n}" + (f" pad: {pad}" if pad else "") + f" kernel_size: {k}" \
            + (f" stride: {stride}" if stride != 1 else "")
        layer(lname, "Convolution", [bottom], lname, f"convolution_param {{ {p} }}")
        layer(relu, "ReLU", [lname], lname)
        return lname

    def pool(lname: str, bottom: str, kind: str, k: int, stride: int, pad: int = 0) -> str:
        p = f"pool: {kind} kernel_size: {k} stride: {stride}" + (f" pad: {pad}" if pad else "")
        layer(lname, "Pooling", [bottom], lname, f"pooling_param {{ {p} }}")
        return lname

    def lrn(lname: str, bottom: str) -> str:
        layer(lname, "LRN", [bottom], lname,
              "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }")
        return lname

    x = conv("conv1/7x7_s2", "conv1/relu_7x7", "data", STEM_CONV1, 7, stride=2, pad=3)
    x = pool("pool1/3x3_s2", x, "MAX", 3, 2)
    x = lrn("pool1/norm1", x)
    x = conv("conv2/3x3_reduce", "conv2/relu_3x3_reduce", x, STEM_CONV2_REDUCE, 1)
    x = conv("conv2/3x3", "conv2/relu_3x3", x, STEM_CONV2, 3, pad=1)
    x = lrn("conv2/norm2", x)
    x = pool("pool2/3x3_s2", x, "MAX", 3, 2)
    taps: dict[str, str] = {}
    for row in TABLE1:
        if isinstance(row, str):  # "pool3" / "pool4": 3x3/2 max pools
            x = pool(f"{row}/3x3_s2", x, "MAX", 3, 2)
            continue
        s = row.name
        b1 = conv(f"{s}/1x1", f"{s}/relu_1x1", x, row.n1x1, 1)
        r3 = conv(f"{s}/3x3_reduce", f"{s}/relu_3x3_reduce", x, row.n3x3red, 1)
        b3 = conv(f"{s}/3x3", f"{s}/relu_3x3", r3, row.n3x3, 3, pad=1)
        r5 = conv(f"{s}/5x5_reduce", f"{s}/relu_5x5_reduce", x, row.n5x5red, 1)
        b5 = conv(f"{s}/5x5", f"{s}/relu_5x5", r5, row.n5x5, 5, pad=2)
        p = pool(f"{s}/pool", x, "MAX", 3, 1, pad=1)
        bp = conv(f"{s}/pool_proj", f"{s}/relu_pool_proj", p, row.pool_proj, 1)
        layer(f"{s}/output", "Concat", [b1, b3, b5, bp], f"{s}/output")
        x = taps[s] = f"{s}/output"
    x = pool("pool5/7x7_s1", x, "AVE", 7, 1)
    layer("pool5/drop_7x7_s1", "Dropout", [x], x, "dropout_param { dropout_ratio: 0.4 }")
    layer("loss3/classifier", "InnerProduct", [x], "loss3/classifier",
          f"inner_product_param {{ num_output: {num_classes} }}")
    layer("prob", "Softmax", ["loss3/classifier"], "prob")
    if aux:
        for tap, head in AUX_TAPS.items():
            loss = AUX_CAFFE[head]
            y = pool(f"{loss}/ave_pool", taps[tap], "AVE", 5, 3)
            y = conv(f"{loss}/conv", f"{loss}/relu_conv", y, AUX_CONV, 1)
            layer(f"{loss}/fc", "InnerProduct", [y], f"{loss}/fc",
                  f"inner_product_param {{ num_output: {AUX_FC} }}")
            layer(f"{loss}/relu_fc", "ReLU", [f"{loss}/fc"], f"{loss}/fc")
            layer(f"{loss}/drop_fc", "Dropout", [f"{loss}/fc"], f"{loss}/fc",
                  "dropout_param { dropout_ratio: 0.7 }")
            layer(f"{loss}/classifier", "InnerProduct", [f"{loss}/fc"], f"{loss}/classifier",
                  f"inner_product_param {{ num_output: {num_classes} }}")
            layer(f"{loss}/prob", "Softmax", [f"{loss}/classifier"], f"{loss}/prob")
    return "\n".join(out) + "\n"
