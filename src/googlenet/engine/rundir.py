"""A run directory: its files' names (``RunDir``), in one place, and the lock that makes it one
process's at a time (``RunLock``).

``RunLock`` makes a run directory one process's at a time (a ``fcntl.lockf`` record lock on
RUN/.lock, which the kernel releases when the process dies, even by SIGKILL, and which forked
DataLoader workers do not inherit: no stale lock to clean up), and
``remove_stale_temps`` deletes the temp files a killed write left behind, under the lock.

The weights and checkpoint names live in ``googlenet.weights.records`` (weights/ reads run
directories and sits below the engine); ``RunDir`` names them again with the engine's own.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import FileSystemError, UserError
from ..weights.io import TEMP_SUFFIX
from ..weights.records import BEST_WEIGHTS, CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS

__all__ = ["RunDir", "RunLock", "RunLocked", "remove_stale_temps", "default_run_dir",
           "check_new_run", "claim_run_dir"]


class RunDir:
    """The files of a training run's directory: ``RunDir(path).results`` is ``path /
    "results.json"``; the names alone are class attributes (``RunDir.RESULTS``)."""

    CHECKPOINT_LAST = CHECKPOINT_LAST  # what --resume continues
    CHECKPOINT_BEST = CHECKPOINT_BEST  # save_checkpoints all: the best epoch's whole checkpoint
    FINAL_WEIGHTS = FINAL_WEIGHTS  # the final model
    BEST_WEIGHTS = BEST_WEIGHTS  # save_checkpoints best: the best epoch's weights only
    CONFIG = "config.toml"  # the resolved training config
    RESULTS = "results.json"  # the final evaluation: a finished run has one
    METRICS = "metrics.csv"  # one row per epoch
    CURVES = "curves.png"
    TRAIN_LOG = "train.log"
    LOCK = ".lock"
    TENSORBOARD = "tensorboard"  # a folder
    COMPILE_CACHE = "compile-cache"  # a folder: torch.compile's graphs (--compile)
    # Every file the engine writes into a run directory through ``atomic_write``.
    FILES = (CHECKPOINT_LAST, CHECKPOINT_BEST, FINAL_WEIGHTS, BEST_WEIGHTS, CONFIG, RESULTS,
             METRICS, CURVES)

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    checkpoint_last = property(lambda self: self.path / self.CHECKPOINT_LAST)
    checkpoint_best = property(lambda self: self.path / self.CHECKPOINT_BEST)
    final_weights = property(lambda self: self.path / self.FINAL_WEIGHTS)
    best_weights = property(lambda self: self.path / self.BEST_WEIGHTS)
    config = property(lambda self: self.path / self.CONFIG)
    results = property(lambda self: self.path / self.RESULTS)
    metrics = property(lambda self: self.path / self.METRICS)
    curves = property(lambda self: self.path / self.CURVES)
    train_log = property(lambda self: self.path / self.TRAIN_LOG)
    tensorboard = property(lambda self: self.path / self.TENSORBOARD)
    compile_cache = property(lambda self: self.path / self.COMPILE_CACHE)

    def is_finished(self) -> bool:
        """A finished run has its results."""
        return self.results.is_file()

    def lock(self) -> "RunLock":
        """This directory's lock (not yet acquired)."""
        return RunLock(self.path)


class RunLocked(FileSystemError):
    """Another process holds the run directory (exit status 4, with the file-system errors)."""


class RunLock:
    """An exclusive, non-blocking lock on a run directory for as long as the ``with`` lasts.

    A POSIX record lock (``fcntl.lockf``) on ``RUN/.lock``, whose content is the holder's PID
    (for the message a second process gets). The kernel drops it when the holder exits in any
    way, so a killed run never leaves the directory locked. Why not ``flock``: an flock belongs
    to the open file, which forked children (DataLoader workers) inherit, so a worker outliving
    a SIGKILLed trainer by a few seconds kept the run locked against an immediate ``--resume``.
    A record lock belongs to one process and is not inherited across ``fork``.

    Record locks are per process: a second lock of the same file from this process would
    succeed, and closing any descriptor of the file would drop the lock. So the locks this
    process holds are kept in ``_HELD`` (by device and inode): a second ``acquire`` here is
    refused without opening the file again. When the lock is busy but the PID written in it
    is dead (a holder whose lock the kernel has not dropped yet), ``acquire`` waits up to
    ``DEAD_HOLDER_WAIT`` seconds for it before refusing. Advisory: it excludes other googlenet
    processes, which is what it is for. Where ``fcntl`` does not exist (Windows) it does nothing.
    """

    DEAD_HOLDER_WAIT = 10.0

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / RunDir.LOCK
        self._fd: Optional[int] = None
        self._key: Optional[tuple[int, int]] = None

    def _refuse(self, holder: str) -> RunLocked:
        who = f"process {holder}" if holder.isdigit() else "another process"
        return RunLocked(f"{self.path.parent}: in use by {who} (lock {self.path}); wait for it "
                         f"to finish or stop it, or choose another directory")

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover  (Windows)
            return self
        deadline = time.monotonic() + self.DEAD_HOLDER_WAIT
        while True:
            with _HELD_GUARD:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(self.path)
                    if (st.st_dev, st.st_ino) in _HELD:  # ours: never open (and close) it again
                        raise self._refuse(str(os.getpid()))
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = os.read(fd, 64).decode(errors="replace").strip()
                    os.close(fd)  # we hold no lock on this file: closing drops nothing of ours
                else:
                    st = os.fstat(fd)
                    self._key = (st.st_dev, st.st_ino)
                    _HELD[self._key] = fd
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                    self._fd = fd
                    return self
            if _alive(holder) or time.monotonic() > deadline:
                raise self._refuse(holder) from None
            time.sleep(0.1)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with _HELD_GUARD:
                _HELD.pop(self._key, None)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # the file stays (unlinking it would race a new locker)
                os.close(fd)  # closing drops the lock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# Lock files this process holds a RunLock on: (st_dev, st_ino) -> descriptor.
_HELD: dict[Optional[tuple[int, int]], int] = {}
_HELD_GUARD = threading.Lock()


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (as written in a lock file) exists; True when unknown."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM): alive
        return True
    return True


_STALE = re.compile(r"^\.(?P<name>.+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


def remove_stale_temps(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temp files of writes that a SIGKILL interrupted (``.checkpoint-last.pt.
    <random>.tmp`` from ``atomic_write``, ``.checkpoint-best.pt.link``): only ours (the names of
    ``RunDir.FILES``), only directly in ``run_dir``. Call it holding the ``RunLock``: then no write
    of ours is in flight. Returns what was removed."""
    run = Path(run_dir)
    removed = []
    for p in run.iterdir():
        m = _STALE.match(p.name)
        ours = (m is not None and m.group("name") in RunDir.FILES) or p.name == f".{CHECKPOINT_BEST}.link"
        if ours and p.is_file() and not p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def default_run_dir(label: str) -> Path:
    """runs/<date>-<time>-<label> (a config's ``label()``: <variant>-<data>), numbered if it exists."""
    base = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = Path(f"{base}-{i}")
    return path


def check_new_run(run_dir: Path, resuming: bool) -> None:
    """A new run never goes into a directory that holds another one's checkpoint."""
    if not resuming and (run_dir / CHECKPOINT_LAST).exists():
        raise UserError(f"{run_dir}: already holds a training run; continue it with "
                        f"--resume {run_dir}, or choose another --out")


def claim_run_dir(run_dir: Path, resuming: bool, log: Callable[..., None]) -> RunLock:
    """Rank 0 owns the run directory for the whole run (a second process is refused, naming
    the holder), then clears the temp files a killed write left there."""
    lock = RunLock(run_dir).acquire()
    try:
        for p in remove_stale_temps(run_dir):
            log(f"removed {p.name}, left by an interrupted write", console=False)
        check_new_run(run_dir, resuming)
    except BaseException:
        lock.release()
        raise
    return lock
