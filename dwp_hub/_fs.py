"""File-system helpers: atomic writes, hashing, refusing non-regular files, safe output targets."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from dwp_hub.errors import OutputPathError

__all__ = [
    "NotRegularFileError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_target",
    "fsync_dir", "fsync_file", "open_regular", "publishable_mode", "sha256_file",
]

#: File systems whose files are not data (writing there talks to the kernel or a device).
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


class NotRegularFileError(OSError):
    """A path that must be a regular file is a FIFO, device, socket or directory (or a symlink loop)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | Path) -> BinaryIO:
    """Open an existing regular file for binary reading, refusing anything else **before** opening it.

    FIFOs (which would block forever), devices, sockets and directories raise
    :class:`NotRegularFileError`; a symlink loop raises it too. Symlinks to regular files are
    followed (Hugging Face cache snapshots are symlinks). A missing file raises
    :class:`FileNotFoundError`. The file is opened non-blocking and checked again after opening,
    so a swap between the check and the open cannot make it block.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as err:  # ELOOP, ENAMETOOLONG, EACCES ...
        if err.errno == errno.ELOOP:
            raise NotRegularFileError(errno.ELOOP, "a symlink loop, not a regular file", str(path)) from err
        raise
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publishable_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the permissions a normally created file or directory would have
    (temp files are created private; published files must be readable by the team)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a regular file, read in 1 MiB chunks (see :func:`open_regular`)."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_file(path: str | Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks: only to compare downloads with published md5 sums
    (data mirrors publish md5); everything dwp-hub pins itself uses :func:`sha256_file`."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: str | Path) -> None:
    """Flush a file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to stable storage."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def check_output_target(dest: str | Path) -> Path:
    """Return ``dest`` if writing a file there (by rename) replaces nothing it should not.

    Refused, with :class:`~dwp_hub.errors.OutputPathError` saying why: an empty path, an existing directory, FIFO,
    device or socket, a path under ``/proc``, ``/sys`` or ``/dev``, or a parent that is not a
    directory. An existing regular file (or a symlink to one) may be replaced.
    """
    raw = str(dest)
    if not raw.strip():
        raise OutputPathError("The output path is empty; give a file name, e.g. --out samples.png.", path=raw)
    path = Path(raw)
    resolved = Path(os.path.realpath(path))
    for root in _PSEUDO_ROOTS:
        if resolved == Path(root) or Path(root) in resolved.parents:
            raise OutputPathError(f"{path} is under {root}, which holds kernel or device files, not data; "
                                  "write to a normal folder.", path=path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise OutputPathError(f"{path} cannot be used as an output file ({err.strerror}).", path=path) from err
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{path} exists and is {_kind(st.st_mode)}; refusing to replace it. Give the path "
                              "of a (new or existing) regular file.", path=path)
    parent = resolved.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"Cannot write {path}: {parent} is not a directory.", path=path)
    return path


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success fsync it and rename it onto ``dest`` (then
    fsync the folder), else delete it. Readers see the old file or the complete new one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publishable_mode(tmp_path)
        fsync_file(tmp_path)
        os.replace(tmp_path, dest)
        fsync_dir(dest.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(dest: str | Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temp file and rename."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``dest`` through a temp file and rename."""
    atomic_write_bytes(dest, text.encode("utf-8"))
