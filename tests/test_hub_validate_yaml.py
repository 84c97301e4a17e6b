"""The loopback Hub's ``validate-yaml`` route checks card metadata the way the Hub does: every shipped
card passes through ``huggingface_hub.ModelCard.validate`` over real HTTP, and broken metadata is
refused with the reason (the route used to accept everything)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dwp_hub import constants
from dwp_hub.registry import LocalRegistry

if TYPE_CHECKING:
    from hub_server import HubTestServer

pytest_plugins = ["hub_server"]

_EMBEDDED = LocalRegistry(constants.embedded_registry(), "embedded")
_SHIPPED = [(name, version) for name, versions in sorted(_EMBEDDED.index().items()) for version in sorted(versions)]

_VALID = """---
license: apache-2.0
library_name: dwp-hub
tags: [deep-weight-prior, vae]
datasets: [notmnist]
model-index:
- name: notmnist-7x7
  results:
  - task: {type: density-estimation, name: Kernel density}
    dataset: {type: notmnist, name: notMNIST kernels}
    metrics:
    - {type: elbo, value: 49.6, name: held-out ELBO}
---
# A prior
"""


def validate_card_metadata(content: str) -> list[str]:
    from hub_server import validate_card_metadata as check

    return check(content)


def _readme(name: str, version: str) -> str:
    return (Path(constants.embedded_registry()) / name / version / "README.md").read_text("utf-8")


@pytest.mark.parametrize(("name", "version"), _SHIPPED, ids=[f"{n}@{v}" for n, v in _SHIPPED])
def test_every_shipped_card_passes_the_hub_check(name: str, version: str, hub_server: HubTestServer) -> None:
    from huggingface_hub import ModelCard

    ModelCard(_readme(name, version)).validate()  # raises ValueError on a 400
    assert validate_card_metadata(_readme(name, version)) == []


def test_valid_metadata_passes_and_no_front_matter_is_fine() -> None:
    assert validate_card_metadata(_VALID) == []
    assert validate_card_metadata("# just a title\n") == []


@pytest.mark.parametrize(("change", "needle"), [
    (("license: apache-2.0", "license: my-own-licence"), '"license" must be one of'),
    (("license: apache-2.0", "license: other"), "license_name"),
    (("tags: [deep-weight-prior, vae]", "tags: {a: 1}"), '"tags" must be'),
    (("library_name: dwp-hub", "library_name: [a, b]"), '"library_name" must be a string'),
    (("value: 49.6", "value: high"), "non-numeric value"),
    (("    dataset: {type: notmnist, name: notMNIST kernels}\n", ""), '"model-index" is invalid'),
    (("tags: [deep-weight-prior, vae]", "tags: [deep-weight-prior, vae"), "Invalid YAML"),
])
def test_broken_metadata_is_refused_with_the_reason(change: tuple[str, str], needle: str,
                                                    hub_server: HubTestServer) -> None:
    from huggingface_hub import get_session

    broken = _VALID.replace(*change)
    assert broken != _VALID
    errors = validate_card_metadata(broken)
    assert errors and any(needle in e for e in errors), errors
    # The raw content over HTTP (the client would normalise some of it before sending).
    response = get_session().post(f"{hub_server.endpoint}/api/validate-yaml",
                                  json={"repoType": "model", "content": broken})
    assert response.status_code == 400 and needle in response.text


def test_the_client_validate_raises_on_a_refused_card(hub_server: HubTestServer) -> None:
    from huggingface_hub import ModelCard

    with pytest.raises(ValueError, match="license"):
        ModelCard(_VALID.replace("license: apache-2.0", "license: my-own-licence")).validate()


def test_front_matter_must_be_a_mapping() -> None:
    assert validate_card_metadata("---\n- a\n- b\n---\n") == ["Metadata must be a YAML mapping, got list."]
    assert validate_card_metadata("---\nlicense: mit\n") == ["Metadata front matter is not closed by a '---' line."]
