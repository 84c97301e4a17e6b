"""The card schema: every shipped card in the embedded registry, the tiny test priors, and the
validation of malformed cards.

The shipped priors are parametrised from ``priors/index.json`` at collection time, so a prior
added to the embedded registry is checked without editing this file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import TINY
from safetensors import safe_open

from dwp_hub import constants
from dwp_hub.card import ArchConfig, PriorCard, card_from_weights_file, read_safetensors_header
from dwp_hub.errors import CardError, IntegrityError
from dwp_hub.registry import LocalRegistry, Version, validate_name

_HEX64 = re.compile(r"[0-9a-f]{64}")
_EMBEDDED = LocalRegistry(constants.embedded_registry(), "embedded")


def _shipped() -> list[Any]:
    params = [pytest.param(name, version, id=f"{name}@{version}")
              for name, versions in sorted(_EMBEDDED.index().items()) for version in sorted(versions)]
    return params or [pytest.param(None, None, id="none-shipped-yet",
                                   marks=pytest.mark.skip(reason="the embedded registry has no priors yet"))]


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def check_prior_folder(reg: LocalRegistry, name: str, version: str, *, shipped: bool) -> PriorCard:
    """Assert everything the card schema promises about ``name@version`` in ``reg``."""
    folder = reg.folder(name, Version.parse(version))
    entry = reg.entry(name, Version.parse(version))
    # Integrity first: every file against the index and checksums.json.
    card = reg.verify(name, Version.parse(version))
    assert set(entry["files"]) == set(json.loads((folder / "checksums.json").read_text()))
    assert {"model.safetensors", "README.md", "samples.png"} <= set(entry["files"])

    # Header: the card JSON and its schema version live in the safetensors metadata.
    meta = read_safetensors_header(folder / "model.safetensors")["__metadata__"]
    assert meta[constants.SCHEMA_METADATA_KEY] == str(constants.CARD_SCHEMA_VERSION)
    assert PriorCard.from_json(meta[constants.CARD_METADATA_KEY]) == card == card_from_weights_file(folder / "model.safetensors")
    assert PriorCard.from_json(card.to_json()) == card
    assert PriorCard.from_dict(json.loads(card.to_json())) == card

    # Identity.
    assert (card.name, card.version) == (name, version)
    assert validate_name(card.name) == card.name and str(Version.parse(card.version)) == card.version
    assert card.schema_version == constants.CARD_SCHEMA_VERSION
    assert card.description.strip()

    # Architecture rebuilds the module; the stored tensors fit it exactly.
    import torch

    from dwp_hub.model._io import read_weights, tensors_sha256
    from dwp_hub.model.vae import KernelVAE

    a = card.arch
    assert isinstance(a, ArchConfig) and a.kernel_size == card.kernel_size
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        stored = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in KernelVAE(a).state_dict().items()}
    assert stored == expected
    _, tensors = read_weights(folder / "model.safetensors")
    assert _HEX64.fullmatch(card.weights_sha256)
    assert card.expected_weights_sha256(tensors_sha256(tensors)) == card.weights_sha256  # scope-aware
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in tensors.values())

    # Provenance.
    s = card.source
    assert s.domain and s.network and s.layer
    assert s.n_networks >= 1 and all(0 <= i < s.n_networks for i in s.held_out_networks)
    assert not s.checkpoints or len(s.checkpoints) == s.n_networks
    assert s.dataset_sha256 == "" or _HEX64.fullmatch(s.dataset_sha256)
    k = card.kernels
    assert 0 < k.kept <= k.total and k.n_train > 0 and k.n_train + k.n_held_out == k.kept
    assert k.prune_rule and _finite(k.prune_threshold)

    # Recipe, metrics, statistics.
    t = card.training
    assert t.epochs >= 1 and t.lr > 0 and t.batch_size >= 1 and isinstance(t.seed, int)
    m = card.metrics
    assert _finite(m.heldout_elbo, m.heldout_iw_log_likelihood, m.train_elbo)
    assert m.iw_k >= 1 and 1 <= m.n_heldout_kernels and 0 <= m.n_iw_kernels <= m.n_heldout_kernels
    st = card.kernel_stats
    assert _finite(st.mean, st.std) and st.std > 0
    qs = [st.norm_quantiles[q] for q in ("q05", "q25", "q50", "q75", "q95")]
    assert qs == sorted(qs) and qs[0] >= 0

    # Bookkeeping.
    created = dt.datetime.fromisoformat(card.created)
    assert created.tzinfo is not None and created <= dt.datetime.now(dt.UTC)
    assert card.dwp_hub_version and card.license
    assert "Deep Weight Prior" in card.citation

    # The index entry agrees with the card.
    assert entry["kernel_size"] == a.kernel_size and entry["source"] == s.domain
    assert entry["heldout_elbo"] == m.heldout_elbo and entry["description"] == card.description

    # README: a Hugging Face model card.
    readme = (folder / "README.md").read_text("utf-8")
    assert readme.startswith("---\n")
    front = yaml.safe_load(readme.split("---\n")[1])
    assert front["library_name"] == "dwp-hub" and front["license"] == card.license.lower()
    assert "deep-weight-prior" in front["tags"] and front["datasets"] == [s.domain]
    assert set(front["metrics"]) >= {"elbo", "iw-log-likelihood"}
    assert f"# {name} v{version}" in readme and "(samples.png)" in readme and card.weights_sha256 in readme

    png = (folder / "samples.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000

    if shipped:  # Never ship a test or random prior presented as a trained one.
        assert s.domain != "synthetic" and s.n_networks >= 2 and s.held_out_networks and k.n_held_out > 0
        checkpoints_hashed = bool(s.checkpoints) and all(_HEX64.fullmatch(c.get("sha256", "")) for c in s.checkpoints)
        # Provenance: the sha256 of the source data, or (for priors harvested from third-party
        # checkpoints whose training data is not available, e.g. CIFAR ResNets) of every checkpoint.
        assert _HEX64.fullmatch(s.dataset_sha256) or checkpoints_hashed, "shipped priors record their provenance hashes"
        assert not s.checkpoints or checkpoints_hashed
        assert t.seconds > 0 and t.torch_version
        assert m.iw_k >= 100 and m.n_iw_kernels >= min(100, m.n_heldout_kernels)
        # The IW bound is above the one-sample ELBO (up to Monte-Carlo noise).
        assert m.heldout_iw_log_likelihood >= m.heldout_elbo - 1.0
    return card


@pytest.mark.parametrize(("name", "version"), _shipped())
def test_shipped_card(name: str, version: str) -> None:
    check_prior_folder(_EMBEDDED, name, version, shipped=True)


def test_embedded_index_matches_folders() -> None:
    root = _EMBEDDED.root
    index = _EMBEDDED.index()  # raises if malformed
    on_disk = {(p.parent.name, p.name) for p in root.glob("*/*") if p.is_dir() and not p.name.startswith(".")}
    indexed = {(n, v) for n, vs in index.items() for v in vs}
    assert on_disk == indexed
    for name in index:
        assert validate_name(name) == name


def test_tiny_cards(tiny_registry: Path) -> None:
    reg = LocalRegistry(tiny_registry)
    seen = set()
    for name, (arch, versions) in TINY.items():
        for version in versions:
            card = check_prior_folder(reg, name, version, shipped=False)
            assert card.arch == arch
            seen.add(card.weights_sha256)
    assert len(seen) == sum(len(v) for _, v in TINY.values())  # every version has its own weights


# -- validation of malformed cards ----------------------------------------------------------------
@pytest.fixture()
def card_dict(tiny_registry: Path) -> dict[str, Any]:
    return json.loads(card_from_weights_file(tiny_registry / "tiny-3x3" / "1.0.0" / "model.safetensors").to_json())


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *head, last = path.split(".")
    for key in head:
        d = d[key]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value
    return d


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "match"), [
    ("schema_version", 2, "schema version"),
    ("schema_version", _DELETE, "schema version"),
    ("name", _DELETE, "missing required field card.name"),
    ("metrics.heldout_elbo", _DELETE, "card.metrics.heldout_elbo"),
    ("surprise", 1, "Unknown card field"),
    ("source.surprise", 1, "card.source"),
    ("training.epochs", "10", "card.training.epochs"),
    ("training.epochs", True, "card.training.epochs"),
    ("metrics.heldout_elbo", "high", "card.metrics.heldout_elbo"),
    ("source.held_out_networks", 3, "card.source.held_out_networks"),
    ("kernel_stats.norm_quantiles", [1, 2], "card.kernel_stats.norm_quantiles"),
    ("arch", "conv7", "card.arch"),
    ("arch.kind", "transformer", "Unknown VAE kind"),
    ("arch.kernel_size", 0, "out of range"),
    ("arch.z_dim", 2.5, "card.arch.z_dim"),
    ("arch.activation", "swish", "Unknown activation"),
    ("metrics.reference_elbo", "x", "reference_elbo"),
    ("recipe", {"fit": {"seed": 2**64}}, "card.recipe holds an integer out of range"),
    ("source.checkpoints", [{"size": -2**63 - 1}], "card.source.checkpoints holds an integer out of range"),
])
def test_malformed_card_rejected(card_dict: dict[str, Any], path: str, value: Any, match: str) -> None:
    _set(card_dict, path, value)
    with pytest.raises(CardError, match=match) as info:
        PriorCard.from_dict(card_dict)
    assert isinstance(info.value, ValueError)  # what a caller validating input naturally catches


def test_optional_fields_and_defaults(card_dict: dict[str, Any]) -> None:
    card_dict["metrics"]["reference_elbo"] = None
    del card_dict["recipe"], card_dict["license"]
    card_dict["arch"].pop("activation", None)  # cards written before the field existed
    card = PriorCard.from_dict(card_dict)
    assert card.arch.activation == "elu"
    assert card.metrics.reference_elbo is None and card.license == "MIT" and card.recipe == {}
    assert card.spec == f"{card.name}@{card.version}" and card.kernel_size == 3 and card.z_dim == card.arch.z_dim
    assert PriorCard.from_dict(card.to_dict()) == card  # the typed card round-trips through its dict


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"card"'])
def test_card_json_garbage(text: str) -> None:
    with pytest.raises(CardError):
        PriorCard.from_json(text)


def test_weights_file_without_card(tmp_path: Path, tiny_registry: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CardError, match="no dwp-hub card"):
        card_from_weights_file(tmp_path / "plain.safetensors")
    with safe_open(str(tiny_registry / "tiny-7x7" / "1.1.0" / "model.safetensors"), "pt") as fh:
        meta = dict(fh.metadata())  # a real, valid card: only the schema number is wrong
    for schema in ("99", None):
        future = {**meta, constants.SCHEMA_METADATA_KEY: schema} if schema else {
            k: v for k, v in meta.items() if k != constants.SCHEMA_METADATA_KEY}
        save_file({"x": torch.zeros(2)}, str(tmp_path / "future.safetensors"), metadata=future)
        with pytest.raises(CardError, match=rf"card schema {schema!r}; this dwp-hub reads"):
            card_from_weights_file(tmp_path / "future.safetensors")


@pytest.mark.parametrize("content", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxx",
                                     b"\x02\x00\x00\x00\x00\x00\x00\x00[]"])
def test_header_garbage_is_integrity_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(IntegrityError, match="model.safetensors") as info:
        read_safetensors_header(path)
    assert isinstance(info.value, OSError) and info.value.path == path
    with pytest.raises(IntegrityError, match="missing"):
        read_safetensors_header(tmp_path / "absent.safetensors")
