"""Ad-hoc (not committed): fit 7x7/5x5 VAEs on kept kernels pooled from several study candidates,
optionally augmented by the dihedral group (8 rotations/flips), into a study candidate folder."""
import json, math, sys, time
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
sys.path.insert(0, "/work/frozen/study-e47bb22/tools")
import source_study as ss
from dwp_hub.card import ArchConfig
from dwp_hub.training.fit import FitRecipe, fit_vae
from dwp_hub.training.harvest import KernelDataset

work = Path("/work/runs/source-study")
name, sources, aug = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
steps = {7: int(sys.argv[4]) if len(sys.argv) > 4 else 4000, 5: int(sys.argv[5]) if len(sys.argv) > 5 else 3000}
out = work / "candidates" / name
out.mkdir(parents=True, exist_ok=True)
cfg = {7: {"kind": "conv7", "z_dim": 2, "hidden": 32}, 5: {"kind": "conv5", "z_dim": 4, "hidden": 64}}

def dihedral(k):
    outs = []
    for r in range(4):
        x = torch.rot90(k, r, dims=(-2, -1))
        outs += [x, torch.flip(x, dims=(-1,))]
    return torch.cat(outs)

summary = {"candidate": name, "pooled": sources, "augment": aug}
for ks in (7, 5):
    tr = torch.cat([load_file(str(work / "candidates" / s / f"kernels{ks}.safetensors"))["train"] for s in sources])
    ho = torch.cat([load_file(str(work / "candidates" / s / f"kernels{ks}.safetensors"))["held_out"] for s in sources])
    if aug == "dihedral":
        tr, ho = dihedral(tr), dihedral(ho)
    elif aug == "dihedral-sign":
        tr, ho = dihedral(tr), dihedral(ho)
        tr, ho = torch.cat([tr, -tr]), torch.cat([ho, -ho])
    g = torch.Generator().manual_seed(0)
    tr = tr[torch.randperm(len(tr), generator=g)]
    data = KernelDataset(tr.contiguous(), ho.contiguous(), {})
    arch = ArchConfig(kernel_size=ks, **cfg[ks])
    epochs = max(1, round(steps[ks] / math.ceil(len(tr) / 128)))
    t = time.time()
    res = fit_vae(data, arch, FitRecipe(epochs=epochs, iw_k=1000, iw_max_kernels=500), progress=False)
    save_file(res.vae.state_dict(), str(out / f"vae{ks}.safetensors"), metadata={"arch": json.dumps({"kernel_size": ks, **cfg[ks]})})
    summary[str(ks)] = {"n_train": len(tr), "n_held_out": len(ho), "fit_epochs": epochs, "fit_seconds": round(time.time() - t, 1),
                        "heldout_elbo": res.metrics.heldout_elbo, "heldout_iw": res.metrics.heldout_iw_log_likelihood}
    print(name, ks, summary[str(ks)], flush=True)
(out / "summary.json").write_text(json.dumps(summary, indent=1))
