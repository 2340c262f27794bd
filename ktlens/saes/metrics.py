"""SAE metrics over a model's whole domain, named as SAELens names them.

Reconstruction (over every row of the hook):
    l0                   mean number of active latents per row
    explained_variance   1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
    mse                  mean over rows of ||x - x_hat||^2 (summed over d_in)
    l2_ratio, cossim     mean ||x_hat|| / ||x|| and mean cosine(x, x_hat)
    dead_features        fraction of latents that fire on no row
    dense_features       fraction of latents that fire on more than `dense_threshold` of the rows
    feature_density_log10_hist   histogram of log10(firing fraction) over the latents that fire
Parent model with the reconstruction spliced in through a hook, beside clean and zero-ablation:
    ce_loss_score        (loss_zero - loss_sae) / (loss_zero - loss_clean)   (loss recovered)
    accuracy_recovered   (acc_sae - acc_zero) / (acc_clean - acc_zero)
where the accuracy is autoregressive exact match (K-theory, with the SAE spliced in at every decoding
step) or worst-task accuracy (MIIII).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ktlens.models.base import HookedModel
from ktlens.saes.activations import ActivationStore, StoreConfig, hook_rows
from ktlens.saes.base import SAE
from ktlens.saes.domains import Domain, domain_of

DENSE_THRESHOLD = 0.1


def check_fits(sae: SAE, store: ActivationStore) -> None:
    """ValueError naming both widths when the SAE's d_in is not the hook's."""
    if sae.cfg.d_in != store.d_in:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} does not match hook {store.hook_name!r}, whose rows have width {store.d_in}")


def splice_hook(sae: SAE, hook_name: str):
    """A forward hook that replaces the activation with the SAE's reconstruction (same shape)."""

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        rows = hook_rows(act, hook_name)
        return sae(rows.reshape(-1, rows.shape[-1])).reshape(act.shape).to(act.dtype)

    return hook


def zero_hook(act: Tensor, hook: Any = None) -> Tensor:
    return torch.zeros_like(act)


def pass_through_hook(act: Tensor, hook: Any = None) -> Tensor:
    """Returns the activation: "clean" runs with a hook attached take the same numeric path as spliced ones."""
    return act


@torch.no_grad()
def reconstruction_metrics(sae: SAE, store: ActivationStore, chunk_examples: int = 1024, progress: bool = False) -> dict[str, Any]:
    """Reconstruction and sparsity figures over every row of the store's domain."""
    from tqdm.auto import tqdm

    check_fits(sae, store)
    sae.eval()
    device = sae.W_dec.device  # the store's rows are on the CPU; each chunk moves to the SAE
    n = 0
    sse = l0 = l2_ratio = cossim = 0.0
    sum_x = torch.zeros(store.d_in, dtype=torch.float64, device=device)
    sum_x2 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=device)
    g = torch.Generator().manual_seed(0)
    proj = torch.randn(store.d_in, 2, generator=g, dtype=torch.float64)
    hashes = []
    chunks = tqdm(store.iter_domain(chunk_examples), total=math.ceil(store.n_examples / chunk_examples), desc="eval", leave=False, disable=not progress)
    for rows in chunks:
        x = rows.acts.to(device)
        f = sae.encode(x)
        x_hat = sae.decode(f)
        err = (x - x_hat).double()
        n += len(x)
        sse += err.pow(2).sum().item()
        sum_x += x.double().sum(0)
        sum_x2 += x.double().pow(2).sum().item()
        active = f > 0
        l0 += active.sum().item()
        fired += active.sum(0)
        x_norm = x.norm(dim=-1)
        ok = x_norm > 0
        l2_ratio += (x_hat.norm(dim=-1)[ok] / x_norm[ok]).sum().item()
        cossim += torch.nn.functional.cosine_similarity(x_hat[ok], x[ok], dim=-1).sum().item()
        hashes.append((rows.acts.double() @ proj).numpy())
    total_var = sum_x2 - (sum_x.pow(2).sum().item() / n)
    density = fired.double().cpu() / n
    alive = density > 0
    log_density = torch.log10(density[alive]).numpy()
    edges = np.linspace(math.floor(math.log10(1 / n)), 0.0, 4 * -math.floor(math.log10(1 / n)) + 1)
    counts, _ = np.histogram(log_density, bins=edges)
    distinct = len(np.unique(np.concatenate(hashes), axis=0))
    return {
        "n_rows": n,
        "distinct_rows": distinct,
        "l0": l0 / n,
        "explained_variance": 1.0 - sse / total_var if total_var > 0 else float("nan"),
        "mse": sse / n,
        "l2_ratio": l2_ratio / max(1, n),
        "cossim": cossim / max(1, n),
        "dead_features": 1.0 - alive.double().mean().item(),
        "dense_features": (density > DENSE_THRESHOLD).double().mean().item(),
        "feature_density_log10_hist": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


@torch.no_grad()
def spliced_metrics(
    sae: SAE, model: HookedModel, hook_name: str, domain: Domain, chunk_examples: int = 1024, progress: bool = False
) -> dict[str, Any]:
    """The parent model's loss and accuracy, clean / with the SAE spliced in / with the hook zeroed."""
    from tqdm.auto import tqdm

    model.eval()
    sae.eval()
    out: dict[str, Any] = {}
    variants = {"clean": [(hook_name, pass_through_hook)], "sae": [(hook_name, splice_hook(sae, hook_name))], "zero_ablation": [(hook_name, zero_hook)]}
    for name, hooks in tqdm(variants.items(), desc="spliced eval", leave=False, disable=not progress):
        sums: dict[str, float] = {}
        for start in range(0, domain.n_examples, chunk_examples):
            idx = np.arange(start, min(start + chunk_examples, domain.n_examples))
            for key, values in domain.task_metrics(model, idx, hooks).items():
                sums[key] = sums.get(key, 0.0) + values.double().sum().item()
        figures = {key: value / domain.n_examples for key, value in sums.items()}
        task_acc = [v for k, v in figures.items() if k.startswith("acc_q")]
        if task_acc:
            figures["worst_task_accuracy"] = min(task_acc)
            figures["mean_task_accuracy"] = sum(task_acc) / len(task_acc)
        out[name] = figures
    metric = "ar_exact" if "ar_exact" in out["clean"] else "worst_task_accuracy"
    clean, spliced, zero = (out[k] for k in ("clean", "sae", "zero_ablation"))
    out["ce_loss_score"] = _ratio(zero["loss"] - spliced["loss"], zero["loss"] - clean["loss"])
    out["accuracy_metric"] = metric
    out["accuracy_recovered"] = _ratio(spliced[metric] - zero[metric], clean[metric] - zero[metric])
    out["accuracy_vs_clean"] = _ratio(spliced[metric], clean[metric])
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else float("nan")


def evaluate_sae(
    sae: SAE,
    model: HookedModel,
    store: ActivationStore | None = None,
    chunk_examples: int = 1024,
    progress: bool = False,
) -> dict[str, Any]:
    """Every metric of the module docstring, over the model's whole domain under teacher forcing."""
    if store is None:
        store = ActivationStore(model, sae.cfg.hook_name, domain_of(model), StoreConfig(batch_rows=1, model_batch=chunk_examples))
    check_fits(sae, store)
    return {
        "model_name": sae.cfg.model_name,
        "hook_name": store.hook_name,
        "architecture": sae.cfg.architecture,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        **reconstruction_metrics(sae, store, chunk_examples, progress),
        **spliced_metrics(sae, model, store.hook_name, store.domain, chunk_examples, progress),
    }
