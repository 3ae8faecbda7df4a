"""Output files: atomic writes, and the check before a run that each output path can be written."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

from amanflix_stress.errors import UsageError

PROBE_BYTES = 64 * 1024  # written, synced and removed before the run: a disk that cannot take this is full
FILE_MODE = 0o666  # before the umask, as open() would create it (mkstemp's 0600 would hide reports from cron)


def write_atomic(path: str, text: str) -> None:
    """A reader sees the old file or the whole new one, never a part: temp file, fsync, rename. On failure
    the temp file is removed and the OSError propagates (the caller names the path)."""
    target = os.path.realpath(path)  # a symlinked report stays a symlink to the new file
    refuse_non_file(target)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), FILE_MODE & ~current_umask())
            out.write(text)
            out.flush()
            os.fsync(out.fileno())  # disk full and EIO can surface only here (delayed allocation, NFS)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def refuse_non_file(path: str) -> None:
    """A directory, device or FIFO at `path` is never replaced (a rename would swap /dev/full for a file)."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if os.path.lexists(path) and not os.path.isfile(path):
        raise OSError(errno.EINVAL, "not a regular file")


def current_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def check_writable(path: str, what: str) -> None:
    """Before the run: `path` can be written (created or replaced). A UsageError names `what` (the flag), the
    path and the OS error: a read-only or full disk, a directory where a file goes, a missing permission."""
    try:
        probe(path)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None


def probe(path: str) -> None:
    """Create the folder, then write, sync and remove PROBE_BYTES beside `path`."""
    target = os.path.realpath(path)
    refuse_non_file(target)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".amanflix-stress-probe-", dir=folder)
    try:
        if os.write(fd, bytes(PROBE_BYTES)) != PROBE_BYTES:  # a short write is a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)
