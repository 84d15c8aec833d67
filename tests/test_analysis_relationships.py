"""Task-vector sweeps (paper 6.4): values against independently built models, weight restoration, the matrix and
the report's classification rules, bad input."""

import copy
import math

import pytest
import torch
from transformers import Dinov2Model

from helpers.relationships import hand_made_result
from helpers.tiny import random_labels, tiny_backbone_config, tiny_model
from hf_simo.analysis import (
    DEFAULT_LAMBDAS,
    RelationshipResult,
    describe_relationships,
    relationship_matrix,
    sweep_task_vectors,
)
from hf_simo.analysis.relationships import normalized_value, summarize_relationships
from hf_simo.metrics import MultiTaskMetrics


TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 5},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
}
BASELINES = {"segmentation": 0.4, "depth": 0.5, "normals": 30.0}
GRID = [0.0, 0.5, 1.0]


@pytest.fixture
def setup():
    model = tiny_model(TASKS, seed=0)
    torch.manual_seed(123)  # θ_0 differs from the model's own encoder, so restoring is observable
    base = {k: v.clone() for k, v in Dinov2Model(tiny_backbone_config()).state_dict().items()}
    vectors = {}
    for index, task in enumerate(TASKS):
        gen = torch.Generator().manual_seed(10 + index)
        vectors[task] = {k: 0.2 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    batches = []
    for seed in range(2):
        pixels = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(seed))
        batches.append({"pixel_values": pixels, "labels": random_labels(model.config, 2, 16, 24, seed=seed)})
    return model, base, vectors, batches


def evaluate_with_encoder(model, encoder_state, batches):
    """Reference: a deep copy of the model with `encoder_state` loaded the ordinary way, evaluated directly."""
    reference = copy.deepcopy(model).eval()
    reference.dinov2.load_state_dict(encoder_state)
    metrics = MultiTaskMetrics(reference.config.task_specs)
    with torch.no_grad():
        for batch in batches:
            metrics.update(reference(batch["pixel_values"]).predictions, batch["labels"])
    return metrics.compute()


def test_lambda_zero_equals_base_encoder_model_and_lambda_one_the_finetuned_one(setup):
    model, base, vectors, batches = setup
    result = sweep_task_vectors(model, base, vectors, GRID, batches, BASELINES)
    expected_base = evaluate_with_encoder(model, base, batches)
    assert result.base_metrics == expected_base
    for primary in TASKS:
        assert result.metrics[primary][0] == expected_base  # λ = 0 is θ_0 with the same heads
        for lam in (0.5, 1.0):
            encoder = {k: base[k] + lam * vectors[primary][k] for k in base}
            expected = evaluate_with_encoder(model, encoder, batches)
            got = result.metrics[primary][result.lambda_index(lam)]
            for task in TASKS:
                for name, value in expected[task].items():
                    assert got[task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (primary, lam, task, name)
        # the vector does something: λ = 0.5 differs from θ_0 for some task
        assert result.metrics[primary][1] != expected_base


def test_sweep_restores_weights_and_mode_also_on_error(setup):
    model, base, vectors, batches = setup
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sweep_task_vectors(model, base, {"depth": vectors["depth"]}, [0.0, 1.0], batches, BASELINES)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training

    class FailingOnThirdPass:
        """Re-iterable batches that break during the second grid point (after θ_0 + λτ was loaded)."""

        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            if self.passes == 3:
                raise RuntimeError("data loader crashed")
            return iter(batches)

    with pytest.raises(RuntimeError, match="data loader crashed"):
        sweep_task_vectors(model, base, vectors, [0.0, 0.5, 1.0], FailingOnThirdPass(), BASELINES)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training


def test_normalized_curves_follow_eq1_and_grid_is_sorted(setup):
    model, base, vectors, batches = setup
    result = sweep_task_vectors(
        model, base, {"normals": vectors["normals"]}, [1.0, 0.0], iter(batches), BASELINES
    )  # unsorted grid, one-shot iterator: both handled
    assert result.lambdas == [0.0, 1.0]
    curves = result.normalized("normals")
    for index in range(2):
        raw = result.metrics["normals"][index]
        assert curves["segmentation"][index] == pytest.approx(raw["segmentation"]["miou"] / 0.4)
        assert curves["depth"][index] == pytest.approx(0.5 / raw["depth"]["abs_err"])
        assert curves["normals"][index] == pytest.approx(30.0 / raw["normals"]["mean_angle"])
    assert normalized_value(0.0, 1.0, "abs_err") == math.inf
    assert math.isnan(normalized_value(math.nan, 1.0, "miou"))


def test_matrix_modes_and_json_round_trip(setup, tmp_path):
    model, base, vectors, batches = setup
    result = sweep_task_vectors(model, base, vectors, GRID, batches, BASELINES)
    diff = relationship_matrix(result, 1.0)
    ratio = relationship_matrix(result, 1.0, mode="ratio")
    assert diff.primary_tasks == list(TASKS) and diff.tasks == list(TASKS)
    index = result.lambda_index(1.0)
    for primary in TASKS:
        for task in TASKS:
            after = result.metrics[primary][index][task]
            before = result.base_metrics[task]
            metric = result.metric_names[task]
            expected_diff = normalized_value(after[metric], BASELINES[task], metric) - normalized_value(
                before[metric], BASELINES[task], metric
            )
            assert diff[primary, task] == pytest.approx(expected_diff)
            # ratio = metric relative to the θ_0 model: independent of the baselines
            raw_ratio = after[metric] / before[metric]
            expected_ratio = raw_ratio if metric == "miou" else 1 / raw_ratio
            assert ratio[primary, task] == pytest.approx(expected_ratio)
    assert "| τ_depth |" in diff.to_markdown()
    with pytest.raises(ValueError, match="not on the sweep's grid"):
        relationship_matrix(result, 0.7)

    path = result.save(tmp_path / "sweep" / "relationships.json")
    loaded = RelationshipResult.load(path)
    assert loaded == result
    assert [p.name for p in path.parent.iterdir()] == ["relationships.json"]  # no temporary left


def test_summary_and_report_classify_pairs_and_sensitive_tasks():
    result = hand_made_result()
    summary = summarize_relationships(result)
    assert summary.lam == 1.0
    assert [(t, s) for t, s, _ in summary.beneficial] == [("a", "b")]
    assert summary.beneficial[0][2] == pytest.approx(0.10 / 0.60)
    assert [(t, s) for t, s, _ in summary.conflicting] == [("b", "a")]
    assert summary.recovery_lambda == {"a": 0.5, "b": 0.5, "c": 1.0}
    # c needs λ ≥ 0.75 of its own vector; a loses 16.7 points (≥ 10) when τ_b is added
    assert set(summary.sensitive) == {"a", "c"}
    assert any("τ_b" in reason for reason in summary.sensitive["a"])
    assert summary.worst_drop["a"] == ("b", pytest.approx(-0.10 / 0.60))
    # looser rules: recovering by λ = 1 is fine, only 20-point changes count
    relaxed = summarize_relationships(result, sensitive_lambda=1.5, sensitive_drop=0.2, threshold=0.2)
    assert relaxed.beneficial == [] and relaxed.conflicting == [] and relaxed.sensitive == {}
    text = describe_relationships(result)
    beneficial, conflicting = text.split("Beneficial")[1].split("Conflicting")
    assert "a → b: +16.7 points (83.3% → 100.0%)" in beneficial
    assert "b → a: -16.7 points" in conflicting
    assert "Sensitive tasks:\n" in text and "  - c: needs λ ≥ 1" in text
    with pytest.raises(ValueError, match="not on the sweep's grid"):
        describe_relationships(result, lam=0.25)


def test_bad_input_gives_clear_errors(setup):
    model, base, vectors, batches = setup
    with pytest.raises(ValueError, match="λ grid is empty"):
        sweep_task_vectors(model, base, vectors, [], batches, BASELINES)
    with pytest.raises(ValueError, match="duplicate"):
        sweep_task_vectors(model, base, vectors, [0.5, 0.5], batches, BASELINES)
    no_normals = [
        {"pixel_values": b["pixel_values"], "labels": {k: v for k, v in b["labels"].items() if k != "normals"}}
        for b in batches
    ]
    with pytest.raises(ValueError, match=r"no labels for task\(s\) \['normals'\]"):
        sweep_task_vectors(model, base, vectors, GRID, no_normals, BASELINES)
    # restricting the tasks to those the data has works
    result = sweep_task_vectors(
        model,
        base,
        {"depth": vectors["depth"]},
        [0.0],
        no_normals,
        BASELINES,
        tasks=["segmentation", "depth"],
    )
    assert result.tasks == ["segmentation", "depth"] and "normals" not in result.base_metrics
    with pytest.raises(KeyError, match="no single-task baseline.*normals"):
        sweep_task_vectors(model, base, vectors, GRID, batches, {"segmentation": 0.4, "depth": 0.5})
    with pytest.raises(ValueError, match="baseline of task 'depth' must be a positive"):
        sweep_task_vectors(model, base, vectors, GRID, batches, {**BASELINES, "depth": 0.0})
    with pytest.raises(KeyError, match="not parameters of the model's encoder"):
        sweep_task_vectors(model, base, {"depth": {"heads_typo.weight": torch.zeros(1)}}, GRID, batches, BASELINES)
    partial = dict(list(base.items())[:3])
    with pytest.raises(KeyError, match="lacks encoder parameter"):
        sweep_task_vectors(model, partial, vectors, GRID, batches, BASELINES)
    key = next(iter(base))
    with pytest.raises(ValueError, match="has shape"):
        sweep_task_vectors(model, base, {"depth": {key: torch.zeros(7)}}, GRID, batches, BASELINES)
    with pytest.raises(ValueError, match="task_vectors is empty"):
        sweep_task_vectors(model, base, {}, GRID, batches, BASELINES)
    with pytest.raises(KeyError, match="have no head"):
        sweep_task_vectors(model, base, vectors, GRID, batches, BASELINES, tasks=["edges"])
    with pytest.raises(ValueError, match="evaluation data is empty"):
        sweep_task_vectors(model, base, vectors, GRID, [], BASELINES)
    # SimoModel-style keys ("dinov2." prefix, head tensors ignored) are accepted
    full = {f"dinov2.{k}": v for k, v in base.items()} | {"heads.depth.classifier.weight": torch.zeros(1)}
    result = sweep_task_vectors(model, full, {"depth": vectors["depth"]}, [0.0], batches, BASELINES)
    assert result.base_metrics == evaluate_with_encoder(model, base, batches)


def test_default_grid_is_the_papers():
    assert DEFAULT_LAMBDAS[0] == 0.0 and DEFAULT_LAMBDAS[-1] == 1.5 and len(DEFAULT_LAMBDAS) == 16
