"""Bad input: every error names the source (and tensor) and leaves no output folder, not even a partial one."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file

from helpers.checkpoints import build_base, build_sources, build_task, encoder_state, leftovers, rewrite_weights
from hf_simo import CheckpointError, SimoModel, UnsafeCheckpointError
from hf_simo.hub import HubOptions
from hf_simo.merging import MergeOptionError, NotFineTunedError, merge, merge_to_folder


@pytest.fixture
def sources(tmp_path):
    base, tasks = build_sources(tmp_path / "src")
    return base, tasks, tmp_path / "out"


def _expect_error(out, error, match, *args, **kwargs):
    with pytest.raises(error, match=match):
        merge_to_folder(out, *args, **kwargs)
    assert leftovers(out.parent, out.name) == []


def test_shape_mismatch_names_the_task_and_tensor(sources):
    base, tasks, out = sources
    rewrite_weights(tasks[1], lambda sd: sd.__setitem__("dinov2.layernorm.weight", torch.ones(31)))
    _expect_error(
        out, CheckpointError, r"task 'depth' \(.*depth\): tensor 'layernorm.weight' has shape \[31\]", tasks, base
    )


def test_missing_tensor_names_the_task_and_tensor(sources):
    base, tasks, out = sources
    rewrite_weights(tasks[2], lambda sd: sd.pop("dinov2.encoder.layer.2.mlp.fc1.bias"))
    _expect_error(
        out, CheckpointError, r"task 'normals'.*missing encoder tensor.*encoder.layer.2.mlp.fc1.bias", tasks, base
    )


def test_different_hidden_size_is_refused(sources, tmp_path):
    base, tasks, out = sources
    other_base = build_base(tmp_path / "wide", hidden_size=48)
    build_task(tmp_path / "wide_task", other_base, "depth", seed=3)
    _expect_error(
        out, CheckpointError, r"task 'depth'.*hidden_size is 48.*has 32", [tasks[0], tmp_path / "wide_task"], base
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_in_a_task_names_the_tensor(sources, bad):
    base, tasks, out = sources

    def poison(state):
        state["dinov2.encoder.layer.3.mlp.fc2.weight"][1, 2] = bad

    rewrite_weights(tasks[2], poison)
    kind = "NaN" if bad != bad else "inf"
    for method in ("task_arithmetic", "ties"):
        _expect_error(
            out,
            CheckpointError,
            rf"task 'normals'.*'encoder.layer.3.mlp.fc2.weight' contains {kind}",
            tasks,
            base,
            method,
        )
    with pytest.raises(CheckpointError, match=kind):
        merge(tasks, base)


def test_nan_in_the_base_or_a_head_is_refused(sources):
    base, tasks, out = sources
    rewrite_weights(base, lambda sd: sd["embeddings.cls_token"].fill_(float("nan")))
    _expect_error(out, CheckpointError, r"base \(.*\): tensor 'embeddings.cls_token' contains NaN", tasks, base)
    shutil.rmtree(base)
    base2, tasks2 = build_sources(out.parent / "src2")
    rewrite_weights(tasks2[0], lambda sd: sd["heads.segmentation.classifier.bias"].fill_(float("inf")))
    _expect_error(out, CheckpointError, r"task 'segmentation'.*heads.segmentation.classifier.bias.*inf", tasks2, base2)


def test_truncated_and_corrupted_safetensors(sources):
    base, tasks, out = sources
    path = tasks[1] / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    _expect_error(out, CheckpointError, r"depth.*model.safetensors is not a readable safetensors file", tasks, base)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    _expect_error(out, CheckpointError, r"depth.*not a readable safetensors file", tasks, base)


def test_bin_only_checkpoints_are_refused_unless_pickle_is_allowed(sources):
    base, tasks, out = sources
    reference = merge(tasks, base)
    state = load_file(tasks[0] / "model.safetensors")
    torch.save(state, tasks[0] / "pytorch_model.bin")
    (tasks[0] / "model.safetensors").unlink()
    _expect_error(out, UnsafeCheckpointError, r"segmentation.*only has pickle weights.*allow_pickle", tasks, base)
    allowed = merge_to_folder(out, tasks, base, hub=HubOptions(allow_pickle=True))
    merged = SimoModel.from_pretrained(allowed)
    for key, value in reference.state_dict().items():
        assert torch.equal(merged.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "nope"}, "unknown merging method 'nope'"),
        ({"method": "ties", "density": 0}, "density"),
        ({"method": "ties", "density": 1.5}, "density"),
        ({"alpha": -0.5}, "alpha must be a finite number >= 0"),
        ({"method": "ties", "gamma": 0.1}, "has no option"),
        ({"coefficients": [1.0, 2.0]}, "one entry per task"),
        ({"dtype": "int8"}, "dtype"),
        ({"method": "tall_mask"}, "one shared encoder"),
    ],
)
def test_bad_options_are_refused_before_any_output(sources, kwargs, match):
    base, tasks, out = sources
    _expect_error(out, MergeOptionError, match, tasks, base, **kwargs)


def _relative_update(merged_folder, base_folder) -> float:
    """‖θ − θ_0‖ / ‖θ_0‖ over the encoder, from the saved tensors, in float64."""
    merged, base = encoder_state(merged_folder), encoder_state(base_folder)
    diff = sum(float((merged[k].double() - base[k].double()).pow(2).sum()) for k in base)
    return (diff / sum(float(v.double().pow(2).sum()) for v in base.values())) ** 0.5


def test_an_alpha_that_overflows_or_lands_far_from_the_base_is_refused_and_writes_nothing(sources, tmp_path):
    base, tasks, out = sources
    _expect_error(out, MergeOptionError, r"contains inf in float32 \(alpha=1e\+300\)", tasks, base, alpha=1e300)
    with pytest.raises(MergeOptionError, match="contains inf"):  # in memory too
        merge(tasks, base, alpha=1e300)
    _expect_error(out, MergeOptionError, r"contains inf in float16", tasks, base, alpha=1e7, dtype="float16")
    unit = merge_to_folder(tmp_path / "unit", tasks, base)  # alpha = 1
    ratio = _relative_update(unit, base)
    recorded = json.loads((unit / "config.json").read_text())["merge"]["statistics"]["relative_update"]
    assert recorded == pytest.approx(ratio, rel=1e-5)
    # Task Arithmetic is linear in alpha: ‖α·τ_MTL‖ / ‖θ_0‖ = α · ratio
    _expect_error(
        out, MergeOptionError, r"farther than 10·‖θ_0‖.*alpha is far too large", tasks, base, alpha=20 / ratio
    )
    allowed = merge_to_folder(out, tasks, base, alpha=5 / ratio)
    assert _relative_update(allowed, base) == pytest.approx(5.0, rel=1e-4)


def test_a_checkpoint_not_fine_tuned_from_the_base_is_reported(sources, tmp_path):
    base, tasks, out = sources
    other = build_base(tmp_path / "other", seed=123)
    build_task(tmp_path / "stranger", other, "depth", seed=4)
    mixed = [tasks[0], tmp_path / "stranger"]
    _expect_error(
        out, NotFineTunedError, r"task 'depth' \(.*stranger\) does not look fine-tuned from the base", mixed, base
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merge_to_folder(out, mixed, base, max_relative_distance=None)
    assert any("may not be fine-tuned" in str(w.message) for w in caught)


def test_identical_encoder_only_warns(sources, tmp_path):
    base, tasks, out = sources
    from transformers import Dinov2Model

    build_task(tmp_path / "probe", Dinov2Model.from_pretrained(base), "depth", seed=5, noise=0.0)
    with pytest.warns(UserWarning, match="identical to the base"):
        merge([tasks[0], tmp_path / "probe"], base)


def test_existing_output_needs_overwrite_and_overwrite_is_complete(sources):
    base, tasks, out = sources
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        merge_to_folder(out, tasks, base)
    assert (out / "stale.txt").exists()
    merge_to_folder(out, tasks, base, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert leftovers(out.parent, out.name) == [out.name]


def test_failure_in_the_last_pass_leaves_nothing_and_keeps_an_existing_folder(sources):
    base, tasks, out = sources
    previous = merge_to_folder(out, tasks, base)
    before = (previous / "model.safetensors").read_bytes()
    rewrite_weights(tasks[2], lambda sd: sd["dinov2.layernorm.bias"].fill_(float("nan")))  # last key, last task
    with pytest.raises(CheckpointError, match="layernorm.bias"):
        merge_to_folder(out, tasks, base, "ties", overwrite=True)
    assert leftovers(out.parent, out.name) == [out.name]
    assert (out / "model.safetensors").read_bytes() == before


def test_a_plain_dinov2_task_checkpoint_or_a_multi_task_one_is_refused(sources, tmp_path):
    base, tasks, out = sources
    _expect_error(out, CheckpointError, "without task heads", [base], base)
    multi = merge([f"a={tasks[0]}", f"b={tasks[1]}"], base)
    multi.save_pretrained(tmp_path / "multi")
    _expect_error(out, CheckpointError, r"has 2 tasks \['a', 'b'\].*source_task", [tmp_path / "multi"], base)
    _expect_error(out, CheckpointError, "non-empty list", [], base)
    _expect_error(out, CheckpointError, "non-empty list", str(tasks[0]), base)


def test_no_base_anywhere_is_a_clear_error(tmp_path):
    base_folder, tasks = build_sources(tmp_path / "src", record_base=False)
    _expect_error(tmp_path / "out", CheckpointError, "no base encoder given", tasks)
