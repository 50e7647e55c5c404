"""``googlenet export``: ONNX, TorchScript and torch.export, each checked against eager fp32.

    googlenet export --weights RUN                         # all three, next to each other: RUN/export/
    googlenet export --weights RUN --format onnx -o model  # model.onnx only

Every export is of the eval-mode network without its aux heads (they only serve training, §5):
one input ``images`` (N, C, H, W), float32, normalised as the weights' ``Preprocess`` says, and
one output ``logits`` (N, classes). The batch dimension is dynamic; H and W are fixed at the
weights' crop size. The preprocessing and class names travel inside each file (ONNX metadata
props, TorchScript/torch.export extra files ``googlenet.json``), never to be guessed.

After writing, each file is loaded back and run on real images (the built-in digits test images,
or ``--check-images``) through its own runtime (onnxruntime, torch.jit.load, torch.export.load),
and the max |logit difference| and top-1 agreement with the eager model are printed.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..errors import UserError
from ..metrics.agreement import Agreement, agreement
from ..models.graph import without_aux
from ..models.googlenet import GoogLeNet
from ..data.preprocess import Preprocess
from ..weights.io import atomic_write

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "export": ".pt2"}
DEFAULT_OPSET = 18
MIN_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "images", "logits"
META_FILE = "googlenet.json"  # name of the metadata inside TorchScript / .pt2 archives
# Tolerances the command checks against (max |logit diff|, fp32): onnxruntime reorders sums
# (1e-4); TorchScript and torch.export run the same kernels as eager (1e-5).
TOLERANCE = {"onnx": 1e-4, "torchscript": 1e-5, "export": 1e-5}


def _batch_dim():
    return torch.export.Dim("batch", min=1, max=65536)


def export_metadata(model: GoogLeNet, preprocess: Optional[Preprocess] = None,
                    class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """What a deployment needs besides the graph: config, input pipeline, class names."""
    from dataclasses import asdict

    return {"format": "googlenet", "model_config": model.config,
            "preprocess": asdict(preprocess) if preprocess is not None else None,
            "class_names": list(class_names) if class_names is not None else None,
            "input": INPUT_NAME, "output": OUTPUT_NAME}


def export_program(model: GoogLeNet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of the eval forward (no aux heads), batch dimension dynamic."""
    m = without_aux(model).cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.export.export(m, (example.cpu(),), dynamic_shapes={"x": {0: _batch_dim()}})


def save_program(program: torch.export.ExportedProgram, path: str | Path,
                 metadata: Optional[dict[str, Any]] = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.export.save(
        program, tmp, extra_files={META_FILE: json.dumps(metadata or {})}))
    return path


def export_onnx(model: GoogLeNet | torch.export.ExportedProgram, path: str | Path, *,
                example: torch.Tensor, opset: int = DEFAULT_OPSET,
                metadata: Optional[dict[str, Any]] = None) -> Path:
    """ONNX through torch.onnx's torch.export-based exporter; batch dynamic.

    ``model`` may be a GoogLeNet or an ExportedProgram from ``export_program`` (reused, so the
    model is not traced twice).
    """
    import contextlib
    import io

    if opset < MIN_OPSET:
        raise UserError(f"opset {opset}: use {MIN_OPSET} or newer", key="opset")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = model if isinstance(model, torch.export.ExportedProgram) else export_program(model, example)
    # The exporter narrates each step on stdout; a command's stdout is for its own output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(program, (example.cpu(),), dynamo=True, opset_version=opset,
                                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                         verbose=False)
    import onnx

    proto = onnx_program.model_proto
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"  # the exporter's name is "s77"
    for k, v in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return path


def export_torchscript(model: GoogLeNet, path: str | Path, *, example: torch.Tensor,
                       metadata: Optional[dict[str, Any]] = None) -> Path:
    """torch.jit.trace of the eval forward (no aux heads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = without_aux(model).cpu()
    with warnings.catch_warnings():
        # GoogLeNet.check_input compares shapes in Python: the tracer warns that the result is
        # a constant, which is what we want (only the batch size may vary, and it is not checked).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(m, example.cpu(), check_trace=False)
        atomic_write(path, lambda tmp: torch.jit.save(
            traced, tmp, _extra_files={META_FILE: json.dumps(metadata or {})}))
    return path


# -- loading back and checking ---------------------------------------------------------------

def load_export(fmt: str, path: str | Path, threads: Optional[int] = None
                ) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """Load an exported file with its own runtime: (function images -> logits, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: torch.Tensor) -> torch.Tensor:
            outs = session.run(None, {name: x.detach().cpu().float().numpy()})
            if len(outs) != 1:
                raise AssertionError(f"{path}: {len(outs)} outputs, expected logits only")
            return torch.from_numpy(outs[0])

        return run_onnx, meta
    files = {META_FILE: ""}
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour
            warnings.simplefilter("ignore", DeprecationWarning)  # of torch.export; still works
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    elif fmt == "export":
        module = torch.export.load(str(path), extra_files=files).module()
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")

    def run_module(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x.cpu())

    return run_module, json.loads(files[META_FILE] or "{}")


def check_export(fmt: str, path: str | Path, model: GoogLeNet, x: torch.Tensor) -> Agreement:
    """Load the exported file with its own runtime, run it on ``x``, compare with eager fp32."""
    with torch.inference_mode():
        ref = without_aux(model).cpu()(x.cpu())
    return agreement(ref, load_export(fmt, path)[0](x))


# -- command ---------------------------------------------------------------------------------

def check_images(spec: Optional[str], preprocess: Preprocess, n: int) -> tuple[torch.Tensor, str]:
    """(n, C, crop, crop) real images to check exports on, preprocessed as the weights want."""
    from ..data.crops import multi_crop
    from ..data.imaging import ImageError, list_images, load_image

    if spec is None:
        from ..data.datasets import open_dataset

        ds = open_dataset("digits", "test")
        imgs = [ds.load(i)[0] for i in range(min(n, len(ds)))]
        where = f"{len(imgs)} built-in digits test images"
    else:
        p = Path(spec)
        files = list_images(p) if p.is_dir() else [p]
        if not files:
            raise UserError(f"--check-images {spec}: no images found")
        imgs = []
        for f in files[:n]:
            try:
                imgs.append(load_image(f))
            except ImageError as e:
                print(f"googlenet export: skipping {e}", file=sys.stderr)
        if not imgs:
            raise UserError(f"--check-images {spec}: none of the images could be read")
        where = f"{len(imgs)} images from {spec}"
    return torch.cat([multi_crop(im, preprocess, 1) for im in imgs]), where
