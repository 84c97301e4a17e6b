"""The transfer benefit of a prior (VI with it against the standard normal, paired over seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

import dwp_hub
from dwp_hub.errors import ConfigError
from dwp_hub.training.transfer import TransferResult, TransferSpec, evaluate_transfer


def test_spec_is_validated() -> None:
    with pytest.raises(ConfigError, match="transfer.dataset"):
        TransferSpec(dataset="cifar10")
    with pytest.raises(ConfigError, match="at least one seed"):
        TransferSpec(seeds=())


def test_result_pairs_seeds() -> None:
    r = TransferResult(TransferSpec(seeds=(0, 1)), (0.8, 0.7), (0.75, 0.72))
    assert r.benefit == pytest.approx(0.015) and r.benefit_std == pytest.approx(0.0495, abs=1e-3)
    d = r.to_dict()
    assert d["spec"]["seeds"] == [0, 1] and d["benefit"] == 0.015
    assert "+0.015" in r.summary() and "mnist" in r.summary()


def test_evaluate_transfer_runs_both_arms_on_the_target_domain(tiny_registry: Path, data_root: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import dwp_hub.inference as inference

    trained: list[dict[str, str]] = []
    calls: list[tuple[object, int, float]] = []  # (recipe, eval images, acc_ensemble) per fit
    real_fit = inference.fit_vi

    def spy(model: object, *args: object, **kwargs: object) -> object:
        layers = inference.bayesian_layers(model)
        trained.append({n: f"{type(m.prior).__name__} {m.prior.describe()}" for n, m in layers})
        res = real_fit(model, *args, **kwargs)
        calls.append((args[2], len(kwargs["x_eval"]), res.metrics["acc_ensemble"]))
        return res

    monkeypatch.setattr(inference, "fit_vi", spy)
    runs = []
    spec = TransferSpec(dataset="notmnist", protocol="validation", n_train=10, seeds=(0,), steps=2, batch_size=10,
                        n_eval=97)  # 97 images: accuracies k/97 have more than 4 decimals
    r = evaluate_transfer(dwp_hub.load("tiny-7x7"), 7, spec, on_run=lambda arm, s, a: runs.append((arm, s)))
    assert runs == [("prior", 0), ("standard-normal", 0)]
    with_prior, baseline = trained  # the prior arm puts the prior on the 7x7 layer only; the baseline has none
    assert with_prior["0"].startswith("DeepWeightPriorKL") and "tiny-7x7" in with_prior["0"]
    assert with_prior["3"].startswith("StandardNormalKL")
    assert all(v.startswith("StandardNormalKL") for v in baseline.values()) and baseline.keys() == with_prior.keys()
    assert len(r.acc_prior) == 1 and 0.0 <= r.acc_prior[0] <= 1.0
    # both arms get the same recipe: 2 steps of the whole 10-image set = 2 epochs, batch 10, the split's seed
    for recipe, n_eval, _ in calls:
        assert (recipe.epochs, recipe.batch_size, recipe.seed) == (2, 10, 0)
        assert recipe == inference.VIRecipe(epochs=2, batch_size=10, seed=0)  # the paper's recipe otherwise
        assert n_eval == 97  # scored on the first n_eval images
    # the written row holds each arm's MC-ensemble accuracy rounded to 4 places
    (_, _, acc_prior), (_, _, acc_sn) = calls
    assert r.acc_prior != (acc_prior,)  # the raw accuracy is not already a 4-decimal number
    assert r.acc_prior == (round(acc_prior, 4),) and r.acc_standard_normal == (round(acc_sn, 4),)
    assert r.spec is spec and r.to_card().acc_prior == [round(acc_prior, 4)]
    assert "notMNIST-10k validation protocol" in r.split_protocol
    with pytest.raises(ConfigError, match="no 3x3 layer"):
        evaluate_transfer(dwp_hub.load("tiny-3x3"), 3, spec)


def test_transfer_goes_into_the_card_and_its_readme(tiny_registry: Path) -> None:
    import dataclasses

    from dwp_hub._render import render_readme
    from dwp_hub.card import PriorCard

    card = dwp_hub.load("tiny-7x7").card
    assert card.transfer is None and "transfer" not in card.to_dict()  # unmeasured: omitted, old cards unchanged
    r = TransferResult(TransferSpec(seeds=(0, 1, 2)), (0.80, 0.82, 0.79), (0.75, 0.78, 0.76), split_protocol="x")
    with_t = dataclasses.replace(card, transfer=r.to_card())
    again = PriorCard.from_json(with_t.to_json())
    assert again.transfer == with_t.transfer and again.transfer.benefit == pytest.approx(0.04)
    text = render_readme(again)
    assert "Transfer benefit" in text and "+0.040" in text and "helps" in text


def test_model_cards_have_hub_metadata_with_eval_results() -> None:
    """Every shipped prior's card renders front matter that huggingface_hub parses, with a model-index."""
    from huggingface_hub import ModelCard

    from dwp_hub._render import render_readme
    from dwp_hub.card import card_from_weights_file

    root = Path(__file__).resolve().parents[1] / "priors"
    weights = sorted(root.glob("*/*/model.safetensors"))
    assert len(weights) >= 10
    for path in weights:
        card = card_from_weights_file(path)
        parsed = ModelCard(render_readme(card))
        assert parsed.data.library_name == "dwp-hub" and parsed.data.license == "mit"
        assert parsed.data.model_name == card.spec and card.source.domain in parsed.data.datasets
        metrics = {r.metric_type: r.metric_value for r in parsed.data.eval_results}
        assert metrics["elbo"] == pytest.approx(card.metrics.heldout_elbo, abs=1e-3)
        assert metrics["iw-log-likelihood"] == pytest.approx(card.metrics.heldout_iw_log_likelihood, abs=1e-3)
