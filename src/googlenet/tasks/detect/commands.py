"""The detection unit's commands: ``googlenet eval``, ``predict`` and ``export`` of a detection
run (the command line parses the arguments and calls these through the unit)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ...errors import UserError
from ...fileio import check_writable_dir
from ...infer.pictures import contact_sheet, sheet_path
from ...interop import export as interop_export  # looked up when called: tests replace them
from ...interop.formats import DEFAULT_OPSET, DETECTOR_MIN_OPSET, DETECTOR_OPSET
from ...weights.records import LoadedWeights
from .evaluation import Runner, drawn_names, evaluate_runs, predict_files

__all__ = ["evaluate", "predict", "export", "check_export_args"]


def evaluate(args: argparse.Namespace, models: list[LoadedWeights], names: list[str],
             device: torch.device, runner: Runner = Runner()) -> int:
    """``googlenet eval`` of detection runs: COCO AP (pycocotools), VOC07 AP50, per-class AP, a
    PR plot; several runs are an ensemble by box fusion (googlenet.tasks.detect.evaluation)."""
    if args.crops != ["1"]:
        raise UserError("--crops applies to classifiers; a detector sees each image once")
    report = evaluate_runs(models, names, spec=args.data, split=args.split, device=device,
                           batch_size=min(args.batch_size, 16), amp=args.amp, limit=args.limit,
                           strict=args.strict, root=args.data_root, runner=runner)
    print(f"data: {report.info['data']} {report.info['split']} split, {report.rows[0]['images']} "
          f"images at {report.info['size']} px", file=sys.stderr)
    text = sys.stderr if args.json else sys.stdout  # with --json, stdout is the JSON only
    for line in report.summary_lines():
        print(line, file=text)
    print(file=text)
    print(report.table_markdown(with_skipped=False), file=text)
    if report.skipped:
        print(f"\n{len(report.skipped)} file(s) or annotation(s) skipped, not scored (--strict "
              f"stops instead):", file=text)
        for line in report.skipped_lines(20):
            print(f"  {line}", file=text)
        if args.out and len(report.skipped) > 20:
            print(f"  (all in {args.out}/results.md and results.json)", file=text)
    if args.out:
        written = report.save(args.out)
        print(f"\nsaved: {', '.join(str(p) for p in written)}", file=text)
    elif not args.json:
        print("\n(--out DIR saves results.json/.md and the precision-recall plot)")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0


def predict(args: argparse.Namespace, loaded: LoadedWeights, files: Sequence[Path],
            failures: list, device: torch.device, out_dir: Callable[[], Optional[Path]],
            runner: Runner = Runner()) -> int:
    """``googlenet predict`` with a detection run: boxes, class names and scores per image (text
    or --json); --out DIR: images with the boxes drawn. ``out_dir()``: where pictures go."""
    if not 0 <= args.score_thresh <= 1:
        raise UserError(f"--score-thresh {args.score_thresh}: must be in [0, 1]")
    out = out_dir()
    cfg = loaded.model.config
    print(f"weights: {loaded.source} ({cfg['detector']} on GoogLeNet {cfg['variant']}, "
          f"{loaded.model.num_classes} classes, {cfg['min_size']} px)", file=sys.stderr)
    cells: Optional[list] = None if args.no_sheet or out is None else []
    results, bad = predict_files(loaded, files, device=device, score_thresh=args.score_thresh,
                                 batch_size=min(args.batch_size, 16), out=args.out, amp=args.amp,
                                 sheet=cells, runner=runner)
    errors = [asdict(f) for f in failures] + [{"file": f, "error": why} for f, why in bad]
    sheet = None
    if cells:
        taken = list(files) + (drawn_names(list(files), out) if args.out else [])
        sheet = contact_sheet(cells, sheet_path(out, taken), f"{Path(args.weights).name}: "
                              f"detections scoring at least {args.score_thresh:g}",
                              total=len(results))
        print(f"contact sheet: {sheet}", file=sys.stderr)
    if args.json:
        print(json.dumps({"weights": loaded.source, "task": "detect",
                          "score_thresh": args.score_thresh, "predictions": results,
                          "errors": errors,
                          **({"contact_sheet": str(sheet)} if sheet else {})}, indent=1))
    else:
        for r in results:
            dets = ", ".join(f"{n} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]"
                             for n, s, b in zip(r["names"], r["scores"], r["boxes"]))
            print(f"{r['file']}: {len(r['names'])} object(s)" + (f": {dets}" if dets else ""))
    for e in errors:
        print(f"googlenet predict: error: {e['error']}", file=sys.stderr)
    if args.out:
        print(f"drawn images: {args.out}", file=sys.stderr)
    return 1 if errors else 0


def check_export_args(args: argparse.Namespace) -> None:
    """What a detector's export refuses before anything is loaded into an exporter."""
    if args.formats not in (None, ["onnx"]):
        raise UserError("a detector exports to ONNX only: use --format onnx (or leave it out)",
                        key="formats")
    if args.precision != "fp32":
        raise UserError(f"--precision {args.precision}: a detector exports fp32 ONNX only "
                        f"(reduced precision is for classifiers)", key="precision")


def export(args: argparse.Namespace, loaded: LoadedWeights, prefix: Callable[[], Path]) -> int:
    """``googlenet export`` of a detection run: ONNX only (its post-processing has no
    TorchScript/torch.export path here), checked with onnxruntime against eager on real images
    and a blank one. ``prefix()``: the output path without extension."""
    check_export_args(args)
    model = loaded.model.eval()
    cfg = model.config
    size = args.image_size or int(cfg["min_size"])
    if not 32 <= size <= 4096:
        raise UserError(f"--image-size {size}: GoogLeNet needs 32 to 4096")
    path = Path(str(prefix()) + ".onnx")
    opset = args.opset if args.opset != DEFAULT_OPSET else DETECTOR_OPSET
    interop_export.check_opset(opset, DETECTOR_MIN_OPSET, interop_export.DETECTOR_MAX_OPSET)
    check_writable_dir(path.parent, "--out")  # before the export is traced, not after
    meta = {"format": "googlenet-detector", "model_config": cfg, "class_names": loaded.class_names,
            "input": "image: float (3, H, W) RGB in [0, 1]; normalised inside the graph",
            "outputs": "boxes (K, 4) xyxy px, scores (K,), labels (K,) = class index + 1"}
    print(f"weights: {loaded.source} ({cfg['detector']} on GoogLeNet {cfg['variant']}, "
          f"{model.num_classes} classes); input 3x{size}x{size}, one image", file=sys.stderr)
    interop_export.export_detector_onnx(model, path, size=size, opset=opset, metadata=meta)
    images, where = interop_export.detector_check_images(args.check_images, size, args.check_count)
    r = interop_export.check_detector_onnx(path, model, images)
    ok = r["same_counts"] and r["same_labels"] and r["max_abs_diff"] <= 1e-3
    print(f"onnx         {path}  max |box/score diff| {r['max_abs_diff']:.2e}, same detection "
          f"counts {r['same_counts']}, same labels {r['same_labels']} on {where} "
          f"({r['images_without_detections']} without detections)  {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1
