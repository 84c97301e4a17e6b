"""``model.safetensors``: save -> load round trips are bit-exact, cards included."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from dwp_hub._api import load_folder
from dwp_hub.card import ArchConfig, KernelsInfo, KernelStats, Metrics, PriorCard, SourceInfo, TrainingInfo
from dwp_hub.errors import CardError, IntegrityError
from dwp_hub.model._io import build_vae, read_weights, tensors_sha256, vae_tensors, write_weights
from dwp_hub.model.vae import KernelVAE

ARCHS = [ArchConfig("conv7", 7, 2, 32), ArchConfig("conv5", 5, 4, 16), ArchConfig("mlp", 3, 4, 64)]


def make_card(arch: ArchConfig, weights_sha256: str, **changes: object) -> PriorCard:
    """A valid hand-made card (for format tests only; never published)."""
    card = PriorCard(
        name="io-test", version="1.2.3", description="Round-trip test card (ünïcödé ok).", arch=arch,
        source=SourceInfo("synthetic", "", "none", "0.weight", 2, [1], "tests", [{"file": "a", "sha256": "0" * 64}] * 2),
        kernels=KernelsInfo(100, 90, 80, 10, "L2 norm >= 0.01", 0.01),
        training=TrainingInfo(epochs=1, lr=1e-3, batch_size=8, seed=0, build_seconds=None),
        metrics=Metrics(heldout_elbo=-1.5, heldout_iw_log_likelihood=-1.25, iw_k=10, train_elbo=-1.0,
                        n_heldout_kernels=10, n_iw_kernels=10, reference_elbo=None),
        kernel_stats=KernelStats(0.0, 0.1, {"q05": 0.1, "q25": 0.2, "q50": 0.3, "q75": 0.4, "q95": 0.5}),
        weights_sha256=weights_sha256, created="2024-01-01T00:00:00+00:00", dwp_hub_version="0.0.0",
        recipe={"nested": {"list": [1, 2.5, "x"], "none": None}},
    )
    return dataclasses.replace(card, **changes)


def _random_vae(arch: ArchConfig, seed: int = 0) -> KernelVAE:
    torch.manual_seed(seed)
    return KernelVAE(arch)


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.kind)
def test_round_trip_bit_exact(tmp_path: Path, arch: ArchConfig) -> None:
    vae = _random_vae(arch)
    tensors = vae_tensors(vae)
    card = make_card(arch, tensors_sha256(tensors))
    path = tmp_path / "model.safetensors"
    write_weights(path, tensors, card)

    card2, tensors2 = read_weights(path)
    assert card2 == card and card2.to_json() == card.to_json()
    assert set(tensors2) == set(tensors)
    for key, t in tensors.items():
        t2 = tensors2[key]
        assert t2.dtype == t.dtype == torch.float32 and t2.shape == t.shape
        assert torch.equal(t2.view(torch.int32), t.view(torch.int32))  # bit-exact, NaN-safe

    rebuilt = build_vae(card2, tensors2)
    assert not any(p.is_meta for p in rebuilt.parameters())
    for (k1, v1), (k2, v2) in zip(vae.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    z = torch.randn(17, arch.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(vae.decoder(z), rebuilt.decoder(z), strict=True):
            assert torch.equal(a, b)

    # Re-serialising gives the same bytes (safetensors 0.8 writes its metadata map in random key order;
    # write_weights sorts it).
    write_weights(tmp_path / "again.safetensors", tensors2, card2)
    assert path.read_bytes() == (tmp_path / "again.safetensors").read_bytes()


def test_round_trip_through_version_folder(tiny_registry: Path) -> None:
    folder = tiny_registry / "tiny-7x7" / "1.1.0"
    prior = load_folder(folder)  # verified against checksums.json alone
    card, tensors = read_weights(folder / "model.safetensors")
    assert prior.card == card
    for key, value in prior.vae.state_dict().items():
        assert torch.equal(value, tensors[key])


def test_write_refuses_mismatched_card(tmp_path: Path) -> None:
    arch = ARCHS[2]
    tensors = vae_tensors(_random_vae(arch))
    with pytest.raises(CardError, match="weights_sha256"):
        write_weights(tmp_path / "model.safetensors", tensors, make_card(arch, "0" * 64))
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_read_refuses_modified_tensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from dwp_hub.constants import CARD_METADATA_KEY, CARD_SCHEMA_VERSION, SCHEMA_METADATA_KEY

    arch = ARCHS[2]
    tensors = vae_tensors(_random_vae(arch))
    card = make_card(arch, tensors_sha256(tensors))
    tensors["decoder.heads.mean.bias"][0] += 1e-6
    save_file(tensors, str(tmp_path / "model.safetensors"),
              metadata={CARD_METADATA_KEY: card.to_json(), SCHEMA_METADATA_KEY: str(CARD_SCHEMA_VERSION)})
    with pytest.raises(IntegrityError, match="weights_sha256"):
        read_weights(tmp_path / "model.safetensors")


def test_tensors_sha256_properties() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, generator=g), torch.randn(5, generator=g)
    base = tensors_sha256({"a": a, "b": b})
    assert tensors_sha256({"b": b, "a": a}) == base  # order-independent
    assert tensors_sha256({"a": a.clone(), "b": b.clone()}) == base
    assert tensors_sha256({"a": a.t().contiguous().t(), "b": b}) == base  # layout-independent
    assert tensors_sha256({"a": a.reshape(4, 3), "b": b}) != base  # shape matters
    assert tensors_sha256({"a": a.double(), "b": b}) != base  # dtype matters
    assert tensors_sha256({"c": a, "b": b}) != base  # names matter
    bumped = a.clone()
    bumped.view(torch.int32)[0, 0] ^= 1  # one flipped bit
    assert tensors_sha256({"a": bumped, "b": b}) != base
    assert tensors_sha256({"a": a, "b": b, "e": torch.empty(0)}) != base


def test_build_vae_refuses_wrong_architecture() -> None:
    tensors = vae_tensors(_random_vae(ArchConfig("mlp", 3, 4, 64)))
    card = make_card(ArchConfig("mlp", 3, 4, 32), tensors_sha256(tensors))
    with pytest.raises(CardError, match="do not fit the architecture"):
        build_vae(card, tensors)
    missing = {k: v for k, v in tensors.items() if not k.startswith("decoder.heads.var")}
    with pytest.raises(CardError):
        build_vae(make_card(ArchConfig("mlp", 3, 4, 64), tensors_sha256(missing)), missing)


def test_write_weights_is_byte_deterministic(tmp_path: Path) -> None:
    """The same tensors and card give the same file bytes (safetensors itself writes its metadata in
    hash-map order), so a version written twice -- locally and for the Hub -- has one sha256."""
    from safetensors import safe_open

    arch = ARCHS[2]
    tensors = vae_tensors(_random_vae(arch))
    card = make_card(arch, tensors_sha256(tensors))
    digests = set()
    for i in range(8):
        write_weights(tmp_path / f"m{i}.safetensors", tensors, card)
        digests.add(hashlib.sha256((tmp_path / f"m{i}.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
    back_card, back = read_weights(tmp_path / "m0.safetensors")
    assert back_card == card and all(torch.equal(back[k], tensors[k]) for k in tensors)
    raw = (tmp_path / "m0.safetensors").read_bytes()
    assert (8 + int.from_bytes(raw[:8], "little")) % 8 == 0  # the data section stays 8-byte aligned
    with safe_open(str(tmp_path / "m0.safetensors"), "pt") as fh:
        assert list(fh.metadata()) and sorted(fh.metadata()) == sorted(json.loads(raw[8:8 + int.from_bytes(
            raw[:8], "little")])["__metadata__"])
