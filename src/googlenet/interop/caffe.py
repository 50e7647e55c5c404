"""BVLC Caffe's ``bvlc_googlenet`` in PyTorch: read the .caffemodel, map it onto the ``paper``
variant, carry Caffe's preprocessing with it (``googlenet convert caffe``).

BVLC's model (``googlenet weights download bvlc``; URL, SHA-1 and BVLC's reported 68.7% top-1 /
88.9% top-5 in ``googlenet.sources.registry``) is the only public set of weights of the paper's exact
network: LRN, conv biases, real 5x5 branches, no BatchNorm. ``load_caffemodel`` turns it into a
``LoadedWeights`` that ``predict``, ``eval``, ``export`` and ``bench`` use like any other weights
(``--weights caffe:bvlc_googlenet.caffemodel``).

A .caffemodel is a binary protobuf ``caffe.NetParameter``. No Caffe install and no generated
``caffe_pb2`` are needed: the handful of messages and fields read here are declared below (field
numbers from BVLC's ``src/caffe/proto/caffe.proto``) and built at run time; every other field of a
real caffemodel (solver settings, fillers, layer params) is skipped as an unknown field. Both the
current ``layer`` (LayerParameter) and the legacy V1 ``layers`` (V1LayerParameter, used by
caffemodels saved before 2015, bvlc_googlenet among them) are read, with blob shapes in ``shape``
or in the legacy num/channels/height/width fields.

Caffe's input is BGR in 0-255 minus a per-channel mean (B 104, G 117, R 123). The conversion
flips conv1's input channels to RGB and expresses the rest as a ``Preprocess`` (mean and std in
the usual [0, 1] units), so ``(x_rgb01 - mean) / std == x_rgb255 - (123, 117, 104)``.

The reverse direction (``caffe_layers`` + ``write_caffemodel``) and a deploy prototxt of the
network (``caffe_prototxt``) let a ``paper`` model run in Caffe or OpenCV's DNN module; the tests
use them to check the conversion against OpenCV, an independent implementation of Caffe's layers.

Layout: reading and converting are here; the runtime-built protobuf schema, the layer records and
the Caffe-name <-> module-name map that both directions share are in ``caffe_schema``, writing in
``caffe_write`` (its names importable from here as well).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import UserError
from ..models.googlenet import GoogLeNet
from ..data.preprocess import Preprocess
from .caffe_schema import V1_NAMES, CaffeLayer, CaffeNet, caffe_layer_map, classes
from .caffe_write import caffe_layers, caffe_prototxt, write_caffemodel  # the reverse direction

__all__ = [
    "CAFFE_PREPROCESS", "CaffeLayer", "CaffeNet",
    "read_caffemodel", "parse_caffemodel", "caffe_layer_map", "convert_net", "load_caffemodel",
    "caffe_layers", "write_caffemodel", "caffe_prototxt",
]

# The released file's URL and SHA-1 live in the weights registry, one layer up
# (googlenet.sources.registry.BVLC_GOOGLENET); its callers pass the SHA-1 in (``release_sha1``).

# Caffe's per-channel mean in its own (BGR) order, and what it is in RGB [0, 1] units.
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
CAFFE_PREPROCESS = Preprocess(
    crop=224, resize=256, mean=tuple(m / 255 for m in reversed(CAFFE_MEAN_BGR)),
    std=(1 / 255,) * 3, interpolation="bilinear",
    note="BVLC Caffe bvlc_googlenet: trained on BGR pixels in 0-255 minus the mean (B 104, G 117, "
         "R 123), 224 crops of images resized to 256 (Caffe warped to 256x256; here the shorter "
         "side goes to 256). conv1 was converted to RGB input, so this takes RGB scaled back to "
         "0-255 (std 1/255) minus (R 123, G 117, B 104)")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def _blob_array(blob: Any, where: str) -> tuple[np.ndarray, bool]:
    # Caffe's Blob::FromProto: the legacy 4-D fields win when any is set, else shape.dim.
    legacy = any(blob.HasField(f) for f in ("num", "channels", "height", "width"))
    if legacy:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if any(d < 0 for d in shape):
        raise UserError(f"{where}: negative blob dimension {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if len(blob.double_data) and not len(blob.data):
        values = np.array(blob.double_data, dtype=np.float64).astype(np.float32)
    else:
        values = np.array(blob.data, dtype=np.float32)
    if values.size != count:
        raise UserError(f"{where}: blob holds {values.size} values but its shape {shape} needs "
                        f"{count} (the file is damaged or not a caffemodel)")
    return values.reshape(shape), legacy


_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
          b"\x89HDF": "an HDF5 file (Caffe's .caffemodel.h5 snapshots are not supported: load it "
                      "in Caffe and save the binary .caffemodel)",
          b"PK\x03\x04": "a zip archive (a PyTorch .pt/.pth file? pass it as --weights FILE.pt)"}


def _describe_foreign(data: bytes) -> Optional[str]:
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            return what
    try:  # a binary caffemodel has control bytes (field tags) and raw floats up front
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\t\n\r" for c in text):
        if "layer" in text or "input" in text or "name:" in text:
            return ("a text .prototxt (the network description), not the binary .caffemodel "
                    "that holds the weights")
        return "a text file"
    return None


def parse_caffemodel(data: bytes, source: str = "<bytes>") -> CaffeNet:
    """Parse the bytes of a binary .caffemodel; ``UserError`` for anything that is not one."""
    from google.protobuf.message import DecodeError

    if not data:
        raise UserError(f"{source}: empty file, not a Caffe .caffemodel")
    foreign = _describe_foreign(data)
    if foreign:
        raise UserError(f"{source}: this is {foreign}; expected a binary Caffe .caffemodel")
    net = classes()["NetParameter"]()
    try:
        net.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise UserError(f"{source}: not a readable Caffe .caffemodel: its bytes are not a valid "
                        f"binary protobuf (caffe.NetParameter). Is the file truncated (an "
                        f"interrupted download) or of another kind?") from None

    def text(b: bytes) -> str:
        return b.decode("utf-8", errors="replace")

    def layer(lp: Any, type_: str) -> CaffeLayer:
        name = text(lp.name)
        arrays = [_blob_array(b, f"{source}: layer {name!r} blob {i}")
                  for i, b in enumerate(lp.blobs)]
        return CaffeLayer(name, type_, [a for a, _ in arrays], any(leg for _, leg in arrays))

    layers = [layer(lp, text(lp.type)) for lp in net.layer]
    layers += [layer(lp, V1_NAMES.get(lp.type, f"V1 type {lp.type}")) for lp in net.layers]
    if not layers:
        raise UserError(f"{source}: no Caffe layers in this file; expected a binary .caffemodel "
                        f"(caffe.NetParameter) such as bvlc_googlenet.caffemodel")
    fmt = "layers (V1)" if len(net.layers) and not len(net.layer) else "layer"
    return CaffeNet(name=text(net.name), layers=layers, format=fmt)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a Caffe .caffemodel, e.g. "
                        f"bvlc_googlenet.caffemodel from `googlenet weights download bvlc`)")
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None


def read_caffemodel(path: str | Path) -> CaffeNet:
    path = Path(path)
    return parse_caffemodel(_read_bytes(path), str(path))


# ---------------------------------------------------------------------------------------------
# Mapping and conversion
# ---------------------------------------------------------------------------------------------

def _strip_legacy(shape: tuple[int, ...], legacy: bool) -> tuple[int, ...]:
    # Legacy blobs are always 4-D; Caffe compares them to the expected shape padded with leading
    # 1s (Blob::ShapeEquals), e.g. an InnerProduct weight (1000, 1024) is stored (1, 1, 1000, 1024).
    while legacy and len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _fits(actual: tuple[int, ...], expected: tuple[int, ...], legacy: bool) -> bool:
    if legacy:
        return len(actual) == 4 and actual == (1,) * (4 - len(expected)) + tuple(expected)
    return actual == tuple(expected)


def convert_net(net: CaffeNet, source: str = "<caffemodel>", *, aux: Optional[bool] = None
                ) -> tuple[GoogLeNet, dict[str, Any]]:
    """Map a parsed bvlc_googlenet onto the ``paper`` variant (eval mode, RGB input).

    ``aux=None`` keeps the auxiliary heads when the file has them (train_val snapshots such as
    BVLC's release do; deploy-only files may not); ``False`` drops them. Returns the model and a
    summary dict (layers, format, classes).
    """
    learnable = {l.name: l for l in net.layers if l.blobs}
    seen: set[str] = set()
    for l in net.layers:
        if l.blobs and l.name in seen:
            raise UserError(f"{source}: layer {l.name!r} appears twice with parameters")
        seen.add(l.name)
    has_aux = any(n.startswith(("loss1/", "loss2/")) for n in learnable)
    use_aux = has_aux if aux is None else (aux and has_aux)
    if aux and not has_aux:
        raise UserError(f"{source}: has no auxiliary classifier layers (loss1/*, loss2/*) to keep")
    mapping = caffe_layer_map(aux=has_aux)

    missing = [n for n in mapping if n not in learnable]
    if missing:
        raise UserError(
            f"{source}: not BVLC's bvlc_googlenet: {len(missing)} learnable layer(s) missing, "
            f"first {missing[0]!r} (expected as {mapping[missing[0]]}); found layers "
            f"{sorted(learnable)[:8]}{' ...' if len(learnable) > 8 else ''}. Is the file truncated "
            f"or a different network?")
    extra = [n for n in learnable if n not in mapping]
    if extra:
        raise UserError(f"{source}: unexpected learnable layer(s) {extra} that bvlc_googlenet does "
                        f"not have (the paper GoogLeNet maps {len(mapping)} layers); a modified "
                        f"network cannot be converted")

    cls = learnable["loss3/classifier"]
    w_shape = _strip_legacy(cls.blobs[0].shape, cls.legacy_shapes)
    if len(w_shape) != 2:
        raise UserError(f"{source}: layer 'loss3/classifier' weights have shape "
                        f"{cls.blobs[0].shape}, expected (num_classes, 1024)")
    num_classes = int(w_shape[0])
    if num_classes < 1:
        raise UserError(f"{source}: layer 'loss3/classifier' has {num_classes} outputs; a "
                        f"classifier needs at least one class")
    model = GoogLeNet(variant="paper", num_classes=num_classes, aux_logits=has_aux,
                      init_weights=False)
    expected = model.state_dict()

    state: dict[str, torch.Tensor] = {}
    for caffe_name, ours in mapping.items():
        layer = learnable[caffe_name]
        want = [tuple(expected[f"{ours}.weight"].shape), tuple(expected[f"{ours}.bias"].shape)]
        if len(layer.blobs) != 2:
            raise UserError(f"{source}: layer {caffe_name!r} ({layer.type}) has "
                            f"{len(layer.blobs)} blob(s), expected 2 (weights {want[0]}, bias "
                            f"{want[1]}) for {ours}")
        for blob, exp, kind in zip(layer.blobs, want, ("weight", "bias")):
            if not _fits(blob.shape, exp, layer.legacy_shapes):
                raise UserError(f"{source}: layer {caffe_name!r} {kind} has shape "
                                f"{tuple(blob.shape)}, expected {exp} (for {ours}.{kind})")
            state[f"{ours}.{kind}"] = torch.from_numpy(np.ascontiguousarray(blob.reshape(exp)))
    # Caffe's conv1 reads BGR; flip its input channels so the model reads RGB like every other
    # set of weights here. Exact: it only reorders the weights.
    state["conv1.conv.weight"] = state["conv1.conv.weight"].flip(1).contiguous()

    model.load_state_dict(state, strict=True)
    if has_aux and not use_aux:
        model.aux1 = model.aux2 = None
        model.aux_logits = False
        model.config["aux_logits"] = False
    info = {"caffe_name": net.name, "caffe_format": net.format, "layers": len(mapping),
            "num_classes": num_classes, "aux_logits": use_aux,
            "parameters": sum(p.numel() for p in model.parameters())}
    return model.eval(), info


def load_caffemodel(path: str | Path, *, aux: Optional[bool] = None,
                    release_sha1: Optional[str] = None):
    """A bvlc_googlenet .caffemodel -> ``weights.LoadedWeights`` (``paper`` variant, RGB input,
    Caffe's preprocessing, ImageNet class names when it has 1,000 outputs).

    ``release_sha1``: the released file's SHA-1 (``googlenet.sources.registry``); metadata
    ``bvlc_release`` says whether this file is that one (False when not given)."""
    from ..weights.records import LoadedWeights
    from .torchvision import imagenet_categories

    path = Path(path)
    data = _read_bytes(path)
    model, info = convert_net(parse_caffemodel(data, str(path)), str(path), aux=aux)
    sha1 = hashlib.sha1(data).hexdigest()
    info.update(sha1=sha1, bvlc_release=sha1 == release_sha1, converted_from=path.name)
    names = imagenet_categories() if model.num_classes == 1000 else None
    return LoadedWeights(model=model, preprocess=CAFFE_PREPROCESS, class_names=names,
                         source=f"caffe:{path}", metadata=info)
