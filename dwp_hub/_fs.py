"""File-system helpers: atomic writes, hashing, safe names."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publishable_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the permissions a normally created file or directory would have
    (temp files are created private; published files must be readable by the team)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success rename it onto ``dest``, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publishable_mode(tmp_path)
        os.replace(tmp_path, dest)
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


def md5_file(path: str | Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks: only to compare downloads with published md5 sums
    (data mirrors publish md5); everything dwp-hub pins itself uses :func:`sha256_file`."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
