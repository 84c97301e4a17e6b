"""Known datasets, where their files live under the data root, and verified downloads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dwp_hub import constants
from dwp_hub._fs import md5_file
from dwp_hub.data._idx import read_idx
from dwp_hub.errors import DataIntegrityError, DataNotFoundError, OfflineError


@dataclass(frozen=True)
class _File:
    name: str
    md5: str | None
    urls: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset split stored as an IDX image file and an IDX label file.

    Attributes:
        folder: sub-folder of the data root.
        images, labels: the two files, each with its md5 and public mirrors.
        license: the dataset licence.
        citation: how to cite it.
    """

    name: str
    folder: str
    images: _File
    labels: _File
    license: str
    citation: str
    classes: tuple[str, ...] = field(default_factory=lambda: tuple(str(i) for i in range(10)))


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_NOTMNIST_MIRRORS = ("https://github.com/davidflanagan/notMNIST-to-MNIST/raw/master/",)


def _f(name: str, md5: str | None, mirrors: tuple[str, ...]) -> _File:
    return _File(name, md5, tuple(m + name for m in mirrors))


_MNIST_CITE = "LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to document recognition. 1998."
_NOTMNIST_CITE = "Bulatov. notMNIST dataset. 2011. http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html"

#: Datasets dwp-hub knows by name. ``mnist``/``notmnist`` are the 10k test files the offline
#: protocols use; ``mnist-train`` is the full 60k training set for the paper's own protocol.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist",
        "mnist",
        _f("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", _MNIST_MIRRORS),
        _f("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", _MNIST_MIRRORS),
        "CC BY-SA 3.0",
        _MNIST_CITE,
    ),
    "mnist-train": DatasetSpec(
        "mnist-train",
        "mnist",
        _f("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", _MNIST_MIRRORS),
        _f("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", _MNIST_MIRRORS),
        "CC BY-SA 3.0",
        _MNIST_CITE,
    ),
    "notmnist": DatasetSpec(
        "notmnist",
        "notmnist",
        _f("t10k-images-idx3-ubyte.gz", "2c87c839a4ef9b238846600eec8c35b7", _NOTMNIST_MIRRORS),
        _f("t10k-labels-idx1-ubyte.gz", "7ea9118cbafd0f6e3ee2ad771d782a01", _NOTMNIST_MIRRORS),
        "see http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html",
        _NOTMNIST_CITE,
        classes=tuple("ABCDEFGHIJ"),
    ),
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError as err:
        raise DataNotFoundError(
            f"Unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}."
        ) from err




def _download(file: _File, dest: Path) -> None:
    if constants.offline():
        raise OfflineError(
            f"{dest} is missing and dwp-hub is offline (HF_HUB_OFFLINE/DWP_HUB_OFFLINE). "
            f"Copy {file.name} there by hand or unset the offline flag."
        )
    from torchvision.datasets.utils import download_url

    errors = []
    for url in file.urls:
        try:
            download_url(url, str(dest.parent), filename=dest.name, md5=file.md5)
            return
        except Exception as err:  # noqa: BLE001 - try the next mirror, report all at the end
            errors.append(f"{url}: {err}")
    raise DataNotFoundError(
        f"Could not download {file.name} into {dest.parent}:\n  " + "\n  ".join(errors)
        + f"\nPut the file there by hand, or set DWP_HUB_DATA to a folder holding {dest.parent.name}/."
    )


def ensure_dataset(name: str, root: str | Path | None = None, download: bool = True) -> tuple[Path, Path]:
    """Return the image and label paths of ``name``, downloading and md5-verifying if needed.

    Raises:
        DataNotFoundError: the files are absent and cannot be downloaded.
        DataIntegrityError: a file exists but its md5 does not match the published one.
    """
    spec = _spec(name)
    root = Path(root) if root is not None else constants.data_root()
    out = []
    for file in (spec.images, spec.labels):
        path = root / spec.folder / file.name
        if not path.exists():
            if not download:
                raise DataNotFoundError(
                    f"{path} not found. Set DWP_HUB_DATA to the folder holding {spec.folder}/ "
                    f"or allow downloading from {file.urls[0]}."
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            _download(file, path)
        if file.md5 is not None and md5_file(path) != file.md5:
            raise DataIntegrityError(
                f"{path} has md5 {md5_file(path)}, expected {file.md5}. Delete it and download again."
            )
        out.append(path)
    return out[0], out[1]


def idx_sha256(name: str, root: str | Path | None = None) -> str:
    """sha256 over the image file then the label file of an IDX dataset (see :func:`dwp_hub.data.dataset_sha256`)."""
    images, labels = ensure_dataset(name, root, download=False)
    h = hashlib.sha256()
    for path in (images, labels):
        h.update(path.read_bytes())
    return h.hexdigest()


def load_idx_dataset(
    name: str, root: str | Path | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 in [0, 1] with shape ``[N, 1, 28, 28]`` and labels as int64 ``[N]``."""
    images_path, labels_path = ensure_dataset(name, root, download)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataIntegrityError(
            f"{name}: images {images.shape} and labels {labels.shape} do not match."
        )
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)
