"""Task Arithmetic on every k-task combination (Figure 1): each combination's α and values against models built
independently (θ_0 + α·Σ τ loaded into a copy and evaluated directly, eq. 1 written out), the subsets, weight
restoration, the figure and bad input."""

import copy
import itertools
import math

import pytest
import torch
from transformers import Dinov2Model

from helpers.tiny import random_labels, tiny_backbone_config, tiny_model
from hf_simo.analysis import CombinationResult, merge_combinations
from hf_simo.analysis.combinations import task_subsets
from hf_simo.analysis.plots import PNG_ONLY, plot_combinations
from hf_simo.metrics import MultiTaskMetrics


TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 5},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
}
PRIMARY = {"segmentation": "miou", "depth": "abs_err", "normals": "mean_angle"}
VAL_BASE = {"segmentation": 0.4, "depth": 0.5, "normals": 30.0}
TEST_BASE = {"segmentation": 0.3, "depth": 0.6, "normals": 35.0}
ALPHAS = [0.3, 1.0, 0.6]


def batches(model, seeds):
    out = []
    for seed in seeds:
        pixels = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(seed))
        out.append({"pixel_values": pixels, "labels": random_labels(model.config, 2, 16, 24, seed=seed)})
    return out


@pytest.fixture
def setup():
    model = tiny_model(TASKS, seed=0)
    torch.manual_seed(7)
    base = {k: v.clone() for k, v in Dinov2Model(tiny_backbone_config()).state_dict().items()}
    vectors = {}
    for index, task in enumerate(TASKS):
        gen = torch.Generator().manual_seed(20 + index)
        vectors[task] = {k: 0.3 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    return model, base, vectors, batches(model, [0, 1]), batches(model, [2, 3])


def reference_values(model, encoder_state, data, tasks):
    reference = copy.deepcopy(model).eval()
    reference.dinov2.load_state_dict(encoder_state)
    metrics = MultiTaskMetrics({t: reference.config.task_specs[t] for t in tasks})
    with torch.no_grad():
        for batch in data:
            predictions = reference(batch["pixel_values"]).predictions
            metrics.update({t: predictions[t] for t in tasks}, {t: batch["labels"][t] for t in tasks})
    computed = metrics.compute()
    return {t: computed[t][PRIMARY[t]] for t in tasks}


def eq1(values, baselines):
    """Eq. 1 written out: mean over tasks of M/M_b (higher is better) or M_b/M (lower is better)."""
    ratios = [values[t] / baselines[t] if t == "segmentation" else baselines[t] / values[t] for t in values]
    return sum(ratios) / len(ratios)


def test_every_combination_matches_an_independently_merged_model(setup):
    model, base, vectors, validation, test = setup
    result = merge_combinations(model, base, vectors, ALPHAS, validation, VAL_BASE, test, TEST_BASE)
    expected_subsets = [s for k in (1, 2, 3) for s in itertools.combinations(TASKS, k)]
    assert [tuple(e["tasks"]) for e in result.combinations] == expected_subsets
    for entry in result.combinations:
        subset = entry["tasks"]
        scores = {}
        for alpha in sorted(ALPHAS):
            encoder = {k: base[k] + alpha * sum(vectors[t][k] for t in subset) for k in base}
            scores[alpha] = eq1(reference_values(model, encoder, validation, subset), VAL_BASE)
        best = max(scores.values())
        chosen = min(a for a, s in scores.items() if s >= best - 1e-6)  # ties: the smaller α
        assert entry["alpha"] == chosen, subset
        assert entry["validation_normalized"] == pytest.approx(best, rel=1e-5)
        encoder = {k: base[k] + chosen * sum(vectors[t][k] for t in subset) for k in base}
        values = reference_values(model, encoder, test, subset)
        assert entry["values"] == pytest.approx(values, rel=1e-5, abs=1e-6)
        assert entry["normalized"] == pytest.approx(eq1(values, TEST_BASE), rel=1e-5)
    by_k = result.by_k()
    assert {k: len(v) for k, v in by_k.items()} == {1: 3, 2: 3, 3: 1}
    assert result.mean_by_k()[2] == pytest.approx(sum(by_k[2]) / 3)
    assert result.baselines == TEST_BASE


def test_weights_and_mode_restored_and_max_k(setup):
    model, base, vectors, validation, _ = setup
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = merge_combinations(model, base, vectors, [1.0], validation, VAL_BASE, max_k=2)
    assert max(len(e["tasks"]) for e in result.combinations) == 2
    assert len(result.combinations) == 6
    # without a test split, the reported values are validation's
    assert all(e["normalized"] == pytest.approx(e["validation_normalized"]) for e in result.combinations)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training


def test_result_round_trips_and_renders(setup, tmp_path):
    model, base, vectors, validation, test = setup
    result = merge_combinations(model, base, vectors, [0.5, 1.0], validation, VAL_BASE, test, TEST_BASE)
    loaded = CombinationResult.load(result.save(tmp_path / "combinations.json"))
    assert loaded == result
    table = result.to_markdown()
    assert table.count("\n") == 2 + 3 - 1  # header, rule, one row per k
    mean3 = 100 * result.combinations[-1]["normalized"]
    assert f"| 3 | 1 | {mean3:.1f}% |" in table
    files = plot_combinations(result, tmp_path / "figure1", options=PNG_ONLY)
    assert [f.suffix for f in files] == [".png"] and files[0].stat().st_size > 5000


def test_subsets_and_bad_input(setup):
    model, base, vectors, validation, _ = setup
    assert task_subsets(["a", "b", "c"], max_k=1) == [("a",), ("b",), ("c",)]
    assert len(task_subsets(list("abcde"))) == 2**5 - 1
    with pytest.raises(ValueError, match="alphas"):
        merge_combinations(model, base, vectors, [], validation, VAL_BASE)
    with pytest.raises(ValueError, match="alphas"):
        merge_combinations(model, base, vectors, [-0.5, 1.0], validation, VAL_BASE)
    with pytest.raises(KeyError, match="no head"):
        merge_combinations(model, base, {"edges": vectors["depth"]}, [1.0], validation, VAL_BASE)
    with pytest.raises(
        KeyError,
        match=r"no single-task baseline for task\(s\) \['segmentation', 'normals'\]; validation_baselines has",
    ):
        merge_combinations(model, base, vectors, [1.0], validation, {"depth": 0.5})
    with pytest.raises(ValueError, match="positive finite"):
        merge_combinations(model, base, vectors, [1.0], validation, {**VAL_BASE, "depth": math.nan})
    with pytest.raises(ValueError, match="max_k"):
        merge_combinations(model, base, vectors, [1.0], validation, VAL_BASE, max_k=0)
    with pytest.raises(ValueError, match="empty"):
        merge_combinations(model, base, vectors, [1.0], [], VAL_BASE)
