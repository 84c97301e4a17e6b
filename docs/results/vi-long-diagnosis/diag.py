"""Diagnose the DWP arm at long budgets: accuracy, mean log sigma^2 and mean |theta| per layer along the run.

python diag.py ARM STEPS [DWP] [--freeze-r]   ARM: dwp (fast bound), dwp-full (the exact bound), sn (standard
normal); DWP: the deep weight priors, e.g. 7=mnist-7x7@1.1.0,5=mnist-5x5@1.1.0 (default: the hub's notMNIST pair);
--freeze-r: keep the reverse model r(z|w) frozen as the prior's encoder (the authors' release) instead of training it.
"""
import json, sys, torch
from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi, paper_net, bayesian_layers
from dwp_hub.inference.priors import DeepWeightPriorKL
torch.set_num_threads(1)
freeze_r = "--freeze-r" in sys.argv
sys.argv = [a for a in sys.argv if a != "--freeze-r"]
arm, steps = sys.argv[1], int(sys.argv[2])
dwp = {int(k): v for k, v in (kv.split("=") for kv in sys.argv[3].split(","))} if len(sys.argv) > 3 else None
split = mnist10k_protocol(50, 0, protocol="validation")
prior, init = {"dwp": ("dwp", "dwp"), "sn": ("standard-normal", "xavier"), "dwp-full": ("dwp", "dwp")}[arm]
model = paper_net(prior, seed=0, init=init, bound="full" if arm == "dwp-full" else "fast", dwp_priors=dwp)
if freeze_r:
    for mod in model.modules():
        if isinstance(mod, DeepWeightPriorKL):
            mod.encoder.requires_grad_(False)
out = []
def cb(step, rec):
    with torch.no_grad():
        layers = {n: {"log_s2": float(m.log_variance().mean()), "abs_theta": float(m.weight.abs().mean()),
                      "sigma_over_theta": float((m.sigma2.sqrt() / m.weight.abs().clamp_min(1e-8)).median()),
                      "kernel_norm_median": float(m.weight.flatten(0, 1).flatten(1).norm(dim=1).median())}
                  for n, m in bayesian_layers(model)}
    out.append({"step": step, **{k: rec.get(k) for k in ("acc_ensemble", "acc_mean", "loss", "data", "kl")}, "layers": layers})
    print(json.dumps(out[-1]), flush=True)
fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=steps, batch_size=50, seed=0, eval_every=250, checkpoint_every=250),
       x_eval=split.x_eval[:1000], y_eval=split.y_eval[:1000], progress=False, callback=cb)
