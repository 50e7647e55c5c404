"""Checkpoints of a training run: written atomically in a background thread
(``CheckpointWriter``), read back as a typed ``TrainCheckpoint`` (``load_resume``).

A checkpoint is ``TrainCheckpoint.to_state()`` (googlenet.weights.records), saved with
``torch.save`` and read with ``torch.load(weights_only=True)``. The write goes to a temp file in
the run directory that is fsynced and renamed into place, so a SIGKILL at any moment leaves the
previous complete checkpoint (or the new one); ``checkpoint-best.pt`` is a hard link to the same
bytes when the filesystem allows it.

The run directory's lock and file names are in engine/rundir.py (re-exported here).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..errors import FileSystemError, UserError
from ..weights.io import atomic_torch_save, safe_torch_load
from ..weights.records import CHECKPOINT_BEST, CHECKPOINT_LAST, TrainCheckpoint
from .rundir import (  # noqa: F401  (re-exported: the lock and the run directory's names)
    RunDir, RunLock, RunLocked, check_new_run, claim_run_dir, default_run_dir, remove_stale_temps,
)

__all__ = ["CheckpointWriter", "RunLock", "RunLocked", "load_resume", "remove_stale_temps",
           "snapshot", "LOCK_FILE", "RUN_FILES", "default_run_dir", "check_new_run",
           "claim_run_dir"]

# The run directory's lock and file names moved to engine/rundir.py; re-exported here.
LOCK_FILE = RunDir.LOCK
RUN_FILES = RunDir.FILES


def snapshot(obj: Any) -> Any:
    """A copy of a (nested) state dict whose tensors training can no longer change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints in a background thread, so training does not wait for the disk.

    The state is copied in memory first (``snapshot``), then serialised, fsynced and renamed
    into place while the next steps run; at most one write is in flight.
    """

    def __init__(self, run_dir: Path, log: Callable[..., None]) -> None:
        self.run_dir, self.log = run_dir, log
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def submit(self, ckpt: TrainCheckpoint, *, best: bool, note: str,
               weights: Optional[Callable[[], Any]] = None) -> None:
        """Write ``ckpt`` as checkpoint-last.pt (and, ``best``, link it as checkpoint-best.pt),
        then call ``weights`` (a write of weights from a snapshot taken by the caller), all in
        the background."""
        self.wait()
        snap = snapshot(ckpt.to_state())
        self._thread = threading.Thread(target=self._write, args=(snap, best, note, weights),
                                        name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _write(self, state: dict[str, Any], best: bool, note: str,
               weights: Optional[Callable[[], Any]]) -> None:
        try:
            last = self.run_dir / CHECKPOINT_LAST
            atomic_torch_save(state, last)
            if weights is not None:
                weights()
            if best:  # the same bytes: a hard link renamed into place, no second write
                tmp = self.run_dir / f".{CHECKPOINT_BEST}.link"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                try:
                    os.link(last, tmp)
                    os.replace(tmp, self.run_dir / CHECKPOINT_BEST)
                except OSError:  # filesystems without hard links
                    atomic_torch_save(state, self.run_dir / CHECKPOINT_BEST)
            self.log(note, console=False)
        except BaseException as e:  # reported by wait(), in the training thread
            self._error = e

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            e, self._error = self._error, None
            kind = FileSystemError if isinstance(e, (OSError, FileSystemError)) else UserError
            raise kind(f"could not write a checkpoint to {self.run_dir}: {e}; the previous "
                       f"checkpoint is intact") from e


def load_resume(run_dir: str | os.PathLike) -> tuple[Path, TrainCheckpoint]:
    """The last checkpoint of a run directory, typed."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory to resume")
    path = run / CHECKPOINT_LAST
    if not path.is_file():
        raise UserError(f"{run}: no {CHECKPOINT_LAST} in it (the run wrote no checkpoint yet); "
                        f"start a new run instead")
    return run, TrainCheckpoint.from_state(safe_torch_load(path), str(path))
