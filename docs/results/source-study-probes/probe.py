import sys, torch
sys.path.insert(0, "/work/frozen/study-e47bb22/tools")
import source_study as ss
from pathlib import Path
from safetensors.torch import load_file
import dwp_hub
torch.manual_seed(0)
def stats(name, vae, kernels=None):
    z = torch.randn(2000, vae.cfg.z_dim)
    with torch.no_grad():
        mu, var = vae.decoder(z)
    n = mu.flatten(1).norm(dim=1)
    s = (mu + var.sqrt() * torch.randn_like(mu)).flatten(1).norm(dim=1)
    line = f"{name:28s} decoder-mean norm q50 {n.median():.3f} q90 {n.quantile(.9):.3f} | sample norm q50 {s.median():.3f}"
    if kernels is not None:
        k = kernels.flatten(1).norm(dim=1)
        line += f" | real kept q50 {k.median():.3f} (n={len(k)})"
    print(line)
for ks in (7, 5):
    p = dwp_hub.load({7: "notmnist-7x7@1.2.0", 5: "notmnist-5x5@1.1.0"}[ks])
    vae = p.vae
    stats(f"shipped {ks}", vae)
    for c in sys.argv[1].split(","):
        if not (Path("/work/runs/source-study/candidates")/c/f"vae{ks}.safetensors").exists(): continue
        d = Path("/work/runs/source-study/candidates") / c
        stats(f"{c} {ks}", ss.load_vae(d / f"vae{ks}.safetensors"), load_file(str(d / f"kernels{ks}.safetensors"))["train"] if (d / f"kernels{ks}.safetensors").exists() else None)
