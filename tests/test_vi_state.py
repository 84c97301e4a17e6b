"""The fast bound's per-layer state lives on the layer (buffers), and older checkpoints still resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dwp_hub.errors import ConfigError
from dwp_hub.inference import (
    PRIOR_CLASSES,
    Bound,
    DeepWeightPriorKL,
    LogUniformKL,
    Sampler,
    StandardNormalKL,
    VIRecipe,
    fit_vi,
    paper_net,
)
from dwp_hub.inference.vi import CHECKPOINT_META_KEY, _legacy_sampler_states, load_checkpoint, read_checkpoint


def _data(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_state_is_in_the_layer_buffers(tiny_registry: Path) -> None:
    model = paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(2, 8), kernels_per_step=4)
    keys = set(model.state_dict())
    for name in DeepWeightPriorKL.STATE_BUFFERS:
        assert f"3.{name}" in keys
    layer = model[3]
    x, y = _data()
    fit_vi(model, x, y, VIRecipe(epochs=3, batch_size=20), progress=False)
    assert int(layer.dwp_cursor) > 0 and layer.dwp_cv_seen.any()
    assert sorted(layer.dwp_perm.tolist()) == list(range(layer.n_kernels))


def test_enums_and_the_prior_registry() -> None:
    assert Bound.parse("fast") is Bound.FAST and Sampler.parse(Sampler.UNIFORM) is Sampler.UNIFORM
    with pytest.raises(ConfigError, match="Unknown bound 'fastest'; use one of full, fast"):
        Bound.parse("fastest")
    assert PRIOR_CLASSES["log-uniform"] is LogUniformKL and PRIOR_CLASSES["vd"] is LogUniformKL
    assert PRIOR_CLASSES["normal"] is StandardNormalKL and PRIOR_CLASSES["dwp"] is DeepWeightPriorKL


def test_format_1_checkpoint_resumes_with_its_sampler_state(tiny_registry: Path, tmp_path: Path) -> None:
    """A checkpoint written before the state moved into the layers (format 1: state as extra tensors)
    resumes: the sampler position and control-variate memory are restored into the buffers."""
    def build() -> torch.nn.Module:
        return paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(2, 8), kernels_per_step=4)

    x, y = _data()
    ck = tmp_path / "run.safetensors"
    recipe = VIRecipe(epochs=6, batch_size=20, checkpoint_every=2)

    class Stop(Exception):
        pass

    def crash(step: int, rec: dict) -> None:
        if step == 4:  # after the step-2 checkpoint, before the step-4 one
            raise Stop

    with pytest.raises(Stop):
        fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False, callback=crash)
    tensors, meta = read_checkpoint(ck)
    assert meta["format_version"] == 2 and meta["step"] == 2
    # rewrite it as format 1 would have stored it
    old = {}
    for key, value in tensors.items():
        prefix, _, buf = key.rpartition(".")
        if key.startswith("model/") and buf in DeepWeightPriorKL.STATE_BUFFERS:
            layer = prefix[len("model/"):]
            new = {"dwp_perm": f"cycle/{layer}/perm", "dwp_cursor": f"cycle/{layer}/cursor",
                   "dwp_cv_theta": f"cv/{layer}/theta", "dwp_cv_log_sigma2": f"cv/{layer}/log_sigma2",
                   "dwp_cv_seen": f"cv/{layer}/seen"}[buf]
            old[f"extra/{new}"] = value.to(torch.uint8) if value.dtype == torch.bool else value
        else:
            old[key] = value
    meta.pop("extra", None)
    meta["format_version"] = 1
    save_file(old, str(ck), metadata={CHECKPOINT_META_KEY: json.dumps(meta)})
    expected = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/") and "dwp_" in k}
    assert int(expected["3.dwp_cursor"]) > 0 and expected["3.dwp_cv_seen"].any()
    model = build()
    meta1 = load_checkpoint(ck, model)  # missing buffers are tolerated for format 1 ...
    _legacy_sampler_states(model, meta1["extra"])  # ... and filled from its extra tensors
    state = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    result = fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False)
    assert result.resumed_from == 2 and result.steps == 6
    # through fit_vi's own resume path: the run ends where an uninterrupted one does, bit for bit (without the
    # sampler state restored, the kernels drawn after step 2 differ and so do the weights)
    straight = fit_vi(build(), x, y, recipe, progress=False)
    want, got = straight.model.state_dict(), result.model.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_fit_vi_leaves_the_global_generator_alone() -> None:
    x, y = _data()
    m1, m2 = paper_net("standard-normal", widths=(2, 4)), paper_net("standard-normal", widths=(2, 4))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = fit_vi(m1, x, y, VIRecipe(epochs=2, batch_size=10, seed=7), x_eval=x, y_eval=y, progress=False)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream continues as if fit_vi never ran
    b = fit_vi(m2, x, y, VIRecipe(epochs=2, batch_size=10, seed=7), x_eval=x, y_eval=y, progress=False)
    assert a.final == b.final and a.metrics == b.metrics  # and the run is still seeded by its recipe
