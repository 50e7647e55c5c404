"""Put ONNX's own ``LRN`` op back into an exported graph.

torch.onnx (the dynamo exporter) decomposes ``nn.LocalResponseNorm`` into 9 nodes:
    x*x -> Reshape (N, 1, C, H, W) -> Pad (channels) -> AveragePool (size, 1, 1) -> Squeeze
        -> Mul(alpha) -> Add(k) -> Pow(beta) -> Div(x, .)
which is the same function as ONNX ``LRN(size, alpha, beta, bias=k)``:
    y = x / (k + alpha / size * sum over the size channels around c of x^2) ^ beta
(torch averages with count_include_pad, i.e. divides by size, as ONNX does). A post-export
rewrite is the simple route: a custom exporter translation for ``aten.local_response_norm``
would have to intercept it before torch.export decomposes it. The parameters come from the
model's ``nn.LocalResponseNorm`` modules (GoogLeNet's all share one setting), never guessed
from the constants; each matched chain is checked to be exactly the pattern above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

__all__ = ["lrn_setting", "fuse_lrn", "fuse_lrn_file"]

CHAIN = ["Mul", "Reshape", "Pad", "AveragePool", "Squeeze", "Mul", "Add", "Pow"]  # x*x ... Pow


def lrn_setting(model: nn.Module) -> dict[str, Any] | None:
    """The single (size, alpha, beta, k) of ``model``'s LRN layers; None without any."""
    found = {(m.size, m.alpha, m.beta, m.k) for m in model.modules()
             if isinstance(m, nn.LocalResponseNorm)}
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"LRN layers with different settings {sorted(found)}: not rewritten")
    size, alpha, beta, k = found.pop()
    return {"size": int(size), "alpha": float(alpha), "beta": float(beta), "bias": float(k)}


def fuse_lrn(proto, setting: dict[str, Any]) -> int:
    """Replace every decomposed LRN chain in ``proto`` (an onnx.ModelProto) by one ``LRN`` node,
    in place; returns how many were replaced."""
    import onnx

    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    drop: set[int] = set()
    replace: dict[int, Any] = {}
    for div in graph.node:
        if div.op_type != "Div" or len(div.input) != 2:
            continue
        x, chain, node = div.input[0], [], producer.get(div.input[1])
        while node is not None and len(chain) < len(CHAIN):
            chain.append(node)
            node = producer.get(node.input[0])
        chain.reverse()
        if ([n.op_type for n in chain] != CHAIN or list(chain[0].input) != [x, x]
                or any(consumers.get(n.output[0], 0) != 1 for n in chain)):
            continue  # not the LRN pattern, or an intermediate is used elsewhere
        lrn = onnx.helper.make_node("LRN", [x], list(div.output), name=f"{div.name or div.output[0]}_lrn",
                                    **setting)
        drop.update(id(n) for n in chain)
        replace[id(div)] = lrn
    if not replace:
        return 0
    nodes = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(replace)


def fuse_lrn_file(path: str | Path, model: nn.Module) -> int:
    """``fuse_lrn`` on an ONNX file of ``model``, rewritten in place; returns the count."""
    import onnx

    setting = lrn_setting(model)
    if setting is None:
        return 0
    proto = onnx.load(str(path))
    n = fuse_lrn(proto, setting)
    if n:
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
    return n
