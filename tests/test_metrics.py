import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from helpers.tiny import tiny_config
from hf_simo.metrics import (
    ANGLE_BIN_DEGREES,
    EVALUATE_MODULE_PATH,
    MultiTaskMetrics,
    delta_mtl,
    format_metric,
    metric_for,
    normalized_performance,
    render_table,
    task_normalized_performance,
)


SPECS = tiny_config(
    {
        "seg": {"kind": "semantic_segmentation", "num_outputs": 3},
        "depth": {"kind": "depth"},
        "normals": {"kind": "surface_normals"},
    }
).task_specs


def test_miou_by_hand():
    labels = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 0, 1]]])
    metric = metric_for(SPECS["seg"])
    metric.update(pred, labels)
    # class 0: tp 1, fp 1 (pixel (1,1)), fn 1 -> 1/3; class 1: tp 3, fp 1, fn 0 -> 3/4; class 2: tp 1, fn 1 -> 1/2
    result = metric.compute()
    assert math.isclose(result["miou"], (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert math.isclose(result["pixel_accuracy"], 5 / 7)


def test_miou_matches_torchmetrics_over_batches_and_excludes_absent_classes():
    spec = tiny_config({"s": {"kind": "semantic_segmentation", "num_outputs": 5}}).get_task("s")
    ours = metric_for(spec)
    jaccard = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="none")
    accuracy = MulticlassAccuracy(num_classes=5, ignore_index=255, average="micro")
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        labels = torch.randint(0, 4, (2, 8, 8), generator=gen)  # class 4 never appears
        labels[:, 0] = 255
        logits = torch.randn(2, 5, 8, 8, generator=gen)
        logits[:, 4] = -10  # ...nor is it predicted
        ours.update(logits, labels)
        jaccard.update(logits.argmax(1), labels)
        accuracy.update(logits.argmax(1), labels)
    per_class = jaccard.compute()
    result = ours.compute()
    assert math.isclose(result["miou"], per_class[:4].mean().item(), rel_tol=1e-6)
    assert math.isclose(result["pixel_accuracy"], accuracy.compute().item(), rel_tol=1e-6)


def test_depth_abs_and_rel_error_by_hand():
    metric = metric_for(SPECS["depth"])
    labels = torch.tensor([[[[0.0, 2.0], [4.0, 1.0]]]])
    pred = torch.tensor([[[[9.0, 1.0], [5.0, 1.0]]]])
    metric.update(pred[:, :, :1], labels[:, :, :1])  # two batches, one row each
    metric.update(pred[:, :, 1:], labels[:, :, 1:])
    result = metric.compute()
    # valid pixels: (2 vs 1), (4 vs 5), (1 vs 1): errors 1, 1, 0
    assert math.isclose(result["abs_err"], 2 / 3)
    assert math.isclose(result["rel_err"], (1 / 2 + 1 / 4 + 0) / 3)


def test_normals_angles_by_hand():
    labels = torch.zeros(1, 3, 1, 4)
    labels[0, 2, 0, :3] = 1.0  # fourth pixel invalid
    pred = torch.zeros(1, 3, 1, 4)
    pred[0, :, 0, 0] = torch.tensor([0.0, 0.0, 1.0])  # 0 deg
    pred[0, :, 0, 1] = torch.tensor([1.0, 0.0, 1.0])  # 45 deg
    pred[0, :, 0, 2] = torch.tensor([1.0, 0.0, 0.0])  # 90 deg
    pred[0, :, 0, 3] = torch.tensor([1.0, 0.0, 0.0])
    metric = metric_for(SPECS["normals"])
    metric.update(pred, labels)
    result = metric.compute()
    assert math.isclose(result["mean_angle"], 45.0, rel_tol=1e-9)
    assert abs(result["median_angle"] - 45.0) <= 0.01
    assert math.isclose(result["within_11.25"], 1 / 3)
    assert math.isclose(result["within_30"], 1 / 3)
    unit = F.normalize(pred, dim=1)
    expected_abs = (unit - labels).abs().sum(1)[0, 0, :3].sum().item() / 9
    assert math.isclose(result["abs_err"], expected_abs, rel_tol=1e-9)


@pytest.mark.parametrize("width", [7, 8, 1])  # odd, even and tiny pixel counts
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_median_angle_matches_numpy_within_half_a_bin(width, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = F.normalize(torch.randn(3, 3, 5 if width > 1 else 1, width, generator=gen), dim=1)
    pred = labels + 0.5 * torch.randn(labels.shape, generator=gen)
    metric = metric_for(SPECS["normals"])
    metric.update(pred, labels)
    cos = (F.normalize(pred.double(), dim=1) * labels.double()).sum(1).clamp(-1, 1)
    angles = np.degrees(np.arccos(cos.numpy().ravel()))
    result = metric.compute()
    assert abs(result["median_angle"] - np.median(angles)) <= ANGLE_BIN_DEGREES / 2 + 1e-9
    assert math.isclose(result["mean_angle"], angles.mean(), rel_tol=1e-6)


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_angles():
    """Two pixels at 10° and 20°: np.median says 15°, not the lower middle value."""
    labels = torch.zeros(1, 3, 1, 2)
    labels[:, 2] = 1.0
    angles = torch.tensor([10.0, 20.0], dtype=torch.float64)
    pred = torch.zeros(1, 3, 1, 2, dtype=torch.float64)
    pred[0, 0, 0] = torch.sin(torch.deg2rad(angles))
    pred[0, 2, 0] = torch.cos(torch.deg2rad(angles))
    metric = metric_for(SPECS["normals"])
    metric.update(pred, labels)
    assert abs(metric.compute()["median_angle"] - 15.0) <= ANGLE_BIN_DEGREES / 2


def test_empty_metrics_are_nan_not_errors():
    for spec in SPECS.values():
        values = metric_for(spec).compute()
        assert all(math.isnan(v) for v in values.values())


def test_streaming_is_independent_of_batching_and_sharding():
    """Splitting the data over 'processes' and summing the states equals one pass (what compute(accelerator) does)."""
    gen = torch.Generator().manual_seed(2)
    preds = {
        "seg": torch.randn(6, 3, 4, 4, generator=gen),
        "depth": torch.rand(6, 1, 4, 4, generator=gen),
        "normals": torch.randn(6, 3, 4, 4, generator=gen),
    }
    labels = {
        "seg": torch.randint(0, 3, (6, 4, 4), generator=gen),
        "depth": torch.rand(6, 1, 4, 4, generator=gen),
        "normals": F.normalize(torch.randn(6, 3, 4, 4, generator=gen), dim=1),
    }
    whole = MultiTaskMetrics(SPECS)
    whole.update(preds, labels)
    shards = [MultiTaskMetrics(SPECS) for _ in range(2)]
    for index in range(6):
        shards[index % 2].update(
            {k: v[index : index + 1] for k, v in preds.items()}, {k: v[index : index + 1] for k, v in labels.items()}
        )

    class TwoProcessAccelerator:
        """Stands for process 0 of two: `reduce(..., "sum")` adds process 1's copy of each state."""

        num_processes = 2

        def __init__(self, other_states):
            self.others = iter(other_states.values())  # compute() reduces the states in their dict order

        def reduce(self, tensor, reduction):
            assert reduction == "sum"
            return tensor + next(self.others)

    expected = whole.compute()
    for task in SPECS:
        reduced = shards[0].metrics[task].compute(TwoProcessAccelerator(shards[1].metrics[task].states))
        for name, value in expected[task].items():
            assert math.isclose(reduced[name], value, rel_tol=1e-9, abs_tol=1e-12), (task, name)
    primary = whole.primary(expected)
    assert primary == {
        "seg": expected["seg"]["miou"],
        "depth": expected["depth"]["abs_err"],
        "normals": expected["normals"]["mean_angle"],
    }


def test_multitask_metrics_errors():
    metrics = MultiTaskMetrics(SPECS)
    with pytest.raises(KeyError, match="unknown task 'x'"):
        metrics.update({"x": torch.zeros(1)}, {"x": torch.zeros(1)})
    with pytest.raises(KeyError, match="no prediction for task 'depth'"):
        metrics.update({}, {"depth": torch.zeros(1, 1, 2, 2)})


PAPER_TABLE_1 = {
    "Task-Specific": {"seg": 0.7079, "depth": 0.2314, "normals": 18.02},
    "MTL": {"seg": 0.6901, "depth": 0.2531, "normals": 19.01},
    "Task Arithmetic": {"seg": 0.6578, "depth": 0.4171, "normals": 26.13},
}
METRIC_NAMES = {"seg": "miou", "depth": "abs_err", "normals": "mean_angle"}


def test_normalized_performance_and_delta_reproduce_paper_table_1():
    base = PAPER_TABLE_1["Task-Specific"]
    ta = PAPER_TABLE_1["Task Arithmetic"]
    per_task = task_normalized_performance(ta, base, METRIC_NAMES)
    assert [round(100 * per_task[t], 1) for t in ("seg", "depth", "normals")] == [92.9, 55.5, 69.0]
    assert round(100 * (normalized_performance(ta, base, METRIC_NAMES) - 1), 1) == -27.5  # the paper's Δ column
    mtl = PAPER_TABLE_1["MTL"]
    assert round(100 * (normalized_performance(mtl, base, METRIC_NAMES) - 1), 1) == -5.4
    # eq. (2) differs from the table's Δ column: for TA it is the mean relative change, -44.1%
    expected = ((0.6578 - 0.7079) / 0.7079 - (0.4171 - 0.2314) / 0.2314 - (26.13 - 18.02) / 18.02) / 3
    assert math.isclose(delta_mtl(ta, base, METRIC_NAMES), expected)
    assert round(100 * expected, 1) == -44.1
    with pytest.raises(KeyError, match="no single-task baseline"):
        normalized_performance({"other": 1.0}, base, METRIC_NAMES)


def test_render_table_paper_style():
    table = render_table(
        PAPER_TABLE_1,
        baseline="Task-Specific",
        metric_names=METRIC_NAMES,
        task_labels={"seg": "Sem. Seg.", "depth": "Depth", "normals": "Surface Normal"},
        extra_columns={"MTL": {"steps": 1000}, "Task Arithmetic": {"steps": 0}},
        show_delta_mtl=True,
        title="NYUv2",
    )
    lines = table.strip().splitlines()
    assert lines[0] == "**NYUv2**"
    assert (
        lines[2]
        == "| Method | Sem. Seg. [mIoU ↑] | Depth [aErr. ↓] | Surface Normal [mDist. ↓] | Δ ↑ | Δ_MTL eq.2 ↑ | steps |"
    )
    assert lines[4] == "| Task-Specific | 70.79 | 0.2314 | 18.02 | - | - |  |"
    assert lines[5] == "| MTL | 69.01 (97.5%) | 0.2531 (91.4%) | 19.01 (94.8%) | -5.4% | -5.8% | 1000 |"
    assert lines[6] == "| Task Arithmetic | 65.78 (92.9%) | 0.4171 (55.5%) | 26.13 (69.0%) | -27.5% | -44.1% | 0 |"
    with pytest.raises(KeyError, match="baseline row"):
        render_table(PAPER_TABLE_1, baseline="nope", metric_names=METRIC_NAMES)


def test_format_metric():
    assert format_metric("miou", 0.70789) == "70.79"
    assert format_metric("abs_err", 0.0102) == "0.0102"
    assert format_metric("abs_err", 0.00062) == "6.200e-04"
    assert format_metric("mean_angle", 18.019) == "18.02"
    assert format_metric("miou", float("nan")) == "n/a"


def test_evaluate_module_loads_offline_and_agrees():
    import evaluate

    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (2, 6, 6), generator=gen)
    preds = torch.randint(0, 3, (2, 6, 6), generator=gen)
    module = evaluate.load(EVALUATE_MODULE_PATH, "semantic_segmentation")
    result = module.compute(predictions=list(preds.numpy()), references=list(labels.numpy()), num_outputs=3)
    metric = metric_for(SPECS["seg"])
    metric.update(preds, labels)
    assert math.isclose(result["miou"], metric.compute()["miou"])
    depth = evaluate.load(EVALUATE_MODULE_PATH, "depth")
    d_pred, d_label = torch.rand(2, 1, 3, 3, generator=gen), torch.rand(2, 1, 3, 3, generator=gen)
    d_result = depth.compute(predictions=list(d_pred.numpy()), references=list(d_label.numpy()))
    assert math.isclose(d_result["abs_err"], (d_pred - d_label).abs().mean().item(), rel_tol=1e-6)
    with pytest.raises(KeyError, match="task kind"):
        evaluate.load(EVALUATE_MODULE_PATH, "classification")
