"""Render a :class:`~dwp_hub.card.PriorCard` as a Hugging Face style ``README.md`` (no torch)."""

from __future__ import annotations

import json

from dwp_hub.card import PriorCard


def _yaml_list(items: list[str]) -> str:
    return "\n".join(f"- {json.dumps(i)}" for i in items)


def front_matter(card: PriorCard) -> str:
    """The model card's YAML metadata, built with ``huggingface_hub.ModelCardData``: library, licence (with
    ``license_name`` / ``license_link`` when it is ``other``),
    tags, the source dataset, and a ``model-index`` with the held-out quality and, when measured, the
    transfer benefit (what the Hub renders as evaluation results)."""
    from huggingface_hub import EvalResult, ModelCardData

    a, s, m = card.arch, card.source, card.metrics
    ks = f"{a.kernel_size}x{a.kernel_size}"
    held_out = f"{s.domain} kernels of held-out source networks"
    results = [
        EvalResult(task_type="density-estimation", task_name="Kernel density estimation", dataset_type=s.domain,
                   dataset_name=held_out, metric_type="elbo", metric_value=round(m.heldout_elbo, 4),
                   metric_name="held-out ELBO (nats per kernel)"),
        EvalResult(task_type="density-estimation", task_name="Kernel density estimation", dataset_type=s.domain,
                   dataset_name=held_out, metric_type="iw-log-likelihood",
                   metric_value=round(m.heldout_iw_log_likelihood, 4),
                   metric_name=f"held-out importance-weighted log-likelihood (K={m.iw_k}, nats per kernel)"),
    ]
    if card.transfer is not None:
        tr = card.transfer
        results.append(EvalResult(
            task_type="image-classification", task_name="Variational inference with this prior",
            dataset_type=tr.dataset, dataset_name=f"{tr.dataset} ({tr.protocol} protocol, N={tr.n_train})",
            metric_type="accuracy", metric_value=round(sum(tr.acc_prior) / len(tr.acc_prior), 4),
            metric_name=f"accuracy, {tr.benefit:+.3f} vs the standard normal (paired over {len(tr.seeds)} seeds)"))
    data = ModelCardData(
        model_name=card.spec, library_name="dwp-hub", license=card.license_id,
        license_name=card.license_name, license_link=card.license_link,  # None unless the licence is 'other'
        tags=["deep-weight-prior", "bayesian-deep-learning", "vae", "convolution-kernels", f"kernel-{ks}"],
        datasets=[s.domain], metrics=["elbo", "iw-log-likelihood"] + (["accuracy"] if card.transfer else []),
        eval_results=results,
    )
    return data.to_yaml()


def _cell(text: str) -> str:
    """``text`` in a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


def licences(card: PriorCard) -> str:
    """The model card's "Licences" section: the weights' licence and the recorded licences of the data
    the prior was learned from."""
    if card.license_id == "other":
        name = _cell(card.license_name or "other")
        weights = f"[{name}]({card.license_link})" if card.license_link else name
    else:
        weights = f"`{card.license_id}`"
    text = f"## Licences\n\nThe weights of this prior: {weights}.\n\n"
    if not card.data_licenses:
        return text + "The licences of the data it was learned from are not recorded in this card.\n"
    rows = "\n".join(f"| {_cell(d.dataset)} | {_cell(d.license)} | {_cell(d.source_url) or 'n/a'} |"
                     for d in card.data_licenses)
    return text + f"""The data it was learned from (the source networks' training data, or their checkpoints):

| data | licence | source |
|---|---|---|
{rows}
"""


def render_readme(card: PriorCard) -> str:
    """The model card: YAML front matter, prose, tables, the sample picture, citation."""
    a, s, k, t, m, st = card.arch, card.source, card.kernels, card.training, card.metrics, card.kernel_stats
    ks = f"{a.kernel_size}x{a.kernel_size}"
    ref = f"{m.reference_elbo:.1f}" if m.reference_elbo is not None else "n/a"
    quant = ", ".join(f"{q}: {v:.3g}" for q, v in st.norm_quantiles.items())
    rebuild = card.recipe.get("rebuild", "")
    ref_note = ""
    if m.reference_elbo is not None:
        ref_note = (
            "The authors' figure is their VAE on their own kernels (100 wider source networks trained longer, "
            "other pruning, larger kernels: median L2 norm 1.36 for 7x7, 0.17 for 5x5, against "
            f"{st.norm_quantiles.get('q50', float('nan')):.3g} here). A density in nats per kernel shifts by "
            "k² · log(c) when kernels are scaled by c, so it is context, not a like-for-like comparison.\n"
        )
    transfer = ""
    if card.transfer is not None:
        tr = card.transfer
        mean_p = sum(tr.acc_prior) / len(tr.acc_prior)
        mean_sn = sum(tr.acc_standard_normal) / len(tr.acc_standard_normal)
        verdict = ("helps" if tr.benefit > tr.benefit_std else "hurts" if tr.benefit < -tr.benefit_std
                   else "is level with the standard normal (within one paired seed std)")
        transfer = f"""
## Does it help? Transfer benefit

Variational inference of the paper's net on **{tr.dataset}** ({tr.protocol} protocol, N={tr.n_train} training
images, {tr.steps} steps at batch {tr.batch_size}, seeds {', '.join(map(str, tr.seeds))}), with this prior on its
{ks} layer ({tr.other_layers} elsewhere) against the standard normal on every layer, on the same training subsets:

| prior | accuracy (mean over seeds) | per seed |
|---|---|---|
| this prior | {mean_p:.3f} | {', '.join(f'{v:.3f}' for v in tr.acc_prior)} |
| standard normal | {mean_sn:.3f} | {', '.join(f'{v:.3f}' for v in tr.acc_standard_normal)} |
| difference (paired) | {tr.benefit:+.3f} ± {tr.benefit_std:.3f} | |

On this measure the prior {verdict}.
"""
    build = ""
    if t.build_seconds is not None:
        build = (f"\nRebuilding this prior from scratch (source networks, harvest, fit, evaluation) took "
                 f"{t.build_seconds / 60:.1f} min with peak memory {t.build_peak_memory_mb:.0f} MiB "
                 f"on {t.threads} CPU thread(s).\n")
    return f"""---
{front_matter(card)}
---

# {card.name} v{card.version}

{card.description}

A deep weight prior (Atanov et al., ICLR 2019): a variational auto-encoder over {ks} convolution
kernels, learned from {s.n_networks} {s.network} networks trained on **{s.domain}** (layer `{s.layer}`).
Use it to initialise conv layers or as the prior of a Bayesian CNN.

```python
import torch, dwp_hub
prior = dwp_hub.load("{card.name}@{card.version}")
kernels = prior.sample(64, generator=torch.Generator().manual_seed(0))   # [64, 1, {a.kernel_size}, {a.kernel_size}]
```

![samples](samples.png)

## Quality (held-out source networks, nats per kernel, higher is better)

| metric | value |
|---|---|
| held-out ELBO (1 z sample) | {m.heldout_elbo:.2f} |
| held-out importance-weighted log-likelihood (K={m.iw_k}, {m.n_iw_kernels} kernels) | {m.heldout_iw_log_likelihood:.2f} |
| train ELBO | {m.train_elbo:.2f} |
| held-out kernels | {m.n_heldout_kernels} |
| authors' released VAE, held-out ELBO on their kernels | {ref} |

{ref_note}Held-out kernels come from source networks never seen in training ({', '.join(map(str, s.held_out_networks)) or 'none'}).
{transfer}
## Provenance

| field | value |
|---|---|
| source domain | {s.domain} ({s.protocol}) |
| source data sha256 | `{s.dataset_sha256 or 'n/a'}` |
| source network | {s.network}, layer `{s.layer}` |
| source networks | {s.n_networks} (held out: {s.held_out_networks}) |
| kernels | {k.total} harvested, {k.kept} kept ({k.prune_rule}; threshold {k.prune_threshold:.4g}); {k.n_train} train / {k.n_held_out} held-out |
| kernel statistics | mean {st.mean:.4g}, std {st.std:.4g}; L2-norm quantiles {quant} |
| VAE | {a.kind}, z_dim {a.z_dim}, hidden {a.hidden}, {a.activation.upper()} |
| training | {t.epochs} epochs, Adam lr {t.lr:g} ({t.schedule}), batch {t.batch_size}, seed {t.seed}; {t.seconds:.0f} s, peak memory {t.peak_memory_mb:.0f} MiB, {t.device} x{t.threads} threads, torch {t.torch_version} |
| weights sha256 ({'tensors and architecture' if card.weights_sha256_scope != 'tensors' else 'tensors'}) | `{card.weights_sha256}` |
| created | {card.created} with dwp-hub {card.dwp_hub_version} |
{build}
Rebuild: `{rebuild or 'see recipe.yaml'}`

{licences(card)}
## Citation

{card.citation}
"""
