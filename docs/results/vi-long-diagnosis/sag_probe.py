"""Probe: SAG-style per-kernel gradient memory for the fast bound (sampled kernels get their fresh gradient,
the others their memory; no n/m amplification), against diag.py's fast (SAGA) and full rows."""
import json, sys, torch
import dwp_hub.inference.fast as fast
from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi, paper_net, bayesian_layers

def sag(term, layer, prior, idx, theta_s, log_s2_s):
    n, k = layer.n_kernels, prior.kernel_size
    ratio = n / idx.numel()
    cv = prior.cv_state(layer)
    a_th, a_ls = cv["theta"], cv["log_sigma2"]
    theta = layer.weight.reshape(n, k, k)
    log_s2 = layer.log_variance().reshape(n, k, k)
    lin_all = (a_th * theta).sum() + (a_ls * log_s2).sum()
    lin_sub = ((a_th.index_select(0, idx) * theta.index_select(0, idx)).sum()
               + (a_ls.index_select(0, idx) * log_s2.index_select(0, idx)).sum())
    correction = lin_all - lin_sub
    outer = {}
    def grab(g):
        outer["c"] = g.detach()
    def update(which):
        def hook(g):
            c = outer.get("c")
            if c is None or float(c) == 0.0:
                return None
            grad = g.detach() / (c * ratio)
            cv[which].index_copy_(0, idx, grad)
            cv["seen"].index_fill_(0, idx, True)
            return g / ratio
        return hook
    out = term + (correction - correction.detach())
    out.register_hook(grab)
    theta_s.register_hook(update("theta"))
    log_s2_s.register_hook(update("log_sigma2"))
    return out

torch.set_num_threads(1)
steps, evals = int(sys.argv[1]), int(sys.argv[2])
fast._with_control_variate = sag
split = mnist10k_protocol(50, 0, protocol="validation")
model = paper_net("dwp", seed=0, init="dwp")
def cb(step, rec):
    with torch.no_grad():
        layers = {n: {"log_s2": float(m.log_variance().mean()), "abs_theta": float(m.weight.abs().mean()),
                      "sigma_over_theta": float((m.sigma2.sqrt() / m.weight.abs().clamp_min(1e-8)).median())}
                  for n, m in bayesian_layers(model)}
    print(json.dumps({"step": step, **{k: rec.get(k) for k in ("acc_ensemble", "acc_mean", "loss", "data", "kl")},
                      "layers": layers}), flush=True)
fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=steps, batch_size=50, seed=0, eval_every=evals,
       checkpoint_every=evals), x_eval=split.x_eval[:1000], y_eval=split.y_eval[:1000], progress=False, callback=cb)
