"""Ad-hoc: which layer's prior helps/hurts. Arms map kernel size -> prior (candidate VAE folder, 'shipped', or 'sn')."""
import sys, math, json, time, torch
sys.path.insert(0, "/work/frozen/study-e47bb22/tools")
import source_study as ss
from pathlib import Path
import concurrent.futures as cf, multiprocessing as mp
from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi
from dwp_hub.inference.layers import to_bayesian, bayesian_layers
from dwp_hub.inference.priors import DeepWeightPriorKL
from dwp_hub.model.nets import NetConfig, build_net, xavier_init_
import dwp_hub
SHIP = {7: "notmnist-7x7@1.2.0", 5: "notmnist-5x5@1.1.0"}
def prior_for(ks, spec):
    if spec == "sn": return "standard-normal"
    if spec == "shipped": return dwp_hub.load(SHIP[ks])
    return ss.load_vae(Path("/work/runs/source-study/candidates") / spec / f"vae{ks}.safetensors")
def run(job):
    torch.set_num_threads(1)
    arm, size, seed, protocol = job
    s7, s5 = arm.split("|")
    split = mnist10k_protocol(size, seed, protocol=protocol)
    gen = torch.Generator().manual_seed(seed)
    net = xavier_init_(build_net(NetConfig("fconv", (32, 128))), gen)
    model = to_bayesian(net, {7: prior_for(7, s7), 5: prior_for(5, s5)}, default=None, strict=True, bound="fast")
    for _, layer in bayesian_layers(model):
        if isinstance(layer.prior, DeepWeightPriorKL):
            layer.prior.init_means_(layer, gen)
    epochs = max(1, round(400 / math.ceil(size / 50)))
    res = fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=epochs, batch_size=50, seed=seed),
                 x_eval=split.x_eval, y_eval=split.y_eval, progress=False)
    return arm, size, seed, res.metrics["acc_ensemble"]
if __name__ == "__main__":
    arms = sys.argv[1].split(",")
    sizes = [int(s) for s in sys.argv[2].split(",")]
    seeds = [int(s) for s in sys.argv[3].split(",")]
    protocol = sys.argv[4] if len(sys.argv) > 4 else "validation"
    out = Path("/work/runs/adhoc/swap.jsonl")
    jobs = [(a, n, s, protocol) for a in arms for n in sizes for s in seeds]
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        for fut in cf.as_completed([pool.submit(run, j) for j in jobs]):
            arm, size, seed, acc = fut.result()
            line = json.dumps({"arm": arm, "size": size, "seed": seed, "protocol": protocol, "acc": round(acc, 4)})
            print(line, flush=True)
            with out.open("a") as fh: fh.write(line + "\n")
