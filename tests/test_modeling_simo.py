import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModel, Dinov2Model

from helpers.hub import write_hub_cache
from helpers.tiny import TINY_TASKS, random_labels, tiny_config, tiny_model
from hf_simo import CheckpointError, SimoModel, UnsafeCheckpointError, make_image_processor
from hf_simo.modeling_simo import SimoModelOutput


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (8, 8), (9, 61), (64, 24)])
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes_every_head_and_kind(simo_model, size, batch):
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        out = simo_model(x)
    assert isinstance(out, SimoModelOutput)
    expected = {"segmentation": 5, "depth": 1, "normals": 3, "disparity": 1, "edges": 2}
    assert set(out.predictions) == set(expected)
    for name, channels in expected.items():
        assert out.predictions[name].shape == (batch, channels, *size), name
        assert torch.isfinite(out.predictions[name]).all()
    norms = out.predictions["normals"].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert out.loss is None and out.task_losses is None


def test_padding_does_not_change_a_multiple_of_patch_input(simo_model):
    """Padding only kicks in for sizes that are not a multiple of the patch; predictions are cropped back."""
    x = torch.randn(1, 3, 32, 40)
    enc = simo_model.encode(x)
    assert enc.padding == (0, 0, 0, 0) and enc.grid == (4, 5)
    enc_odd = simo_model.encode(torch.randn(1, 3, 33, 38))
    assert enc_odd.grid == (5, 5)  # 33 -> 40, 38 -> 40
    assert enc_odd.padding == (3, 4, 1, 1)
    assert set(enc.features) == {1, 2, 3, 4}
    assert enc.features[4].shape == (1, 1 + 20, 32)


def test_one_encoder_pass_serves_all_tasks(simo_model, monkeypatch):
    calls = []
    original = simo_model.dinov2.forward
    monkeypatch.setattr(simo_model.dinov2, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    simo_model(torch.randn(2, 3, 32, 32))
    assert len(calls) == 1


def test_encode_decode_equals_forward(simo_model):
    x = torch.randn(2, 3, 40, 24)
    with torch.no_grad():
        out = simo_model(x).predictions
        decoded = simo_model.decode(simo_model.encode(x))
    for name in out:
        assert torch.equal(out[name], decoded[name])


def test_losses_and_unweighted_mean():
    model = tiny_model()
    x = torch.randn(2, 3, 24, 32)
    labels = random_labels(model.config, 2, 24, 32)
    out = model(x, labels=labels)
    assert set(out.task_losses) == set(TINY_TASKS)
    for value in out.task_losses.values():
        assert value.ndim == 0 and torch.isfinite(value) and value > 0
    torch.testing.assert_close(out.loss, torch.stack(list(out.task_losses.values())).mean())
    out.loss.backward()
    assert model.dinov2.encoder.layer[0].mlp.fc1.weight.grad is not None
    assert all(p.grad is not None for p in model.heads.parameters() if p.requires_grad)
    assert model.dinov2.embeddings.mask_token.grad is None  # frozen: unused, would stall DDP


def test_losses_for_a_subset_of_tasks_and_task_selection(simo_model):
    x = torch.randn(1, 3, 16, 16)
    labels = random_labels(simo_model.config, 1, 16, 16)
    out = simo_model(x, labels={"depth": labels["depth"]}, tasks=["depth", "normals"])
    assert set(out.predictions) == {"depth", "normals"}
    assert set(out.task_losses) == {"depth"}
    assert out.loss == out.task_losses["depth"]
    # (B, H, W) depth labels are accepted for one-channel tasks
    out2 = simo_model(x, labels={"depth": labels["depth"][:, 0]}, tasks=["depth"])
    torch.testing.assert_close(out2.loss, out.loss)


def test_return_dict_false_gives_tuple(simo_model):
    out = simo_model(torch.randn(1, 3, 16, 16), return_dict=False)
    assert isinstance(out, tuple) and isinstance(out[0], dict)


def test_save_load_round_trip_is_bit_identical(tmp_path):
    model = tiny_model(seed=3)
    model.train()
    model(torch.randn(4, 3, 16, 16))  # update BatchNorm running statistics so they are not defaults
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "simo"
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is SimoModel
    original = model.state_dict()
    reloaded = loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key
    x = torch.randn(2, 3, 21, 35)
    with torch.no_grad():
        a, b = model(x).predictions, loaded.eval()(x).predictions
    for name in a:
        assert torch.equal(a[name], b[name])


def test_image_processor_is_saved_and_prepares_inputs(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    image = (torch.rand(32, 48, 3) * 255).to(torch.uint8).numpy()  # already at the working size: not resized
    pixel_values = processor(image, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 32, 48)
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    expected = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - mean) / std
    torch.testing.assert_close(pixel_values, expected, atol=1e-5, rtol=1e-5)
    assert model(pixel_values).predictions["depth"].shape == (1, 1, 32, 48)
    large = (torch.rand(300, 450, 3) * 255).to(torch.uint8).numpy()  # resized to ~the encoder's image_size
    assert processor(large, return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 48)


def test_load_by_repo_id_from_offline_cache(tmp_path, hub_cache):
    model = tiny_model(seed=5)
    model.save_pretrained(tmp_path / "saved")
    commit = write_hub_cache(tmp_path / "saved", "org/tiny-simo", revision="v1")
    loaded = SimoModel.from_pretrained("org/tiny-simo", revision="v1")
    assert loaded.task_names == model.task_names
    assert torch.equal(loaded.dinov2.embeddings.cls_token, model.dinov2.embeddings.cls_token)
    assert AutoImageProcessor.from_pretrained("org/tiny-simo", revision="v1") is not None
    assert commit in str(next(hub_cache.glob("models--org--tiny-simo/snapshots/*")))
    assert loaded.config.name_or_path == "org/tiny-simo"
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        SimoModel.from_pretrained("org/not-cached")


def test_task_subsets_load_select_and_drop(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    sub = SimoModel.from_pretrained(tmp_path, tasks=["normals", "depth"])
    assert sub.task_names == ["normals", "depth"]
    assert list(sub.config.tasks) == ["normals", "depth"]
    assert torch.equal(sub.heads["depth"].head.head[0].weight, model.heads["depth"].head.head[0].weight)
    with pytest.raises(KeyError, match="unknown task"):
        SimoModel.from_pretrained(tmp_path, tasks=["nope"])
    model.drop_tasks(["edges", "disparity"])
    assert model.task_names == ["segmentation", "depth", "normals"]
    assert "edges" not in model.config.tasks
    with pytest.raises(TypeError, match="list of task names"):
        model.select_tasks("depth")
    # a dropped-task model saves and loads as its own (single-task when one task is left)
    model.select_tasks(["depth"])
    model.save_pretrained(tmp_path / "single")
    single = SimoModel.from_pretrained(tmp_path / "single")
    assert single.task_names == ["depth"] and len(single.heads) == 1


def test_add_task_builds_a_fresh_head(simo_model):
    simo_model.add_task("keypoints", {"kind": "regression", "num_outputs": 1})
    assert simo_model.config.tasks["keypoints"]["loss"] == "l1"
    out = simo_model(torch.randn(1, 3, 16, 16))
    assert out.predictions["keypoints"].shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="already exists"):
        simo_model.add_task("depth", {"kind": "depth"})


def test_from_backbone_folder_and_instance(tmp_path, tiny_backbone, hub_cache):
    tasks = {"depth": {"kind": "depth"}}
    model = SimoModel.from_backbone(tiny_backbone, tasks=tasks)
    for key, value in tiny_backbone.state_dict().items():
        assert torch.equal(model.dinov2.state_dict()[key], value), key
    tiny_backbone.save_pretrained(tmp_path / "base")
    from_folder = SimoModel.from_backbone(tmp_path / "base", tasks=tasks)
    assert from_folder.config.base_model_name_or_path == str(tmp_path / "base")
    assert torch.equal(
        from_folder.dinov2.encoder.layer[1].attention.q_proj.weight,
        tiny_backbone.encoder.layer[1].attention.q_proj.weight,
    )
    commit = write_hub_cache(tmp_path / "base", "facebook/dinov2-tiny-test")
    from_hub = SimoModel.from_backbone("facebook/dinov2-tiny-test", tasks=tasks)
    assert from_hub.config.base_model_name_or_path == "facebook/dinov2-tiny-test"
    assert from_hub.config.base_model_revision == commit


def test_from_backbone_refuses_non_dinov2(tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(
        ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    ).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="is a 'vit' model, not DINOv2"):
        SimoModel.from_backbone(tmp_path, tasks={"depth": {"kind": "depth"}})


def test_legacy_dinov2_naming_loads(tmp_path, tiny_backbone):
    """Hub DINOv2 checkpoints use transformers-4 names (attention.attention.query ...)."""
    tiny_backbone.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
    }
    legacy = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        legacy[key] = value
    assert any("attention.attention.query" in k for k in legacy)
    save_file(legacy, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = SimoModel.from_backbone(tmp_path, tasks={"depth": {"kind": "depth"}})
    assert torch.equal(
        model.dinov2.encoder.layer[0].attention.q_proj.weight, tiny_backbone.encoder.layer[0].attention.q_proj.weight
    )


def test_pickle_only_checkpoints_are_refused(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="only has pickle weights .*allow_pickle=True"):
        SimoModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="allow_pickle"):
        SimoModel.from_pretrained(tmp_path, use_safetensors=False)
    loaded = SimoModel.from_pretrained(tmp_path, allow_pickle=True)
    assert torch.equal(loaded.dinov2.embeddings.cls_token, model.dinov2.embeddings.cls_token)


def test_checkpoint_whose_tasks_do_not_match_config(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # config declares a task whose head is not in the weights
    extra = dict(config)
    extra["tasks"] = {**config["tasks"], "ghost": config["tasks"]["depth"]}
    (tmp_path / "config.json").write_text(json.dumps(extra))
    with pytest.raises(CheckpointError, match="task 'ghost' is in the config but its head has no weights"):
        SimoModel.from_pretrained(tmp_path)
    # weights hold a head the config does not declare
    fewer = dict(config)
    fewer["tasks"] = {k: v for k, v in config["tasks"].items() if k != "edges"}
    (tmp_path / "config.json").write_text(json.dumps(fewer))
    with pytest.raises(CheckpointError, match=r"head weights for task\(s\) \['edges'\]"):
        SimoModel.from_pretrained(tmp_path)
    # a head of the wrong shape
    wrong = dict(config)
    wrong["tasks"] = {**config["tasks"], "segmentation": {**config["tasks"]["segmentation"], "num_outputs": 7}}
    (tmp_path / "config.json").write_text(json.dumps(wrong))
    with pytest.raises(CheckpointError, match=r"task 'segmentation': heads.segmentation.classifier.weight has shape"):
        SimoModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("make_input", "error", "fragment"),
    [
        (lambda: torch.randn(1, 4, 16, 16), ValueError, "has 4 channels, the encoder expects 3"),
        (lambda: torch.randn(3, 16, 16), ValueError, "must have shape \\(batch, channels, height, width\\)"),
        (lambda: torch.randn(1, 3, 7, 16), ValueError, "smaller than one 8x8 patch"),
        (lambda: torch.full((1, 3, 16, 16), float("nan")), ValueError, "NaN or inf"),
        (lambda: torch.zeros(1, 3, 16, 16, dtype=torch.long), TypeError, "floating point"),
        (lambda: [[0.0]], TypeError, "must be a torch.Tensor"),
        (lambda: torch.empty(0, 3, 16, 16), ValueError, r"empty batch \(0 images"),
        # the processor refuses an empty image list itself, before the model sees it
        (
            lambda: make_image_processor()(images=[], return_tensors="pt")["pixel_values"],
            ValueError,
            "no images given",
        ),
    ],
)
def test_bad_pixel_values(simo_model, make_input, error, fragment):
    with pytest.raises(error, match=fragment):
        simo_model(make_input())


def test_bad_labels_name_the_task(simo_model):
    x = torch.randn(2, 3, 16, 16)
    good = random_labels(simo_model.config, 2, 16, 16)
    cases = [
        ({"segmentation": good["segmentation"].float()}, TypeError, "'segmentation' must be integer class ids"),
        ({"segmentation": good["segmentation"][:, :8]}, ValueError, "'segmentation' must have shape \\(2, 16, 16\\)"),
        ({"segmentation": torch.full((2, 16, 16), 9)}, ValueError, "'segmentation' contain class id 9"),
        ({"depth": good["depth"][:, :, :8]}, ValueError, "'depth' must have shape \\(2, 1, 16, 16\\)"),
        ({"normals": good["normals"][:, :2]}, ValueError, "'normals' must have shape \\(2, 3, 16, 16\\)"),
        ({"depth": good["depth"].long()}, TypeError, "'depth' must be floating point"),
        ({"depth": torch.full((2, 1, 16, 16), float("nan"))}, ValueError, "'depth' contain NaN"),
        ({"nope": good["depth"]}, KeyError, "\\['nope'\\] that are not run; this model has tasks"),
        (good["depth"], TypeError, "labels must be a dict"),
    ]
    for labels, error, fragment in cases:
        with pytest.raises(error, match=fragment):
            simo_model(x, labels=labels)
    with pytest.raises(KeyError, match="selected tasks are"):
        simo_model(x, labels={"depth": good["depth"]}, tasks=["normals"])
    with pytest.raises(KeyError, match="unknown task"):
        simo_model(x, tasks=["depth", "nope"])
    with pytest.raises(TypeError, match="unexpected argument"):
        simo_model(x, label=good)


def test_ignore_index_labels_are_accepted(simo_model):
    x = torch.randn(1, 3, 16, 16)
    labels = torch.full((1, 16, 16), 255)
    out = simo_model(x, labels={"segmentation": labels})
    assert out.loss.item() == 0.0


def test_gradient_checkpointing_gives_same_loss_and_grads():
    model = tiny_model(seed=1)
    model.train()
    x = torch.randn(2, 3, 16, 24)
    labels = random_labels(model.config, 2, 16, 24)
    torch.manual_seed(0)
    loss = model(x, labels=labels).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    torch.manual_seed(0)
    loss2 = model(x, labels=labels).loss
    loss2.backward()
    assert torch.equal(loss, loss2)
    for name, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, msg=name)


def test_sdpa_is_default_and_matches_eager(simo_model):
    assert simo_model.config._attn_implementation == "sdpa"
    assert simo_model.dinov2.config._attn_implementation == "sdpa"
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        sdpa = simo_model(x).predictions
        simo_model.set_attn_implementation("eager")
        assert simo_model.dinov2.config._attn_implementation == "eager"
        eager = simo_model(x).predictions
    for name in sdpa:
        torch.testing.assert_close(sdpa[name], eager[name], atol=1e-5, rtol=1e-4)


def test_image_processor_override_is_saved(tmp_path):
    model = tiny_model()
    processor = make_image_processor(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    model.save_pretrained(tmp_path, image_processor=processor)
    assert list(AutoImageProcessor.from_pretrained(tmp_path).image_std) == [0.25, 0.25, 0.25]


def test_config_built_model_has_no_hub_calls(no_hub_calls):
    """Building from a config never touches the network, even with a base id recorded."""
    from helpers.hub import HubCallForbidden
    from hf_simo.hub import resolve_repo

    with pytest.raises(HubCallForbidden):  # positive control: the guard sits where hf_simo reads the Hub
        resolve_repo("org/x")
    assert no_hub_calls == ["snapshot_download('org/x')"]
    no_hub_calls.clear()
    model = SimoModel(tiny_config(base_model_name_or_path="facebook/dinov2-base"))
    assert isinstance(model.dinov2, Dinov2Model)
    assert no_hub_calls == []


def test_loaded_models_keep_unused_parameters_frozen(tmp_path):
    """DDP waits for a gradient of every trainable parameter: the unused ones must stay frozen after loading."""
    tiny_model().save_pretrained(tmp_path)
    loaded = SimoModel.from_pretrained(tmp_path)
    frozen = {n for n, p in loaded.named_parameters() if not p.requires_grad}
    assert "dinov2.embeddings.mask_token" in frozen
    assert any("fusion_stage.layers.0.residual_layer1" in n for n in frozen)
    assert all(p.requires_grad for n, p in loaded.named_parameters() if n not in frozen)
    loaded.train()
    out = loaded(torch.randn(1, 3, 16, 16), labels=random_labels(loaded.config, 1, 16, 16))
    out.loss.backward()
    assert all(p.grad is not None for p in loaded.parameters() if p.requires_grad)
