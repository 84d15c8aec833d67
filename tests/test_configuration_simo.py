import json

import pytest
from transformers import AutoConfig, Dinov2Config, ViTConfig

from helpers.tiny import TINY_TASKS, tiny_backbone_config, tiny_config
from hf_simo import SimoConfig, TaskSpec, TaskSpecError, default_feature_layers


def test_default_feature_layers():
    assert default_feature_layers(12) == [3, 6, 9, 12]
    assert default_feature_layers(4) == [1, 2, 3, 4]
    assert default_feature_layers(8) == [2, 4, 6, 8]
    assert default_feature_layers(24) == [6, 12, 18, 24]
    with pytest.raises(ValueError):
        default_feature_layers(0)


def test_defaults_are_filled_per_kind():
    config = tiny_config()
    seg, depth, normals, edges = (config.tasks[t] for t in ("segmentation", "depth", "normals", "edges"))
    assert (seg["loss"], seg["metric"], seg["ignore_index"], seg["invalid_value"]) == (
        "cross_entropy",
        "miou",
        255,
        None,
    )
    assert (depth["num_outputs"], depth["loss"], depth["metric"], depth["invalid_value"]) == (1, "l1", "abs_err", 0.0)
    assert (normals["num_outputs"], normals["loss"], normals["metric"]) == (3, "cosine", "mean_angle")
    assert edges["invalid_value"] is None and edges["num_outputs"] == 2
    assert seg["layers"] == [1, 2, 3, 4]  # evenly spaced on a 4-block encoder
    assert seg["head_options"] == {"use_cls_token": True, "dropout": 0.0}
    assert depth["head_options"]["fusion_hidden_size"] == 16
    assert depth["head_options"]["readout_type"] == "project"
    assert config.feature_layers() == [1, 2, 3, 4]


def test_twelve_layer_default_is_paper_layers():
    config = SimoConfig(tasks={"depth": {"kind": "depth"}})  # DINOv2-base by default
    assert config.backbone_config.num_hidden_layers == 12
    assert config.tasks["depth"]["layers"] == [3, 6, 9, 12]


def test_round_trip_through_autoconfig(tmp_path):
    config = tiny_config(base_model_name_or_path="org/base", merge={"method": "ta", "alpha": 0.4})
    config.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["model_type"] == "simo"
    assert raw["backbone_config"]["model_type"] == "dinov2"
    assert set(raw["tasks"]) == set(TINY_TASKS)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, SimoConfig)
    assert isinstance(loaded.backbone_config, Dinov2Config)
    assert loaded.tasks == config.tasks
    assert loaded.merge == {"method": "ta", "alpha": 0.4}
    assert loaded.base_model_name_or_path == "org/base"
    assert loaded.backbone_config.hidden_size == 32


def test_taskspec_objects_and_dicts_are_equivalent():
    a = tiny_config({"s": TaskSpec("semantic_segmentation", num_outputs=4)})
    b = tiny_config({"s": {"kind": "semantic_segmentation", "num_outputs": 4}})
    assert a.tasks == b.tasks
    assert isinstance(a.get_task("s"), TaskSpec) and a.get_task("s").num_outputs == 4
    with pytest.raises(KeyError, match="unknown task 'x'"):
        a.get_task("x")


def test_with_tasks_selects_and_adds():
    config = tiny_config()
    sub = config.with_tasks({"depth": config.tasks["depth"], "new": {"kind": "depth"}})
    assert sub.task_names == ["depth", "new"]
    assert config.task_names == list(TINY_TASKS)  # original untouched


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"kind": "semantic_segmentaton", "num_outputs": 3}, "kind", "must be one of"),
        ({"num_outputs": 3}, "kind", "is required"),
        ({"kind": "semantic_segmentation"}, "num_outputs", "is required"),
        ({"kind": "semantic_segmentation", "num_outputs": 0}, "num_outputs", "positive integer"),
        ({"kind": "semantic_segmentation", "num_outputs": 1}, "num_outputs", ">= 2 classes"),
        ({"kind": "depth", "num_outputs": 3}, "num_outputs", "must be 1"),
        ({"kind": "surface_normals", "num_outputs": 2}, "num_outputs", "must be 3"),
        ({"kind": "regression"}, "num_outputs", "is required"),
        ({"kind": "semantic_segmentation", "num_outputs": 3, "ignore_index": 1}, "ignore_index", "collides"),
        ({"kind": "semantic_segmentation", "num_outputs": 3, "invalid_value": 0}, "invalid_value", "ignore_index"),
        ({"kind": "depth", "ignore_index": 255}, "ignore_index", "invalid_value"),
        ({"kind": "depth", "invalid_value": float("nan")}, "invalid_value", "NaN"),
        ({"kind": "depth", "loss": "cross_entropy"}, "loss", "must be one of"),
        ({"kind": "depth", "metric": "miou"}, "metric", "must be one of"),
        ({"kind": "depth", "head": "mlp"}, "head", "must be one of"),
        ({"kind": "depth", "head_options": {"fusion_hidden_size": 8}}, "head_options", "unknown option"),
        ({"kind": "depth", "head": "dpt", "head_options": {"readout_type": "x"}}, "head_options", "readout_type"),
        ({"kind": "depth", "layers": [0, 1]}, "layers", "in [1, 4]"),
        ({"kind": "depth", "layers": [5]}, "layers", "in [1, 4]"),
        ({"kind": "depth", "layers": []}, "layers", "non-empty"),
        ({"kind": "depth", "head": "dpt", "layers": [1, 2]}, "layers", "one layer per reassemble stage"),
        ({"kind": "semantic_segmentation", "num_outputs": 3, "id2label": {0: "a"}}, "id2label", "3 classes"),
        ({"kind": "semantic_segmentation", "num_outputs": 2, "id2label": {"x": "a", 1: "b"}}, "id2label", "ids"),
        ({"kind": "semantic_segmentation", "num_outputs": 2, "id2label": {0: "", 1: "b"}}, "id2label", "empty"),
        ({"kind": "depth", "id2label": {0: "a"}}, "id2label", "only meaningful for semantic segmentation"),
    ],
)
def test_invalid_specs_name_task_and_field(spec, field, fragment):
    with pytest.raises(TaskSpecError) as err:
        tiny_config({"mytask": spec})
    message = str(err.value)
    assert "'mytask'" in message
    assert f"'{field}'" in message
    assert fragment in message


def test_unknown_spec_field_and_bad_names():
    with pytest.raises(TaskSpecError, match="task 'a': unknown field\\(s\\) \\['colour'\\]"):
        tiny_config({"a": {"kind": "depth", "colour": "red"}})
    with pytest.raises(TaskSpecError, match="must be a non-empty identifier"):
        tiny_config({"my task": {"kind": "depth"}})
    with pytest.raises(TaskSpecError, match="must be a mapping"):
        tiny_config({"a": "depth"})
    with pytest.raises(TaskSpecError, match="tasks must be a mapping"):
        SimoConfig(backbone_config=tiny_backbone_config(), tasks=["depth"])


def test_backbone_must_be_dinov2():
    with pytest.raises(ValueError, match="must be a Dinov2Config"):
        SimoConfig(backbone_config=ViTConfig(), tasks={})


def test_id2label_round_trips_and_reads_legacy_class_names(tmp_path):
    names = {0: "floor", 1: "wall", 2: "box"}
    config = tiny_config({"seg": {"kind": "semantic_segmentation", "num_outputs": 3, "id2label": names}})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)  # JSON keys are strings; the spec gives ints back
    assert loaded.tasks["seg"]["id2label"] == names and loaded.get_task("seg").label_names() == list(names.values())
    # the only segmentation task's classes are mirrored where transformers' pipelines read them
    assert loaded.id2label == names and loaded.label2id == {"floor": 0, "wall": 1, "box": 2}
    legacy = tiny_config(
        {"seg": {"kind": "semantic_segmentation", "num_outputs": 3, "class_names": list(names.values())}}
    )
    assert legacy.tasks["seg"]["id2label"] == names and "class_names" not in legacy.tasks["seg"]
    unnamed = tiny_config({"seg": {"kind": "semantic_segmentation", "num_outputs": 2}})
    assert unnamed.get_task("seg").label_names() == ["LABEL_0", "LABEL_1"]  # transformers' default names
    with pytest.raises(TaskSpecError, match="not both"):
        tiny_config(
            {
                "s": {
                    "kind": "semantic_segmentation",
                    "num_outputs": 2,
                    "class_names": ["a", "b"],
                    "id2label": {0: "a", 1: "b"},
                }
            }
        )
