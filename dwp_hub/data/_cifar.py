"""CIFAR-10 and CIFAR-100 from their official *binary* archives (never the pickled versions).

Layout under the data root (``DWP_HUB_DATA``)::

    cifar10/cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin, test_batch.bin
    cifar100/cifar-100-binary/train.bin, test.bin

A CIFAR-10 record is 1 label byte then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue,
row-major 32x32); a CIFAR-100 record is 2 label bytes (coarse, fine) then the same 3,072 pixels.
The archives come from https://www.cs.toronto.edu/~kriz/ and are md5-verified against the
published checksums before they are extracted; an archive placed by hand beside the folder is
verified and extracted the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dwp_hub import constants
from dwp_hub._fs import md5_file
from dwp_hub.errors import ConfigError, DataIntegrityError, DataNotFoundError, OfflineError

#: Pixels per image (3 x 32 x 32).
PIXELS = 3 * 32 * 32
_BASE_URL = "https://www.cs.toronto.edu/~kriz/"
_CITE = "Krizhevsky. Learning multiple layers of features from tiny images. Technical report, 2009."


@dataclass(frozen=True)
class CifarSpec:
    """One CIFAR dataset in its binary distribution.

    Attributes:
        name: ``cifar10`` or ``cifar100``.
        title: human-readable name for messages and protocol strings.
        folder: sub-folder of the data root.
        archive: file name of the official binary archive.
        md5: the archive's published md5.
        base_dir: folder the archive extracts to (inside ``folder``).
        train_files: record files of the training set, in order.
        test_files: record files of the test set.
        label_bytes: label bytes per record (the last one is the label used: fine for CIFAR-100).
        num_classes: number of (fine) classes.
    """

    name: str
    title: str
    folder: str
    archive: str
    md5: str
    base_dir: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_bytes: int
    num_classes: int
    license: str = "no explicit licence; free for research, cite the technical report"
    citation: str = _CITE

    @property
    def url(self) -> str:
        """Download address of the binary archive."""
        return _BASE_URL + self.archive

    @property
    def record_bytes(self) -> int:
        """Bytes per record (labels + pixels)."""
        return self.label_bytes + PIXELS

    def files(self, split: str) -> tuple[str, ...]:
        """Record files of ``split`` (``"train"`` or ``"test"``)."""
        if split == "train":
            return self.train_files
        if split == "test":
            return self.test_files
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}.")


#: CIFAR datasets dwp-hub knows by name.
CIFAR_DATASETS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        "cifar10", "CIFAR-10", "cifar10", "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
        "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",),
        label_bytes=1, num_classes=10,
    ),
    "cifar100": CifarSpec(
        "cifar100", "CIFAR-100", "cifar100", "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
        "cifar-100-binary", ("train.bin",), ("test.bin",),
        label_bytes=2, num_classes=100,
    ),
}


def cifar_spec(name: str) -> CifarSpec:
    """The :class:`CifarSpec` of ``name``.

    Raises:
        DataNotFoundError: ``name`` is not a CIFAR dataset.
    """
    try:
        return CIFAR_DATASETS[name]
    except KeyError as err:
        raise DataNotFoundError(
            f"Unknown CIFAR dataset {name!r}; known: {', '.join(sorted(CIFAR_DATASETS))}."
        ) from err


def _where(spec: CifarSpec, folder: Path) -> str:
    files = ", ".join(spec.train_files + spec.test_files)
    return (
        f"Put {spec.archive} (from {spec.url}, md5 {spec.md5}) in {folder}/, or its extracted "
        f"{spec.base_dir}/ folder ({files}); or set DWP_HUB_DATA to a folder holding {spec.folder}/."
    )


def _missing(spec: CifarSpec, base: Path) -> list[str]:
    return [f for f in spec.train_files + spec.test_files if not (base / f).is_file()]


def _move_extracted(spec: CifarSpec, extracted: Path, folder: Path) -> None:
    """Move the files of ``extracted/<base_dir>`` into ``folder/<base_dir>`` (one rename each)."""
    src = extracted / spec.base_dir
    if not src.is_dir():
        raise DataIntegrityError(
            f"{spec.archive} did not contain {spec.base_dir}/; is it the binary version? "
            f"Delete it and download {spec.url} again."
        )
    dest = folder / spec.base_dir
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            os.replace(item, dest / item.name)


def _extract(spec: CifarSpec, archive: Path, folder: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
    try:
        try:
            extract_archive(str(archive), str(tmp))
        except Exception as err:  # noqa: BLE001 - tarfile/gzip raise many types for bad files
            raise DataIntegrityError(
                f"Cannot extract {archive}: {err}. Delete it and download {spec.url} again."
            ) from err
        _move_extracted(spec, tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(spec: CifarSpec, folder: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    try:
        try:
            download_and_extract_archive(spec.url, download_root=str(tmp), extract_root=str(tmp),
                                         filename=spec.archive, md5=spec.md5)
        except Exception as err:  # noqa: BLE001 - network and md5 failures; report them together
            raise DataNotFoundError(
                f"Could not download {spec.url} into {folder}: {err}\n" + _where(spec, folder)
            ) from err
        _move_extracted(spec, tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_cifar(name: str, root: str | Path | None = None, download: bool = True) -> Path:
    """Return the folder holding the record files of ``name``, extracting or downloading if needed.

    Order: the extracted files if all are present; else the archive in ``<root>/<folder>/``
    (md5-verified, then extracted); else a download (md5-verified by torchvision, extracted in a
    temp folder and moved into place, so an interrupted download leaves nothing behind).

    Args:
        name: ``cifar10`` or ``cifar100``.
        root: data root (default :func:`dwp_hub.constants.data_root`).
        download: allow downloading when the files are absent.

    Returns:
        ``<root>/<folder>/<base_dir>``.

    Raises:
        DataNotFoundError: the files are absent and cannot be downloaded.
        OfflineError: a download is needed but dwp-hub is offline.
        DataIntegrityError: the archive does not match its published md5 or is not the binary version.
    """
    spec = cifar_spec(name)
    folder = (Path(root) if root is not None else constants.data_root()) / spec.folder
    base = folder / spec.base_dir
    if not _missing(spec, base):
        return base
    archive = folder / spec.archive
    if archive.is_file():
        digest = md5_file(archive)
        if digest != spec.md5:
            raise DataIntegrityError(
                f"{archive} has md5 {digest}, expected {spec.md5}. Delete it and download {spec.url} again."
            )
        _extract(spec, archive, folder)
    elif not download:
        raise DataNotFoundError(f"{spec.title} not found under {folder}. " + _where(spec, folder))
    elif constants.offline():
        raise OfflineError(
            f"{spec.title} is missing and dwp-hub is offline (HF_HUB_OFFLINE/DWP_HUB_OFFLINE). "
            + _where(spec, folder) + " Or unset the offline flag to download it."
        )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _download(spec, folder)
    missing = _missing(spec, base)
    if missing:
        raise DataIntegrityError(
            f"{spec.archive} did not provide {', '.join(missing)} in {base}. " + _where(spec, folder)
        )
    return base


def read_cifar_binary(path: str | Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary record file.

    Args:
        path: a ``.bin`` file of fixed-size records.
        label_bytes: 1 for CIFAR-10, 2 for CIFAR-100 (coarse, fine).

    Returns:
        Images ``uint8 [N, 3, 32, 32]`` and labels ``uint8 [N, label_bytes]``.

    Raises:
        DataIntegrityError: the file cannot be read, is empty, or is not a whole number of records.
    """
    path = Path(path)
    record = label_bytes + PIXELS
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataIntegrityError(f"Cannot read {path}: {err}.") from err
    if raw.size == 0 or raw.size % record:
        raise DataIntegrityError(
            f"{path} holds {raw.size} bytes, not a whole number of {record}-byte records "
            "(truncated, or not the binary version). Delete it and extract the archive again."
        )
    rows = raw.reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), rows[:, :label_bytes]


def load_cifar(
    name: str, split: str = "train", root: str | Path | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load a CIFAR split.

    Args:
        name: ``cifar10`` or ``cifar100``.
        split: ``train`` (50,000 images) or ``test`` (10,000).
        root: data root (default :func:`dwp_hub.constants.data_root`).
        download: allow downloading when the files are absent.

    Returns:
        Images float32 ``[N, 3, 32, 32]`` in [0, 1] and labels int64 ``[N]`` (the fine labels
        for CIFAR-100).

    Raises:
        DataNotFoundError, OfflineError, DataIntegrityError: see :func:`ensure_cifar`;
        DataIntegrityError also for a label outside ``[0, num_classes)``.
    """
    spec = cifar_spec(name)
    files = spec.files(split)
    base = ensure_cifar(name, root, download)
    images, labels = [], []
    for f in files:
        x, y = read_cifar_binary(base / f, spec.label_bytes)
        if int(y[:, -1].max()) >= spec.num_classes:
            raise DataIntegrityError(
                f"{base / f} has label {int(y[:, -1].max())}, but {spec.title} has {spec.num_classes} classes."
            )
        images.append(x)
        labels.append(y[:, -1])
    x = np.concatenate(images) if len(images) > 1 else images[0]
    y = np.concatenate(labels) if len(labels) > 1 else labels[0]
    x = x.astype(np.float32)
    x /= 255.0
    return x, y.astype(np.int64)


def cifar_sha256(name: str, root: str | Path | None = None) -> str:
    """sha256 over the record files, train files then test files: the provenance hash in cards.

    Raises:
        DataNotFoundError: the files are not there (never downloads).
    """
    spec = cifar_spec(name)
    base = ensure_cifar(name, root, download=False)
    h = hashlib.sha256()
    for f in spec.train_files + spec.test_files:
        with open(base / f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
