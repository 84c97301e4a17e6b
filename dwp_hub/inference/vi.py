"""Train Bayesian nets by variational inference (and the deterministic baseline), evaluate them.

The defaults are the paper's recipe (Section 4.1 and the recipe file): Adam, learning rate 1e-3
with linear decay to 0 over the whole run, 10,000 epochs, batch 256 (so the whole training set
for N ≤ 256), KL weight 1 without annealing, objective ``N · mean CE + Σ KL`` (see
:mod:`dwp_hub.inference.objective`). The deterministic baseline is the same net with plain conv
layers, trained on ``mean CE + l2 · Σ(conv parameters²)`` (the source-network regulariser).

Checkpoints are one safetensors file (model state without the frozen hub decoders, Adam state,
RNG states) with JSON metadata (step, recipe, history), written atomically; a run restarted with
the same checkpoint path continues where it stopped and ends in the same state.

Evaluation: accuracy of the mean softmax of ``eval_mc`` (10) stochastic forward passes (the MC
ensemble), and of one pass with the mean weights.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub._fs import atomic_path
from dwp_hub.errors import CheckpointError, ConfigError, Remedy, TrainingError, UnsupportedLayerError
from dwp_hub.inference._protocols import Precision
from dwp_hub.inference.layers import bayesian_layers, mean_weights
from dwp_hub.inference.objective import LIKELIHOODS, data_term, kl_terms
from dwp_hub.inference.priors import DeepWeightPriorKL, frozen_state_prefixes

#: Header key of the checkpoint metadata.
CHECKPOINT_META_KEY = "dwp_hub.vi_checkpoint"
#: 2: the fast bound's sampler and control-variate state are layer buffers (in the model state);
#: 1 kept them as extra tensors (still read, see :func:`_legacy_sampler_states`).
_FORMAT_VERSION = 2


@dataclass(frozen=True)
class VIRecipe:
    """Optimisation settings (defaults: the paper's recipe).

    Attributes:
        epochs: passes over the training set (10,000 in the paper).
        lr: Adam learning rate, decayed linearly to 0 over all steps.
        batch_size: examples per step (the whole set when N ≤ batch_size).
        kl_weight: multiplier of the KL term (1: the true ELBO).
        l2: weight of Σ(conv parameters²) — deterministic baseline only.
        seed: seeds the weight noise and the batch order.
        eval_mc: stochastic passes of the MC-ensemble evaluation.
        checkpoint_every: steps between checkpoints (when a checkpoint path is given).
        eval_every: steps between evaluations on the eval set recorded in the history (0: only at the end).
        likelihood: ``"categorical"`` (classification, the paper's) or ``"gaussian"`` (regression with
            observation noise ``noise_std``); see :func:`~dwp_hub.inference.objective.data_term`.
        precision: ``"fp32"`` or ``"bf16"`` (:class:`~dwp_hub.inference.Precision`): the training forward
            pass under bfloat16 autocast; parameters, KL terms, the optimiser and evaluation stay fp32.
            Refused on a CPU without native bf16. Accuracy and speed: ``docs/results/bench_vi.md``.
    """

    epochs: int = 10_000
    lr: float = 1e-3
    batch_size: int = 256
    kl_weight: float = 1.0
    l2: float = 1e-3
    seed: int = 0
    eval_mc: int = 10
    checkpoint_every: int = 1000
    eval_every: int = 0
    likelihood: str = "categorical"
    noise_std: float = 1.0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_mc < 1 or self.checkpoint_every < 1:
            raise ValueError(f"epochs, batch_size, eval_mc and checkpoint_every must be >= 1: {self}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr}.")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"Unknown likelihood {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}.")
        if not (self.noise_std > 0 and math.isfinite(self.noise_std)):
            raise ConfigError(f"noise_std must be positive, got {self.noise_std}.")
        object.__setattr__(self, "precision", Precision.parse(self.precision).value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, default in (("likelihood", "categorical"), ("noise_std", 1.0), ("precision", "fp32")):
            if d[key] == default:  # omitted at the default: checkpoints of earlier runs still match
                del d[key]
        return d


@dataclass
class VIResult:
    """What :func:`fit_vi` / :func:`fit_deterministic` return.

    Attributes:
        model: the trained model (the same object that was passed in).
        objective: ``"vi"`` or ``"deterministic"``.
        steps: optimisation steps in total; ``resumed_from``: step the run resumed at (0: fresh).
        seconds: wall time of the steps run in this call; ``ms_per_step`` likewise.
        total_seconds: wall time of all ``steps``, across resumed calls (checkpoints record it); ``None``
            when the run resumed from a checkpoint written before checkpoints recorded it.
        final: last step's loss terms (``loss``, ``data``, ``kl`` or ``l2``).
        metrics: evaluation on the eval set (``acc_ensemble``, ``acc_mean``, ``nll_ensemble``), if given.
        history: periodic records (step, epoch, loss terms, eval metrics when ``eval_every``).
    """

    model: nn.Module
    objective: str
    steps: int
    resumed_from: int
    seconds: float
    ms_per_step: float
    final: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    total_seconds: float | None = None


# -- evaluation ----------------------------------------------------------------------------
@torch.no_grad()
def predict_proba(model: nn.Module, x: Tensor, mc: int = 10, batch: int = 100) -> Tensor:
    """Mean softmax over ``mc`` stochastic passes (Bayesian layers sample; ``mc=0``: mean weights).

    The passes sample as the layers are set (local reparameterisation unless changed, as in training and in
    the paper's evaluation); :func:`~dwp_hub.inference.predict` draws weights by default. Batches of ~100
    keep the activations cache-sized, which is faster on CPU than large batches.
    """
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            if mc == 0 or not bayesian_layers(model):
                with mean_weights(model):
                    out.append(F.softmax(model(xb), dim=1))
            else:
                out.append(torch.stack([F.softmax(model(xb), dim=1) for _ in range(mc)]).mean(0))
        return torch.cat(out)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, x: Any, y: Any = None, mc: int = 10, batch: int = 100, *,
             likelihood: str = "categorical", noise_std: float = 1.0) -> dict[str, float]:
    """Accuracy and NLL of the MC ensemble of ``mc`` passes, and accuracy of the mean weights.

    The passes sample as the layers are set (local reparameterisation by default, the paper's evaluation);
    wrap the call in :func:`~dwp_hub.inference.sampling_mode` for one weight draw per pass.

    ``x`` is a tensor (with labels ``y``) or a ``DataLoader`` of ``(x, y)`` batches. For
    ``likelihood="gaussian"``: ``rmse_ensemble`` (of the mean prediction), ``nll_ensemble`` (of the
    MC mixture of N(f_k(x), noise_std²)) and ``rmse_mean`` (mean weights).

    Returns:
        ``acc_ensemble``, ``nll_ensemble`` (mean, nats), ``acc_mean`` (one pass, mean weights).
        For a model without Bayesian layers the ensemble equals the single deterministic pass.
    """
    device = next(model.parameters()).device
    if isinstance(x, torch.utils.data.DataLoader):  # gather its (x, y) batches
        xs, ys = zip(*[(xb, yb) for xb, yb in x])
        x, y = torch.cat(xs), torch.cat(ys)
    x, y = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    if likelihood == "gaussian":
        return _evaluate_gaussian(model, x.float(), y.float(), mc, batch, noise_std)
    p = predict_proba(model, x, mc, batch)
    p_mean = predict_proba(model, x, 0, batch) if bayesian_layers(model) else p
    nll = -torch.log(p.gather(1, y[:, None]).clamp_min(1e-12)).mean()
    return {
        "acc_ensemble": float((p.argmax(1) == y).float().mean()),
        "acc_mean": float((p_mean.argmax(1) == y).float().mean()),
        "nll_ensemble": float(nll),
    }


def _evaluate_gaussian(model: nn.Module, x: Tensor, y: Tensor, mc: int, batch: int, noise_std: float) -> dict[str, float]:
    was_training = model.training
    model.eval()
    k = mc if bayesian_layers(model) else 1
    se, se_mean, nll, n = 0.0, 0.0, 0.0, len(x)
    try:
        for i in range(0, n, batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            preds = torch.stack([model(xb).reshape(len(xb), -1) for _ in range(k)])  # [K, B, D]
            target = yb.reshape(len(xb), -1)
            se += float(((preds.mean(0) - target) ** 2).sum())
            log_n = -0.5 * (((preds - target) / noise_std) ** 2 + math.log(2 * math.pi * noise_std**2)).sum(-1)
            nll -= float((torch.logsumexp(log_n, 0) - math.log(k)).sum())
            with mean_weights(model):
                se_mean += float(((model(xb).reshape(len(xb), -1) - target) ** 2).sum())
    finally:
        model.train(was_training)
    d = y.reshape(n, -1).shape[1]
    return {"rmse_ensemble": math.sqrt(se / (n * d)), "nll_ensemble": nll / n, "rmse_mean": math.sqrt(se_mean / (n * d))}


# -- checkpoints ---------------------------------------------------------------------------
def _model_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Model tensors without the frozen hub decoders; shared tensors stored once (+ alias map)."""
    skip = tuple(frozen_state_prefixes(model))
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...]], str] = {}
    for key, value in model.state_dict().items():
        if skip and key.startswith(skip):
            continue
        ident = (value.data_ptr(), tuple(value.shape), tuple(value.stride()))
        if value.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        tensors[key] = value
    return tensors, aliases


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    meta: dict[str, Any] | None = None, extra: dict[str, Tensor] | None = None) -> None:
    """Write model (and optimizer) state plus JSON ``meta`` atomically to ``path`` (safetensors).

    The frozen decoders of deep weight priors are not stored (they are the hub priors' weights);
    :func:`load_checkpoint` expects a model built with the same priors.
    """
    state, aliases = _model_state(model)
    tensors = {f"model/{k}": v.detach().contiguous().cpu() for k, v in state.items()}
    opt_meta: dict[str, Any] | None = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        for pid, st in sd["state"].items():
            for name, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"optim/{pid}/{name}"] = t.detach().contiguous().cpu()
        opt_meta = {"param_groups": sd["param_groups"]}
    for k, v in (extra or {}).items():
        tensors[f"extra/{k}"] = v.detach().contiguous().cpu()
    header = {"format_version": _FORMAT_VERSION, "aliases": aliases, "optimizer": opt_meta, **(meta or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CHECKPOINT_META_KEY: json.dumps(header, sort_keys=True)})


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(CHECKPOINT_META_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable VI checkpoint ({err}). Delete it to start over.") from err
    if raw is None:
        raise CheckpointError(f"{path} has no {CHECKPOINT_META_KEY} metadata; it was not written by fit_vi.")
    return tensors, json.loads(raw)


def load_checkpoint(path: str | Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) from ``path``; returns the metadata.

    Raises:
        CheckpointError: unreadable file, or one that does not fit ``model``.
    """
    tensors, meta = read_checkpoint(path)
    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    for alias, target in meta.get("aliases", {}).items():
        state[alias] = state[target]
    skip = tuple(frozen_state_prefixes(model))
    missing, unexpected = model.load_state_dict(state, strict=False) if state else ([], [])
    missing = [k for k in missing if not (skip and k.startswith(skip))]
    if meta.get("format_version", 1) < 2:  # format 1 kept the fast bound's state outside the model
        missing = [k for k in missing if k.rpartition(".")[2] not in DeepWeightPriorKL.STATE_BUFFERS]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit this model (missing {missing[:5]}, unexpected {unexpected[:5]}). "
            "Build the model exactly as for the run that wrote it (same net, same priors)."
        )
    if optimizer is not None and meta.get("optimizer"):
        opt_state: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, pid, name = key.split("/", 2)
                opt_state.setdefault(int(pid), {})[name] = value
        try:
            optimizer.load_state_dict({"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]})
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"{path}: optimizer state does not fit ({err}).") from err
    meta["extra"] = {k[len("extra/"):]: v for k, v in tensors.items() if k.startswith("extra/")}
    return meta


# -- training ------------------------------------------------------------------------------
def _conv_l2(model: nn.Module) -> Tensor:
    params = [p for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()]
    if not params:
        raise UnsupportedLayerError(f"{type(model).__name__} has no nn.Conv2d layers to regularise.")
    return torch.stack([(p**2).sum() for p in params]).sum()


def _legacy_sampler_states(model: nn.Module, extra: dict[str, Tensor]) -> None:
    """Checkpoints of format 1 kept the fast bound's sampler and control-variate state beside the
    model (``extra/cycle/*``, ``extra/cv/*``); format 2 keeps it in the layers' buffers. Move it there."""
    for name, layer in bayesian_layers(model):
        if not isinstance(layer.prior, DeepWeightPriorKL):
            continue
        with torch.no_grad():
            if f"cycle/{name}/perm" in extra:
                layer.dwp_perm.copy_(extra[f"cycle/{name}/perm"].to(torch.long))
                layer.dwp_cursor.fill_(int(extra[f"cycle/{name}/cursor"]))
            if f"cv/{name}/seen" in extra:
                layer.dwp_cv_theta.copy_(extra[f"cv/{name}/theta"])
                layer.dwp_cv_log_sigma2.copy_(extra[f"cv/{name}/log_sigma2"])
                layer.dwp_cv_seen.copy_(extra[f"cv/{name}/seen"].to(torch.bool))


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 arithmetic is native on ``device`` (a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 / AMX, as oneDNN reports it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    """A factory of the forward pass's autocast context for ``precision`` (a no-op for fp32); checks once,
    before any step, that the precision is native on ``device``."""
    if precision == Precision.FP32:
        return contextlib.nullcontext
    if not bf16_supported(device):
        raise ConfigError(
            f"precision='bf16' needs native bfloat16 on {device} (a CPU with AVX512-BF16 or AMX, or a CUDA GPU "
            "with bf16); here it would be emulated and slower. Use precision='fp32'."
        )
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


def _check_finite(value: Tensor, step: int, epoch: int, term: str, hint: str) -> None:
    if not torch.isfinite(value):
        raise TrainingError(f"Step {step} (epoch {epoch}): the {term} became {value.item()}. {hint}")


def _priors_meta(model: nn.Module) -> list[list[str]]:
    return [[n, m.prior.describe() if m.prior is not None else "none"] for n, m in bayesian_layers(model)]


def _as_tensors(x: Any, y: Any, likelihood: str = "categorical") -> tuple[Tensor, Tensor]:
    xt = x if torch.is_tensor(x) else torch.as_tensor(x)
    if y is None:
        raise TrainingError("y_train is missing (pass a DataLoader of (x, y) batches, or x_train and y_train).")
    yt = y if torch.is_tensor(y) else torch.as_tensor(y)
    if xt.ndim == 0 or len(xt) == 0:
        raise TrainingError("The training set is empty; give at least one example.")
    if len(xt) != len(yt):
        raise TrainingError(f"x_train has {len(xt)} examples but y_train has {len(yt)} labels.")
    return xt.float(), (yt.float() if likelihood == "gaussian" else yt.long())


def _is_loader(x: Any) -> bool:
    return isinstance(x, torch.utils.data.DataLoader)


def _fit(model: nn.Module, x_train: Any, y_train: Any, recipe: VIRecipe, objective: str, *, device: Any = None,
         **kwargs: Any) -> VIResult:
    """Run :func:`_fit_seeded` on a fork of torch's random state: the run is seeded by ``recipe.seed``
    (weight noise, MC evaluation) and the caller's global generator is left as it was. ``device``
    moves the model there first (data batches follow)."""
    if device is not None:
        model.to(torch.device(device))
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(recipe.seed)
        return _fit_seeded(model, x_train, y_train, recipe, objective, **kwargs)


def _fit_seeded(model: nn.Module, x_train: Any, y_train: Any, recipe: VIRecipe, objective: str, *,
                x_eval: Any = None, y_eval: Any = None, checkpoint: str | Path | None = None, resume: bool = True,
                progress: bool = True, metadata: dict[str, Any] | None = None,
                callback: Callable[[int, dict[str, float]], None] | None = None) -> VIResult:
    device = next(model.parameters()).device
    loader = x_train if _is_loader(x_train) else None
    if loader is not None:  # data that need not fit in memory: the loader's batches, N = len(dataset)
        if y_train is not None:
            raise TrainingError("Pass labels inside the DataLoader's (x, y) batches, and y_train=None.")
        x = y = None
        n = len(loader.dataset)  # type: ignore[arg-type]
        if n == 0:
            raise TrainingError("The training set is empty; give at least one example.")
        steps_per_epoch = len(loader)
        batch = loader.batch_size or n
    else:
        x, y = _as_tensors(x_train, y_train, recipe.likelihood)
        x, y = x.to(device), y.to(device)
        n = len(x)
        batch = min(recipe.batch_size, n)
        steps_per_epoch = -(-n // batch)
    total = recipe.epochs * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("The model has no trainable parameters.")
    opt = torch.optim.Adam(params, lr=recipe.lr)
    run_meta = {"recipe": recipe.to_dict(), "objective": objective, "n_train": n, "total_steps": total,
                "priors": _priors_meta(model), "user": metadata or {}}
    step, history, earlier_seconds = 0, [], 0.0
    if checkpoint is not None and Path(checkpoint).exists() and resume:
        meta = load_checkpoint(checkpoint, model, opt)
        for key in ("recipe", "objective", "n_train", "priors"):
            if meta.get(key) != json.loads(json.dumps(run_meta[key])):
                raise CheckpointError(
                    f"{checkpoint} was written by a different run ({key}: {meta.get(key)!r} vs "
                    f"{run_meta[key]!r}).", remedy=Remedy("resume", False),
                    hint="Delete it, pass another path, or {remedy}.",
                )
        step, history = int(meta["step"]), list(meta.get("history", []))
        earlier_seconds = float(meta["seconds"]) if "seconds" in meta else float("nan")
        extra = meta["extra"]
        if "rng_torch" in extra:
            torch.set_rng_state(extra["rng_torch"])
        if meta.get("format_version", 1) < 2:
            _legacy_sampler_states(model, extra)
    resumed_from = step

    def write_checkpoint() -> None:
        if checkpoint is None:
            return
        spent = earlier_seconds + time.perf_counter() - start
        meta = {**run_meta, "step": step, "history": history, **({} if math.isnan(spent) else {"seconds": spent})}
        save_checkpoint(checkpoint, model, opt, meta, extra={"rng_torch": torch.get_rng_state()})

    from dwp_hub._progress import progress_bar

    autocast = _autocast(recipe.precision, device)  # an unsupported precision is refused before any step
    final: dict[str, float] = {}
    model.train()
    start = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{objective} (N={n})", total=total, completed=step)
        perm, perm_epoch = torch.arange(n, device=device), -1
        batches: Any = None
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            if loader is not None:
                if perm_epoch != epoch:  # a new epoch (or a resumed one: skip the batches already seen)
                    with torch.random.fork_rng(devices=[]):  # the loader's own seed draw leaves the noise stream alone
                        batches, perm_epoch = iter(loader), epoch
                    for _ in range(pos):
                        next(batches)
                xb, yb = next(batches)
                xb, yb = xb.to(device), yb.to(device)
            else:
                if batch < n and perm_epoch != epoch:  # the epoch's order depends on (seed, epoch) only
                    perm = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.seed * 1_000_003 + epoch))
                    perm, perm_epoch = perm.to(device), epoch
                idx = perm[pos * batch : (pos + 1) * batch]
                xb, yb = (x, y) if batch == n else (x[idx], y[idx])  # type: ignore[index]
            for group in opt.param_groups:
                group["lr"] = recipe.lr * (1.0 - step / total)
            with autocast():
                out = model(xb)
            out = out.float()  # the data term, the KL terms and the update in fp32
            if objective == "vi":
                data = data_term(out, yb, n, recipe.likelihood, recipe.noise_std)
            else:  # mean per example: cross-entropy (the paper's baseline) or the Gaussian NLL
                data = data_term(out, yb, 1, recipe.likelihood, recipe.noise_std)
            _check_finite(data, step, epoch, "data term" + (" (N x mean cross-entropy)" if objective == "vi"
                                                           else " (mean cross-entropy)"),
                          "Lower the learning rate or check the inputs for NaN/inf.")
            if objective == "vi":
                terms = kl_terms(model)
                for name, value in terms.items():
                    _check_finite(value, step, epoch, f"KL term of layer {name!r}",
                                  "Lower the learning rate; for deep weight priors check that the prior's kernel "
                                  "scale suits the layer.")
                reg = torch.stack(list(terms.values())).sum()
                loss = data + recipe.kl_weight * reg
            else:
                reg = _conv_l2(model)
                _check_finite(reg, step, epoch, "L2 term", "Lower the learning rate.")
                loss = data + recipe.l2 * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            final = {"loss": loss.item(), "data": data.item(), ("kl" if objective == "vi" else "l2"): reg.item()}
            bar.update(task, advance=1, acc=f"loss {final['loss']:.4g}")
            record_eval = recipe.eval_every and step % recipe.eval_every == 0 and x_eval is not None
            if record_eval or step == total or step % recipe.checkpoint_every == 0:
                rec: dict[str, float] = {"step": step, "epoch": step / steps_per_epoch, **final}
                if record_eval:
                    rec.update(evaluate(model, x_eval, y_eval, recipe.eval_mc, likelihood=recipe.likelihood,
                                        noise_std=recipe.noise_std))
                    model.train()
                history.append(rec)
                if callback is not None:
                    callback(step, rec)
            if step % recipe.checkpoint_every == 0 and step < total:
                write_checkpoint()
    seconds = time.perf_counter() - start
    ran = step - resumed_from
    if ran:
        write_checkpoint()
    metrics: dict[str, float] = {}
    if x_eval is not None:
        metrics = evaluate(model, x_eval, y_eval, recipe.eval_mc, likelihood=recipe.likelihood,
                           noise_std=recipe.noise_std)
    total_seconds = earlier_seconds + seconds
    return VIResult(model, objective, step, resumed_from, seconds, 1000 * seconds / max(1, ran), final, metrics,
                    history, None if math.isnan(total_seconds) else total_seconds)


def fit_vi(model: nn.Module, x_train: Any, y_train: Any = None, recipe: VIRecipe | None = None, *,
           x_eval: Any = None, y_eval: Any = None, checkpoint: str | Path | None = None, resume: bool = True,
           progress: bool = True, metadata: dict[str, Any] | None = None,
           callback: Callable[[int, dict[str, float]], None] | None = None, device: Any = None) -> VIResult:
    """Variational inference: minimise ``N · mean CE + kl_weight · Σ KL`` with Adam (paper recipe).

    Args:
        model: a model with Bayesian layers (see :func:`~dwp_hub.inference.to_bayesian`).
        x_train, y_train: training inputs ``[N, ...]`` and targets (integer labels ``[N]``; regression
            targets for ``recipe.likelihood="gaussian"``), tensors or arrays; or ``x_train`` a
            ``torch.utils.data.DataLoader`` of ``(x, y)`` batches (any input shape, data that need not
            fit in memory; N = ``len(loader.dataset)``) and ``y_train=None``.
        recipe: optimisation settings (default :class:`VIRecipe`, the paper's).
        x_eval, y_eval: evaluated at the end (MC ensemble and mean weights), and every
            ``recipe.eval_every`` steps into the history.
        checkpoint: safetensors path written every ``recipe.checkpoint_every`` steps and at the end.
        resume: continue from ``checkpoint`` when it exists (it must come from the same run).
        progress: show a progress bar.
        metadata: JSON-able dict stored in the checkpoint.
        callback: called with ``(step, record)`` whenever a history record is made.
        device: move the model there before training (batches follow); default: where it is.

    Raises:
        TrainingError: empty training set, no Bayesian layers, or a NaN/inf loss term (the message
            names the step and the term).
        CheckpointError: the checkpoint does not belong to this run.
    """
    if not any(layer.prior is not None for _, layer in bayesian_layers(model)):
        raise TrainingError(
            f"{type(model).__name__} has no Bayesian layers with a prior. Convert it with "
            "dwp_hub.inference.to_bayesian(model, priors=...) first, or use fit_deterministic for the baseline."
        )
    return _fit(model, x_train, y_train, recipe or VIRecipe(), "vi", x_eval=x_eval, y_eval=y_eval,
                checkpoint=checkpoint, resume=resume, progress=progress, metadata=metadata, callback=callback,
                device=device)


def fit_deterministic(model: nn.Module, x_train: Any, y_train: Any = None, recipe: VIRecipe | None = None, *,
                      x_eval: Any = None, y_eval: Any = None, checkpoint: str | Path | None = None,
                      resume: bool = True, progress: bool = True, metadata: dict[str, Any] | None = None,
                      callback: Callable[[int, dict[str, float]], None] | None = None,
                      device: Any = None) -> VIResult:
    """The deterministic baseline: same optimiser and schedule, loss ``mean CE + l2 · Σ(conv params²)``.

    Takes a plain network (no Bayesian layers). Same arguments and errors as :func:`fit_vi`.
    """
    if bayesian_layers(model):
        raise TrainingError("fit_deterministic takes a plain network; this one has Bayesian layers (use fit_vi).")
    return _fit(model, x_train, y_train, recipe or VIRecipe(), "deterministic", x_eval=x_eval, y_eval=y_eval,
                checkpoint=checkpoint, resume=resume, progress=progress, metadata=metadata, callback=callback,
                device=device)


# -- the paper's experiment: moved to dwp_hub.paper ------------------------------------------
_MOVED = ("PAPER_PRIORS", "PAPER_DWP", "PAPER_INITS", "paper_net", "paper_priors")


def __getattr__(name: str) -> Any:
    """Deprecated aliases: the paper's network and defaults live in :mod:`dwp_hub.paper`."""
    if name in _MOVED:
        import warnings

        import dwp_hub.paper

        warnings.warn(f"dwp_hub.inference.vi.{name} moved to dwp_hub.paper.{name}; import it from there.",
                      DeprecationWarning, stacklevel=2)
        return getattr(dwp_hub.paper, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
