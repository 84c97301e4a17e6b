import sys, math, torch
from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi
try:
    from dwp_hub.paper import paper_net
except ImportError:
    from dwp_hub.inference import paper_net
torch.set_num_threads(1)
for protocol in ("test", "validation"):
    split = mnist10k_protocol(50, 0, protocol=protocol)
    m = paper_net("dwp", dwp_priors={7: "notmnist-7x7@1.2.0", 5: "notmnist-5x5@1.1.0"}, seed=0)
    r = fit_vi(m, split.x_train, split.y_train, VIRecipe(epochs=400, batch_size=50, seed=0), x_eval=split.x_eval, y_eval=split.y_eval, progress=False)
    print(sys.argv[1], protocol, r.metrics["acc_ensemble"], r.final, flush=True)
