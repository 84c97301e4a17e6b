"""The CIFAR path of the data layer, the Table 2 CIFAR net and the CIFAR-100 recipes.

CIFAR images are not available on the build machines, so every test runs on a tiny synthetic
stand-in written in the official binary format (label byte(s) + 3,072 pixel bytes per record).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dwp_hub.data import (
    CIFAR_DATASETS,
    dataset_sha256,
    ensure_cifar,
    load_cifar,
    read_cifar_binary,
    source_split,
)
from dwp_hub.errors import (
    ConfigError, DataIntegrityError, DataNotFoundError, OfflineError, RecipeError, TrainingError,
)
from dwp_hub.model.nets import NetConfig, build_net, input_shape
from dwp_hub.training.harvest import read_checkpoint
from dwp_hub.training.recipe import load_recipe, parse_recipe
from dwp_hub.training.source import SourceRecipe, train_one

REPO = Path(__file__).resolve().parents[1]
N_TRAIN = 40  # records per training file of the stand-in
N_TEST = 10


def _records(n: int, label_bytes: int, num_classes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` random records; returns the bytes, the pixels [n, 3, 32, 32] and the last label."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = np.stack([rng.integers(0, 20, n), rng.integers(0, num_classes, n)], 1)[:, -label_bytes:]
    rows = np.concatenate([labels.astype(np.uint8), pixels.reshape(n, -1)], axis=1)
    return rows.tobytes(), pixels, labels[:, -1].astype(np.int64)


def _stand_in_files(name: str, seed: int = 0) -> tuple[dict[str, bytes], dict[str, tuple[np.ndarray, np.ndarray]]]:
    spec = CIFAR_DATASETS[name]
    blobs, truth = {}, {}
    for i, f in enumerate(spec.train_files + spec.test_files):
        n = N_TEST if f in spec.test_files else N_TRAIN
        blobs[f], px, lab = _records(n, spec.label_bytes, spec.num_classes, seed + i)
        truth[f] = (px, lab)
    return blobs, truth


def write_stand_in(root: Path, name: str, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the extracted binary files of a tiny ``name`` under ``root``; return their truth."""
    spec = CIFAR_DATASETS[name]
    base = root / spec.folder / spec.base_dir
    base.mkdir(parents=True, exist_ok=True)
    blobs, truth = _stand_in_files(name, seed)
    for f, data in blobs.items():
        (base / f).write_bytes(data)
    return truth


def _stand_in_archive(name: str) -> bytes:
    """A ``.tar.gz`` laid out like the official binary archive, holding the stand-in files."""
    spec = CIFAR_DATASETS[name]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f, data in _stand_in_files(name)[0].items():
            info = tarfile.TarInfo(f"{spec.base_dir}/{f}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root on DWP_HUB_DATA, offline so nothing can touch the network."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DWP_HUB_DATA", str(root))
    monkeypatch.setenv("DWP_HUB_OFFLINE", "1")
    return root


# --- reader -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_cifar_reads_the_binary_format(cifar_root: Path, name: str) -> None:
    truth = write_stand_in(cifar_root, name)
    spec = CIFAR_DATASETS[name]
    x, y = load_cifar(name, "train")
    assert x.shape == (N_TRAIN * len(spec.train_files), 3, 32, 32)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    want_px = np.concatenate([truth[f][0] for f in spec.train_files])
    want_y = np.concatenate([truth[f][1] for f in spec.train_files])
    np.testing.assert_array_equal(np.rint(x * 255).astype(np.uint8), want_px)
    np.testing.assert_array_equal(y, want_y)  # CIFAR-100: the fine label (second byte)
    xt, yt = load_cifar(name, "test")
    assert xt.shape == (N_TEST, 3, 32, 32)
    np.testing.assert_array_equal(yt, truth[spec.test_files[0]][1])


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rows = np.zeros((2, 2 + 3072), np.uint8)
    rows[:, 0], rows[:, 1] = [3, 7], [42, 99]  # coarse, fine
    path = tmp_path / "train.bin"
    path.write_bytes(rows.tobytes())
    images, labels = read_cifar_binary(path, label_bytes=2)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [[3, 42], [7, 99]]


def test_truncated_file_is_an_integrity_error(cifar_root: Path) -> None:
    write_stand_in(cifar_root, "cifar10")
    f = cifar_root / "cifar10" / "cifar-10-batches-bin" / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataIntegrityError, match="whole number"):
        load_cifar("cifar10")


@pytest.mark.parametrize("label", [10, 12, 255])
def test_label_out_of_range_is_an_integrity_error(cifar_root: Path, label: int) -> None:
    write_stand_in(cifar_root, "cifar10")
    f = cifar_root / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(f.read_bytes())
    raw[0] = 9
    f.write_bytes(bytes(raw))
    assert load_cifar("cifar10", "test")[1][0] == 9  # the last class is fine
    raw[0] = label
    f.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=f"has label {label}, but CIFAR-10 has 10 classes"):
        load_cifar("cifar10", "test")


def test_empty_record_file_is_an_integrity_error(tmp_path: Path) -> None:
    (tmp_path / "test_batch.bin").write_bytes(b"")
    with pytest.raises(DataIntegrityError, match="holds 0 bytes"):
        read_cifar_binary(tmp_path / "test_batch.bin", label_bytes=1)


def test_unknown_split_is_refused(cifar_root: Path) -> None:
    write_stand_in(cifar_root, "cifar10")
    with pytest.raises(ConfigError, match="split must be 'train' or 'test', got 'val'"):
        load_cifar("cifar10", "val")


def test_dataset_sha256_covers_cifar(cifar_root: Path) -> None:
    write_stand_in(cifar_root, "cifar100")
    spec = CIFAR_DATASETS["cifar100"]
    base = cifar_root / spec.folder / spec.base_dir
    h = hashlib.sha256()
    for f in spec.train_files + spec.test_files:  # train files then test files, as documented
        h.update((base / f).read_bytes())
    digest = dataset_sha256("cifar100")
    assert digest == h.hexdigest()
    write_stand_in(cifar_root, "cifar10")
    assert dataset_sha256("cifar10") != digest
    for f in (spec.train_files[0], spec.test_files[-1]):  # one byte changed in any record file changes it
        raw = bytearray((base / f).read_bytes())
        raw[-1] ^= 1
        (base / f).write_bytes(bytes(raw))
        assert dataset_sha256("cifar100") != digest
        raw[-1] ^= 1
        (base / f).write_bytes(bytes(raw))
    assert dataset_sha256("cifar100") == digest


# --- missing data, offline, archives ------------------------------------------------------------


def test_missing_offline_says_where_to_put_the_files(cifar_root: Path) -> None:
    with pytest.raises(OfflineError) as info:
        load_cifar("cifar100")
    msg = str(info.value)
    assert str(cifar_root / "cifar100") in msg and "cifar-100-binary.tar.gz" in msg
    assert "03b5dce01913d631647c71ecec9e9cb8" in msg


def test_missing_without_download_is_data_not_found(cifar_root: Path) -> None:
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-bin"):
        ensure_cifar("cifar10", download=False)
    with pytest.raises(DataNotFoundError):
        dataset_sha256("cifar10")  # provenance never downloads


def test_archive_with_wrong_md5_is_refused(cifar_root: Path) -> None:
    folder = cifar_root / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-binary.tar.gz").write_bytes(_stand_in_archive("cifar10"))
    with pytest.raises(DataIntegrityError, match="c32a1d4ab5d03f1284b67883e8d87530"):
        load_cifar("cifar10")
    assert not (folder / "cifar-10-batches-bin").exists()


def test_hand_placed_archive_is_verified_and_extracted(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    blob = _stand_in_archive("cifar10")
    spec = dataclasses.replace(CIFAR_DATASETS["cifar10"], md5=hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(CIFAR_DATASETS, "cifar10", spec)
    folder = cifar_root / "cifar10"
    folder.mkdir()
    (folder / spec.archive).write_bytes(blob)
    x, _ = load_cifar("cifar10")  # offline is fine: nothing to download
    assert x.shape == (5 * N_TRAIN, 3, 32, 32)
    assert sorted(p.name for p in folder.iterdir()) == [spec.base_dir, spec.archive]


def _archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _place_archive(cifar_root: Path, monkeypatch: pytest.MonkeyPatch, blob: bytes) -> Path:
    """Put ``blob`` where the cifar10 archive goes, with the spec's md5 set to match it; return the folder."""
    import dataclasses

    spec = dataclasses.replace(CIFAR_DATASETS["cifar10"], md5=hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(CIFAR_DATASETS, "cifar10", spec)
    folder = cifar_root / "cifar10"
    folder.mkdir()
    (folder / spec.archive).write_bytes(blob)
    return folder


def test_archive_of_the_python_version_is_refused(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = _stand_in_files("cifar10")[0]
    python_layout = _archive({f"cifar-10-batches-py/{f}": b for f, b in blobs.items()})
    folder = _place_archive(cifar_root, monkeypatch, python_layout)
    with pytest.raises(DataIntegrityError, match="did not contain cifar-10-batches-bin/; is it the binary version"):
        load_cifar("cifar10")
    assert [p.name for p in folder.iterdir()] == ["cifar-10-binary.tar.gz"]  # the temp folder is removed


def test_archive_that_cannot_be_extracted(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _place_archive(cifar_root, monkeypatch, _stand_in_archive("cifar10")[:-200])
    with pytest.raises(DataIntegrityError, match="Cannot extract"):
        load_cifar("cifar10")
    assert [p.name for p in folder.iterdir()] == ["cifar-10-binary.tar.gz"]


def test_archive_missing_a_record_file(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = _stand_in_files("cifar10")[0]
    del blobs["test_batch.bin"]
    _place_archive(cifar_root, monkeypatch, _archive({f"cifar-10-batches-bin/{f}": b for f, b in blobs.items()}))
    with pytest.raises(DataIntegrityError, match="did not provide test_batch.bin in"):
        load_cifar("cifar10")


def test_download_uses_the_binary_archive_and_md5(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake(url: str, download_root: str, extract_root: str, filename: str, md5: str) -> None:
        calls.append((url, filename, md5))
        with tarfile.open(fileobj=io.BytesIO(_stand_in_archive("cifar100")), mode="r:gz") as tar:
            tar.extractall(extract_root, filter="data")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake)
    monkeypatch.delenv("DWP_HUB_OFFLINE")
    x, y = load_cifar("cifar100")
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "cifar-100-binary.tar.gz",
                      "03b5dce01913d631647c71ecec9e9cb8")]
    assert x.shape == (N_TRAIN, 3, 32, 32) and y.max() < 100
    leftovers = [p.name for p in (cifar_root / "cifar100").iterdir()]
    assert leftovers == ["cifar-100-binary"]  # temp download folder removed


def test_failed_download_leaves_nothing_behind(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fail)
    monkeypatch.delenv("DWP_HUB_OFFLINE")
    with pytest.raises(DataNotFoundError, match="network unreachable") as info:
        load_cifar("cifar10")
    assert "cifar-10-binary.tar.gz" in str(info.value)
    assert list((cifar_root / "cifar10").iterdir()) == []


# --- split ---------------------------------------------------------------------------------------


def test_source_split_cifar100(cifar_root: Path) -> None:
    write_stand_in(cifar_root, "cifar100")
    split = source_split("cifar100", seed=3)
    assert split.x_train.shape == (36, 3, 32, 32) and split.x_eval.shape == (4, 3, 32, 32)
    assert split.protocol == "CIFAR-100 train set: 36 train / 4 val, permutation seed 3"
    again = source_split("cifar100", seed=3)
    np.testing.assert_array_equal(split.y_train, again.y_train)
    other = source_split("cifar100", seed=4)
    assert not np.array_equal(split.x_eval, other.x_eval)
    x, _ = load_cifar("cifar100")  # train and val partition the training file, disjoint
    seen = np.concatenate([split.x_train, split.x_eval]).reshape(40, -1)
    assert sorted(map(bytes, seen)) == sorted(map(bytes, x.reshape(40, -1)))


def test_source_split_cifar10_protocol_at_full_size(cifar_root: Path) -> None:
    write_stand_in(cifar_root, "cifar10")  # 5 batches x 40 = 200 records
    split = source_split("cifar10", seed=0)
    assert (len(split.x_train), len(split.x_eval)) == (180, 20)
    assert split.protocol == "CIFAR-10 train set: 180 train / 20 val, permutation seed 0"
    x, y = load_cifar("cifar10")  # validation is the first 10% of default_rng(seed).permutation, train the rest
    perm = np.random.default_rng(0).permutation(200)
    np.testing.assert_array_equal(split.x_eval, x[perm[:20]])
    np.testing.assert_array_equal(split.y_eval, y[perm[:20]])
    np.testing.assert_array_equal(split.x_train, x[perm[20:]])
    np.testing.assert_array_equal(split.y_train, y[perm[20:]])


# --- Table 2 net -----------------------------------------------------------------------------------


def test_table2_cifar_net_has_the_papers_parameter_count() -> None:
    net = build_net(NetConfig("cifar", (128, 256, 256, 512), in_channels=3, num_classes=10))
    assert sum(p.numel() for p in net.parameters()) == 5_759_498
    convs = [n for n, p in net.named_parameters() if p.ndim == 4]
    assert convs == ["0.weight", "3.weight", "5.weight"]
    assert [tuple(net.get_parameter(n).shape[-2:]) for n in convs] == [(7, 7), (5, 5), (5, 5)]
    assert net(torch.zeros(2, *input_shape(NetConfig("cifar", (128, 256, 256, 512), 3)))).shape == (2, 10)
    assert build_net(NetConfig("fconv", (32, 128))).get_parameter("0.weight").numel() == 32 * 49  # untouched


def test_cifar_net_config_defaults_and_errors() -> None:
    cfg = NetConfig.from_dict({"arch": "cifar", "widths": [4, 8, 8, 16], "num_classes": 100})
    assert cfg.in_channels == 3 and input_shape(cfg) == (3, 32, 32)
    assert build_net(cfg)(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ConfigError, match="four widths"):
        build_net(NetConfig("cifar", (4, 8), 3))


# --- training ------------------------------------------------------------------------------------


def test_train_one_epoch_on_cifar100_stand_in(cifar_root: Path, tmp_path: Path) -> None:
    write_stand_in(cifar_root, "cifar100")
    net = NetConfig("cifar", (4, 8, 8, 16), in_channels=3, num_classes=100)
    recipe = SourceRecipe("cifar100", net, n_nets=1, epochs=1, batch_size=16)
    path = train_one(recipe, 0, tmp_path / "sources")
    state, meta = read_checkpoint(path)
    assert state["0.weight"].shape == (4, 3, 7, 7) and state["10.weight"].shape == (100, 16)
    assert meta["split"] == "CIFAR-100 train set: 36 train / 4 val, permutation seed 0"
    assert meta["dataset_sha256"] == dataset_sha256("cifar100")
    assert meta["recipe"]["net"]["num_classes"] == 100


def test_train_one_rejects_a_net_that_does_not_fit(cifar_root: Path, tmp_path: Path) -> None:
    write_stand_in(cifar_root, "cifar100")
    with pytest.raises(TrainingError, match="num_classes"):
        train_one(SourceRecipe("cifar100", NetConfig("cifar", (4, 8, 8, 16), 3, 10), epochs=1), 0, tmp_path)
    with pytest.raises(TrainingError, match="arch 'cifar'"):
        train_one(SourceRecipe("cifar100", NetConfig("fconv", (4, 8), 1, 100), epochs=1), 0, tmp_path)


# --- recipes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "layer", "k"), [("cifar100-7x7", "0.weight", 7), ("cifar100-5x5", "3.weight", 5)])
def test_cifar100_recipes_parse_and_are_marked_not_yet_run(name: str, layer: str, k: int) -> None:
    path = REPO / "tools" / "recipes" / f"{name}.yaml"
    recipe = load_recipe(path)
    assert recipe.status == "not yet run"
    assert "not available" in path.read_text("utf-8")
    src = recipe.source
    assert isinstance(src, SourceRecipe) and src.dataset == "cifar100"
    assert src.net == NetConfig("cifar", (128, 256, 256, 512), 3, 100)
    assert recipe.harvest.layer == layer and recipe.harvest.kernel_size == k == recipe.arch.kernel_size
    shapes = {n: tuple(p.shape) for n, p in build_net(src.net).named_parameters()}
    assert shapes[layer][-2:] == (k, k)


def test_recipe_status_is_validated() -> None:
    base = {"name": "x-7x7", "version": "1.0.0", "source": {"dataset": "notmnist"},
            "harvest": {"layer": "0.weight", "kernel_size": 7}, "vae": {"kind": "conv7", "z_dim": 2, "hidden": 8}}
    assert parse_recipe(base).status is None
    assert parse_recipe({**base, "status": "published"}).status == "published"
    with pytest.raises(RecipeError, match="status"):
        parse_recipe({**base, "status": "done"})
