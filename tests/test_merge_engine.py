"""The streaming engine: bitwise equal to the in-memory path, deterministic, complete SimoModel folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import Dinov2Model

from helpers.checkpoints import TASKS, build_base, build_sources, build_task, encoder_state, head_state
from helpers.tiny import TINY_TASKS
from hf_simo import SimoModel
from hf_simo.merging import TaskSource, merge, merge_state_dicts, merge_to_folder
from hf_simo.merging.layers import layer_group


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("sources"))


METHOD_CASES = [
    ("task_arithmetic", {}, 0.4, None),
    ("task_arithmetic", {}, 1.0, [[0.2, 0.5, 0.9, 0.1, 0.3, 0.7], [1.0] * 6, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]]),
    ("ties", {"density": 0.2}, 1.0, None),
    ("ties", {"density": 0.1, "scope": "tensor"}, 0.7, None),
    ("ties", {"density": 0.3, "aggregate": "sum"}, 0.5, [0.5, 1.0, 2.0]),
    ("ties", {"density": 1.0}, 1.0, None),
    ("magnitude", {"density": 0.2}, 0.5, None),
    ("magnitude", {"density": 0.2, "scope": "tensor"}, 0.5, None),
    ("dare", {"density": 0.4, "seed": 3}, 0.5, None),
    ("dare", {"density": 0.4, "sign_election": True}, 1.0, None),
    ("breadcrumbs", {"density": 0.6, "gamma": 0.05}, 0.5, None),
    ("consensus", {"tall_lambda": 0.5}, 0.6, None),
    ("consensus", {"base_method": "ties", "tall_lambda": 0.3, "min_agreement": 1}, 1.0, None),
    ("lines", {"beta": 0.6}, 1.0, None),
    ("lines", {"beta": 0.6, "base_method": "ties", "density": 0.3}, 1.0, None),
    ("lines", {"beta": 0.3, "lines_alpha": 0.2}, 1.0, [1.0, 0.5, 2.0]),
]


@pytest.mark.parametrize(("method", "options", "alpha", "coefficients"), METHOD_CASES)
def test_streaming_equals_in_memory_bitwise(sources, tmp_path, method, options, alpha, coefficients):
    base_folder, task_folders = sources
    out = merge_to_folder(
        tmp_path / "out",
        task_folders,
        base_folder,
        method,
        options,
        alpha=alpha,
        coefficients=coefficients,
    )
    streamed = encoder_state(out)
    expected = merge_state_dicts(
        encoder_state(base_folder),
        {task: encoder_state(f) for task, f in zip(TASKS, task_folders)},  # DARE keys its masks by task name
        method,
        options,
        alpha=alpha,
        coefficients=coefficients,
    )
    assert streamed.keys() == expected.keys()
    for key in expected:
        assert torch.equal(streamed[key], expected[key]), key
    in_memory = merge(task_folders, base_folder, method, options, alpha=alpha, coefficients=coefficients)
    for key, value in in_memory.dinov2.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_task_arithmetic_is_theta0_plus_alpha_sum_and_heads_are_copied(sources, tmp_path):
    base_folder, task_folders = sources
    out = merge_to_folder(tmp_path / "merged", task_folders, base_folder, alpha=0.3)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    model = SimoModel.from_pretrained(out)
    # the folder uses the tensor names save_pretrained writes (transformers-4 names for Dinov2 attention)
    model.save_pretrained(tmp_path / "resaved")
    assert set(load_file(out / "model.safetensors")) == set(load_file(tmp_path / "resaved" / "model.safetensors"))
    assert model.task_names == list(TASKS)
    base = encoder_state(base_folder)
    tasks = [encoder_state(f) for f in task_folders]
    for key, value in model.dinov2.state_dict().items():
        expected = base[key] + 0.3 * (
            (tasks[0][key] - base[key]) + (tasks[1][key] - base[key]) + (tasks[2][key] - base[key])
        )
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
    merged_heads = head_state(out)
    for folder in task_folders:
        for key, value in head_state(folder).items():
            assert torch.equal(merged_heads[key], value), key
    for name, spec in model.config.tasks.items():
        assert spec == SimoModel.from_pretrained(task_folders[TASKS.index(name)]).config.tasks[name]
    with torch.no_grad():
        out_ = model(torch.randn(2, 3, 32, 32))
    assert set(out_.predictions) == set(TASKS)


def test_config_records_method_options_and_sources(sources, tmp_path):
    base_folder, task_folders = sources
    out = merge_to_folder(tmp_path / "m", task_folders, base_folder, "ties", density=0.3, alpha=0.8)
    config = json.loads((out / "config.json").read_text())
    record = config["merge"]
    assert record["method"] == "ties"
    assert record["options"] == {"density": 0.3, "scope": "global", "aggregate": "mean"}
    assert record["alpha"] == 0.8
    assert record["base"] == {"name_or_path": str(base_folder), "revision": None, "commit": None}
    assert [s["task"] for s in record["sources"]] == list(TASKS)
    assert [s["name_or_path"] for s in record["sources"]] == [str(f) for f in task_folders]
    distances = record["statistics"]["distance_to_base"]
    assert all(0.02 < d["relative_distance"] < 0.1 and d["cosine_to_base"] > 0.99 for d in distances.values())
    thresholds = record["statistics"]["global_thresholds"]
    base = encoder_state(base_folder)
    for task, folder in zip(TASKS, task_folders):
        flat = torch.cat([(v - base[k]).reshape(-1) for k, v in sorted(encoder_state(folder).items())])
        assert thresholds[task] == flat.abs().kthvalue(flat.numel() - int(flat.numel() * 0.3)).values.item()
    assert config["base_model_name_or_path"] == str(base_folder)
    assert config["architectures"] == ["SimoModel"]


def test_same_inputs_give_the_same_bytes(sources, tmp_path):
    base_folder, task_folders = sources

    def digest(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    first = merge_to_folder(tmp_path / "a", task_folders, base_folder, "dare", density=0.5)
    second = merge_to_folder(tmp_path / "b", task_folders, base_folder, "dare", density=0.5)
    assert digest(first) == digest(second)
    third = merge_to_folder(tmp_path / "c", task_folders, base_folder, "dare", density=0.5, seed=1)
    assert digest(third)["model.safetensors"] != digest(first)["model.safetensors"]


def test_sharded_output_and_dtype(sources, tmp_path):
    base_folder, task_folders = sources
    out = merge_to_folder(
        tmp_path / "sharded",
        task_folders,
        base_folder,
        "ties",
        max_shard_size="40KB",
        dtype="bfloat16",
    )
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((out / s).is_file() for s in shards)
    reference = merge_to_folder(tmp_path / "single", task_folders, base_folder, "ties")
    expected = load_file(reference / "model.safetensors")
    seen = set()
    for shard in shards:
        with safe_open(str(out / shard), framework="pt") as handle:
            for key in handle.keys():
                tensor = handle.get_tensor(key)
                seen.add(key)
                if tensor.is_floating_point():
                    assert tensor.dtype == torch.bfloat16
                    assert torch.equal(tensor, expected[key].to(torch.bfloat16)), key
                else:
                    assert torch.equal(tensor, expected[key])
    assert seen == set(expected) == set(index["weight_map"])
    model = SimoModel.from_pretrained(out)
    assert model.config.merge["method"] == "ties"
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_in_memory_merge_returns_a_model_equal_to_the_saved_one(sources, tmp_path):
    base_folder, task_folders = sources
    model = merge(task_folders, base_folder, "ties", density=0.3, alpha=0.9)
    saved = SimoModel.from_pretrained(
        merge_to_folder(tmp_path / "s", task_folders, base_folder, "ties", density=0.3, alpha=0.9)
    )
    for (key, value), (key2, value2) in zip(model.state_dict().items(), saved.state_dict().items()):
        assert key == key2 and torch.equal(value, value2), key
    assert model.config.merge == saved.config.merge


def test_base_defaults_to_the_base_recorded_in_the_checkpoints(sources, tmp_path):
    base_folder, task_folders = sources
    implicit = merge_to_folder(tmp_path / "i", task_folders)
    explicit = merge_to_folder(tmp_path / "e", task_folders, base_folder)
    assert load_file(implicit / "model.safetensors").keys() == load_file(explicit / "model.safetensors").keys()
    for key, value in load_file(implicit / "model.safetensors").items():
        assert torch.equal(value, load_file(explicit / "model.safetensors")[key])


def test_legacy_named_base_merges_with_new_named_checkpoints(sources, tmp_path):
    base_folder, task_folders = sources
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text((base_folder / "config.json").read_text())
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
    }
    state = {}
    for key, value in encoder_state(base_folder).items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value
    assert any("attention.attention.query" in k for k in state)
    save_file(state, legacy / "model.safetensors", metadata={"format": "pt"})
    got = merge_to_folder(tmp_path / "a", task_folders, legacy, "ties")
    expected = merge_to_folder(tmp_path / "b", task_folders, base_folder, "ties")
    assert (got / "model.safetensors").read_bytes() == (expected / "model.safetensors").read_bytes()


def test_legacy_swiglu_weights_in_are_split_into_gate_and_up(tmp_path):
    base = build_base(tmp_path / "base", use_swiglu_ffn=True)
    assert any("gate_proj" in k for k in base.state_dict())
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text((tmp_path / "base" / "config.json").read_text())
    state = {}
    current = base.state_dict()
    for key, value in current.items():
        if ".mlp.gate_proj." in key:
            up = current[key.replace("gate_proj", "up_proj")]
            state[key.replace("gate_proj", "weights_in")] = torch.cat([value, up], dim=0)
        elif ".mlp.up_proj." in key:
            continue
        else:
            state[key.replace("down_proj", "weights_out")] = value.clone()
    save_file(state, legacy / "model.safetensors", metadata={"format": "pt"})
    task = build_task(tmp_path / "seg", base, "segmentation", seed=1)
    got = merge(["seg=" + str(tmp_path / "seg")], legacy, alpha=0.5)
    for key, value in got.dinov2.state_dict().items():
        tau = task.dinov2.state_dict()[key] - current[key]
        assert torch.equal(value, current[key] + 0.5 * tau), key


def test_simo_model_folder_as_base_and_in_memory_sources(sources, tmp_path):
    base_folder, task_folders = sources
    base_model = Dinov2Model.from_pretrained(base_folder)
    simo_base = SimoModel.from_backbone(base_model, {"segmentation": TINY_TASKS["segmentation"]})
    simo_base.save_pretrained(tmp_path / "simo_base")
    from_simo = merge(task_folders, tmp_path / "simo_base", "ties")
    in_memory = merge([SimoModel.from_pretrained(f) for f in task_folders], base_model, "ties")
    reference = merge(task_folders, base_folder, "ties")
    for key, value in reference.state_dict().items():
        assert torch.equal(from_simo.state_dict()[key], value), key
        assert torch.equal(in_memory.state_dict()[key], value), key


def test_renaming_tasks_and_selecting_a_head(sources, tmp_path):
    base_folder, task_folders = sources
    model = merge([f"seg={task_folders[0]}", TaskSource(task_folders[1], task="depth_nyu")], base_folder)
    assert model.task_names == ["seg", "depth_nyu"]
    for key, value in head_state(task_folders[0]).items():
        assert torch.equal(model.state_dict()[key.replace("heads.segmentation.", "heads.seg.")], value)
    assert model.config.merge["sources"][0] == {
        "task": "seg",
        "name_or_path": str(task_folders[0]),
        "revision": None,
        "commit": None,
        "source_task": "segmentation",
    }
    multi = merge([f"a={task_folders[0]}", f"b={task_folders[1]}"], base_folder)
    multi.save_pretrained(tmp_path / "multi")
    picked = merge([TaskSource(tmp_path / "multi", source_task="b")], base_folder)
    assert picked.task_names == ["b"]


def test_coefficient_groups_cover_embeddings_blocks_and_final_layernorm(sources):
    base_folder, _ = sources
    keys = encoder_state(base_folder)
    groups = {layer_group(k, 4) for k in keys}
    assert groups == set(range(6))
    assert layer_group("embeddings.patch_embeddings.projection.weight", 4) == 0
    assert layer_group("encoder.layer.3.mlp.fc2.bias", 4) == 4
    assert layer_group("layernorm.bias", 4) == 5


def test_builders_make_fine_tuned_single_task_checkpoints(tmp_path):
    base_folder, folders = build_sources(tmp_path)
    base = encoder_state(base_folder)
    for folder, task in zip(folders, TASKS):
        model = SimoModel.from_pretrained(folder)
        assert model.task_names == [task]
        assert model.config.base_model_name_or_path == str(base_folder)
        tau = {k: v - base[k] for k, v in encoder_state(folder).items()}
        assert set(tau) == set(base)
        norm = sum(float(t.pow(2).sum()) for t in tau.values()) ** 0.5
        assert 0 < norm / sum(float(v.pow(2).sum()) for v in base.values()) ** 0.5 < 0.05
