"""The paper's setup lives in dwp_hub.paper; the old import paths keep working."""

from __future__ import annotations

import warnings

import pytest

import dwp_hub.inference
from dwp_hub import paper
from dwp_hub.registry.defaults import DEFAULT_PRIORS, paper_priors, paper_priors_spec


def test_the_paper_module_holds_the_network_and_defaults() -> None:
    assert set(paper.__all__) <= set(dir(paper))
    assert paper.PAPER_DWP == paper_priors() == {7: DEFAULT_PRIORS[7], 5: DEFAULT_PRIORS[5]}
    assert paper.paper_priors_spec() == paper_priors_spec() == "7=notmnist-7x7,5=notmnist-5x5"
    assert paper.PAPER_PRIORS[:4] == ("dwp", "log-uniform", "standard-normal", "deterministic")
    assert paper.PAPER_INITS == ("auto", "xavier", "dwp") and paper.PAPER_WIDTHS == (32, 128)
    net = paper.paper_net("deterministic", widths=(2, 4))
    assert [m.out_channels for m in net.modules() if hasattr(m, "out_channels")] == [2, 4]


def test_inference_re_exports_paper_net_lazily() -> None:
    assert "paper_net" in dwp_hub.inference.__all__
    assert dwp_hub.inference.paper_net is paper.paper_net
    with pytest.raises(AttributeError):
        _ = dwp_hub.inference.no_such_name


@pytest.mark.parametrize("name", ["PAPER_PRIORS", "PAPER_DWP", "PAPER_INITS", "paper_net", "paper_priors"])
def test_the_old_vi_names_are_deprecated_aliases(name: str) -> None:
    from dwp_hub.inference import vi

    with pytest.warns(DeprecationWarning, match=f"dwp_hub.paper.{name}"):
        value = getattr(vi, name)
    assert value is getattr(paper, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vi.VIRecipe is dwp_hub.inference.VIRecipe  # the module's own names do not warn
    with pytest.raises(AttributeError):
        _ = vi.no_such_name
