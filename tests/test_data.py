"""Datasets: the IDX reader on the real files, fixed splits, and corrupt or missing data."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dwp_hub.data import (
    DATASETS,
    dataset_sha256,
    ensure_dataset,
    load_idx_dataset,
    mnist10k_protocol,
    read_idx,
    source_split,
)
from dwp_hub._fs import md5_file as _md5
from dwp_hub.errors import DataIntegrityError, DataNotFoundError, OfflineError


def _hashes(x: np.ndarray, y: np.ndarray | None = None) -> list[str]:
    return [hashlib.md5(img.tobytes() + (b"" if y is None else bytes([int(lbl)]))).hexdigest()
            for img, lbl in zip(x, y if y is not None else np.zeros(len(x)), strict=True)]


# -- the real files ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "notmnist"])
def test_real_idx_files(data_root: Path, name: str) -> None:
    spec = DATASETS[name]
    images_path, labels_path = ensure_dataset(name, data_root, download=False)
    assert images_path == data_root / spec.folder / spec.images.name
    assert _md5(images_path) == spec.images.md5 and _md5(labels_path) == spec.labels.md5
    images, labels = read_idx(images_path), read_idx(labels_path)
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))
    x, y = load_idx_dataset(name, data_root, download=False)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int64 and np.array_equal(y, labels)
    assert np.array_equal((x[:, 0] * 255).round().astype(np.uint8), images)
    digest = dataset_sha256(name, data_root)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == dataset_sha256(name, data_root)


def test_checksums_match_the_published_ones(data_root: Path) -> None:
    """The pinned md5s are the data README's (10k files) and the public MNIST mirror's (torchvision)."""
    from torchvision.datasets import MNIST

    readme = (data_root / "README.md").read_text("utf-8")
    for name in ("mnist", "notmnist"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}/` |"))
        images, labels = re.search(r"images `([0-9a-f]{32})`, labels `([0-9a-f]{32})`", row).groups()
        assert (DATASETS[name].images.md5, DATASETS[name].labels.md5) == (images, labels)
    published = dict(MNIST.resources)
    for name in ("mnist", "mnist-train"):
        for f in (DATASETS[name].images, DATASETS[name].labels):
            assert f.md5 == published[f.name] and all(u.endswith("/" + f.name) for u in f.urls)


def test_dataset_sha256_is_images_then_labels(data_root: Path) -> None:
    images, labels = ensure_dataset("notmnist", data_root, download=False)
    want = hashlib.sha256(images.read_bytes() + labels.read_bytes()).hexdigest()
    assert dataset_sha256("notmnist", data_root) == want != dataset_sha256("mnist", data_root)


@pytest.mark.parametrize(("images", "labels"), [((4, 28, 28), (3,)), ((4, 28, 28), (4, 1)), ((4, 784), (4,))])
def test_images_and_labels_must_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      images: tuple[int, ...], labels: tuple[int, ...]) -> None:
    import dataclasses

    spec = DATASETS["mnist"]
    unpinned = dataclasses.replace(spec, images=dataclasses.replace(spec.images, md5=None),
                                   labels=dataclasses.replace(spec.labels, md5=None))
    monkeypatch.setitem(DATASETS, "mnist", unpinned)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / spec.images.name).write_bytes(gzip.compress(_idx_bytes(np.zeros(images))))
    (tmp_path / "mnist" / spec.labels.name).write_bytes(gzip.compress(_idx_bytes(np.zeros(labels))))
    with pytest.raises(DataIntegrityError, match="do not match"):
        load_idx_dataset("mnist", tmp_path, download=False)


def test_data_root_from_environment(data_root: Path) -> None:
    from dwp_hub import constants

    assert constants.data_root() == data_root and constants.data_root_is_explicit()
    x, _ = load_idx_dataset("mnist", download=False)
    assert len(x) == 10_000


def test_notmnist_source_split(data_root: Path) -> None:
    s = source_split("notmnist", seed=0, root=data_root)
    assert len(s.x_train) == len(s.y_train) == 9_000 and len(s.x_eval) == len(s.y_eval) == 1_000
    assert "9,000 train / 1,000 val" in s.protocol and "seed 0" in s.protocol
    x, y = load_idx_dataset("notmnist", data_root)
    # train + val is exactly the 10k file (a partition: notMNIST holds duplicate glyphs, so compare multisets)
    assert Counter(_hashes(s.x_train, s.y_train)) + Counter(_hashes(s.x_eval, s.y_eval)) == Counter(_hashes(x, y))
    again, other = source_split("notmnist", seed=0, root=data_root), source_split("notmnist", seed=1, root=data_root)
    assert np.array_equal(again.x_eval, s.x_eval) and not np.array_equal(other.x_eval, s.x_eval)


def test_mnist_source_split_never_touches_evaluation_half(data_root: Path) -> None:
    s = source_split("mnist", seed=0, root=data_root)
    assert (len(s.x_train), len(s.x_eval)) == (4_500, 500)
    x, _ = load_idx_dataset("mnist", data_root)
    first, second = set(_hashes(x[:5000])), set(_hashes(x[5000:]))
    used = set(_hashes(s.x_train)) | set(_hashes(s.x_eval))
    assert used == first and not used & second


@pytest.mark.parametrize("n_train", [50, 100, 1000])
def test_mnist10k_protocol(data_root: Path, n_train: int) -> None:
    s = mnist10k_protocol(n_train, seed=3, root=data_root)
    x, y = load_idx_dataset("mnist", data_root)
    assert s.x_train.shape == (n_train, 1, 28, 28) and s.y_train.shape == (n_train,)
    assert np.bincount(s.y_train, minlength=10).tolist() == [n_train // 10] * 10  # stratified
    assert np.array_equal(s.x_eval, x[5000:]) and np.array_equal(s.y_eval, y[5000:])
    train = _hashes(s.x_train)
    assert len(set(train)) == n_train  # drawn without replacement
    assert set(train) <= set(_hashes(x[:5000])) and not set(train) & set(_hashes(x[5000:]))
    assert "test 5000-9999" in s.protocol and f": {n_train} stratified from 0-4999 (seed 3)" in s.protocol
    same, other = mnist10k_protocol(n_train, seed=3, root=data_root), mnist10k_protocol(n_train, seed=4, root=data_root)
    assert np.array_equal(same.x_train, s.x_train) and not np.array_equal(other.x_train, s.x_train)


@pytest.mark.parametrize("n_train", [0, 5, 55, 5010, -10])
def test_mnist10k_protocol_bad_size(data_root: Path, n_train: int) -> None:
    with pytest.raises(ValueError, match="multiple of 10"):
        mnist10k_protocol(n_train, seed=0, root=data_root)


def _positions(x: np.ndarray, pool: np.ndarray) -> list[int]:
    """Index in ``pool`` of each image of ``x`` (MNIST images 0-4999 are all distinct)."""
    where = {img.tobytes(): i for i, img in enumerate(pool)}
    assert len(where) == len(pool)
    return [where[img.tobytes()] for img in x]


def test_mnist10k_validation_protocol_ranges(data_root: Path) -> None:
    x, y = load_idx_dataset("mnist", data_root)
    smallest = int(np.bincount(y[:2500], minlength=10).min())  # the whole rarest class of 0-2499 is drawable
    s = mnist10k_protocol(smallest * 10, seed=1, root=data_root, protocol="validation")
    assert np.array_equal(s.x_eval, x[2500:5000]) and np.array_equal(s.y_eval, y[2500:5000])  # scores 2500-4999
    pos = _positions(s.x_train, x[:5000])
    assert len(set(pos)) == smallest * 10 and max(pos) <= 2499  # drawn from 0-2499 only, without replacement
    assert np.array_equal(s.y_train, y[pos]) and np.bincount(s.y_train).tolist() == [smallest] * 10
    assert s.protocol == (f"MNIST-10k validation protocol: {smallest * 10} stratified from 0-2499 (seed 1), "
                          "validate on 2500-4999")
    with pytest.raises(ValueError, match=re.escape(f"images 0-2499 hold only {smallest} ")) as info:
        mnist10k_protocol(smallest * 10 + 10, seed=1, root=data_root, protocol="validation")
    assert f"use n_train <= {smallest * 10}." in str(info.value)
    with pytest.raises(ValueError, match=re.escape("multiple of 10 in [10, 2500]")):
        mnist10k_protocol(2510, seed=1, root=data_root, protocol="validation")
    with pytest.raises(ValueError, match="Unknown protocol 'val'"):
        mnist10k_protocol(50, seed=1, root=data_root, protocol="val")


def test_mnist10k_test_protocol_rarest_class(data_root: Path) -> None:
    _, y = load_idx_dataset("mnist", data_root)
    smallest = int(np.bincount(y[:5000], minlength=10).min())
    s = mnist10k_protocol(smallest * 10, seed=0, root=data_root)  # exactly the rarest class is fine
    assert np.bincount(s.y_train).tolist() == [smallest] * 10
    for n in (smallest * 10 + 10, 5000):  # 5000 is in range, but no class has 500 images in 0-4999
        with pytest.raises(ValueError, match=re.escape(f"images 0-4999 hold only {smallest} of the rarest")):
            mnist10k_protocol(n, seed=0, root=data_root)


def test_mnist10k_protocol_selection_is_stable(data_root: Path) -> None:
    """Recorded results name only (n_train, seed): the images a seed selects must never change."""
    x, y = load_idx_dataset("mnist", data_root)
    s = mnist10k_protocol(10, seed=0, root=data_root)
    assert _positions(s.x_train, x[:5000]) == [2475, 947, 1290, 439, 4227, 1342, 70, 182, 3227, 4245]
    assert s.y_train.tolist() == [2, 8, 3, 6, 0, 4, 7, 5, 1, 9]  # shuffled, not grouped by class


def test_notmnist10k_protocol_uses_the_notmnist_file(data_root: Path) -> None:
    x, y = load_idx_dataset("notmnist", data_root)
    s = mnist10k_protocol(20, seed=7, root=data_root, protocol="validation", dataset="notmnist")
    assert np.array_equal(s.x_eval, x[2500:5000]) and np.array_equal(s.y_eval, y[2500:5000])
    assert set(_hashes(s.x_train, s.y_train)) <= set(_hashes(x[:2500], y[:2500]))
    assert s.protocol == "notMNIST-10k validation protocol: 20 stratified from 0-2499 (seed 7), validate on 2500-4999"
    t = mnist10k_protocol(20, seed=7, root=data_root, dataset="notmnist")
    assert np.array_equal(t.x_eval, x[5000:]) and "test 5000-9999" in t.protocol
    with pytest.raises(ValueError, match="not 'cifar10'"):
        mnist10k_protocol(20, seed=7, root=data_root, dataset="cifar10")


@pytest.mark.parametrize(("name", "n_val"), [("notmnist", 1000), ("mnist", 500)])
def test_source_split_follows_the_recorded_seed(data_root: Path, name: str, n_val: int) -> None:
    """The protocol records only the seed: validation is the first n_val of default_rng(seed).permutation."""
    x, y = load_idx_dataset(name, data_root)
    x, y = (x, y) if name == "notmnist" else (x[:5000], y[:5000])
    perm = np.random.default_rng(2).permutation(len(x))
    s = source_split(name, seed=2, root=data_root)
    assert np.array_equal(s.x_eval, x[perm[:n_val]]) and np.array_equal(s.y_eval, y[perm[:n_val]])
    assert np.array_equal(s.x_train, x[perm[n_val:]]) and np.array_equal(s.y_train, y[perm[n_val:]])


# -- corrupt files -------------------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_read_idx_synthetic_round_trip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), arr) and np.array_equal(read_idx(tmp_path / "a.gz"), arr)


@pytest.mark.parametrize(("code", "dtype"), [(0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")])
def test_read_idx_big_endian_types(tmp_path: Path, code: int, dtype: str) -> None:
    """IDX stores multi-byte values big-endian; the reader returns them in native byte order."""
    arr = (np.arange(-6, 6).reshape(3, 4) * 37.25).astype(dtype)
    header = bytes([0, 0, code, 2]) + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    (tmp_path / "t.idx").write_bytes(header + arr.tobytes())
    out = read_idx(tmp_path / "t.idx")
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(("content", "gz", "match"), [
    (_idx_bytes(np.zeros((4, 28, 28)))[:-10], True, "data bytes"),  # truncated data
    (_idx_bytes(np.zeros((4, 28, 28))) + b"x", False, "data bytes"),  # trailing garbage
    (_idx_bytes(np.zeros((4, 28, 28)))[:10], False, "truncated"),  # truncated header
    (b"PK\x03\x04 not idx at all", False, "magic"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01x", False, "magic"),  # first magic byte must be zero
    (b"\x00\x01\x08\x01\x00\x00\x00\x01x", False, "magic"),  # second magic byte must be zero
    (b"\x00\x00\x07\x01\x00\x00\x00\x01x", False, "magic"),  # unknown dtype code
    (b"", False, "magic"),
    (b"\x1f\x8b garbage that claims to be gzip", None, "Cannot read"),
    (gzip.compress(_idx_bytes(np.zeros((4, 28, 28))))[:-20], None, "Cannot read"),  # truncated gzip stream
])
def test_corrupt_idx(tmp_path: Path, content: bytes, gz: bool | None, match: str) -> None:
    path = tmp_path / ("f.gz" if gz is not False else "f.idx")
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(DataIntegrityError, match=match) as info:
        read_idx(path)
    assert isinstance(info.value, OSError) and str(path) in str(info.value)


def test_md5_mismatch(tmp_path: Path, data_root: Path) -> None:
    spec = DATASETS["mnist"]
    (tmp_path / "mnist").mkdir()
    shutil.copyfile(data_root / "mnist" / spec.labels.name, tmp_path / "mnist" / spec.labels.name)
    (tmp_path / "mnist" / spec.images.name).write_bytes(gzip.compress(_idx_bytes(np.zeros((10, 28, 28)))))
    with pytest.raises(DataIntegrityError, match=f"expected {spec.images.md5}.*download again"):
        load_idx_dataset("mnist", tmp_path, download=False)


def test_truncated_real_file(tmp_path: Path, data_root: Path) -> None:
    spec = DATASETS["notmnist"]
    (tmp_path / "notmnist").mkdir()
    raw = (data_root / "notmnist" / spec.images.name).read_bytes()
    (tmp_path / "notmnist" / spec.images.name).write_bytes(raw[: len(raw) // 2])
    shutil.copyfile(data_root / "notmnist" / spec.labels.name, tmp_path / "notmnist" / spec.labels.name)
    with pytest.raises(DataIntegrityError, match="md5"):
        load_idx_dataset("notmnist", tmp_path, download=False)


# -- missing data --------------------------------------------------------------------------------
def test_missing_data_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_idx_dataset("mnist", tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "mnist") in msg and "DWP_HUB_DATA" in msg and "https://" in msg
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "mnist").exists()  # nothing created


def test_missing_data_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DWP_HUB_DATA", raising=False)
    monkeypatch.setenv("DWP_HUB_HOME", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "data" / "notmnist"))):
        ensure_dataset("notmnist", download=False)


def test_missing_data_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DWP_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline"):
        ensure_dataset("mnist", tmp_path, download=True)


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="Unknown dataset 'fashion'.*mnist"):
        load_idx_dataset("fashion", tmp_path)
    with pytest.raises(DataNotFoundError, match="No source split"):
        source_split("emnist", root=tmp_path)
