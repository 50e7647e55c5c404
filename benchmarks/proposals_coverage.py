"""Selective Search coverage (§8): the paper's doubled superpixel size against OpenCV's default.

The paper ran Selective Search "with the superpixel size doubled", which halves the proposals,
and reports the coverage (fraction of ground-truth boxes with a proposal at IoU >= 0.5). This
measures the same on a detection dataset, for each setting: proposals per image, coverage at IoU
0.5 and 0.7, average best overlap and seconds per image (one process, OpenCV's own threads).

    python benchmarks/proposals_coverage.py                       # digits-detect test, 500 images
    python benchmarks/proposals_coverage.py --images 20           # a quick check
    python benchmarks/proposals_coverage.py --data PATH --split val --images 200

Results: benchmarks/results/proposals-<dataset>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

SETTINGS = {  # name: selective_search keyword arguments
    "opencv-default (k=150)": dict(mode="fast", base_k=150, inc_k=150),
    "paper (k=300, doubled)": dict(mode="fast", base_k=300, inc_k=300),
    "quality (k=300)": dict(mode="quality", base_k=300, inc_k=300),
}


def main() -> None:
    import cv2
    import torch

    from googlenet.data.detection import open_detection_dataset
    from googlenet.data.proposals import proposal_stats, selective_search

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="digits-detect")
    ap.add_argument("--split", default="test")
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--max-proposals", type=int, default=2000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds = open_detection_dataset(args.data, args.split)
    build_s = time.perf_counter() - t0
    n = min(args.images, len(ds))
    pairs = [ds.load(i) for i in range(n)]
    rows = {}
    for name, kw in SETTINGS.items():
        t = time.perf_counter()
        props = [selective_search(img, max_proposals=args.max_proposals, **kw) for img, _ in pairs]
        sec = (time.perf_counter() - t) / n
        stats = proposal_stats(props, [tg["boxes"].as_subclass(torch.Tensor) for _, tg in pairs])
        rows[name] = dict(stats, seconds_per_image=sec)
        print(f"{name}: {stats['per_image_mean']:.0f} proposals/image, coverage@0.5 "
              f"{stats['recall@0.5']:.3f}, @0.7 {stats['recall@0.7']:.3f}, {sec * 1000:.0f} ms/image",
              flush=True)
    out = {"dataset": str(args.data), "split": args.split, "images": n, "dataset_build_s": build_s,
           "results": rows, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                        "opencv": cv2.__version__, "torch": torch.__version__,
                                        "loadavg": os.getloadavg()}}
    RESULTS = ROOT / "results"
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"proposals-{Path(str(args.data)).name}.json"
    path.write_text(json.dumps(out, indent=1))
    print("\n| setting | proposals/image | coverage@0.5 | coverage@0.7 | ABO | ms/image |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['per_image_mean']:.0f} | {r['recall@0.5']:.3f} | {r['recall@0.7']:.3f} | "
              f"{r['abo']:.3f} | {r['seconds_per_image'] * 1000:.0f} |")
    print(f"\n{n} images of {args.data} {args.split}; load average {os.getloadavg()[0]:.1f}; "
          f"written to {path}")


if __name__ == "__main__":
    main()
