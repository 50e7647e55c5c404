"""Paired timing: two benchmark runners alive at once, taking turns (``googlenet bench
--paired-rounds``).

``googlenet bench`` times every row in its own process, one after the other; on a shared machine
the speed drifts over those minutes, and a ratio of two rows taken minutes apart carries that
drift (how much: section "paired" of benchmarks/results/notes.md). For
the ratios that matter, our best mode over the best peer of a precision class, ``head_to_head``
starts both runners as ``bench_worker --serve`` processes and has them time blocks in turn, so
each round's two blocks see the same machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .bench import Row, worker_env


class _Served:
    """A ``bench_worker --serve`` process: one runner, built once, timing blocks on request."""

    def __init__(self, job: dict[str, Any], job_file: Path, timeout_s: float) -> None:
        job_file.write_text(json.dumps(job))
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "googlenet.infer.bench_worker", "--serve", str(job_file)],
            env=worker_env(job.get("threads")), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1)
        self.hello = self._read()
        if not self.hello.get("ready"):
            self.close()
            why = self.hello.get("skipped") or self.hello.get("error") or "no answer"
            raise RuntimeError(f"the runner did not start: {why}")

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=self.timeout_s)
            return {"error": f"worker exited with status {self.proc.returncode}"}
        return json.loads(line)

    def block(self, batch: int, repeats: int, warmup: int) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"batch": batch, "repeats": repeats,
                                          "warmup": warmup}) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "times" not in out:
            raise RuntimeError(f"pid {self.proc.pid}: {out.get('error', out)}")
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def head_to_head(ours: Row, peer: Row, workdir: Path, batch_sizes: Sequence[int], *,
                 rounds: int, repeats: int, warmup: int = 1, settle_s: float = 0.3,
                 timeout_s: float = 3600) -> dict[int, dict[str, Any]]:
    """Our row against a peer's, paired: both runners live in their own processes at once and
    take turns timing blocks of ``repeats`` calls, ``rounds`` times per batch size, in the
    order AB BA AB ... (so neither always goes first). A drift of the machine's speed (other
    tenants, clocks) then hits both sides of each round alike, which separate runs minutes
    apart cannot promise; the ratio is the median over rounds of ours / peer (block medians).

    Isolation while paired: before each block the other process has been idle for
    ``settle_s`` (its threads park: onnxruntime's and OpenMP's spin only briefly after a call).
    Each process's CPU time over its idle window (from the end of its block to its next
    request: the pauses and the other's block) is measured; ``idle_cpu_max`` is the largest
    share of such a window's wall time, in cores. It includes a runtime's spin-down right after
    its own block (onnxruntime: ~0.12 at 224 px here); a waiting process that competed with the
    other's block would show most of a core or more."""
    out: dict[int, dict[str, Any]] = {}
    a = _Served(ours.job, workdir / f"h2h-ours-{os.getpid()}.job.json", timeout_s)
    try:
        b = _Served(peer.job, workdir / f"h2h-peer-{os.getpid()}.job.json", timeout_s)
    except BaseException:
        a.close()
        raise
    try:
        for batch in batch_sizes:
            ips: dict[str, list[float]] = {"ours": [], "peer": []}
            idle_share: list[float] = []  # an idle process's CPU seconds / wall seconds
            last: dict[str, tuple[float, float]] = {}  # name -> (its CPU s, our clock) at end
            for r in range(rounds):
                order = [("ours", a), ("peer", b)] if r % 2 == 0 else [("peer", b), ("ours", a)]
                for name, served in order:
                    time.sleep(settle_s)
                    t0 = time.perf_counter()
                    res = served.block(batch, repeats, warmup)
                    ips[name].append(batch / statistics.median(res["times"]))
                    if name in last:  # CPU it used while idle (the other's block, the pauses)
                        cpu_end, t_end = last[name]
                        idle_share.append((res["cpu_at_request"] - cpu_end) / max(t0 - t_end, 1e-9))
                    last[name] = (res["cpu_at_end"], time.perf_counter())
            ratios = [o / p for o, p in zip(ips["ours"], ips["peer"])]
            out[batch] = {"rounds": rounds, "repeats": repeats,
                          "ours_images_per_s": ips["ours"], "peer_images_per_s": ips["peer"],
                          "ratios": ratios, "ratio": statistics.median(ratios),
                          "ratio_min": min(ratios), "ratio_max": max(ratios),
                          "idle_cpu_max": max(idle_share, default=0.0),
                          "pids": [a.proc.pid, b.proc.pid]}
    finally:
        a.close()
        b.close()
    return out


def paired_line(q: dict[str, Any]) -> str:
    """One line for a ratio's paired timing (``head_to_head``)."""
    h = q["paired"]
    return (f"{q['precision']} at batch {q['batch']}, paired ({h['rounds']} rounds, processes "
            f"alive together, taking turns): ours ({q['ours']}) / best peer ({q['peer']}) = "
            f"{h['ratio']:.2f}x (rounds {h['ratio_min']:.2f}-{h['ratio_max']:.2f}); the idle "
            f"process used at most {h['idle_cpu_max']:.1%} of a core meanwhile")
