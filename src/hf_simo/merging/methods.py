"""Merging methods as pure tensor functions: task vectors + weights + options in, one merged task vector out.

In the spirit of `peft.utils.merge_utils`, and kept apart from any I/O so they can be tested against the papers'
reference code and reused by the streaming engine. Every function takes `task_vectors` as a *sequence* of T tensors
of one shape: either the flattened whole encoder (the "global" scope of the TIES reference implementation) or one
tensor of it (the "per tensor" scope of PEFT and mergekit). The streaming engine passes a lazy sequence that reads
a task's tensor from disk on each access, so the functions access each task at most twice and accumulate over tasks
in order (`acc += x_t`), one task at a time: memory does not grow with T, and the streamed and in-memory results are
bitwise identical.

Statistics that depend on the whole scope (TIES thresholds, the majority sign for entries whose elected sign is 0)
are computed from the given tensors by default, and can be passed in instead: that is how the engine applies a
threshold computed over the whole encoder to one tensor at a time.

Conventions (cited per function): the reference TIES trim is `|tau| >= kthvalue(|tau|, d - int(d * density))`
(ties at the threshold are kept; with distinct magnitudes that keeps int(d * density) + 1 entries, one more than
PEFT's and mergekit's `topk`; both scopes here follow the reference), the elected sign is the sign of the sum of
the trimmed vectors, entries whose sum is 0 get the sign of the sum of all elected signs, and the disjoint mean
divides by the number of sign-agreeing non-zero entries.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import MergeOptionError
from .select import kth_rank, kth_smallest, kth_smallest_magnitude


Weight = float | torch.Tensor
TaskVectors = Sequence[torch.Tensor]


# ---------------------------------------------------------------------------------------------- building blocks


def task_vector(finetuned: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """tau = theta_t - theta_0, computed in float32 whatever the stored dtypes."""
    return finetuned.to(torch.float32) - base.to(torch.float32)


def magnitude_threshold(tensor: torch.Tensor, density: float) -> float | None:
    """The reference TIES threshold: `kthvalue(|x|, n - int(n * density))`; None when everything is kept.

    float32 tensors use the exact radix selection of `select` (same value, faster); others call `kthvalue`.
    """
    rank = kth_rank(tensor.numel(), density)
    if rank is None:
        return None
    if tensor.dtype == torch.float32:
        return kth_smallest_magnitude(tensor, rank)
    return kth_smallest(tensor.abs().reshape(-1), rank)


def trim(tensor: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Zero the entries below `threshold` in magnitude (entries equal to it are kept), as `M * (|M| >= kth)`.

    For float32 this is one fused `hardshrink` with lambda = the float32 just below the threshold: |x| > prev(t)
    and |x| >= t select the same floats, without the abs/mask/product temporaries.
    """
    if threshold is None or threshold <= 0:
        return tensor
    if tensor.dtype != torch.float32:
        return tensor * (tensor.abs() >= threshold)
    below = torch.nextafter(torch.tensor(threshold, dtype=torch.float32), torch.tensor(0.0, dtype=torch.float32))
    return torch.nn.functional.hardshrink(tensor, float(below))


def sign_count(sign: torch.Tensor) -> int:
    """(# positive) - (# negative) elected signs, exact; additive over tensors, so a global majority streams."""
    return int(sign.sum(dtype=torch.float64).item())


def majority_sign(sign: torch.Tensor) -> float:
    """Sign of the sum of elected signs, counted exactly (the reference's `sign(sign_to_mult.sum())`)."""
    count = sign_count(sign)
    return float(count > 0) - float(count < 0)


def elect_sign(trimmed: Sequence[torch.Tensor], majority: float | None = None) -> torch.Tensor:
    """TIES "elect": sign of the sum of the (trimmed) task vectors; zeros get `majority` (computed when None)."""
    total = None
    for t in range(len(trimmed)):
        x = trimmed[t]
        total = torch.zeros_like(x) if total is None else total
        total += x
    sign = torch.sign(total)
    if majority is None:
        majority = majority_sign(sign)
    if majority != 0:
        sign.masked_fill_(sign == 0, majority)
    return sign


def disjoint_merge(
    trimmed: Sequence[torch.Tensor],
    sign: torch.Tensor,
    weights: Sequence[Weight] | None = None,
    aggregate: str = "mean",
) -> torch.Tensor:
    """TIES "disjoint merge": per entry, combine the task values that agree with the elected sign.

    `mean` divides the (weighted) sum by the number of agreeing non-zero entries (at least 1), `sum` does not (the
    TALL-mask/consensus variant). As in the reference, an elected sign of 0 (possible only when the global majority
    is itself a tie) selects the negative entries: `where(sign > 0, x > 0, x < 0)`, computed as `x * s > 0` with
    s = +1 where sign > 0 and -1 elsewhere.
    """
    if aggregate not in ("mean", "sum"):
        raise ValueError(f"unknown disjoint aggregate {aggregate!r}; use 'mean' or 'sum'")
    merged = torch.zeros_like(sign)
    count = torch.zeros_like(sign, dtype=torch.int32)
    selector = torch.where(sign > 0, 1.0, -1.0).to(sign.dtype)
    for t in range(len(trimmed)):
        x = trimmed[t]
        keep = (x * selector) > 0
        if weights is None:
            merged.addcmul_(x, keep)  # x * keep is exact (x or 0), so this equals merged += x * keep
        else:
            merged += (x * keep) * weights[t]
        count += keep
    if aggregate == "mean":
        return merged / torch.clamp(count, min=1)
    return merged


class _Mapped(Sequence):
    """A lazy view `fn(t, seq[t])` over a sequence, re-evaluated on each access (no copies of all tasks)."""

    def __init__(self, seq: Sequence[torch.Tensor], fn: Callable[[int, torch.Tensor], torch.Tensor]):
        self.seq, self.fn = seq, fn

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TypeError("slicing is not supported")
        return self.fn(index, self.seq[index])


# ---------------------------------------------------------------------------------------------- methods


def task_arithmetic(task_vectors: TaskVectors, weights: Sequence[Weight] | None = None) -> torch.Tensor:
    """Task Arithmetic (Ilharco et al. 2023): tau = sum_t w_t tau_t; the caller applies theta_0 + alpha * tau."""
    merged = None
    for t in range(len(task_vectors)):
        x = task_vectors[t]
        merged = torch.zeros_like(x) if merged is None else merged
        if weights is None:
            merged += x
        else:
            merged += weights[t] * x
    return merged


def ties(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float = 0.2,
    aggregate: str = "mean",
    thresholds: Sequence[float | None] | None = None,
    majority: float | None = None,
) -> torch.Tensor:
    """TIES-Merging (Yadav et al. 2023): trim to the top-`density` magnitudes, elect signs, disjoint mean.

    The scope of the trim and of the zero-sign majority is the tensor given (pass flattened whole-encoder vectors for
    the reference's global trim), unless `thresholds` (one per task) and `majority` are given. Weights scale the
    trimmed values in the disjoint merge, as PEFT does; the sign election uses the unweighted trimmed vectors.
    """
    _check_density(density)
    computed: list[float | None] = [None] * len(task_vectors)

    def trimmed_first(t: int, x: torch.Tensor) -> torch.Tensor:
        if thresholds is None:
            computed[t] = magnitude_threshold(x, density)
        return trim(x, computed[t] if thresholds is None else thresholds[t])

    sign = elect_sign(_Mapped(task_vectors, trimmed_first), majority)
    final = list(thresholds) if thresholds is not None else computed
    return disjoint_merge(_Mapped(task_vectors, lambda t, x: trim(x, final[t])), sign, weights, aggregate)


def magnitude_prune(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float,
    thresholds: Sequence[float | None] | None = None,
) -> torch.Tensor:
    """Magnitude pruning (PEFT `magnitude_prune`, tall_masks' `topk` + sum): trim each task as TIES does, then sum."""
    _check_density(density)

    def trimmed(t: int, x: torch.Tensor) -> torch.Tensor:
        return trim(x, thresholds[t] if thresholds is not None else magnitude_threshold(x, density))

    return task_arithmetic(_Mapped(task_vectors, trimmed), weights)


def dare_seed(seed: int, task_index: int, key: str) -> int:
    """A generator seed for one (task, tensor): independent of the order tensors are visited, so streaming and
    in-memory merges drop the same entries."""
    digest = hashlib.sha256(f"{seed}:{task_index}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def dare_mask(shape: torch.Size | tuple[int, ...], density: float, seed: int) -> torch.Tensor:
    """Keep each entry with probability `density` (Bernoulli), from a dedicated CPU generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float32) < density


def dare_drop(tensor: torch.Tensor, density: float, seed: int, rescale: bool = True) -> torch.Tensor:
    """DARE (Yu et al. 2024) "drop and rescale": drop entries at rate 1 - density, divide the rest by density."""
    if density >= 1:
        return tensor
    dropped = tensor * dare_mask(tensor.shape, density, seed).to(tensor.device)
    return dropped / density if rescale else dropped


def dare(
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    density: float,
    seeds: Sequence[int],
    rescale: bool = True,
    sign_election: bool = False,
    aggregate: str = "mean",
    majority: float | None = None,
) -> torch.Tensor:
    """DARE then Task Arithmetic (PEFT `dare_linear`) or, with `sign_election`, TIES' elect + disjoint merge
    (`dare_ties`). `seeds[t]` seeds task t's drop mask (see `dare_seed`)."""
    _check_density(density)
    dropped = _Mapped(task_vectors, lambda t, x: dare_drop(x, density, seeds[t], rescale))
    if not sign_election:
        return task_arithmetic(dropped, weights)
    sign = elect_sign(dropped, majority)
    return disjoint_merge(dropped, sign, weights, aggregate)


def breadcrumbs_mask(tensor: torch.Tensor, density: float, gamma: float) -> torch.Tensor | None:
    """Model Breadcrumbs (Davari & Belilovsky 2024), per tensor: drop the `gamma` largest magnitudes (outliers)
    and the smallest ones, keeping `int(density * n)` entries (mergekit's `magnitude_outliers` counts). Ranks come
    from a stable sort, so ties are broken by position, deterministically. None means "keep all" (density >= 1)."""
    if density >= 1:
        return None
    n = tensor.numel()
    target = int(density * n)
    n_top = int(gamma * n)
    n_bot = n - target - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    order = torch.sort(tensor.abs().reshape(-1), stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool, device=tensor.device)
    mask[order[n_bot : n - n_top]] = True
    return mask.reshape(tensor.shape)


def breadcrumbs(
    task_vectors: TaskVectors, weights: Sequence[Weight] | None = None, *, density: float, gamma: float = 0.01
) -> torch.Tensor:
    """Model Breadcrumbs: per-tensor outlier and small-magnitude masking of each task vector, then a sum."""
    _check_density(density)

    def masked(t: int, x: torch.Tensor) -> torch.Tensor:
        mask = breadcrumbs_mask(x, density, gamma)
        return x if mask is None else x * mask

    return task_arithmetic(_Mapped(task_vectors, masked), weights)


def tall_mask(task_vector_t: torch.Tensor, merged: torch.Tensor, tall_lambda: float) -> torch.Tensor:
    """TALL mask (Wang et al. 2024): m_t = |tau_t| >= lambda * |tau_MTL - tau_t| (the paper's `>=`; the official
    code's `>` differs only where both sides are equal, e.g. all-zero entries, which never changes merged weights)."""
    return task_vector_t.abs() >= tall_lambda * (merged - task_vector_t).abs()


def tall_masks(task_vectors: TaskVectors, merged: torch.Tensor, tall_lambda: float) -> list[torch.Tensor]:
    """The TALL masks of all tasks (T boolean tensors): each task's encoder is theta_0 + m_t * tau_MTL."""
    return [tall_mask(task_vectors[t], merged, tall_lambda) for t in range(len(task_vectors))]


def consensus(
    task_vectors: TaskVectors, merged: torch.Tensor, *, tall_lambda: float, min_agreement: int = 2
) -> torch.Tensor:
    """Consensus merging (Wang et al. 2024): keep the entries of tau_MTL that at least `min_agreement` TALL masks
    activate (2 removes "selfish" and "catastrophic" weights)."""
    count = torch.zeros_like(merged, dtype=torch.int32)
    for t in range(len(task_vectors)):
        count += tall_mask(task_vectors[t], merged, tall_lambda)
    return merged * (count >= min_agreement)


def lines_scales(num_layers: int, alpha: float, beta: float) -> list[float]:
    """LiNeS (Wang et al. 2025) layer scaling: alpha + beta * l / (L - 1) for block l, alpha outside the blocks.

    Returned per coefficient group (see `layer_groups`): [embeddings, block 0, ..., block L-1, final layernorm].
    """
    denominator = max(num_layers - 1, 1)
    return [alpha] + [alpha + beta * (layer / denominator) for layer in range(num_layers)] + [alpha]


def apply_task_vector(base: torch.Tensor, merged: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """theta = theta_0 + scale * tau, in float32 (scale = alpha, times the layer scale for LiNeS)."""
    return base.to(torch.float32) + scale * merged


# ---------------------------------------------------------------------------------------------- coefficient groups


def layer_group(key: str, num_layers: int) -> int:
    """Coefficient group of an encoder parameter: 0 = embeddings, 1..L = block l-1, L+1 = final layernorm."""
    if key.startswith("encoder.layer."):
        index = int(key.split(".")[2])
        if not 0 <= index < num_layers:
            raise ValueError(f"{key}: block index {index} outside [0, {num_layers})")
        return index + 1
    if key.startswith("embeddings."):
        return 0
    return num_layers + 1


def layer_group_names(num_layers: int) -> list[str]:
    return ["embeddings"] + [f"layer.{i}" for i in range(num_layers)] + ["layernorm"]


# ---------------------------------------------------------------------------------------------- method registry


def _check_density(density: float) -> None:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise MergeOptionError(f"density must be in (0, 1] (the fraction of entries kept), got {density!r}")


def _number(name: str, low: float | None = None, high: float | None = None, low_open: bool = False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MergeOptionError(f"option {name!r} must be a finite number, got {value!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise MergeOptionError(f"option {name!r} must be {'>' if low_open else '>='} {low}, got {value!r}")
        if high is not None and value > high:
            raise MergeOptionError(f"option {name!r} must be <= {high}, got {value!r}")
        return float(value)

    return check


def _density(value):
    try:
        _check_density(value)
    except MergeOptionError:
        raise MergeOptionError(
            f"option 'density' must be in (0, 1] (fraction of entries kept), got {value!r}"
        ) from None
    return float(value)


def _choice(name: str, choices: tuple[str, ...]):
    def check(value):
        if value not in choices:
            raise MergeOptionError(f"option {name!r} must be one of {list(choices)}, got {value!r}")
        return value

    return check


def _integer(name: str, low: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MergeOptionError(f"option {name!r} must be an integer >= {low}, got {value!r}")
        return value

    return check


def _boolean(name: str):
    def check(value):
        if not isinstance(value, bool):
            raise MergeOptionError(f"option {name!r} must be true or false, got {value!r}")
        return value

    return check


_REQUIRED = object()
_BASES = ("task_arithmetic", "ties")


@dataclass(frozen=True)
class MethodSpec:
    """A merging method: its options (name -> (default, validator)) and what it needs from the data."""

    name: str
    summary: str
    options: dict[str, tuple[Any, Callable[[Any], Any]]] = field(default_factory=dict)

    def resolve(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = sorted(self.options) or "none"
            raise MergeOptionError(f"method {self.name!r} has no option(s) {unknown}; its options are {known}")
        resolved = {}
        for name, (default, check) in self.options.items():
            value = options.get(name, default)
            if value is _REQUIRED:
                raise MergeOptionError(f"method {self.name!r} needs option {name!r}")
            resolved[name] = None if value is None else check(value)
        return resolved


METHODS: dict[str, MethodSpec] = {
    "task_arithmetic": MethodSpec("task_arithmetic", "theta_0 + alpha * sum_t w_t tau_t"),
    "ties": MethodSpec(
        "ties",
        "trim top-density magnitudes, elect signs, disjoint mean",
        {
            "density": (0.2, _density),
            "scope": ("global", _choice("scope", ("global", "tensor"))),
            "aggregate": ("mean", _choice("aggregate", ("mean", "sum"))),
        },
    ),
    "magnitude": MethodSpec(
        "magnitude",
        "trim top-density magnitudes per task, then sum",
        {"density": (_REQUIRED, _density), "scope": ("global", _choice("scope", ("global", "tensor")))},
    ),
    "dare": MethodSpec(
        "dare",
        "random drop at rate 1-density and rescale, then sum (or TIES sign election)",
        {
            "density": (_REQUIRED, _density),
            "seed": (0, _integer("seed", 0)),
            "rescale": (True, _boolean("rescale")),
            "sign_election": (False, _boolean("sign_election")),
            "aggregate": ("mean", _choice("aggregate", ("mean", "sum"))),
        },
    ),
    "breadcrumbs": MethodSpec(
        "breadcrumbs",
        "per-tensor masking of the largest (gamma) and smallest magnitudes, then sum",
        {"density": (_REQUIRED, _density), "gamma": (0.01, _number("gamma", 0.0, 1.0))},
    ),
    "consensus": MethodSpec(
        "consensus",
        "keep the entries of tau_MTL active in >= min_agreement TALL masks",
        {
            "tall_lambda": (0.4, _number("tall_lambda", 0.0, low_open=True)),
            "min_agreement": (2, _integer("min_agreement", 0)),
            "base_method": ("task_arithmetic", _choice("base_method", _BASES)),
            "density": (0.2, _density),
            "scope": ("global", _choice("scope", ("global", "tensor"))),
            "aggregate": ("sum", _choice("aggregate", ("mean", "sum"))),
        },
    ),
    "tall_mask": MethodSpec(
        "tall_mask",
        "TALL masks: task t uses theta_0 + alpha * m_t * tau_MTL (one encoder per task: evaluation only)",
        {
            "tall_lambda": (0.4, _number("tall_lambda", 0.0, low_open=True)),
            "base_method": ("task_arithmetic", _choice("base_method", _BASES)),
            "density": (0.2, _density),
            "scope": ("global", _choice("scope", ("global", "tensor"))),
            "aggregate": ("mean", _choice("aggregate", ("mean", "sum"))),
        },
    ),
    "lines": MethodSpec(
        "lines",
        "LiNeS: scale tau_MTL by alpha + beta * depth / (L - 1) per block",
        {
            "beta": (_REQUIRED, _number("beta")),
            "lines_alpha": (None, _number("lines_alpha")),
            "base_method": ("task_arithmetic", _choice("base_method", _BASES)),
            "density": (0.2, _density),
            "scope": ("global", _choice("scope", ("global", "tensor"))),
            "aggregate": ("mean", _choice("aggregate", ("mean", "sum"))),
        },
    ),
}
METHOD_ALIASES = {"ta": "task_arithmetic", "task-arithmetic": "task_arithmetic", "sum": "task_arithmetic"}


def get_method(name: str) -> MethodSpec:
    key = METHOD_ALIASES.get(name, name)
    if key not in METHODS:
        raise MergeOptionError(f"unknown merging method {name!r}; available: {sorted(METHODS)}")
    return METHODS[key]


def resolve_method(name: str, options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Canonical method name and its options with defaults filled in, validated (MergeOptionError otherwise)."""
    spec = get_method(name)
    resolved = spec.resolve(options)
    # options of the TIES base only matter when the base is TIES: drop them otherwise so configs stay honest
    if spec.name in ("consensus", "lines", "tall_mask") and resolved["base_method"] == "task_arithmetic":
        for unused in ("density", "scope", "aggregate"):
            if options and unused in options:
                raise MergeOptionError(f"option {unused!r} of method {spec.name!r} applies to base_method='ties' only")
            resolved.pop(unused)
    return spec.name, resolved


def trim_scope(method: str, options: Mapping[str, Any]) -> str | None:
    """'global' or 'tensor' when the method trims by magnitude threshold, None otherwise."""
    if method in ("ties", "magnitude"):
        return options["scope"]
    if method in ("consensus", "lines", "tall_mask") and options.get("base_method") == "ties":
        return options["scope"]
    return None


def uses_sign_election(method: str, options: Mapping[str, Any]) -> bool:
    if method == "ties":
        return True
    if method == "dare":
        return bool(options["sign_election"])
    return method in ("consensus", "lines", "tall_mask") and options.get("base_method") == "ties"


def validate_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise MergeOptionError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


# ---------------------------------------------------------------------------------------------- dispatch


def merge_task_vectors(
    method: str,
    options: Mapping[str, Any],
    task_vectors: TaskVectors,
    weights: Sequence[Weight] | None = None,
    *,
    key: str = "",
    thresholds: Sequence[float | None] | None = None,
    majority: float | None = None,
) -> torch.Tensor:
    """tau_MTL for one scope (a tensor, or the flattened encoder) with a resolved method and options.

    `key` seeds DARE's drop masks. For `lines` this is the base method's tau_MTL; the layer scaling is applied by
    the caller, per coefficient group (see `final_scale`).
    """
    if method == "task_arithmetic":
        return task_arithmetic(task_vectors, weights)
    if method == "ties":
        return ties(
            task_vectors,
            weights,
            density=options["density"],
            aggregate=options["aggregate"],
            thresholds=thresholds,
            majority=majority,
        )
    if method == "magnitude":
        return magnitude_prune(task_vectors, weights, density=options["density"], thresholds=thresholds)
    if method == "dare":
        seeds = [dare_seed(options["seed"], t, key) for t in range(len(task_vectors))]
        return dare(
            task_vectors,
            weights,
            density=options["density"],
            seeds=seeds,
            rescale=options["rescale"],
            sign_election=options["sign_election"],
            aggregate=options["aggregate"],
        )
    if method == "breadcrumbs":
        return breadcrumbs(task_vectors, weights, density=options["density"], gamma=options["gamma"])
    if method in ("consensus", "lines", "tall_mask"):
        if options["base_method"] == "ties":
            merged = ties(
                task_vectors,
                weights,
                density=options["density"],
                aggregate=options["aggregate"],
                thresholds=thresholds,
                majority=majority,
            )
        else:
            merged = task_arithmetic(task_vectors, weights)
        if method in ("lines", "tall_mask"):
            return merged  # LiNeS scales it per layer; TALL masks it per task, at evaluation
        return consensus(
            task_vectors, merged, tall_lambda=options["tall_lambda"], min_agreement=options["min_agreement"]
        )
    raise MergeOptionError(f"unknown merging method {method!r}")


def final_scale(
    method: str, options: Mapping[str, Any], alpha: float, group: int, num_layers: int, lines_alpha: float | None
) -> float:
    """The factor applied to tau_MTL for a parameter of coefficient group `group`: alpha, times LiNeS' layer scale."""
    if method != "lines":
        return alpha
    return alpha * lines_scales(num_layers, lines_alpha, options["beta"])[group]


def lines_auto_alpha(sum_sq: float, merged_sq: float, num_tasks: int) -> float:
    """LiNeS' multi-task alpha: ||sum_t tau_t|| / ||tau_MTL|| / T (1/T for Task Arithmetic), as its code sets it."""
    if merged_sq == 0.0:
        return 1.0 / num_tasks
    return (sum_sq**0.5) / (merged_sq**0.5) / num_tasks


def squared_norm(tensor: torch.Tensor) -> float:
    """||x||^2 accumulated in float64 (per tensor, then summed over tensors in key order by the callers)."""
    return float(torch.linalg.vector_norm(tensor, dtype=torch.float64) ** 2)


def resolve_coefficients(coefficients: Any, task_names: Sequence[str], num_groups: int) -> list[list[float]] | None:
    """Per-task, per-group weights as a T x G list, from None, a number, a [T] or [T, G] sequence/tensor, or a
    mapping task -> number | [G]. G = num_layers + 2 (embeddings, each block, final layernorm)."""
    if coefficients is None:
        return None
    num_tasks = len(task_names)
    if isinstance(coefficients, Mapping):
        unknown = sorted(set(coefficients) - set(task_names))
        missing = [t for t in task_names if t not in coefficients]
        if unknown or missing:
            raise MergeOptionError(
                f"coefficients must name exactly the tasks {list(task_names)}; unknown {unknown}, missing {missing}"
            )
        coefficients = [coefficients[t] for t in task_names]
    if isinstance(coefficients, torch.Tensor):
        coefficients = coefficients.detach().cpu().double().tolist()
    if isinstance(coefficients, (int, float)) and not isinstance(coefficients, bool):
        coefficients = [coefficients] * num_tasks
    if not isinstance(coefficients, Sequence) or len(coefficients) != num_tasks:
        raise MergeOptionError(f"coefficients must have one entry per task ({num_tasks}), got {coefficients!r}")
    rows = []
    for task, row in zip(task_names, coefficients):
        if isinstance(row, torch.Tensor):
            row = row.detach().cpu().double().tolist()
        if isinstance(row, (int, float)) and not isinstance(row, bool):
            row = [row] * num_groups
        if not isinstance(row, Sequence) or len(row) != num_groups:
            raise MergeOptionError(
                f"coefficients for task {task!r} must be a number or {num_groups} per-layer values "
                f"(embeddings, {num_groups - 2} blocks, final layernorm), got {row!r}"
            )
        values = []
        for value in row:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MergeOptionError(f"coefficients for task {task!r} must be finite numbers, got {value!r}")
            values.append(float(value))
        rows.append(values)
    return rows


def merge_state_dicts(
    base: Mapping[str, torch.Tensor],
    finetuned: Sequence[Mapping[str, torch.Tensor]],
    method: str = "task_arithmetic",
    options: Mapping[str, Any] | None = None,
    *,
    alpha: float = 1.0,
    coefficients: Any = None,
    num_layers: int | None = None,
    return_task_vector: bool = False,
) -> dict[str, torch.Tensor]:
    """Merge Dinov2 encoder state dicts held in memory: the direct (non-streaming) path, float32 outputs.

    Global-scope methods run on the flattened encoder (keys in sorted order, as the TIES reference flattens a state
    dict), so thresholds come from `kthvalue` over the whole vector and the zero-sign majority from all entries.
    The streaming engine gives bitwise identical results; tests hold it to that.
    """
    method, options = resolve_method(method, options)
    alpha = validate_alpha(alpha)
    keys = sorted(base)
    for index, state_dict in enumerate(finetuned):
        if sorted(state_dict) != keys:
            raise ValueError(f"fine-tuned state dict {index} does not have the base's keys")
    if num_layers is None:
        blocks = {int(k.split(".")[2]) for k in keys if k.startswith("encoder.layer.")}
        num_layers = max(blocks) + 1 if blocks else 0
    groups = {k: layer_group(k, num_layers) for k in keys}
    task_names = [str(t) for t in range(len(finetuned))]
    rows = resolve_coefficients(coefficients, task_names, num_layers + 2)
    vectors = {k: [task_vector(sd[k], base[k]) for sd in finetuned] for k in keys}

    def weights_for(key: str) -> list[float] | None:
        return None if rows is None else [row[groups[key]] for row in rows]

    merged: dict[str, torch.Tensor] = {}
    if trim_scope(method, options) == "global":
        flat = [torch.cat([vectors[k][t].reshape(-1) for k in keys]) for t in range(len(finetuned))]
        flat_weights = None
        if rows is not None:
            flat_weights = [
                torch.cat([torch.full((vectors[k][t].numel(),), row[groups[k]]) for k in keys])
                for t, row in enumerate(rows)
            ]
        result = merge_task_vectors(method, options, flat, flat_weights)
        offset = 0
        for k in keys:
            numel = base[k].numel()
            merged[k] = result[offset : offset + numel].reshape(base[k].shape).clone()
            offset += numel
    else:
        for k in keys:
            merged[k] = merge_task_vectors(method, options, vectors[k], weights_for(k), key=k)
    if return_task_vector:
        return merged
    lines_alpha = None
    if method == "lines":
        lines_alpha = options["lines_alpha"]
        if lines_alpha is None:
            sum_sq = sum(squared_norm(task_arithmetic(vectors[k])) for k in keys)
            merged_sq = sum(squared_norm(merged[k]) for k in keys)
            lines_alpha = lines_auto_alpha(sum_sq, merged_sq, len(finetuned))
    return {
        k: apply_task_vector(
            base[k], merged[k], final_scale(method, options, alpha, groups[k], num_layers, lines_alpha)
        )
        for k in keys
    }


__all__ = [
    "METHODS",
    "MergeOptionError",
    "MethodSpec",
    "apply_task_vector",
    "breadcrumbs",
    "breadcrumbs_mask",
    "consensus",
    "dare",
    "dare_drop",
    "dare_mask",
    "dare_seed",
    "disjoint_merge",
    "elect_sign",
    "final_scale",
    "get_method",
    "layer_group",
    "layer_group_names",
    "lines_auto_alpha",
    "lines_scales",
    "magnitude_prune",
    "magnitude_threshold",
    "majority_sign",
    "merge_state_dicts",
    "merge_task_vectors",
    "resolve_coefficients",
    "resolve_method",
    "sign_count",
    "squared_norm",
    "tall_mask",
    "tall_masks",
    "task_arithmetic",
    "task_vector",
    "ties",
    "trim",
    "trim_scope",
    "uses_sign_election",
    "validate_alpha",
]
