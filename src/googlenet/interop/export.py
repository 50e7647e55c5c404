"""``googlenet export``: ONNX, TorchScript and torch.export, each checked against eager fp32.

    googlenet export --weights RUN                         # all three, next to each other: RUN/export/
    googlenet export --weights RUN --format onnx --out . --name model  # ./model.onnx only

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

import contextlib
import json
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..errors import UserError
from ..fileio import fs_error
from ..metrics.agreement import TOLERANCES, Agreement, agreement
from ..models.graph import without_aux
from ..models.googlenet import GoogLeNet
from ..data.preprocess import Preprocess
from ..weights.io import atomic_write
from . import openvino as ovi
from .formats import (  # plain data, for the command line's --help
    DEFAULT_OPSET, DETECTOR_MIN_OPSET, DETECTOR_OPSET, FORMATS, MIN_OPSET, PRECISION_FILES,
)
from .onnx_export import (  # the ONNX step, shared with openvino; importable from here as before
    INPUT_NAME, MAX_OPSET, OUTPUT_NAME, torch_max_opset, check_opset, export_onnx, export_program,
)

META_FILE = "googlenet.json"  # name of the metadata inside TorchScript / .pt2 archives
# Tolerances the command checks against (max |logit diff|, fp32): onnxruntime reorders sums
# (1e-4); TorchScript and torch.export run the same kernels as eager (1e-5).
TOLERANCE = {"onnx": 1e-4, "torchscript": 1e-5, "export": 1e-5}


def export_metadata(model: GoogLeNet, preprocess: Optional[Preprocess] = None,
                    class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """What a deployment needs besides the graph: config, input pipeline, class names."""
    return {"format": "googlenet", "model_config": model.config,
            "preprocess": asdict(preprocess) if preprocess is not None else None,
            "class_names": list(class_names) if class_names is not None else None,
            "input": INPUT_NAME, "output": OUTPUT_NAME}


def save_program(program: torch.export.ExportedProgram, path: str | Path,
                 metadata: Optional[dict[str, Any]] = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.export.save(
        program, tmp, extra_files={META_FILE: json.dumps(metadata or {})}))
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

def check_images(spec: Optional[str], preprocess: Preprocess, n: int,
                 what: str = "--check-images") -> tuple[torch.Tensor, str]:
    """(n, C, crop, crop) real images to check exports on, preprocessed as the weights want;
    ``what`` names the option ``spec`` came from in messages."""
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
            raise UserError(f"{what} {spec}: no images found")
        imgs = []
        for f in files[:n]:
            try:
                imgs.append(load_image(f))
            except ImageError as e:
                print(f"googlenet export: skipping {e}", file=sys.stderr)
        if not imgs:
            raise UserError(f"{what} {spec}: none of the images could be read")
        where = f"{len(imgs)} images from {spec}"
    return torch.cat([multi_crop(im, preprocess, 1) for im in imgs]), where


# -- detectors (googlenet.models.detection) ----------------------------------------------------

DETECTOR_OUTPUTS = ("boxes", "scores", "labels")
# the TorchScript-based exporter (dynamo=False) that detectors go through
DETECTOR_MAX_OPSET = torch_max_opset("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", DETECTOR_OPSET)


class _OneImage(torch.nn.Module):
    """A detector as a graph of one image: float (3, H, W) in [0, 1] -> boxes (K, 4) xyxy px,
    scores (K,), labels (K,) in 1..C (torchvision's; 0 is the background). K may be 0."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.detector([image])[0]
        return out["boxes"], out["scores"], out["labels"]


def export_detector_onnx(model: torch.nn.Module, path: str | Path, *, size: int,
                         opset: int = DETECTOR_OPSET,
                         metadata: Optional[dict[str, Any]] = None) -> Path:
    """ONNX of a GoogLeNet detector (eval mode, post-processing and NMS included) for one
    (3, size, size) image in [0, 1]; the resize/normalisation of torchvision's transform is in
    the graph. Through the TorchScript-based exporter (``dynamo=False``): torchvision's
    detection post-processing (data-dependent box counts, NonMaxSuppression) exports with it,
    and an image with no detections gives empty (0, 4) / (0,) outputs (pytorch/vision#1706)."""
    import onnx

    check_opset(opset, DETECTOR_MIN_OPSET, DETECTOR_MAX_OPSET)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _OneImage(model.eval().cpu()).eval()
    example = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    dyn = {name: {0: "detections"} for name in DETECTOR_OUTPUTS}

    def write(tmp: str) -> None:  # into a temp file renamed into place: no truncated model.onnx
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on Python-side shape arithmetic
            torch.onnx.export(wrapped, (example,), tmp, dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=list(DETECTOR_OUTPUTS),
                              dynamic_axes=dyn)
        proto = onnx.load(tmp)
        for k, v in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, json.dumps(v)
        onnx.save(proto, tmp)

    return atomic_write(path, write)


def check_detector_onnx(path: str | Path, model: torch.nn.Module,
                        images: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Run the ONNX file (onnxruntime) and the eager detector on each (3, H, W) float image:
    detection counts must match, then boxes/scores are compared in order and labels exactly."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped = _OneImage(model.eval().cpu()).eval()
    worst, counts, same_labels, empty = 0.0, True, True, 0
    for img in images:
        outs = session.run(None, {"image": img.detach().cpu().float().numpy()})
        with torch.inference_mode():
            ref = wrapped(img.cpu().float())
        empty += int(ref[0].shape[0] == 0)
        if outs[0].shape[0] != ref[0].shape[0]:
            counts = False
            continue
        for got, want in zip(outs[:2], ref[:2]):
            if want.numel():
                worst = max(worst, float((torch.from_numpy(got).float() - want.float()).abs().max()))
        same_labels &= bool(torch.equal(torch.from_numpy(outs[2]).long(), ref[2].long()))
    return {"images": len(images), "same_counts": counts, "same_labels": same_labels,
            "max_abs_diff": worst, "images_without_detections": empty}


def detector_check_images(spec: Optional[str], size: int, n: int) -> tuple[list[torch.Tensor], str]:
    """(3, size, size) float images in [0, 1] to check a detector export on: ``spec`` (a file or
    folder), else the built-in digits-detect test canvases; plus one blank image, which a
    trained detector finds nothing in (the zero-detection case of pytorch/vision#1706)."""
    from torchvision.transforms import v2 as T

    from ..data.imaging import ImageError, list_images, load_image

    resize = T.Compose([T.ToImage(), T.Resize((size, size), antialias=True),
                        T.ToDtype(torch.float32, scale=True)])
    if spec is None:
        from ..data.detection import open_detection_dataset

        ds = open_detection_dataset("digits-detect", "test")
        imgs = [resize(ds.load(i)[0]) for i in range(min(n, len(ds)))]
        where = f"{len(imgs)} digits-detect test images + 1 blank"
    else:
        p = Path(spec)
        files = list_images(p) if p.is_dir() else [p]
        imgs = []
        for f in files[:n]:
            try:
                imgs.append(resize(load_image(f)))
            except ImageError as e:
                print(f"googlenet export: skipping {e}", file=sys.stderr)
        if not imgs:
            raise UserError(f"--check-images {spec}: no readable images")
        where = f"{len(imgs)} images from {spec} + 1 blank"
    return imgs + [torch.zeros(3, size, size)], where


# -- reduced-precision artifacts (googlenet export --precision) -------------------------------
# Each is written next to a JSON sidecar (PREFIX.PRECISION.json) holding the export metadata, the
# calibration record and the agreement measured by loading the written file back in its runtime;
# the same record travels inside the file (ONNX metadata_props, OpenVINO rt_info).


def has_vnni() -> bool:
    """AVX512-VNNI or AVX-VNNI in /proc/cpuinfo (int8 dot products without pair-sum overflow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def quantize_onnx_int8(src: str | Path, dst: str | Path, calibration: Sequence[torch.Tensor],
                       work: str | Path) -> Path:
    """onnxruntime static quantization of ``src``: QDQ, per-channel s8 weights, u8 activations
    (MLAS's int8 convolutions on x86), calibrated on ``calibration`` batches (N, C, H, W)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader, QuantFormat, QuantType, quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    batches = list(calibration)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> Optional[dict[str, Any]]:
            b = next(self.it, None)
            return None if b is None else {name: b.detach().cpu().float().numpy()}

    pre = Path(work) / "model-pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    # reduce_range keeps weights in 7 bits, which avoids the u8*s8 pair-sum overflow of
    # vpmaddubsw on CPUs without VNNI (onnxruntime's own advice for AVX2/AVX-512 without VNNI).
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=not has_vnni(), activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return Path(dst)


def _set_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    onnx.save(proto, str(path))


def _write_precision(model: GoogLeNet, precision: str, runtime: str, staged: Path,
                     meta: dict[str, Any], *, example: torch.Tensor,
                     calibration: Optional[Sequence[torch.Tensor]], opset: int
                     ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Any]:
    """Write ``model`` at ``precision`` for ``runtime`` to ``staged`` (in a work folder); the
    file loaded back (images -> logits) and the ``ov.Model`` (OpenVINO; None for ONNX)."""
    work = staged.parent
    if runtime == "onnx":
        fp32 = export_onnx(model, work / "fp32.onnx", example=example, opset=opset)
        if precision == "int8":
            quantize_onnx_int8(fp32, staged, calibration, work)
        else:
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # fp16 weights and activations; float32 input and output (keep_io_types)
            onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True),
                      str(staged))
        _set_onnx_metadata(staged, meta)
        return load_export("onnx", staged)[0], None
    ov_model = ovi.from_googlenet(model, example)
    if precision == "int8":
        ov_model = ovi.quantize(ov_model, calibration)
    elif precision == "bf16":  # a runtime option the IR carries: compile_model applies it
        ov_model.set_rt_info("bf16", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    ovi.save_ir(ov_model, staged, meta)
    return ovi.load_ir(staged)[0], ov_model


def export_precision(model: GoogLeNet, precision: str, prefix: str | Path, *,
                     example: torch.Tensor, check_x: torch.Tensor,
                     calibration: Optional[Sequence[torch.Tensor]] = None,
                     calibration_record: Optional[dict[str, Any]] = None,
                     metadata: Optional[dict[str, Any]] = None, opset: int = DEFAULT_OPSET
                     ) -> list[tuple[str, Path, Agreement]]:
    """Write ``model`` at ``precision`` ("int8" | "bf16" | "fp16") as the files in
    ``PRECISION_FILES`` plus a sidecar JSON each; returns (runtime, path, agreement with fp32
    eager on ``check_x``, measured by loading the written file back). All files or none: if any
    runtime fails, nothing is written. Each sidecar records the target agreement
    (``metrics.agreement.TOLERANCES``) and whether it was met (``within_target``)."""
    import tempfile

    if precision not in PRECISION_FILES:
        raise UserError(f"precision {precision!r}: choose from {list(PRECISION_FILES)}",
                        key="precision")
    if precision == "int8" and not calibration:
        raise UserError("int8 needs calibration images", key="calibration")
    if precision == "bf16" and not ovi.native_bf16():
        raise UserError("bf16: this CPU has no native bf16 (OpenVINO lists no BF16 capability: "
                        "neither AVX512-BF16 nor AMX); export fp16 or int8 instead",
                        key="precision")
    meta = {**(metadata or {}), "precision": precision,
            "calibration": calibration_record if precision == "int8" else None}
    tol = TOLERANCES["int8" if precision == "int8" else "bf16"]  # fp16: bf16's class
    with torch.inference_mode():
        ref = without_aux(model).cpu()(check_x.cpu())
    parent = Path(str(prefix)).parent
    made = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staged_files: list[Path] = []  # in write order; moved into place only once all are checked
    out = []
    # Every file is written and checked in a temp folder beside the target (same file system),
    # then all are renamed into place: a crash, or a runtime that cannot convert the model,
    # leaves no file of this export behind (and older ones untouched).
    try:
        with tempfile.TemporaryDirectory(dir=parent, prefix=".googlenet-export-") as tmp:
            for runtime, suffix in PRECISION_FILES[precision]:
                path = Path(str(prefix) + suffix)
                work = Path(tmp) / runtime
                work.mkdir()
                staged = work / path.name
                fn, ov_model = _write_precision(model, precision, runtime, staged, meta,
                                                example=example, calibration=calibration,
                                                opset=opset)
                a = agreement(ref, fn(check_x))
                full = {**meta, "runtime": runtime, "target": {"top1": tol.top1, "rel": tol.rel},
                        "within_target": a.within(tol),
                        "agreement": {**a.to_dict(), "images": len(check_x)}}
                del fn  # the runtime lets go of the file before it is rewritten with the agreement
                if runtime == "onnx":
                    _set_onnx_metadata(staged, full)
                else:
                    ovi.save_ir(ov_model, staged, full)
                Path(str(staged) + ".json").write_text(json.dumps(full, indent=1))
                # IR: the .bin before the .xml that names it; the sidecar JSON last
                staged_files += ([staged.with_suffix(".bin")] if runtime != "onnx" else []) + [
                    staged, Path(str(staged) + ".json")]
                out.append((runtime, path, a))
            for f in staged_files:
                dst = parent / f.name
                try:
                    os.replace(f, dst)
                except OSError as e:
                    raise fs_error(e, dst) from e
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                parent.rmdir()  # the folder this export made, if nothing else is in it
        raise
    return out
