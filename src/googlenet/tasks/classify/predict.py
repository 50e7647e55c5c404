"""The classification unit's ``googlenet predict``: top-k classes per image (softmax averaged
over --crops) through a fast-inference runtime (googlenet.infer.fast), a contact sheet and
Grad-CAM pictures (googlenet.infer.explain)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from tqdm import tqdm

from ...data.crops import multi_crop
from ...data.imaging import ImageError, list_images, load_image
from ...data.preprocess import Preprocess
from ...errors import UserError
from ...infer import fast
from ...infer.explain import (
    explain_files, layer_maps, pick_layer, require_captum, resolve_layer, small_map_warning,
)
from ...infer.pictures import SHEET_MAX, contact_sheet, sheet_path
from ...infer.predict import Prediction, describe_preprocess, iter_batches, topk
from ...weights.records import LoadedWeights

__all__ = ["predict"]


def _calibration(spec: Optional[str], count: int, files: Sequence[Path],
                 pre: Preprocess) -> torch.Tensor:
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


def _check_explain(args: argparse.Namespace, model: torch.nn.Module, size: int) -> None:
    """captum installed and --explain-layer in the model (unset: the deepest with a map of at
    least 7x7 at ``size``), before any image is classified; a warning for a coarser map."""
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
    cells = []
    for p in predictions[:SHEET_MAX]:
        try:
            img = load_image(p.file)
        except ImageError:
            continue
        cells.append((img, f"{p.names[0]}  {p.probs[0]:.1%}", Path(p.file).name))
    taken = [p.file for p in predictions] + [e.heatmap for e in explained]
    return contact_sheet(cells, sheet_path(out, taken), what, total=len(predictions))


def _classify(args: argparse.Namespace, runner, files: Sequence[Path], pre: Preprocess,  # noqa: ANN001
              names: Optional[Sequence[str]], failures: list) -> list[Prediction]:
    """Every file's top-k (softmax averaged over --crops), printed as it comes unless --json,
    under a progress bar; unreadable files are reported and added to ``failures``."""
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


def predict(args: argparse.Namespace, loaded: LoadedWeights, files: Sequence[Path],
            failures: list, device: torch.device, out_dir: Callable[[], Optional[Path]]) -> int:
    """``googlenet predict`` with a classifier: each image's top-k (printed, or --json), a
    contact sheet and the --explain pictures in ``out_dir()`` (None: none written)."""
    pre = loaded.preprocess
    if args.explain:
        _check_explain(args, loaded.model, pre.crop)
    out = out_dir()
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
