"""Regenerate the pictures the docs show, from their sources, into docs/assets/.

    python docs/make_assets.py                          # the network figures, the experiments' figures
    python docs/make_assets.py --classify-run RUN       # + training curves, confusion matrix,
                                                        #   predictions and Grad-CAM of a classifier run
    python docs/make_assets.py --detect-run RUN         # + curves, sample detections and the
                                                        #   precision-recall curve of a detection run

Sources, so that a change of the figure styles is one command away from the docs:

    assets/network.svg, assets/naive-vs-reduced.svg    `googlenet summary --format svg` (no model needed)
    assets/experiments/*.png                           benchmarks/results/experiments/ (written by
                                                       `googlenet experiment all`), shrunk to --max-width
    assets/training/curves.png                         RUN/curves.png of --classify-run
    assets/evaluation/confusion.png                    `googlenet eval RUN --out ...` of --classify-run
    assets/inference/predictions.png                   `googlenet predict` on test images of the run's data
    assets/inference/gradcam.png                       `googlenet predict --explain` (needs captum)
    assets/detection/curves.png                        RUN/curves.png of --detect-run
    assets/detection/samples.png                       `googlenet predict --out` on digits-detect test canvases
    assets/detection/pr-curve.png                      `googlenet eval RUN --out ...` of --detect-run

The pages show a picture as soon as its file exists (docs/hooks.py, `googlenet:picture`), and a
marked placeholder until then. Each command runs as a user would type it (`python -m googlenet`,
with this checkout's src/ first on the path). PNGs are written optimised and at most --max-width
pixels wide, so the docs stay small in git.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXPERIMENTS = ROOT / "benchmarks" / "results" / "experiments"
# The experiment figures the docs show (docs/experiments.md); the others stay in the results folder.
EXPERIMENT_FIGURES = ("reduction-cost.png", "reduction-top1.png", "aux-top1.png", "head-top1.png",
                      "norm-top1.png", "norm-curves.png", "averaging-top1.png", "crops-table3.png")


def googlenet(*args: str, cwd: Optional[Path] = None) -> str:
    """Run `python -m googlenet ARGS` from this checkout; its stdout (stderr passes through)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    print("$ googlenet " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "googlenet", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"googlenet {' '.join(args)}: exit status {done.returncode}")
    return done.stdout


def save_png(src: Path | "Image.Image", dest: Path, max_width: int) -> None:  # noqa: F821
    """``src`` (a file or a PIL image) as an optimised PNG at most ``max_width`` wide."""
    from PIL import Image

    img = Image.open(src) if isinstance(src, Path) else src
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
    # Charts and contact sheets: 256 colours lose nothing visible and halve the file.
    img = img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                      dither=Image.Dither.NONE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, optimize=True)
    shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
    print(f"wrote {shown} ({dest.stat().st_size // 1024} KB)")


def network(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    googlenet("summary", "--format", "svg", "--out", str(out / "network.svg"))
    googlenet("summary", "--inception", "naive", "--format", "svg", "--out", str(out / "naive-vs-reduced.svg"))


def experiments(out: Path, max_width: int) -> None:
    for name in EXPERIMENT_FIGURES:
        src = EXPERIMENTS / name
        if not src.is_file():
            print(f"missing {src.relative_to(ROOT)} (run `googlenet experiment all`); skipped")
            continue
        save_png(src, out / "experiments" / name, max_width)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(tiles: Sequence[tuple[Path, str]], cols: int, tile: int) -> "Image.Image":  # noqa: F821
    """Images in a grid, each scaled to ``tile`` px wide with its caption under it."""
    from PIL import Image, ImageDraw

    caption_h = max(24, tile // 6)
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * (tile + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(caption_h - 6)
    for i, (path, caption) in enumerate(tiles):
        img = Image.open(path).convert("RGB")
        img = img.resize((tile, round(img.height * tile / img.width)), Image.NEAREST
                         if img.width < tile // 2 else Image.LANCZOS)
        x, y = (i % cols) * tile, (i // cols) * (tile + caption_h)
        sheet.paste(img.crop((0, 0, tile, tile)), (x, y))
        draw.text((x + 4, y + tile + 2), caption, fill="black", font=font)
    return sheet


def _run_data(run: Path) -> Optional[str]:
    """The data a run was trained on (its config.toml), None for the built-in sets."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    cfg = tomllib.loads((run / "config.toml").read_text())
    return cfg.get("data")


def classify_run(run: Path, out: Path, max_width: int, count: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from PIL import Image

    from googlenet.data.datasets import default_eval_split, open_dataset

    if (run / "curves.png").is_file():
        save_png(run / "curves.png", out / "training" / "curves.png", max_width)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        googlenet("eval", str(run), "--out", str(tmp / "eval"), "--no-progress")
        if (tmp / "eval" / "confusion.png").is_file():
            save_png(tmp / "eval" / "confusion.png", out / "evaluation" / "confusion.png", max_width)
        spec = _run_data(run)
        data = open_dataset(spec, default_eval_split(spec))
        images, truth = tmp / "images", {}
        images.mkdir()
        step = max(1, len(data) // count)
        for i in range(0, min(len(data), step * count), step):
            img, label = data.load(i)
            if img.width < 128:  # the digits are 32 px: larger files for the Grad-CAM overlays
                img = img.resize((128, 128), Image.NEAREST)
            path = images / f"{len(truth):03d}.png"
            img.save(path)
            truth[path.name] = data.classes[label]
        doc = json.loads(googlenet("predict", str(images), "--weights", str(run), "--json", "--no-progress"))
        tiles = []
        for p in doc["predictions"]:
            top = p["top"][0]
            name = Path(p["file"]).name
            tiles.append((images / name, f"true {truth[name]}, pred {top['name']} {100 * top['prob']:.0f}%"))
        save_png(contact_sheet(tiles, cols=8, tile=150), out / "inference" / "predictions.png", max_width)
        try:
            import captum  # noqa: F401
        except ImportError:
            print("captum is not installed (pip install -e '.[explain]'): no Grad-CAM picture")
            return
        googlenet("predict", str(images), "--weights", str(run), "--explain", "--out", str(tmp / "cam"),
                  "--no-progress")
        cams = sorted((tmp / "cam").glob("*.gradcam.png"))[:16]
        tiles = [(c, f"true {truth.get(c.name.replace('.gradcam.png', '.png'), '?')}") for c in cams]
        save_png(contact_sheet(tiles, cols=8, tile=150), out / "inference" / "gradcam.png", max_width)


def detect_run(run: Path, out: Path, max_width: int, count: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from PIL import Image
    from torchvision.transforms.functional import to_pil_image

    from googlenet.data.detection import open_detection_dataset

    if (run / "curves.png").is_file():
        save_png(run / "curves.png", out / "detection" / "curves.png", max_width)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        googlenet("eval", str(run), "--out", str(tmp / "eval"), "--no-progress")
        curves = sorted((tmp / "eval").glob("pr_curve*.png"))
        if curves:
            save_png(curves[0], out / "detection" / "pr-curve.png", max_width)
        spec = _run_data(run) or "digits-detect"
        data = open_detection_dataset(spec, "test")
        images = tmp / "images"
        images.mkdir()
        step = max(1, len(data) // count)
        for k, i in enumerate(range(0, min(len(data), step * count), step)):
            image, _ = data.load(i)
            img = to_pil_image(image)
            if img.width < 256:  # digits-detect's 128 px canvases: room for the labels
                img = img.resize((256, round(img.height * 256 / img.width)), Image.BILINEAR)
            img.save(images / f"{k:03d}.png")
        googlenet("predict", str(images), "--weights", str(run), "--out", str(tmp / "drawn"), "--no-progress")
        drawn = sorted(p for p in (tmp / "drawn").glob("*.png") if p.name != "contact-sheet.png")
        save_png(contact_sheet([(d, "") for d in drawn], cols=4, tile=256), out / "detection" / "samples.png",
                 max_width)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DOCS / "assets", help="default: docs/assets")
    p.add_argument("--classify-run", type=Path, metavar="RUN", help="a `googlenet train` run directory")
    p.add_argument("--detect-run", type=Path, metavar="RUN", help="a `googlenet train --task detect` run")
    p.add_argument("--max-width", type=int, default=1200, help="widest PNG written, px (default 1200)")
    p.add_argument("--count", type=int, default=16, help="test images per contact sheet (default 16)")
    p.add_argument("--skip-static", action="store_true",
                   help="only the run pictures (not the network and experiment figures)")
    args = p.parse_args(argv)
    if not args.skip_static:
        network(args.out)
        experiments(args.out, args.max_width)
    if args.classify_run:
        classify_run(args.classify_run, args.out, args.max_width, args.count)
    if args.detect_run:
        detect_run(args.detect_run, args.out, args.max_width, min(args.count, 8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
