import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from helpers.tiny import tiny_config
from hf_simo.metrics import (
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
        "disparity": {"kind": "disparity"},
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


def reference_ssi(batches, invalid_value=0.0) -> dict[str, float]:
    """numpy: per image, `np.linalg.lstsq` of [p, 1] on the labels over its valid pixels, then the mean absolute /
    relative error of the aligned prediction over every valid pixel, and the unaligned ones."""
    aligned_err, raw_err, targets = [], [], []
    for pred, labels in batches:
        for p, y in zip(pred[:, 0].numpy().astype(np.float64), labels[:, 0].numpy().astype(np.float64)):
            valid = y != invalid_value
            if not valid.any():
                continue
            design = np.stack([p[valid], np.ones(valid.sum())], axis=1)
            solution = np.linalg.lstsq(design, y[valid], rcond=None)[0]
            aligned_err.append(np.abs(design @ solution - y[valid]))
            raw_err.append(np.abs(p[valid] - y[valid]))
            targets.append(y[valid])
    aligned, raw, y = (np.concatenate(v) for v in (aligned_err, raw_err, targets))
    nonzero = y != 0
    return {
        "ssi_abs_err": aligned.mean(),
        "ssi_rel_err": (aligned[nonzero] / np.abs(y[nonzero])).mean(),
        "abs_err": raw.mean(),
        "rel_err": (raw[nonzero] / np.abs(y[nonzero])).mean(),
    }


def disparity_batches(seed: int, batches: int = 3):
    """Batches of (3, 1, 5, 7) disparities with invalid (0) pixels, an image with no valid pixel, one with a single
    valid pixel and one whose prediction is constant (rank-deficient fits)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for index in range(batches):
        labels = torch.rand(3, 1, 5, 7, generator=gen) * 40 + 1
        labels[torch.rand(3, 1, 5, 7, generator=gen) < 0.3] = 0.0
        pred = torch.rand(3, 1, 5, 7, generator=gen) * 3 - 1
        if index == 0:
            labels[0] = 0.0
            labels[1] = 0.0
            labels[1, 0, 2, 3] = 7.0
        if index == 1:
            pred[2] = 0.25
        out.append((pred, labels))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_scale_and_shift_invariant_error_is_numpys_per_image_lstsq(seed):
    batches = disparity_batches(seed)
    metric = metric_for(SPECS["disparity"])
    for pred, labels in batches:
        metric.update(pred, labels)
    result, expected = metric.compute(), reference_ssi(batches)
    assert result.keys() == expected.keys()
    for name, value in expected.items():
        assert math.isclose(result[name], value, rel_tol=1e-9), name
    assert result["ssi_abs_err"] < result["abs_err"]  # the alignment is a least-squares improvement over (1, 0)
    assert SPECS["disparity"].metric == "ssi_abs_err"


def test_affine_transform_of_the_ground_truth_scores_zero():
    (pred, labels), *_ = disparity_batches(5)
    labels[0, 0, 0, 0] = 3.0  # every image has valid pixels
    noise = torch.randn(pred.shape, generator=torch.Generator().manual_seed(1)) * 100
    for scale, shift in ((2.5, -4.0), (-0.01, 7.0), (1e3, 0.0)):
        prediction = torch.where(labels != 0, labels.double() * scale + shift, noise)  # invalid pixels: anything
        metric = metric_for(SPECS["disparity"])
        metric.update(prediction, labels)
        result = metric.compute()
        assert result["ssi_abs_err"] < 1e-9 and result["ssi_rel_err"] < 1e-10, (scale, shift)
        assert result["abs_err"] > 1.0


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


def reference_angles(pred: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-pixel angular errors in degrees over valid pixels (labels not all zero), in numpy: the reference."""
    pred, labels = pred.double().numpy(), labels.double().numpy()
    valid = np.any(labels != 0, axis=1)
    unit = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
    target = labels / np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), 1e-12)
    cosine = np.clip((unit * target).sum(axis=1), -1.0, 1.0)
    return np.degrees(np.arccos(cosine))[valid]


def normals_batches(seed: int, batches: int, invalid: int, width: int = 5, ties: bool = False):
    """`batches` batches of 2 images (4 × width); `invalid` pixels of the first batch have all-zero labels. With
    `ties`, every prediction is one of 3 directions and every label the same, so the angles take 3 values."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for index in range(batches):
        labels = F.normalize(torch.randn(2, 3, 4, width, generator=gen), dim=1)
        pred = labels + 0.5 * torch.randn(labels.shape, generator=gen)
        if ties:
            labels = torch.tensor([0.0, 0.0, 1.0])[None, :, None, None].expand(2, 3, 4, width).clone()
            choices = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # 0°, 45°, 90°
            pick = torch.randint(0, 3, (2, 4, width), generator=gen)
            pred = choices[pick].permute(0, 3, 1, 2).contiguous()
        if index == 0 and invalid:
            labels.view(2, 3, -1)[0, :, :invalid] = 0.0
        out.append((pred, labels))
    return out


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("invalid", [0, 1, 2, 7])  # 3 batches of 40 pixels: even, odd, even, odd valid counts
@pytest.mark.parametrize("seed", [1, 2])
def test_median_angle_is_numpys_median_over_batches_and_masks(seed, invalid, ties):
    batches = normals_batches(seed, 3, invalid, ties=ties)
    metric = metric_for(SPECS["normals"])
    for pred, labels in batches:
        metric.update(pred, labels)
    angles = np.concatenate([reference_angles(pred, labels) for pred, labels in batches])
    assert angles.size == 120 - invalid
    result = metric.compute()
    # exact up to the last bits of acos (torch's and numpy's); the former 0.01° histogram was off by up to 0.005°
    assert math.isclose(result["median_angle"], np.median(angles), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(result["mean_angle"], angles.mean(), rel_tol=1e-9)


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_angles():
    """10°, 20°, 20°, 30° (a tie at the middle) and then 10°, 20°: np.median says 20° and 15°."""
    labels = torch.zeros(1, 3, 1, 4)
    labels[:, 2] = 1.0
    angles = torch.tensor([30.0, 20.0, 10.0, 20.0], dtype=torch.float64)
    pred = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    pred[0, 0, 0] = torch.sin(torch.deg2rad(angles))
    pred[0, 2, 0] = torch.cos(torch.deg2rad(angles))
    metric = metric_for(SPECS["normals"])
    metric.update(pred[..., :2], labels[..., :2])
    metric.update(pred[..., 2:], labels[..., 2:])
    assert math.isclose(metric.compute()["median_angle"], 20.0, rel_tol=1e-12)
    metric.reset()
    metric.update(pred[..., 1:3], labels[..., 1:3])
    assert math.isclose(metric.compute()["median_angle"], 15.0, rel_tol=1e-12)
    metric.reset()
    metric.update(pred[..., 1:2], labels[..., 1:2])  # a single pixel
    assert math.isclose(metric.compute()["median_angle"], 20.0, rel_tol=1e-12)


def test_empty_metrics_are_nan_not_errors():
    for spec in SPECS.values():
        values = metric_for(spec).compute()
        assert all(math.isnan(v) for v in values.values())


class ThreadAccelerator:
    """One of `num_processes` threads standing for processes: `reduce(..., "sum")` and `gather` exchange tensors
    through a barrier, as the collectives do (each process must make the same calls in the same order)."""

    device = torch.device("cpu")

    def __init__(self, rank: int, exchange: list, barrier: threading.Barrier):
        self.rank, self.exchange, self.barrier = rank, exchange, barrier
        self.num_processes = len(exchange)

    def _all(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        self.exchange[self.rank] = tensor.clone()
        self.barrier.wait()
        values = list(self.exchange)
        self.barrier.wait()  # nobody overwrites its slot before everyone has read
        return values

    def reduce(self, tensor, reduction):
        assert reduction == "sum"
        return sum(self._all(tensor))

    def gather(self, tensor):
        values = self._all(tensor)
        assert len({v.shape for v in values}) == 1, "gather needs the same shape on every process"
        return torch.cat(values)


def compute_on_two_processes(first, second) -> list[dict[str, float]]:
    """`compute(accelerator)` of two shards' metrics run as two processes: each one's result."""
    exchange, barrier, results = [None, None], threading.Barrier(2, timeout=10), [None, None]

    def run(rank, metric):
        results[rank] = metric.compute(ThreadAccelerator(rank, exchange, barrier))

    threads = [threading.Thread(target=run, args=(rank, m)) for rank, m in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert None not in results
    return results


def test_median_over_processes_holding_different_numbers_of_pixels():
    """Shards of 40 and 80 − 3 valid pixels (gather pads the shorter): both processes get the whole set's median."""
    batches = normals_batches(4, 3, invalid=3)
    shards = [metric_for(SPECS["normals"]) for _ in range(2)]
    for index, (pred, labels) in enumerate(batches):
        shards[index % 2].update(pred, labels)
    angles = np.concatenate([reference_angles(pred, labels) for pred, labels in batches])
    for result in compute_on_two_processes(*shards):
        assert math.isclose(result["median_angle"], np.median(angles), rel_tol=1e-12)
    empty = metric_for(SPECS["normals"])  # a process that saw no pixel
    whole = metric_for(SPECS["normals"])
    for pred, labels in batches:
        whole.update(pred, labels)
    for result in compute_on_two_processes(empty, whole):
        assert math.isclose(result["median_angle"], np.median(angles), rel_tol=1e-12)


def test_streaming_is_independent_of_batching_and_sharding():
    """Splitting the data over 'processes' and summing the states equals one pass (what compute(accelerator) does)."""
    gen = torch.Generator().manual_seed(2)
    preds = {
        "seg": torch.randn(6, 3, 4, 4, generator=gen),
        "depth": torch.rand(6, 1, 4, 4, generator=gen),
        "normals": torch.randn(6, 3, 4, 4, generator=gen),
        "disparity": torch.rand(6, 1, 4, 4, generator=gen),
    }
    labels = {
        "seg": torch.randint(0, 3, (6, 4, 4), generator=gen),
        "depth": torch.rand(6, 1, 4, 4, generator=gen),
        "normals": F.normalize(torch.randn(6, 3, 4, 4, generator=gen), dim=1),
        "disparity": torch.rand(6, 1, 4, 4, generator=gen) * (torch.rand(6, 1, 4, 4, generator=gen) > 0.2),
    }
    whole = MultiTaskMetrics(SPECS)
    whole.update(preds, labels)
    shards = [MultiTaskMetrics(SPECS) for _ in range(2)]
    for index in range(6):
        shards[index % 2].update(
            {k: v[index : index + 1] for k, v in preds.items()}, {k: v[index : index + 1] for k, v in labels.items()}
        )

    expected = whole.compute()
    for task in SPECS:
        for reduced in compute_on_two_processes(shards[0].metrics[task], shards[1].metrics[task]):
            for name, value in expected[task].items():
                assert math.isclose(reduced[name], value, rel_tol=1e-9, abs_tol=1e-12), (task, name)
    merged = MultiTaskMetrics(SPECS)
    for shard in shards:
        merged.merge(shard)
    for task, values in merged.compute().items():
        for name, value in values.items():
            assert math.isclose(value, expected[task][name], rel_tol=1e-9, abs_tol=1e-12), (task, name)
    primary = whole.primary(expected)
    assert primary == {
        "seg": expected["seg"]["miou"],
        "depth": expected["depth"]["abs_err"],
        "normals": expected["normals"]["mean_angle"],
        "disparity": expected["disparity"]["ssi_abs_err"],
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
    disparity = evaluate.load(EVALUATE_MODULE_PATH, "disparity")
    batches = disparity_batches(7, batches=1)
    pred, labels = batches[0]
    result = disparity.compute(predictions=list(pred.numpy()), references=list(labels.numpy()))
    for name, value in reference_ssi(batches).items():
        assert math.isclose(result[name], value, rel_tol=1e-6), name
    with pytest.raises(KeyError, match="task kind"):
        evaluate.load(EVALUATE_MODULE_PATH, "classification")
