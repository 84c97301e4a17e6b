"""Reader for the IDX format used by MNIST and its relatives (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dwp_hub.errors import DataIntegrityError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array.

    Raises:
        DataIntegrityError: the file is truncated or not IDX.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DataIntegrityError(
            f"Cannot read {path}: {err}. Delete the file and download it again."
        ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataIntegrityError(f"{path} is not an IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataIntegrityError(f"{path} is truncated (header).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataIntegrityError(
            f"{path} holds {len(raw) - header} data bytes, expected {expected} for shape {shape}."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
