"""What to probe, where, and at which position, for each study's model.

Every target value is a task variable, read from the task modules' registries
(`ktlens.tasks.ktheory.VARIABLES`, `ktlens.tasks.remainders.VARIABLES`); tokens come from the model
(``model.pack``) or the task (`ktlens.tasks.remainders.encode`). Nothing here re-derives the
mathematics; this module only picks, masks and names the targets.

Position convention (``default_position``, defined in ``ktlens.analysis.probes.positions``):

* K-theory model (``model_type == "ktheory"``): decoder hooks are read at **decoder position 0**, the
  BOS position. Its input token is BOS for every example, so everything it holds about (p, r, e) came
  through cross-attention to the source, and it is where the model emits its first value (the first
  count, or the first scratch value, r*e, when the decoder writes scratch values first). (Later positions
  also see the teacher-forced values before them; use ``positions=k`` or ``"all"`` to probe them.)
  The per-position count target ``n_at_position`` covers the count positions only
  (``model.count_positions``); ``scratch_at_position`` the scratch positions only.
  Consequence: ``blocks.0.hook_resid_mid`` at position 0 is the same vector for every example
  (self-attention at BOS sees only BOS), so every probe there sits at its baseline: a sanity row.
  Source hooks (``hook_src_embed``, ``hook_src_pos_embed``, ``hook_src``, ``cross_attn.hook_k/v``) are
  ``"flatten"``: the p, r and e vectors concatenated.
* Remainders model (``model_type == "miiii"``): position -1, the '=' token that the readout reads;
  embeddings are ``"flatten"`` (both digits and '=' concatenated); ``hook_resid_final`` has no
  position axis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ktlens.analysis.probes.positions import FLATTEN_HOOKS, READ_POSITION, default_position
from ktlens.analysis.probes.records import ProbeTarget
from ktlens.models.base import HookedModel
from ktlens.tasks.variables import compute_variables

__all__ = [
    "ProbeData",
    "default_position",
    "default_hooks",
    "probe_data",
    "ktheory_probe_data",
    "remainders_probe_data",
    "joint_codes",
    "FLATTEN_HOOKS",
    "READ_POSITION",
    "KTHEORY_TARGETS",
    "scratch_targets",
]


def default_hooks(model: HookedModel) -> list[str]:
    """The reference's three points per block (after attention, MLP hidden, after MLP) plus embeddings."""
    n_layers = int(model.cfg.n_layers)
    if model.model_type == "ktheory":
        hooks = ["hook_src"]
        for l in range(n_layers):
            hooks += [f"blocks.{l}.hook_resid_mid", f"blocks.{l}.hook_resid_mid_cross",
                      f"blocks.{l}.mlp.hook_post", f"blocks.{l}.hook_resid_post"]
        return hooks
    if model.model_type == "miiii":
        hooks = ["hook_embed"]
        for l in range(n_layers):
            hooks += [f"blocks.{l}.hook_resid_mid", f"blocks.{l}.mlp.hook_post", f"blocks.{l}.hook_resid_post"]
        return hooks + ["hook_resid_final"]
    raise ValueError(f"no default probe hooks for model_type {model.model_type!r}")


@dataclass
class ProbeData:
    """Inputs and targets for probing one model: ``tokens[i]`` is example i, every target has one
    value (or one row of per-position values) per example; ``inputs`` holds the raw inputs
    (e.g. {"p": ..., "r": ..., "e": ...} or {"n": ...}) for reference."""

    tokens: Tensor
    targets: list[ProbeTarget]
    inputs: dict[str, np.ndarray]
    note: str = ""

    def subset(self, idx: np.ndarray) -> "ProbeData":
        idx = np.asarray(idx)
        targets = [dataclasses.replace(t, values=t.values[idx], mask=None if t.mask is None else t.mask[idx])
                   for t in self.targets]
        return ProbeData(self.tokens[torch.as_tensor(idx)], targets, {k: v[idx] for k, v in self.inputs.items()}, self.note)

    def select(self, names: list[str]) -> "ProbeData":
        """Only the targets named (in that order); ValueError naming an unknown one."""
        by_name = {t.name: t for t in self.targets}
        for n in names:
            if n not in by_name:
                raise ValueError(f"unknown probe target {n!r}; known: {sorted(by_name)}")
        return ProbeData(self.tokens, [by_name[n] for n in names], self.inputs, self.note)


def joint_codes(*columns: np.ndarray) -> np.ndarray:
    """One integer class per distinct tuple of the columns' values (0..C-1, in sorted tuple order)."""
    stacked = np.stack([np.asarray(c) for c in columns], axis=1)
    _, code = np.unique(stacked, axis=0, return_inverse=True)
    return code.reshape(-1).astype(np.int64)


def _sample(n: int, n_max: int | None, seed: int) -> np.ndarray:
    if n_max is None or n_max >= n:
        return np.arange(n)
    if n_max < 2:
        raise ValueError(f"n_max={n_max} must be at least 2")
    return np.sort(np.random.default_rng(seed).choice(n, size=n_max, replace=False))


# ----------------------------------------------------------------------------------------------------
# K-theory
# ----------------------------------------------------------------------------------------------------


def _ktheory_domain(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(p, r, e, in_model_test) of the model's domain: its dataset when the task_spec records the
    grid, else primes x 1..r_max x 1..e_max with r*e <= re_max if bounded (split unknown: None)."""
    if "grid" in spec:
        from ktlens.tasks.ktheory_data import KTheoryGridSpec, build_dataset

        ds = build_dataset(KTheoryGridSpec.from_dict(spec["grid"]))
        held = np.zeros(len(ds), dtype=bool)
        held[ds.test_idx] = True
        return ds.p, ds.r, ds.e, held
    from ktlens.tasks.ktheory_data import domain_triples

    p, r, e = domain_triples(spec["primes"], spec["r_max"], spec["e_max"], spec.get("re_max", 0))
    return p.astype(np.int64), r.astype(np.int64), e.astype(np.int64), None


def _held_out(spec: dict[str, Any], p: np.ndarray, r: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Whether each triple is in the held-out split of the model's dataset (None: no grid recorded)."""
    if "grid" not in spec:
        return None
    dp, dr, de, held = _ktheory_domain(spec)
    index = {t: i for i, t in enumerate(zip(dp.tolist(), dr.tolist(), de.tolist()))}
    rows = [index.get(t) for t in zip(p.tolist(), r.tolist(), e.tolist())]
    if any(i is None for i in rows):
        raise ValueError(f"the model's domain has triples outside its dataset, e.g. {next(t for t, i in zip(zip(p, r, e), rows) if i is None)}")
    return held[np.asarray(rows, dtype=np.int64)]


#: K-theory probe targets in table order: (target name, task variable, description, only where p | e).
KTHEORY_TARGETS: tuple[tuple[str, str, str, bool], ...] = (
    ("u", "u", "u = v_p(e), the exponent of p in e (class)", False),
    ("e_prime", "e_prime", "e' = e / p^u, the part of e prime to p (class)", False),
    ("u_and_e_prime", "u,e_prime", "the pair (u, e') as one class: both decoded at once", False),
    ("p_divides_e", "p_divides_e", "whether p divides e, i.e. u >= 1 (binary)", False),
    ("u_when_p_divides_e", "u", "u, on the triples with p | e only (class)", True),
    ("e_prime_when_p_divides_e", "e_prime", "e', on the triples with p | e only (class)", True),
    ("u_and_e_prime_when_p_divides_e", "u,e_prime", "(u, e') jointly, on the triples with p | e only (class)", True),
    ("n_1", "n_1", "n_1, the number of Z/p summands (R^2)", False),
    ("max_exponent", "max_exponent",
     "largest h with a Z/p^h summand: the label length without trailing zeros (class)", False),
    ("is_trivial", "is_trivial", "p > r*e: every s(m) = 1 and the group is (Z/p)^(r(e-1)) (binary)", False),
    ("re", "re", "r*e, the range 1..re of the index m (R^2)", False),
    ("count_div_p", "count_div_p", "#{m in 1..re : p | m} = re // p (R^2)", False),
    ("count_div_e_prime", "count_div_e_prime", "#{m in 1..re : e' | m} = r p^u (R^2)", False),
    ("count_capped", "count_capped", "#{m in 1..re : p not | m, e' | m}: the m whose summand is capped at Z/p^u (R^2)", False),
    ("num_summands", "num_summands", "number of cyclic summands, sum_i n_i (R^2)", False),
    ("log_p_order", "log_p_order", "log_p of the group order, sum_i i n_i = r(e-1) (R^2)", False),
    ("p", "p", "the input p itself (class; sanity: should be decodable everywhere but hook_resid_mid at BOS)", False),
    ("r", "r", "the input r itself (class)", False),
    ("e", "e", "the input e itself (class)", False),
    ("n_at_position", "n_at_position",
     "the label the model emits at decoder position k: n_{k+1}, or n_{L-k} when it decodes descending (R^2)", False),
)
MIN_MASKED = 8  # the p | e targets need at least this many such triples


def ktheory_probe_data(model: HookedModel, n_max: int | None = 4000, seed: int = 0) -> ProbeData:
    """Triples (p, r, e) of the model's domain (``model.domain_triples()``: train and held-out triples
    alike, r*e <= re_max for a bounded domain), at most `n_max` of them sampled with `seed`, with
    teacher-forced tokens ``model.pack(p, r, e, counts)`` (scratch values included).

    Targets: `KTHEORY_TARGETS`, values from ``ktlens.tasks.ktheory.VARIABLES`` (``n_at_position`` with
    the model's label length and label order, so column k is the count at decoder position
    ``n_scratch + k``). A model that writes scratch values also gets `scratch_targets`.
    """
    from ktlens.tasks.ktheory import VARIABLES

    spec = model.task_spec
    p, r, e = model.domain_triples()
    held = _held_out(spec, p, r, e)
    keep = _sample(len(p), n_max, seed)
    p, r, e = p[keep], r[keep], e[keep]
    seq_len = model.seq_len
    names = list(dict.fromkeys(["counts"] + [n for _, var, _, _ in KTHEORY_TARGETS for n in var.split(",")]))
    values = compute_variables(VARIABLES, names, p=p, r=r, e=e, length=seq_len, label_order=model.label_order)
    tokens = model.pack(p, r, e, values["counts"]).cpu()  # natural-order labels, teacher-forced
    divides = values["p_divides_e"]
    targets = []
    for name, var, description, only_divides in KTHEORY_TARGETS:
        if only_divides and divides.sum() < MIN_MASKED:  # the triples where e' != e: u and e' are not just "0 and e"
            continue
        parts = var.split(",")
        vals = joint_codes(*(values[v] for v in parts)) if len(parts) > 1 else values[var]
        kind = "class" if len(parts) > 1 else VARIABLES[var].kind
        per_position = VARIABLES[parts[0]].per_position
        if per_position and model.n_scratch:
            description += f" (count positions {model.n_scratch}..{model.dec_len - 1} only)"
        targets.append(ProbeTarget(name, kind, vals, description, per_position=per_position,
                                   mask=divides if only_divides else None, first_position=model.n_scratch if per_position else 0))
    targets += scratch_targets(model, p, r, e)
    inputs = {"p": p, "r": r, "e": e}
    if held is not None:
        inputs["in_model_test_split"] = held[keep]
    return ProbeData(tokens, targets, inputs,
                     note="K-theory triples of the model's domain (train and held-out); teacher-forced labels")


def scratch_targets(model: HookedModel, p: np.ndarray, r: np.ndarray, e: np.ndarray) -> list[ProbeTarget]:
    """Targets for the scratch values a model writes before the counts (none without scratch), from
    ``model.spec.scratch_values``: ``scratch_at_position`` (column k: the value at scratch position k) and
    one scalar target per other scratch value: floor(r*e / p^h), h >= 2, and floor(r*e / (e' p^h)) (r*e is the
    target ``re``, floor(r*e / p) the target ``count_div_p``)."""
    if not model.n_scratch:
        return []
    values = model.spec.scratch_values(p, r, e)  # [N, n_scratch]
    labels = model.spec.scratch_labels()
    out = [ProbeTarget("scratch_at_position", "scalar", values,
                       f"the scratch value written at decoder position k = 0..{model.n_scratch - 1}: "
                       f"{', '.join(labels)} (scratch positions only) (R^2)", per_position=True)]
    for k, label in enumerate(labels):
        if label in ("re", "re/p"):
            continue
        out.append(ProbeTarget(f"scratch_{label}", "scalar", values[:, k],
                               f"floor({label}), the scratch value of decoder position {k} (R^2)"))
    return out


# ----------------------------------------------------------------------------------------------------
# remainders (MIIII)
# ----------------------------------------------------------------------------------------------------


def remainders_probe_data(
    model: HookedModel, n_max: int | None = 4000, seed: int = 0, fourier_k: tuple[int, ...] = (1, 2, 3)
) -> ProbeData:
    """Every n in 0..p^2-1 (at most `n_max`, sampled with `seed`): n mod q per task, the two digits and
    Fourier components of each digit (frequencies in `fourier_k` up to (p-1)//2), all from
    ``ktlens.tasks.remainders.VARIABLES``."""
    from ktlens.tasks.remainders import VARIABLES, RemaindersSpec, encode, fourier_frequencies, primes_below

    spec = RemaindersSpec.from_dict(model.task_spec)
    pp = spec.p
    n = np.arange(pp**2)[_sample(pp**2, n_max, seed)]
    tokens = torch.as_tensor(encode(spec, n))
    names = ["n_mod_q", "label", "digit_0", "digit_1", "cos_digit_0", "sin_digit_0", "cos_digit_1", "sin_digit_1"]
    values = compute_variables(VARIABLES, names, n=n, spec=spec)
    T = ProbeTarget
    targets = [T(f"n_mod_{q}", "class", values["n_mod_q"][:, j], f"n mod {q} (class; task q={q})")
               for j, q in enumerate(primes_below(pp))]
    if spec.variant != "remainders":
        targets += [T(f"label_{q}", "class", values["label"][:, j], f"the trained {spec.variant} label of task q={q} (class)")
                    for j, q in enumerate(spec.moduli)]
    targets += [
        T("digit_0", "class", values["digit_0"], "the first input token (n // p for digit_order msd) (class)"),
        T("digit_1", "class", values["digit_1"], "the second input token (n % p for digit_order msd) (class)"),
    ]
    freqs = fourier_frequencies(spec)
    for name in ("digit_0", "digit_1"):
        for k in fourier_k:
            if k not in freqs:
                continue
            col = freqs.index(k)
            targets.append(T(f"cos_{k}_{name}", "scalar", values[f"cos_{name}"][:, col],
                             f"cos(2 pi {k} {name} / p) (R^2; for the low digit this is cos(2 pi {k} n / p))"))
            targets.append(T(f"sin_{k}_{name}", "scalar", values[f"sin_{name}"][:, col], f"sin(2 pi {k} {name} / p) (R^2)"))
    return ProbeData(tokens, targets, {"n": n}, note=f"n in 0..{pp**2 - 1}, p={pp}, digit order {spec.digit_order}")


def probe_data(model: HookedModel, n_max: int | None = 4000, seed: int = 0) -> ProbeData:
    """The study's probe data for `model` (dispatch on ``model.model_type``)."""
    if model.model_type == "ktheory":
        return ktheory_probe_data(model, n_max, seed)
    if model.model_type == "miiii":
        return remainders_probe_data(model, n_max, seed)
    raise ValueError(f"no probe targets for model_type {model.model_type!r}")
