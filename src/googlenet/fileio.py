"""Files written safely, usable from every layer (like ``googlenet.errors``, it imports nothing
else of the package): ``atomic_write`` (temp file in the same folder, fsync, rename: a crash
leaves the old file or the new one, never a truncated one) and ``check_writable_dir`` (an output
location checked before any work starts)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

from .errors import FileSystemError, UserError

__all__ = ["atomic_write", "check_writable_dir", "check_regular_file", "fs_error", "TEMP_SUFFIX",
           "NAME_MAX"]

TEMP_SUFFIX = ".tmp"  # atomic_write's temp files: ".{name}.<random>.tmp" beside the target
NAME_MAX = 255  # bytes in one file name on ext4, xfs, btrfs, APFS, NTFS


def fs_error(e: OSError, path: str | os.PathLike, doing: str = "cannot write") -> FileSystemError:
    """An OSError as a one-line ``FileSystemError``: the path and the system's reason."""
    reason = e.strerror or str(e) or type(e).__name__
    other = os.fsdecode(e.filename) if e.filename is not None else None
    if other and other != os.fspath(path) and not other.endswith(TEMP_SUFFIX):
        reason += f" ({other})"  # e.g. the folder above that is a file
    hint = "; free some space and run again" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return FileSystemError(f"{path}: {doing}: {reason}{hint}")


def not_regular(path: str | os.PathLike) -> Optional[str]:
    """None if ``path`` names a regular file (symlinks followed), else why not, in words: no such
    file, permission denied, a directory, a FIFO (named pipe), a socket, a device. Only ``stat``
    is called: opening a FIFO blocks until a writer appears, possibly forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:  # permission denied, name too long, not a directory, a symlink loop
        return e.strerror or str(e)
    except ValueError:  # a NUL byte in the name
        return "not a valid file name"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
    return f"{kind}, not a regular file; refused (reading it could block)"


def check_regular_file(path: str | os.PathLike, what: str = "",
                       error: type[UserError] = UserError) -> Path:
    """``path`` if it names a regular file, else ``error`` (a ``UserError``) naming it and why
    (``not_regular``); ``what`` leads the message (e.g. ``--weights``)."""
    why = not_regular(path)
    if why is not None:
        raise error(f"{what + ' ' if what else ''}{path}: {why}")
    return Path(path)


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask, without changing it where the OS can tell (Linux /proc); elsewhere
    by setting and restoring it under a lock (other threads may create files meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that a crash at any moment leaves either the old file or the new one.

    ``write(tmp_path)`` writes the content to a temporary file in the same directory, which is
    then fsynced and renamed over ``path`` (rename is atomic on POSIX), and the directory fsynced.
    The file gets the mode a plain ``open(path, "w")`` would give it (the old file's, else
    0o666 minus the umask; mkstemp's own is 0o600). An OSError (disk full, permission denied, a
    path under a file) becomes a one-line ``FileSystemError`` naming the path; the temp file is
    removed and the previous file is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise fs_error(e, path) from None
    os.close(fd)
    try:
        write(tmp)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise fs_error(e, path) from None
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems refuse fsync on directories; the rename already happened
        pass
    return path


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """Check, before any work starts, that ``path`` is (or can be created as) a folder we can
    write in; nothing is created. ``what`` names the option (``--out``) in the message.

    FileSystemError for: a name longer than the file system allows, ``path`` or a folder above
    it being a file, permission denied (or a read-only file system) where it would be written.
    """
    p = Path(path).expanduser()
    for part in p.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise FileSystemError(f"{what} {p}: file name too long ({len(os.fsencode(part))} "
                                  f"bytes in {part[:20]}...; the limit is {NAME_MAX})")
    probe = p
    while True:
        try:
            mode = os.stat(probe).st_mode
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise FileSystemError(f"{what} {p}: no such file system") from None
            probe = probe.parent
        except OSError as e:  # permission denied on a folder above, a file above (ENOTDIR)
            if e.errno == errno.ENOTDIR:
                probe = probe.parent
                continue
            raise FileSystemError(f"{what} {p}: {e.strerror or e}") from None
    if not stat.S_ISDIR(mode):
        where = "is a file, not a folder" if probe == p else f"{probe} is a file, not a folder"
        raise FileSystemError(f"{what} {p}: {where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FileSystemError(f"{what} {p}: permission denied (cannot write in {probe})")
    if probe == p:  # exists: a real write finds a read-only file system that access() may miss
        try:
            with tempfile.TemporaryFile(dir=p):
                pass
        except OSError as e:
            raise FileSystemError(f"{what} {p}: cannot write: {e.strerror or e}") from None
    return p
