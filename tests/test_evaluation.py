"""The one evaluation loop (hf_simo/evaluation.py) against an independent reference: the metrics computed by hand
from the model's predictions on every sample, and the paths it replaced (the trainer's sharded pass, search's
loop); plus its checks: empty data, missing labels, bad labels, the train/eval mode."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from hf_simo import SimoConfig, SimoModel
from hf_simo.errors import DataError, UnknownTaskError
from hf_simo.evaluation import baseline_values, evaluate, evaluate_dataset, primary_values, simo_batches
from hf_simo.metrics import MultiTaskMetrics
from hf_simo.processing import normalize_images
from hf_simo.testing_utils import TINY_ENCODER, TINY_TASK_SPECS, make_tiny_dataset


@pytest.fixture(scope="module")
def model():
    from transformers import Dinov2Config

    torch.manual_seed(0)
    config = SimoConfig(backbone_config=Dinov2Config(**TINY_ENCODER), tasks=TINY_TASK_SPECS)
    return SimoModel(config).eval()


@pytest.fixture(scope="module")
def data():
    return make_tiny_dataset(train=4, validation=10, test=7)


def reference(model, split, tasks):
    """MultiTaskMetrics over the model's predictions, one sample at a time (no batching, no shared code path)."""
    metrics = MultiTaskMetrics({t: model.config.get_task(t) for t in tasks})
    rows = split.with_format("torch")
    with torch.no_grad():
        for index in range(len(rows)):
            row = rows[index]
            predictions = model(normalize_images(row["image"][None].float()), tasks=tasks).predictions
            metrics.update(predictions, {t: row[t][None] for t in tasks})
    return metrics.compute()


def assert_same(a, b):
    assert a.keys() == b.keys()
    for task in a:
        assert a[task].keys() == b[task].keys()
        for name in a[task]:
            assert a[task][name] == pytest.approx(b[task][name], rel=1e-5, abs=1e-6), (task, name)


def test_evaluate_equals_the_per_sample_reference(model, data):
    tasks = list(TINY_TASK_SPECS)
    expected = reference(model, data["validation"], tasks)
    assert_same(evaluate(model, simo_batches(data["validation"], tasks, batch_size=3)), expected)
    assert_same(evaluate(model, simo_batches(data["validation"], tasks, batch_size=64)), expected)
    assert_same(evaluate_dataset(model, data["validation"], batch_size=4), expected)
    only_depth = evaluate(model, simo_batches(data["validation"], ["depth"]), ["depth"])
    assert list(only_depth) == ["depth"] and only_depth["depth"] == pytest.approx(expected["depth"])


def test_evaluate_dataset_on_an_accelerator_equals_the_trainer_pass_it_replaced(model, data):
    from hf_simo.training import evaluate as trainer_evaluate
    from hf_simo.training import make_eval_loader, make_simo_loss_fn

    accelerator = Accelerator(cpu=True)
    tasks = list(TINY_TASK_SPECS)
    ours = evaluate_dataset(model, data["test"], batch_size=3, accelerator=accelerator)
    specs = {t: model.config.get_task(t) for t in tasks}
    loader = make_eval_loader(data["test"].with_format("torch").select_columns(["image", *tasks]), accelerator, 3)
    theirs = trainer_evaluate(
        accelerator, model, loader, make_simo_loss_fn(specs), MultiTaskMetrics(specs, device=accelerator.device)
    )["metrics"]
    assert_same(ours, theirs)
    assert_same(ours, reference(model, data["test"], tasks))


def _search_loop_before_issue_11(model, data, max_batches):
    """The loop `hf_simo.merging.search` had before it used `evaluate` (kept here as the reference it must equal)."""
    metrics = MultiTaskMetrics({name: model.config.get_task(name) for name in model.task_names})
    with torch.no_grad():
        for index, batch in enumerate(data):
            if index >= max_batches:
                break
            labels = {name: batch["labels"][name] for name in model.task_names if name in batch["labels"]}
            metrics.update(model(batch["pixel_values"], tasks=list(labels)).predictions, labels)
    return metrics.compute()


def test_evaluate_equals_the_merge_search_loop(model, data):
    batches = simo_batches(data["validation"], list(TINY_TASK_SPECS), batch_size=4)
    assert_same(evaluate(model, batches, max_batches=2), _search_loop_before_issue_11(model, batches, max_batches=2))


def test_primary_and_baseline_values(model, data):
    batches = simo_batches(data["validation"], list(TINY_TASK_SPECS))
    results = evaluate(model, batches)
    primary = primary_values(model, results)
    assert primary == {t: results[t][model.config.get_task(t).metric] for t in TINY_TASK_SPECS}
    assert primary_values(model.config.task_specs, results) == primary
    assert baseline_values({"depth": model}, batches) == {"depth": primary["depth"]}


def test_mode_is_restored_and_nothing_trains(model, data):
    batches = simo_batches(data["validation"], list(TINY_TASK_SPECS))
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        evaluate(model, batches)
        assert model.training
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats untouched
    finally:
        model.eval()


def test_bad_inputs_are_named(model, data):
    tasks = list(TINY_TASK_SPECS)
    with pytest.raises(DataError, match="the evaluation data is empty"):
        evaluate(model, [])
    with pytest.raises(UnknownTaskError, match=r"no labels for task\(s\) \['normals'\] \(batch 0"):
        evaluate(model, simo_batches(data["validation"], ["segmentation", "depth"]))
    with pytest.raises(UnknownTaskError, match=r"the model has no task\(s\) \['edges'\]"):
        evaluate(model, simo_batches(data["validation"], tasks), ["edges"])
    with pytest.raises(UnknownTaskError, match=r"the dataset has no labels for task\(s\) \['edges'\]"):
        simo_batches(data["validation"], ["edges"])
    with pytest.raises(DataError, match="the dataset split is empty"):
        simo_batches(data["validation"].select([]), tasks)
    with pytest.raises(TypeError, match="batch 0 must be a dict with 'pixel_values' and 'labels'"):
        evaluate(model, [{"images": 1}])
    batch = simo_batches(data["validation"], tasks)[0]
    wrong = {**batch, "labels": {**batch["labels"], "segmentation": batch["labels"]["segmentation"] + 7}}
    wrong["labels"]["segmentation"][wrong["labels"]["segmentation"] == 262] = 255  # keep the ignore index
    with pytest.raises(ValueError, match=r"labels for task 'segmentation' contain class id"):
        evaluate(model, [wrong])


def test_a_disparity_checkpoint_written_before_ssi_keeps_its_stored_metric(data, tmp_path):
    """Disparity specs stored with metric "abs_err" (the default before "ssi_abs_err") load and evaluate unchanged:
    every disparity metric is still reported, and their primary value stays the unaligned error."""
    import json

    from transformers import Dinov2Config

    torch.manual_seed(1)
    config = SimoConfig(backbone_config=Dinov2Config(**TINY_ENCODER), tasks={"disparity": {"kind": "disparity"}})
    SimoModel(config).save_pretrained(tmp_path / "old", model_card=False)
    stored = json.loads((tmp_path / "old" / "config.json").read_text())
    assert stored["tasks"]["disparity"]["metric"] == "ssi_abs_err"  # what a new checkpoint stores
    stored["tasks"]["disparity"]["metric"] = "abs_err"  # what one written before stores
    (tmp_path / "old" / "config.json").write_text(json.dumps(stored))
    old, new = SimoModel.from_pretrained(tmp_path / "old"), SimoModel(config).eval()
    assert old.config.get_task("disparity").metric == "abs_err"
    split = data["validation"].rename_column("depth", "disparity")
    results = evaluate_dataset(old, split, batch_size=4)
    assert set(results["disparity"]) == {"ssi_abs_err", "ssi_rel_err", "abs_err", "rel_err"}
    assert primary_values(old, results) == {"disparity": results["disparity"]["abs_err"]}
    assert primary_values(new, results) == {"disparity": results["disparity"]["ssi_abs_err"]}
    assert results["disparity"]["ssi_abs_err"] < results["disparity"]["abs_err"]
