"""Each merging method against a direct reference written from the papers' code, on small random tensors.

The references below are transcribed from the public reference implementations (TIES: prateeky2806/ties-merging
`merge_utils.py` and nik-dim/tall_masks `utils.py`/`ties_utils.py`; TALL masks and consensus: tall_masks
`tallmask_utils.py`; LiNeS: its `LiNeS_scaling`; Breadcrumbs: mergekit `sparsify.magnitude_outliers`; DARE and
per-tensor TIES: PEFT `merge_utils`), written for clarity rather than speed.
"""

from __future__ import annotations

import math

import pytest
import torch

from hf_simo.merging import merge_methods as M
from hf_simo.merging.layers import layer_group, resolve_coefficients
from hf_simo.merging.select import StreamingKthValue, kth_rank, kth_smallest_magnitude, streaming_kth_smallest
from hf_simo.merging.state_dict import merge_state_dicts


# ---------------------------------------------------------------------------------------------- references


def ref_topk_values_mask(matrix: torch.Tensor, k: float) -> torch.Tensor:
    """ties-merging `topk_values_mask` (rows = tasks): keep |x| >= the (d - int(d*k))-th smallest magnitude.

    k > 1 is a percentage there; keeping everything (rank 0, which `kthvalue` rejects) is tall_masks' K == 100
    shortcut."""
    if k > 1:
        k /= 100
    _, d = matrix.shape
    rank = d - int(d * k)
    if rank == 0:
        return matrix
    kth, _ = matrix.abs().kthvalue(rank, dim=1, keepdim=True)
    return matrix * (matrix.abs() >= kth)


def ref_resolve_sign(matrix: torch.Tensor) -> torch.Tensor:
    sign = torch.sign(matrix.sum(dim=0))
    majority = torch.sign(sign.sum())
    sign[sign == 0] = majority
    return sign


def ref_disjoint_merge(matrix: torch.Tensor, merge_func: str, sign: torch.Tensor) -> torch.Tensor:
    rows = torch.where(sign.unsqueeze(0) > 0, matrix > 0, matrix < 0)
    selected = matrix * rows
    if merge_func == "mean":
        counts = (selected != 0).sum(dim=0).float()
        return selected.sum(dim=0) / torch.clamp(counts, min=1)
    return selected.sum(dim=0)


def ref_ties(matrix: torch.Tensor, k: float, merge_func: str = "mean") -> torch.Tensor:
    trimmed = ref_topk_values_mask(matrix.clone(), k)
    return ref_disjoint_merge(trimmed, merge_func, ref_resolve_sign(trimmed))


def ref_lines(task_vector: dict, alpha: float, beta: float, num_blocks: int) -> dict:
    key_blocks = [f".{i}." for i in range(num_blocks)]
    scales = {}
    for key in task_vector:
        for layer, block in enumerate(key_blocks):
            if block in key:
                scales[key] = alpha + beta * (layer / (num_blocks - 1))
                break
    return {key: value * scales.get(key, alpha) for key, value in task_vector.items()}


def ref_magnitude_outliers(tensor: torch.Tensor, density: float, gamma: float) -> torch.Tensor:
    """mergekit `magnitude_outliers` (with `n - n_top` as the slice end, so n_top = 0 keeps the top)."""
    n = tensor.numel()
    target, n_top = int(density * n), int(gamma * n)
    n_bot = n - target - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    indices = torch.argsort(tensor.abs().view(-1), stable=True)
    mask = torch.zeros(n)
    mask[indices[n_bot : n - n_top]] = 1
    return tensor * mask.view(tensor.shape)


def random_task_vectors(num_tasks=3, size=1000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_tasks, size, generator=generator) * 1e-2


# ---------------------------------------------------------------------------------------------- exact k-th value


@pytest.mark.parametrize("seed", range(4))
def test_radix_select_equals_kthvalue_on_adversarial_values(seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.cat(
        [
            torch.randn(3000, generator=generator).abs()
            * 10.0 ** torch.randint(-30, 30, (3000,), generator=generator).float(),
            torch.zeros(500),  # +0 and the abs of -0
            torch.full((400,), 0.5),  # many ties
            torch.tensor([1e-45, 1.4e-45, 3e38, float("inf"), 2.0**-126]),  # subnormals, huge, inf
        ]
    )
    values = values[torch.randperm(values.numel(), generator=generator)]
    chunks = list(values.split(777))
    signed = values * (torch.randint(0, 2, values.shape, generator=generator) * 2 - 1)
    for rank in [1, 2, 500, 501, 900, 1234, values.numel() // 2, values.numel() - 1, values.numel()]:
        expected = values.kthvalue(rank).values.item()
        assert streaming_kth_smallest(chunks, rank) == expected, rank
        assert kth_smallest_magnitude(signed, rank) == expected, rank


def test_radix_select_on_signed_values_ranks_magnitudes_exactly():
    values = torch.tensor([-0.0, 0.0, -3.0, 2.0, -2.0, 1.0, -1e-40])
    selector = StreamingKthValue([3, 7])
    for _ in range(2):
        for stream in range(2):
            for chunk in values.split(3):
                selector.update(stream, chunk, magnitudes=True)
        selector.next_pass()
    magnitudes = values.abs()
    assert selector.values() == [magnitudes.kthvalue(3).values.item(), magnitudes.kthvalue(7).values.item()]


def test_radix_select_rejects_negative_values_and_bad_ranks():
    selector = StreamingKthValue([1])
    with pytest.raises(ValueError, match="non-negative"):
        selector.update(0, torch.tensor([1.0, -2.0]))
    selector = StreamingKthValue([5])
    selector.update(0, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="rank 5"):
        selector.next_pass()


@pytest.mark.parametrize(
    ("numel", "density", "expected"), [(10, 0.2, 8), (10, 1.0, None), (3, 0.2, 3), (1000, 0.3, 700)]
)
def test_kth_rank_follows_the_reference_expression(numel, density, expected):
    assert kth_rank(numel, density) == expected


def test_trim_matches_the_reference_mask_including_ties_at_the_threshold():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=generator)
    x[:300] = 0.25  # many entries exactly at (and around) the threshold
    x[300:600] = -0.25
    for density in (0.05, 0.1, 0.2, 0.5, 0.9, 1.0):
        threshold = M.magnitude_threshold(x, density)
        expected = ref_topk_values_mask(x[None].clone(), density)[0]
        assert torch.equal(M.trim(x, threshold), expected), density
    assert torch.equal(M.trim(x, 0.25), x * (x.abs() >= 0.25))
    assert (M.trim(x, 0.25) != 0).sum() == (x.abs() >= 0.25).sum()  # ties at the threshold are kept


# ---------------------------------------------------------------------------------------------- TIES


@pytest.mark.parametrize("density", [0.1, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("aggregate", ["mean", "sum"])
def test_ties_on_flat_vectors_equals_the_reference(density, aggregate):
    tvs = random_task_vectors()
    got = M.ties(list(tvs), density=density, aggregate=aggregate)
    expected = ref_ties(tvs, density, aggregate)
    assert torch.equal(got != 0, expected != 0)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_ties_ties_at_the_threshold_and_zero_sum_entries_get_the_global_majority():
    # task 0 and 1 cancel exactly on entry 0 (sum 0): the elected sign is the global majority of elected signs
    tvs = torch.tensor(
        [
            [0.5, 0.3, 0.3, 0.3, -0.01, 0.02, 0.3, 0.0],
            [-0.5, 0.3, 0.2, 0.3, -0.01, 0.02, -0.3, 0.0],
            [0.0, 0.3, 0.3, -0.2, 0.01, -0.02, 0.0, 0.0],
        ]
    )
    got = M.ties(list(tvs), density=0.75)
    expected = ref_ties(tvs.clone(), 0.75)
    assert torch.equal(got, expected)
    # majority of the elected signs is positive, so the zero-sum entry 0 keeps the positive 0.5
    assert got[0] == 0.5
    # values equal to the threshold (0.3 here is kept by >=) survive the trim
    assert M.magnitude_threshold(tvs[0], 0.75) <= 0.3


def test_ties_majority_tie_selects_negative_entries_like_the_reference():
    tvs = torch.tensor([[1.0, -1.0, 2.0], [1.0, -1.0, -2.0]])
    got = M.ties(list(tvs), density=1.0)
    assert torch.equal(got, ref_ties(tvs.clone(), 1.0))
    assert got.tolist() == [1.0, -1.0, -2.0]  # elected sign 0 everywhere it is a tie: where(s > 0, ., x < 0)


def test_ties_with_given_statistics_equals_the_flat_computation_per_chunk():
    tvs = random_task_vectors(size=4000, seed=3)
    flat = M.ties(list(tvs), density=0.2)
    thresholds = [M.magnitude_threshold(t, 0.2) for t in tvs]
    trimmed = [M.trim(t, th) for t, th in zip(tvs, thresholds)]
    majority = M.majority_sign(M.elect_sign(trimmed, majority=0.0))
    pieces = [
        M.ties([t[a:b] for t in tvs], density=0.2, thresholds=thresholds, majority=majority)
        for a, b in [(0, 1000), (1000, 1001), (1001, 4000)]
    ]
    assert torch.equal(torch.cat(pieces), flat)


def _peft_density(numel: int, density: float) -> float:
    """PEFT's topk keeps int(n * d) entries; the reference's `|x| >= kthvalue(n - int(n * d))` keeps one more
    (with distinct magnitudes). This is the PEFT density that keeps as many."""
    return (int(numel * density) + 1.5) / numel


def test_reference_trim_keeps_one_more_entry_than_peft_topk():
    x = random_task_vectors(num_tasks=1, size=1000, seed=1)[0]
    assert (M.trim(x, M.magnitude_threshold(x, 0.2)) != 0).sum().item() == 201


def test_ties_per_tensor_equals_peft_when_magnitudes_are_distinct():
    peft_merge = pytest.importorskip("peft.utils.merge_utils")
    tvs = random_task_vectors(size=(40 * 30), seed=5).reshape(3, 40, 30)
    weights = torch.tensor([0.5, 1.0, 2.0])
    expected = peft_merge.ties(list(tvs), weights, density=_peft_density(1200, 0.3))
    got = M.ties(list(tvs), weights.tolist(), density=0.3)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_weighted_ties_scales_the_disjoint_merge_but_not_the_election():
    tvs = random_task_vectors(seed=7)
    weights = [2.0, 0.5, 1.0]
    trimmed = ref_topk_values_mask(tvs.clone(), 0.2)
    sign = ref_resolve_sign(trimmed.clone())
    rows = torch.where(sign > 0, trimmed > 0, trimmed < 0)
    expected = (trimmed * torch.tensor(weights)[:, None] * rows).sum(0) / rows.sum(0).clamp(min=1)
    torch.testing.assert_close(M.ties(list(tvs), weights, density=0.2), expected, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------------- other methods


def test_task_arithmetic_and_magnitude_prune_equal_peft():
    peft_merge = pytest.importorskip("peft.utils.merge_utils")
    tvs = random_task_vectors(seed=11)
    weights = torch.tensor([0.3, 0.7, 1.1])
    torch.testing.assert_close(
        M.task_arithmetic(list(tvs), weights.tolist()), peft_merge.task_arithmetic(list(tvs), weights)
    )
    torch.testing.assert_close(
        M.magnitude_prune(list(tvs), weights.tolist(), density=0.25),
        peft_merge.magnitude_prune(list(tvs), weights, density=_peft_density(1000, 0.25)),
    )
    assert torch.equal(M.task_arithmetic(list(tvs)), tvs[0] + tvs[1] + tvs[2])


def test_dare_drops_at_the_requested_rate_rescales_and_is_seeded():
    tvs = random_task_vectors(num_tasks=2, size=20000, seed=2)
    seeds = [M.dare_seed(0, name, "w") for name in ("a", "b")]
    dropped = [M.dare_drop(t, 0.3, s) for t, s in zip(tvs, seeds)]
    for original, result in zip(tvs, dropped):
        kept = result != 0
        assert abs(kept.float().mean().item() - 0.3) < 0.02  # Bernoulli(0.3), 20000 draws: ~7 sigma margin
        torch.testing.assert_close(result[kept], original[kept] / 0.3)
    linear = M.dare(list(tvs), density=0.3, seeds=seeds)
    assert torch.equal(linear, dropped[0] + dropped[1])
    # DARE-TIES = TIES' elect and disjoint merge on the dropped vectors (reference functions)
    stacked = torch.stack(dropped)
    expected = ref_disjoint_merge(stacked, "mean", ref_resolve_sign(stacked.clone()))
    torch.testing.assert_close(M.dare(list(tvs), density=0.3, seeds=seeds, sign_election=True), expected)
    # same seed -> same drop; another seed or key -> another drop
    assert torch.equal(M.dare_drop(tvs[0], 0.3, seeds[0]), dropped[0])
    assert not torch.equal(M.dare_drop(tvs[0], 0.3, M.dare_seed(1, "a", "w")), dropped[0])
    assert M.dare_seed(0, "a", "w") != M.dare_seed(0, "a", "b")


@pytest.mark.parametrize(("density", "gamma"), [(0.5, 0.01), (0.9, 0.1), (0.3, 0.0), (0.95, 0.2)])
def test_breadcrumbs_equals_mergekit_outlier_masking(density, gamma):
    tvs = random_task_vectors(size=2000, seed=4).reshape(3, 40, 50)
    got = M.breadcrumbs(list(tvs), density=density, gamma=gamma)
    expected = sum(ref_magnitude_outliers(t, density, gamma) for t in tvs)
    torch.testing.assert_close(got, expected)
    mask = M.breadcrumbs_mask(tvs[0], density, gamma)
    assert mask.sum().item() == int(density * 2000)  # always the target count, outliers included
    kept, dropped = tvs[0].abs()[mask], tvs[0].abs()[~mask]
    n_top = min(int(gamma * 2000), 2000 - int(density * 2000))
    if n_top:
        assert (dropped.max() > kept.max()).item()  # the largest magnitudes are dropped as outliers
        assert (dropped > kept.max()).sum().item() == n_top


def test_tall_masks_and_consensus_equal_the_reference():
    tvs = random_task_vectors(num_tasks=4, size=3000, seed=9)
    merged = tvs.sum(0)
    for lam in (0.2, 0.4, 0.6):
        masks = M.tall_masks(list(tvs), merged, lam)
        # reference (tall_masks `generate_task_masks`), in task-vector space
        expected = tvs.abs() > (merged - tvs).abs() * lam
        assert all(torch.equal(m, e) for m, e in zip(masks, expected))
        count = expected.float().sum(0)
        for k in (1, 2, 3):
            torch.testing.assert_close(
                M.consensus(list(tvs), merged, tall_lambda=lam, min_agreement=k), merged * (count >= k), rtol=0, atol=0
            )


def test_tall_mask_uses_the_papers_greater_or_equal():
    tau = torch.tensor([0.0, 1.0, 1.0])
    merged = torch.tensor([0.0, 2.0, 3.0])
    # entry 0: 0 >= 0 (active, as in the paper); entry 1: 1 >= 1*|2-1| (equal: active); entry 2: 1 < 1*2
    assert M.tall_mask(tau, merged, 1.0).tolist() == [True, True, False]


def test_lines_scales_match_the_reference_scaling():
    keys = ["embeddings.cls_token", "encoder.layer.0.mlp.fc1.weight", "encoder.layer.1.norm1.bias"]
    keys += ["encoder.layer.11.mlp.fc2.weight", "encoder.layer.5.attention.q_proj.weight", "layernorm.weight"]
    task_vector = {k: torch.ones(2) for k in keys}
    expected = ref_lines(task_vector, alpha=0.25, beta=0.6, num_blocks=12)
    scales = M.lines_scales(12, 0.25, 0.6)
    for key in keys:
        got = task_vector[key] * scales[layer_group(key, 12)]
        torch.testing.assert_close(got, expected[key], rtol=0, atol=0)
    assert len(scales) == 14 and scales[0] == scales[-1] == 0.25 and math.isclose(scales[12], 0.85)


def test_merge_state_dicts_lines_auto_alpha_is_one_over_t_for_task_arithmetic():
    torch.manual_seed(0)
    keys = [
        "embeddings.cls_token",
        "encoder.layer.0.mlp.fc1.weight",
        "encoder.layer.1.mlp.fc1.weight",
        "layernorm.weight",
    ]
    base = {k: torch.randn(4, 3) for k in keys}
    finetuned = [{k: v + 0.01 * torch.randn(4, 3) for k, v in base.items()} for _ in range(3)]
    merged = merge_state_dicts(base, finetuned, "lines", {"beta": 0.5}, num_layers=2)
    tau = {k: sum(ft[k] - base[k] for ft in finetuned) for k in keys}
    expected = ref_lines(tau, alpha=1 / 3, beta=0.5, num_blocks=2)
    for k in keys:
        torch.testing.assert_close(merged[k], base[k] + expected[k])


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("nope", {}, "unknown merging method 'nope'"),
        ("ties", {"density": 0}, "density"),
        ("ties", {"density": 1.5}, "density"),
        ("ties", {"density": -0.1}, "density"),
        ("ties", {"scope": "layer"}, "scope"),
        ("ties", {"k": 0.2}, "has no option"),
        ("dare", {}, "needs option 'density'"),
        ("breadcrumbs", {"density": 0.5, "gamma": 2}, "gamma"),
        ("consensus", {"tall_lambda": 0}, "tall_lambda"),
        ("consensus", {"density": 0.2}, "base_method='ties'"),
        ("lines", {}, "needs option 'beta'"),
        ("task_arithmetic", {"density": 0.5}, "has no option"),
    ],
)
def test_unknown_methods_and_out_of_range_options_are_refused(method, options, message):
    with pytest.raises(M.MergeOptionError, match=message):
        M.resolve_method(method, options)


def test_alpha_must_be_finite_and_non_negative():
    assert M.validate_alpha(0) == 0.0
    for bad in (-0.1, float("nan"), float("inf"), True):
        with pytest.raises(M.MergeOptionError, match="alpha"):
            M.validate_alpha(bad)


def test_resolved_options_fill_defaults():
    assert M.resolve_method("ties") == ("ties", {"density": 0.2, "scope": "global", "aggregate": "mean"})
    assert M.resolve_method("ta") == ("task_arithmetic", {})
    name, options = M.resolve_method("consensus", {"base_method": "ties"})
    assert options == {
        "tall_lambda": 0.4,
        "min_agreement": 2,
        "base_method": "ties",
        "density": 0.2,
        "scope": "global",
        "aggregate": "mean",  # TIES' own default (issue 12): every method on a TIES base takes TIES' defaults
    }
    for method, required in (("consensus", {}), ("tall_mask", {}), ("lines", {"beta": 0.5})):
        resolved = M.resolve_method(method, {"base_method": "ties", **required})[1]
        assert {k: resolved[k] for k in ("density", "scope", "aggregate")} == M.resolve_method("ties")[1], method


def test_coefficients_accept_numbers_rows_layer_rows_and_mappings():
    names = ["a", "b"]
    assert resolve_coefficients(0.5, names, 3) == [[0.5] * 3, [0.5] * 3]
    assert resolve_coefficients([1, 2], names, 3) == [[1.0] * 3, [2.0] * 3]
    assert resolve_coefficients(torch.ones(2, 3), names, 3) == [[1.0] * 3] * 2
    assert resolve_coefficients({"b": [1, 2, 3], "a": 0}, names, 3) == [[0.0] * 3, [1.0, 2.0, 3.0]]
    for bad in ([1], [[1, 2], 1], {"a": 1}, [float("nan"), 1]):
        with pytest.raises(M.MergeOptionError):
            resolve_coefficients(bad, names, 3)


def test_every_family_file_registers_its_methods_once():
    """A method = one file in merge_methods/ with its `MethodSpec`(s), listed once in the registry (mergekit's
    layout): every spec defined in a family file is in `METHODS` under its own name, with a merge function, and
    every registered spec comes from a family file."""
    import importlib
    import pkgutil

    from hf_simo.merging import merge_methods
    from hf_simo.merging.merge_methods.base import MethodSpec

    infrastructure = {"base", "common", "registry"}
    defined = {}
    for info in pkgutil.iter_modules(merge_methods.__path__):
        if info.name in infrastructure:
            continue
        module = importlib.import_module(f"hf_simo.merging.merge_methods.{info.name}")
        specs = [value for value in vars(module).values() if isinstance(value, MethodSpec)]
        assert specs, f"merge_methods/{info.name}.py defines no MethodSpec"
        defined |= {spec.name: spec for spec in specs}
    assert defined == M.METHODS
    assert all(callable(spec.merge) for spec in M.METHODS.values())
    assert sorted(M.METHODS) == sorted(
        ["task_arithmetic", "ties", "magnitude", "dare", "breadcrumbs", "consensus", "tall_mask", "lines"]
    )


def test_readme_states_the_defaults_of_every_method_once():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    named = [line.split("`")[1] for line in rows if line.split("`")[1] in M.METHODS]
    assert sorted(named) == sorted(M.METHODS)  # one row per registered method
    for line in rows:
        name = line.split("`")[1]
        if name in M.METHODS:
            for option, (default, _) in M.METHODS[name].options.items():
                if option in ("density", "scope", "aggregate") and "TIES' defaults" in line:
                    continue  # a TIES base takes TIES' defaults, stated in the ties row
                if isinstance(default, float):
                    assert f"{default:g}" in line, (name, option)  # every numeric default is stated
