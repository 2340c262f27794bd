"""DAS on the K-theory transformer: locations, answer-changing pairs from the causal model, one fit with controls.

A location is a hook and a set of its positions: ``hook_src`` (the embedded source the cross-attention reads)
at ``src`` (p, r and e) or one of ``p``, ``r``, ``e``; a decoder hook at ``bos`` (position 0), ``labels``
(positions 1..D-1, D = ``model.dec_len``), ``all`` (0..D-1), ``count`` (the positions that predict counts,
``model.count_positions``), ``scratch`` (the positions whose input token is a scratch value, 1..n_scratch; only on
a model with a scratchpad) or one decoder position ``0``..``D-1``. Without scratch values D = L and ``count`` is
``all``. The same subspace is swapped at every position of the set, each position taking the source's activation
at that position.

Pairs: bases and sources are triples of the model's domain (``model.domain_triples()``: r e <= re_max on a
bounded domain) that it labels exactly (every decoder position, teacher forced, against ``model.targets``); the
base runs with the causal model's counterfactual counts as decoder input (teacher forcing on the counterfactual)
and is scored at the count positions; the source runs on its own sequence. A pair is used only where the
counterfactual is defined within the model's labels (at most L levels, counts in 0..max_count) and realisable in
the domain (``ktheory_causal.realisable``: its re within the domain's bound; under ``e_rebuilt`` the rebuilt
triple in the domain). Pairs whose swap changes the answer are taken first (``answer_changing_share`` of the
pairs used; ``natural_share``: of uniformly drawn valid pairs). Training and held-out pairs come from disjoint
halves of the triples.

Scratch positions (a model whose decoder first writes r e and floor(r e / p^h)): the base's decoder input holds
the *base's* scratch values (``model.pack`` / ``make_batch``), then the counterfactual counts, and IIA is scored
at ``model.count_positions`` only (the scratch predictions are not scored). In Algorithm 1 the scratch values
are functions of p and re, so a u or e' swap under ``algorithm1`` / ``order`` (re held at the base's value)
leaves them as they are and the decoder input is the causal model's own counterfactual sequence. An ``re`` swap,
or a u / e' swap under ``e_rebuilt``, changes re: the causal model's scratch values then differ from the base's
ones in the input, and the swap has to move the counts against the scratch tokens the decoder reads
(``PairSet.scratch_changed`` marks those pairs; the report gives their share). With the e' chain
(floor(r e / (e' p^h))) an e' swap moves scratch values too. ``scratch_input="counterfactual"`` removes the
confound: the base's decoder input is then the causal model's whole counterfactual sequence (its scratch values,
``ktheory_causal.counterfactual_scratch``, then its counts) and IIA is scored at every decoder position, so the
first scratch value the swap moves (floor(r e / e') for e', r e for re) has to come from the intervention alone:
every decoder input before it is the base's own.

Controls (same pairs, same rank): a random subspace, a norm-matched placebo (moves each base as far as the
learned interchange does, inside a random subspace), the base run with no swap, and the same search on a
randomly initialised model of the same config.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from transformer_lens.tools.analysis.interchange import NormMatchedPlacebo, SubspaceInterchange, random_basis

from ktlens.analysis.causal.interchange import FitConfig, collect, fit_subspace, interchange_accuracy
from ktlens.tasks import ktheory_causal as kc

__all__ = ["Location", "default_locations", "parse_location", "position_indices", "exact_triples", "PairSet",
           "sample_pairs", "domain_label_keys", "pair_tokens", "scored_positions", "SCRATCH_INPUTS",
           "check_scratch_input", "DASReport", "das", "random_model_like", "DEFAULT_VARIABLES"]

SRC_POSITIONS = {"src": (0, 1, 2), "p": (0,), "r": (1,), "e": (2,)}
DECODER_POSITIONS = ("bos", "labels", "all")
SRC_HOOKS = ("hook_src", "hook_src_embed", "hook_src_pos_embed")


def DEFAULT_VARIABLES(model) -> list[str]:
    """u, e', re, capped and every n_k the model writes."""
    return ["u", "e_prime", "re", "capped"] + [f"n_{k}" for k in range(1, model.seq_len + 1)]


@dataclass(frozen=True)
class Location:
    """A hook and the set of its positions the subspace is swapped at (module docstring)."""

    hook: str
    positions: str = "all"

    @property
    def label(self) -> str:
        return f"{self.hook}@{self.positions}"


def parse_location(text: str) -> Location:
    """``HOOK`` or ``HOOK@POSITIONS`` (default positions: ``src`` for source hooks, ``all`` otherwise)."""
    hook, _, pos = str(text).partition("@")
    return Location(hook, pos or ("src" if hook in SRC_HOOKS else "all"))


def position_indices(model, loc: Location) -> tuple[int, ...]:
    """Indices of the location's positions; ValueError naming an unknown hook or position set."""
    if loc.hook not in model.hook_dict:
        raise ValueError(f"hook {loc.hook!r} does not exist in this model")
    if loc.hook in SRC_HOOKS:
        if loc.positions not in SRC_POSITIONS:
            raise ValueError(f"positions {loc.positions!r} of {loc.hook!r} must be one of {sorted(SRC_POSITIONS)}")
        return SRC_POSITIONS[loc.positions]
    if loc.hook.endswith(("hook_pattern", "hook_attn_scores", "hook_scale")) or ".hook_" not in loc.hook and "hook_" not in loc.hook:
        raise ValueError(f"hook {loc.hook!r} is not a [batch, pos, d] activation")
    D = model.dec_len
    if loc.positions.isdigit() and int(loc.positions) < D:
        return (int(loc.positions),)
    sets = {"bos": (0,), "labels": tuple(range(1, D)), "all": tuple(range(D)), "count": tuple(model.count_positions)}
    if model.n_scratch:
        sets["scratch"] = tuple(range(1, model.n_scratch + 1))
    if loc.positions not in sets:
        raise ValueError(f"positions {loc.positions!r} of {loc.hook!r} must be one of {sorted(sets)} "
                         f"or a decoder position 0..{D - 1}")
    return sets[loc.positions]


def default_locations(model) -> list[Location]:
    """The source embedding (all three positions), and per block the residual after cross-attention, the MLP
    hidden layer and the residual after the MLP, each at BOS and at every decoder position; with a scratchpad
    also at the scratch positions and at the count positions."""
    sets = ("bos", "scratch", "count", "all") if model.n_scratch else ("bos", "all")
    out = [Location("hook_src", "src")]
    for l in range(model.cfg.n_layers):
        for hook in (f"blocks.{l}.hook_resid_mid_cross", f"blocks.{l}.mlp.hook_post", f"blocks.{l}.hook_resid_post"):
            out += [Location(hook, pos) for pos in sets]
    return out


@torch.no_grad()
def exact_triples(model, batch_size: int = 2048, min_count: int = 64) -> np.ndarray:
    """``[N, 3]``: every (p, r, e) of the model's domain (``model.domain_triples()``) it labels exactly (the
    teacher-forced argmax at every decoder position, scratch values included, is ``model.targets``); the whole
    domain when fewer than ``min_count`` are exact (an untrained model)."""
    p, r, e = model.domain_triples()
    keep = []
    for s in range(0, len(p), batch_size):
        sl = slice(s, s + batch_size)
        tokens = model.make_batch(p[sl], r[sl], e[sl])
        keep.append((model(tokens).argmax(-1) == model.targets(p[sl], r[sl], e[sl])).all(1).cpu().numpy())
    keep = np.concatenate(keep)
    if keep.sum() < min_count:
        keep[:] = True
    return np.stack([p, r, e], axis=1)[keep]


@dataclass
class PairSet:
    """Base and source triples ``[n, 3]``, the counterfactual labels ``[n, L]`` (natural order), whether each
    swap changes the answer, the share of answer-changing pairs among uniformly drawn valid pairs, and whether
    the counterfactual's re (hence its scratch values) differs from the base's."""

    base: np.ndarray
    source: np.ndarray
    counts: np.ndarray
    changing: np.ndarray
    natural_share: float
    scratch_changed: np.ndarray | None = None  # the causal model's re (so its scratch values) differs from the base's
    scratch: np.ndarray | None = None  # [n, n_scratch]: the causal model's scratch values ("counterfactual" input)

    def __len__(self) -> int:
        return len(self.base)


def domain_label_keys(model) -> set[bytes]:
    """``(p, label)`` of every triple of the model's domain, as bytes keys (``on_manifold`` of ``sample_pairs``)."""
    p, r, e = model.domain_triples()
    counts = kc.counterfactual((p, r, e), length=model.seq_len)
    return {row.tobytes() for row in np.concatenate([p[:, None], counts], axis=1).astype(np.int64)}


def sample_pairs(model, variable: str, triples: np.ndarray, n: int, seed: int, same_prime: bool | str = True,
                 causal_model: str = "algorithm1", on_manifold: bool = False, draws: int = 8,
                 scratch_input: str = "base") -> PairSet:
    """``n`` pairs from ``triples`` whose counterfactual fits the model's labels, answer-changing ones first.
    ``same_prime``: each source has the base's p (u and e' are defined relative to p); ``"isolate"``: the
    source also has the base's value of every other upstream variable (of u: e' and re), so the swap moves the
    variable alone and the counterfactual is the label of a real triple. ``on_manifold``: keep only pairs whose
    counterfactual is the label of some triple of the model's domain with the base's prime (the intervened run
    is asked for an answer the model gives on a real input). ``draws``: candidate pairs drawn per pair asked
    for (more finds more answer-changing pairs when they are rare, as for u). ``scratch_input="counterfactual"``:
    the pairs carry the causal model's scratch values, and a swap that moves only them changes the answer."""
    kc.check_variable(variable)
    check_scratch_input(model, scratch_input)
    rng = np.random.default_rng(seed)
    m = max(draws * n, 256)
    base = triples[rng.integers(len(triples), size=m)]
    if same_prime is True or same_prime == "isolate":
        key = triples[:, :1]
        if same_prime == "isolate":  # the source also shares every other upstream parent of the counts
            if variable not in kc.UPSTREAM:
                raise ValueError(f"isolating pairs are defined for {kc.UPSTREAM}, not {variable!r}")
            vals = kc.intermediates(triples[:, 0], triples[:, 1], triples[:, 2])
            key = np.stack([triples[:, 0]] + [vals[k] for k in kc.UPSTREAM if k != variable], axis=1)
        _, group = np.unique(key, axis=0, return_inverse=True)
        group = group.ravel()
        order = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[order], np.arange(group.max() + 1))
        sizes = np.bincount(group)
        pick = rng.integers(len(triples), size=m)
        base = triples[pick]
        g = group[pick]
        source = triples[order[starts[g] + (rng.random(m) * sizes[g]).astype(np.int64)]]
    else:
        source = triples[rng.integers(len(triples), size=m)]
    split = lambda t: (t[:, 0], t[:, 1], t[:, 2])  # noqa: E731
    counts = kc.counterfactual(split(base), {variable: split(source)}, causal_model=causal_model, allow_negative=True)
    before = kc.counterfactual(split(base))
    width = max(counts.shape[1], before.shape[1], model.seq_len)
    counts = np.pad(counts, ((0, 0), (0, width - counts.shape[1])))
    before = np.pad(before, ((0, 0), (0, width - before.shape[1])))
    valid = ~counts[:, model.seq_len:].any(1) & (counts.max(1) <= model.max_count) & (counts.min(1) >= 0)
    valid &= kc.realisable(split(base), {variable: split(source)}, causal_model, model.primes, model.r_max,
                           model.e_max, model.spec.re_max)
    scratch_changed = kc.upstream(split(base), {variable: split(source)}, causal_model)["re"] != base[:, 1] * base[:, 2]
    if on_manifold:
        keys = domain_label_keys(model)
        rows = np.concatenate([base[:, :1], counts[:, : model.seq_len]], axis=1).astype(np.int64)
        valid &= np.array([row.tobytes() in keys for row in rows], dtype=bool)
    changing = (counts != before).any(1)
    scratch = None
    if scratch_input == "counterfactual":
        scratch = kc.counterfactual_scratch(split(base), {variable: split(source)}, causal_model, model.spec)
        changing |= (scratch != model.spec.scratch_values(*split(base))).any(1)
    order = np.concatenate([np.flatnonzero(valid & changing), np.flatnonzero(valid & ~changing)])[:n]
    if len(order) < n:
        raise ValueError(f"only {len(order)} valid pairs for {variable!r} among {m} drawn; ask for fewer")
    natural = float(changing[valid].mean()) if valid.any() else 0.0
    return PairSet(base[order], source[order], counts[order, : model.seq_len], changing[order], natural,
                   scratch_changed[order], None if scratch is None else scratch[order])


def pair_tokens(model, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(base tokens with the base's scratch values and the counterfactual counts as decoder input, source tokens
    with their own sequence, target counts in the decoder's order: the ids at ``model.count_positions``). Pairs
    with counterfactual scratch values (``pairs.scratch``): the base's decoder input is the causal model's whole
    sequence, and the targets are every decoder position's id."""
    b, s = pairs.base, pairs.source
    base_tokens = model.pack(b[:, 0], b[:, 1], b[:, 2], pairs.counts, scratch=pairs.scratch)
    source_tokens = model.make_batch(s[:, 0], s[:, 1], s[:, 2])
    if pairs.scratch is not None:
        ids = model.decoder_targets(b[:, 0], b[:, 1], b[:, 2], pairs.counts, scratch=pairs.scratch)
    else:
        ids = model.to_model_order(pairs.counts)
    return base_tokens, source_tokens, torch.as_tensor(np.ascontiguousarray(ids), dtype=torch.long)


def random_model_like(model, seed: int = 1):
    """A freshly initialised model of the same config and task (its own initialisation, seed ``seed``)."""
    import dataclasses

    cfg = dataclasses.replace(model.cfg, seed=seed)
    return type(model)(cfg, model.spec).eval()


@dataclass
class DASReport:
    """One variable at one location and rank: held-out IIA and its controls (module docstring). IIA is scored at
    the count positions (``scored_positions``); ``iia_per_position`` follows them in the decoder's order."""

    variable: str
    location: str
    subspace_dim: int
    causal_model: str
    iia: float
    iia_random_subspace: float
    iia_placebo: float
    iia_no_intervention: float
    iia_random_model: float | None
    n_pairs: int
    n_train: int
    answer_changing_share: float
    natural_share: float
    iia_per_position: list[float]
    seconds: float
    final_loss: float
    scored_positions: list[str] = field(default_factory=list)  # position_labels() of the scored (count) positions
    scratch_changed_share: float = 0.0  # pairs whose counterfactual re differs from the base's (module docstring)
    basis: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("basis")
        return d


@dataclass
class _Data:
    train: tuple
    test: tuple
    test_pairs: PairSet
    train_pairs: PairSet


def _data(model, variable: str, n_train: int, n_test: int, seed: int, triples: np.ndarray | None,
          same_prime: bool | str = True, causal_model: str = "algorithm1", on_manifold: bool = False,
          draws: int = 8, scratch_input: str = "base") -> _Data:
    triples = exact_triples(model) if triples is None else triples
    perm = np.random.default_rng(seed).permutation(len(triples))
    half = len(triples) // 2
    args = (same_prime, causal_model, on_manifold, draws, scratch_input)
    train = sample_pairs(model, variable, triples[perm[:half]], n_train, seed, *args)
    test = sample_pairs(model, variable, triples[perm[half:]], n_test, seed + 1, *args)
    return _Data(pair_tokens(model, train), pair_tokens(model, test), test, train)


SCRATCH_INPUTS = ("base", "counterfactual")


def check_scratch_input(model, scratch_input: str) -> None:
    """ValueError naming a scratch input other than ``SCRATCH_INPUTS``, or "counterfactual" without scratch values."""
    if scratch_input not in SCRATCH_INPUTS:
        raise ValueError(f"scratch_input={scratch_input!r} must be one of {SCRATCH_INPUTS}")
    if scratch_input == "counterfactual" and not model.n_scratch:
        raise ValueError("scratch_input='counterfactual' needs a model that writes scratch values")


def scored_positions(model, data: _Data | None = None) -> tuple[int, ...] | None:
    """The decoder positions IIA is scored at: ``model.count_positions`` (None, i.e. every position, without
    scratch values, where the two are the same, or when the pairs carry counterfactual scratch values)."""
    if data is not None and data.test_pairs.scratch is not None:
        return None
    return tuple(model.count_positions) if model.n_scratch else None


def _fit_and_score(model, loc: Location, data: _Data, cfg: FitConfig, progress: bool, desc: str):
    pos = position_indices(model, loc)
    at = scored_positions(model, data)
    subspace, losses = fit_subspace(model, loc.hook, pos, *data.train, cfg, progress=progress, desc=desc, target_positions=at)
    base, source, targets = data.test
    src_acts = collect(model, loc.hook, source, pos)
    learned = SubspaceInterchange(subspace.basis.detach())
    iia, per_pos = interchange_accuracy(model, loc.hook, pos, learned, base, src_acts, targets, target_positions=at)
    return subspace.basis.detach(), losses, iia, per_pos, src_acts, pos


def das(model, variable: str, location: Location | str, cfg: FitConfig | None = None, n_train: int = 2048,
        n_test: int = 512, random_model=None, triples: np.ndarray | None = None, progress: bool = True,
        data: _Data | None = None, same_prime: bool | str = True, causal_model: str = "algorithm1",
        scratch_input: str = "base") -> DASReport:
    """Fit DAS for ``variable`` at ``location`` and score it and its controls on held-out pairs.

    ``random_model``: a model of the same config (``random_model_like``) for the random-model control (None:
    skipped). ``triples``: the pool of exactly-labelled triples (computed when None). ``scratch_input``: on a
    model with scratch values, "base" (the base's own scratch values in the decoder input, IIA at the count
    positions) or "counterfactual" (the causal model's scratch values and counts, IIA at every position)."""
    cfg = cfg or FitConfig()
    kc.check_variable(variable)
    loc = parse_location(location) if isinstance(location, str) else location
    position_indices(model, loc)
    t0 = time.perf_counter()
    data = data or _data(model, variable, n_train, n_test, cfg.seed, triples, same_prime, causal_model,
                         scratch_input=scratch_input)
    basis, losses, iia, per_pos, src_acts, pos = _fit_and_score(model, loc, data, cfg, progress, f"DAS {variable} @ {loc.label}")
    base, _, targets = data.test
    d = basis.shape[0]
    at = scored_positions(model, data)
    rand = random_basis(d, cfg.rank, seed=cfg.seed + 1000)
    iia_rand, _ = interchange_accuracy(model, loc.hook, pos, SubspaceInterchange(rand), base, src_acts, targets, target_positions=at)
    placebo = NormMatchedPlacebo(SubspaceInterchange(basis), rand)
    iia_placebo, _ = interchange_accuracy(model, loc.hook, pos, placebo, base, src_acts, targets, target_positions=at)
    iia_none, _ = interchange_accuracy(model, loc.hook, pos, None, base, src_acts, targets, target_positions=at)
    iia_rm = None
    if random_model is not None:
        iia_rm = _fit_and_score(random_model.eval(), loc, data, cfg, progress, f"DAS {variable} @ {loc.label} (random model)")[2]
    return DASReport(
        variable=variable, location=loc.label, subspace_dim=cfg.rank, causal_model=causal_model, iia=iia, iia_random_subspace=iia_rand,
        iia_placebo=iia_placebo, iia_no_intervention=iia_none, iia_random_model=iia_rm, n_pairs=len(data.test_pairs),
        n_train=len(data.train_pairs), answer_changing_share=float(data.test_pairs.changing.mean()),
        natural_share=data.test_pairs.natural_share, iia_per_position=[float(x) for x in per_pos],
        seconds=time.perf_counter() - t0, final_loss=float(np.mean(losses[-10:])), basis=basis,
        scored_positions=[model.position_labels()[i] for i in (at if at is not None else range(model.dec_len))],
        scratch_changed_share=float(np.mean(data.test_pairs.scratch_changed)),
    )
