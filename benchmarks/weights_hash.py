"""Hash a run's final weights, to check that a refactor changed no arithmetic.

    python benchmarks/weights_hash.py RUN_DIR [RUN_DIR ...]

Prints one SHA-256 per run over every tensor of RUN/model.safetensors (name, dtype, shape and
bytes, in sorted name order) and says whether they are all equal. Train the runs to compare with
the same command on the same machine, e.g. before and after a change:

    googlenet train --variant bn --deterministic --seed 0 --no-progress --out /tmp/bn-before
    (apply the change)
    googlenet train --variant bn --deterministic --seed 0 --no-progress --out /tmp/bn-after
    python benchmarks/weights_hash.py /tmp/bn-before /tmp/bn-after

Bit-identity holds on one machine (CPU, deterministic algorithms); another CPU's kernels may
round differently.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from safetensors.torch import load_file


def weights_hash(path: Path) -> str:
    f = path / "model.safetensors" if path.is_dir() else path
    tensors = load_file(str(f))
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    hashes = [weights_hash(r) for r in args.runs]
    for r, h in zip(args.runs, hashes):
        print(f"{h}  {r}")
    same = len(set(hashes)) == 1
    print("all equal" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
