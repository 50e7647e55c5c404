"""``googlenet predict``: classify images or folders of images (or find objects in them, with
the weights of a detection run); a contact sheet of the predictions is saved as a picture."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..data.crops import CROP_CHOICES
from ..errors import UserError
from ..infer.modes import DEFAULT_BATCH_SIZE
from ..models.choices import AMP_CHOICES
from . import deprecated_option

if TYPE_CHECKING:  # run() imports what needs torch, so --help does not wait for it
    import torch

    from ..data.preprocess import Preprocess
    from ..infer.predict import Prediction

DEFAULT_TOPK = 5
CALIBRATION_IMAGES = 256  # for the int8 modes: --calibration-count's default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders")
    p.add_argument("--weights", required=True, metavar="SPEC",
                   help="a `googlenet train` run directory or checkpoint, a .safetensors file, "
                        "'imagenet' (torchvision's weights), a torchvision .pth, or caffe:FILE")
    p.add_argument("-k", "--topk", type=int, default=DEFAULT_TOPK, help="classes to show per image")
    p.add_argument("--crops", type=int, choices=CROP_CHOICES, default=1,
                   help="test-time crops per image, softmax averaged (§7 of the paper)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="most crops in one forward pass, as `eval --batch-size` (a detection run: "
                        "at most 16 images, each at its full size)")
    p.add_argument("--mode", default="eager",
                   help="inference runtime: eager, fold, channels_last, int8, ort, ort_int8, "
                        "compile, ov, ov_int8 (googlenet.infer.fast); precision is --amp")
    p.add_argument("--amp", nargs="?", const="bf16", default="none", choices=AMP_CHOICES,
                   help="mixed precision, as `train --amp`: bf16 (a bare --amp too) on the torch "
                        "modes or OpenVINO (--mode ov); fp16 on CUDA; auto: bf16 where native")
    p.add_argument("--calibration-images", default=None, metavar="PATH",
                   help="image file or folder to calibrate the int8 modes on (as `export "
                        "--calibration-images`); unset: the input images")
    p.add_argument("--calibration-count", type=int, default=CALIBRATION_IMAGES,
                   help="int8 modes: how many calibration images")
    deprecated_option(p, "--calibration", "calibration_images", "--calibration-images PATH")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads; unset: torch's choice")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads decoding images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--explain", action="store_true",
                   help="also write a Grad-CAM picture of the top-1 class over each image "
                        "(captioned, with a colour bar) into the output folder as "
                        "IMAGE_STEM.gradcam.png (needs captum: pip install 'googlenet[explain]')")
    p.add_argument("--explain-layer", default=None, metavar="LAYER",
                   help="layer for --explain: a stage (conv1 ... inception_5b) or dotted "
                        "submodule; unset: the deepest with at least a 7x7 map at the weights' "
                        "input size (inception_5b at 224 px, conv2 at 32 px)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder: contact-sheet.png (the images with their predictions), "
                        "the --explain pictures and, for a detection run, each image with its "
                        "boxes drawn (DIR/<name>.png); unset: predict/ in the run directory (in "
                        "the weights file's folder; runs/ for a named model), numbered "
                        "predict-2/, ... so nothing is overwritten, and no per-image drawings")
    p.add_argument("--no-sheet", action="store_true",
                   help="write no contact sheet (then nothing is written without --out or "
                        "--explain)")
    g = p.add_argument_group("detection runs (weights of `googlenet train --task detect`)")
    g.add_argument("--score-thresh", type=float, default=0.3,
                   help="show detections scoring at least this")


def _calibration(spec: Optional[str], count: int, files: Sequence[Path],
                 pre: Preprocess) -> torch.Tensor:
    import torch

    from ..data.crops import multi_crop
    from ..data.imaging import ImageError, list_images, load_image

    if spec and not Path(spec).exists():
        raise UserError(f"--calibration-images {spec}: no such file or folder")
    pool = (list_images(spec) if Path(spec).is_dir() else [Path(spec)]) if spec else list(files)
    imgs = []
    for f in pool[:count]:
        try:
            imgs.append(multi_crop(load_image(f), pre, 1))
        except ImageError:
            continue
    if not imgs:
        raise UserError("no readable calibration images for the int8 mode: pass "
                        "--calibration-images PATH")
    return torch.cat(imgs)


def _out_dir(args: argparse.Namespace) -> Optional[Path]:
    """Where the pictures go: --out, else a fresh predict/ (predict-2/, ...) in the run
    directory (a weights file's folder; runs/ for a named model such as imagenet); None when
    there is nothing to write (--no-sheet, no --explain) or the default place is not writable
    (said on stderr: the predictions themselves do not need it)."""
    from ..fileio import check_writable_dir

    if args.out is not None:
        check_writable_dir(args.out, "--out")
        return Path(args.out)
    if args.no_sheet and not args.explain:
        return None
    w = Path(args.weights)
    base = w if w.is_dir() else (w.parent if w.is_file() else Path("runs"))
    out, i = base / "predict", 1
    while out.exists():
        i += 1
        out = base / f"predict-{i}"
    try:
        check_writable_dir(out, "--out")
    except UserError as e:
        print(f"googlenet predict: no pictures written ({e}); pass --out DIR", file=sys.stderr)
        return None
    return out


def _check_explain(args: argparse.Namespace, model: torch.nn.Module, size: int) -> None:
    """captum installed and --explain-layer in the model (unset: the deepest with a map of at
    least 7x7 at ``size``), before any image is classified; a warning for a coarser map."""
    from ..infer.explain import layer_maps, pick_layer, require_captum, resolve_layer, small_map_warning

    require_captum()
    if args.explain_layer is None:
        args.explain_layer, side = pick_layer(model, size)
    else:
        resolve_layer(model, args.explain_layer)
        side = layer_maps(model, size).get(args.explain_layer, 0)
    warning = small_map_warning(args.explain_layer, side, size)
    if warning:
        print(f"googlenet predict: {warning}", file=sys.stderr)


def _explain(args: argparse.Namespace, model: torch.nn.Module, predictions: Sequence[Prediction],
             pre: Preprocess, names: Optional[Sequence[str]], device: torch.device,
             out: Path) -> list:
    """Grad-CAM of each prediction's top-1 class into ``out`` (googlenet.infer.explain)."""
    from ..infer.explain import explain_files

    explained = explain_files(model, [p.file for p in predictions],
                              [p.classes[0] for p in predictions], pre, out,
                              layer=args.explain_layer, class_names=names,
                              probs=[p.probs[0] for p in predictions], device=device)
    side = explained[0].map_size if explained else 0
    print(f"explain: wrote {len(explained)} Grad-CAM pictures (top-1 class, layer "
          f"{args.explain_layer}" + (f", a {side}x{side} map" if side else "") + f") to {out}",
          file=sys.stderr)
    return explained


def _sheet(predictions: Sequence[Prediction], out: Path, what: str, explained: Sequence = ()) -> Path:
    """contact-sheet.png: the first images with their top-1 class and probability."""
    from ..data.imaging import ImageError, load_image
    from ..infer.pictures import SHEET_MAX, contact_sheet, sheet_path

    cells = []
    for p in predictions[:SHEET_MAX]:
        try:
            img = load_image(p.file)
        except ImageError:
            continue
        cells.append((img, f"{p.names[0]}  {p.probs[0]:.1%}", Path(p.file).name))
    taken = [p.file for p in predictions] + [e.heatmap for e in explained]
    return contact_sheet(cells, sheet_path(out, taken), what, total=len(predictions))


def _check_args(args: argparse.Namespace) -> None:
    """Bad numbers and modes, before anything is loaded; --mode + --amp -> one fast mode."""
    from ..engine.distributed import resolve_device
    from ..infer import fast

    if args.topk < 1:
        raise UserError(f"--topk {args.topk}: must be at least 1")
    if args.calibration_count < 1:
        raise UserError(f"--calibration-count {args.calibration_count}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")
    if args.mode not in fast.MODES:
        raise UserError(f"--mode {args.mode}: choose one of {', '.join(fast.MODES)}")
    args.mode = fast.with_amp(args.mode, args.amp, resolve_device(args.device))


def _classify(args: argparse.Namespace, runner, files: Sequence[Path], pre: Preprocess,  # noqa: ANN001
              names: Optional[Sequence[str]], failures: list) -> list[Prediction]:
    """Every file's top-k (softmax averaged over --crops), printed as it comes unless --json,
    under a progress bar; unreadable files are reported and added to ``failures``."""
    import torch
    from tqdm import tqdm

    from ..infer.predict import Prediction, iter_batches, topk

    predictions: list[Prediction] = []
    per_batch = max(1, args.batch_size // args.crops)
    bar = tqdm(total=len(files), unit="img", disable=True if args.no_progress or len(files) < 2 else None,
               file=sys.stderr, desc="predict")
    for good, crops, bad in iter_batches(files, pre, args.crops, per_batch, args.workers):
        for f in bad:
            bar.write(f"googlenet predict: error: {f.error}", file=sys.stderr)
        failures += bad
        if good:
            x = torch.cat(crops)  # (images * crops, C, crop, crop)
            probs = torch.cat([runner(part).float().softmax(-1).cpu()
                               for part in x.split(args.batch_size)])
            probs = probs.view(len(good), args.crops, -1).mean(1)  # softmax averaged over crops
            for f, (cls, nm, pr) in zip(good, topk(probs, args.topk, names)):
                p = Prediction(str(f), cls, nm, pr)
                predictions.append(p)
                if not args.json:
                    bar.write(f"{p.file}: " + ", ".join(f"{n} {q:.1%}" for n, q in zip(nm, pr)),
                              file=sys.stdout)
        bar.update(len(good) + len(bad))
    bar.close()
    return predictions


def run(args: argparse.Namespace) -> int:
    import torch

    from ..infer import fast
    from ..engine.distributed import resolve_device
    from ..infer.predict import collect_inputs, describe_preprocess
    from ..sources import load_weights

    _check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    files, failures = collect_inputs(args.inputs)
    loaded = load_weights(args.weights)
    if loaded.task == "detect":
        return _run_detection(args, loaded, files, failures, device)
    pre = loaded.preprocess
    if args.explain:
        _check_explain(args, loaded.model, pre.crop)
    out = _out_dir(args)
    names = loaded.class_names
    model = loaded.model.eval()
    print(f"weights: {loaded.source} (variant {model.config['variant']}, {model.num_classes} "
          f"classes{'' if names else ', no class names'})", file=sys.stderr)
    print(f"preprocessing: {describe_preprocess(pre)}"
          + ("; then the model's own input_transform (to [-1, 1], as torchvision)"
             if model.config.get("transform_input") else ""), file=sys.stderr)

    calibration = None
    if fast.MODES[args.mode].needs_calibration:
        calibration = _calibration(args.calibration_images, args.calibration_count, files, pre)
    runner = fast.prepare(model, args.mode, device=device, calibration=calibration,
                          image_size=pre.crop, threads=args.threads)
    for note in runner.notes:
        print(f"mode {args.mode}: {note}", file=sys.stderr)

    for f in failures:  # paths that named nothing: reported first, once
        print(f"googlenet predict: error: {f.error}", file=sys.stderr)
    predictions = _classify(args, runner, files, pre, names, failures)

    explained = (_explain(args, model, predictions, pre, names, device, out)
                 if args.explain and out is not None else [])
    sheet = None
    if out is not None and not args.no_sheet and predictions:
        sheet = _sheet(predictions, out, f"{Path(args.weights).name}: top-1 class and its "
                                         f"probability ({args.crops} crop{'s' * (args.crops > 1)})",
                       explained)
        print(f"contact sheet: {sheet}", file=sys.stderr)
    if args.json:
        doc = {"weights": loaded.source, "variant": model.config["variant"],
               "preprocess": asdict(pre), "crops": args.crops, "mode": args.mode,
               "predictions": [p.to_dict() for p in predictions],
               "errors": [asdict(f) for f in failures]}
        if args.explain:
            doc["explanations"] = [e.to_dict() for e in explained]
        if sheet is not None:
            doc["contact_sheet"] = str(sheet)
        print(json.dumps(doc, indent=1))
    if failures:
        print(f"googlenet predict: {len(failures)} of {len(predictions) + len(failures)} inputs "
              f"failed", file=sys.stderr)
        return 1
    return 0


def _run_detection(args: argparse.Namespace, loaded, files, failures, device) -> int:  # noqa: ANN001
    """Boxes, class names and scores per image (text or --json); --out DIR: images with the
    boxes drawn (torchvision.utils.draw_bounding_boxes)."""
    from ..infer.detect import drawn_names, predict_files
    from ..infer.pictures import contact_sheet, sheet_path

    if not 0 <= args.score_thresh <= 1:
        raise UserError(f"--score-thresh {args.score_thresh}: must be in [0, 1]")
    out = _out_dir(args)
    cfg = loaded.model.config
    print(f"weights: {loaded.source} ({cfg['detector']} on GoogLeNet {cfg['variant']}, "
          f"{loaded.model.num_classes} classes, {cfg['min_size']} px)", file=sys.stderr)
    cells: Optional[list] = None if args.no_sheet or out is None else []
    results, bad = predict_files(loaded, files, device=device, score_thresh=args.score_thresh,
                                 batch_size=min(args.batch_size, 16), out=args.out, amp=args.amp,
                                 sheet=cells)
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
