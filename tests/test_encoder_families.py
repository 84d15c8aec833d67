"""Encoder families (issue 13, item 2): a SimoModel encoder can be a `Dinov2Model`, a `Dinov2WithRegistersModel` or
a `DINOv3ViTModel`, with the same heads, feature layers, block adapters, merging and re-alignment.

References are transformers' own models on the same weights (their hidden states, `last_hidden_state`, and their
`*Backbone` patch maps, which drop CLS and registers themselves), and hand computations written here with the
families' token layout spelled out (CLS, then `REGISTERS` register tokens, then the patch grid).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import (
    Dinov2Backbone,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersBackbone,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    DINOv3ViTBackbone,
    DINOv3ViTConfig,
    DINOv3ViTModel,
)

from helpers.checkpoints import build_task, rewrite_weights
from helpers.tiny import TINY_DPT
from hf_simo import SimoConfig, SimoModel
from hf_simo.errors import CheckpointError, NotFineTunedError
from hf_simo.merging import merge_to_folder
from hf_simo.merging.layers import layer_group
from hf_simo.realign import realign_heads
from hf_simo.realign.representation import fold_adapters, prepare_representation_realignment
from hf_simo.training.finetune import encoder_layer_id
from hf_simo.weights import canonical_key


LAYERS = 4
REGISTERS = 2
COMMON = {"hidden_size": 32, "num_hidden_layers": LAYERS, "num_attention_heads": 2, "patch_size": 8, "image_size": 32}
# family -> (config class, model class, backbone class, final norm attribute, register tokens, extra config)
FAMILIES = {
    "dinov2": (Dinov2Config, Dinov2Model, Dinov2Backbone, "layernorm", 0, {"mlp_ratio": 2}),
    "dinov2_with_registers": (
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
        Dinov2WithRegistersBackbone,
        "layernorm",
        REGISTERS,
        {"mlp_ratio": 2, "num_register_tokens": REGISTERS},
    ),
    "dinov3_vit": (
        DINOv3ViTConfig,
        DINOv3ViTModel,
        DINOv3ViTBackbone,
        "norm",
        REGISTERS,
        {"intermediate_size": 64, "num_register_tokens": REGISTERS},
    ),
}
NEW_FAMILIES = ("dinov2_with_registers", "dinov3_vit")
TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "layers": [2, 4]},
    "depth": {"kind": "depth", "head": "dpt", "head_options": TINY_DPT},
}


def family_config(family: str, **overrides):
    config_class, *_, extra = FAMILIES[family]
    return config_class(**{**COMMON, **extra, **overrides})


def family_encoder(family: str, seed: int = 0, **overrides):
    """A random encoder of `family` whose every tensor is perturbed (the registers start at zero otherwise)."""
    torch.manual_seed(seed)
    encoder = FAMILIES[family][1](family_config(family, **overrides)).eval()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return encoder


def without_registers(tokens: torch.Tensor, registers: int) -> torch.Tensor:
    return torch.cat([tokens[:, :1], tokens[:, 1 + registers :]], dim=1)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_encoder_features_equal_the_transformers_model(family):
    _, _, backbone_class, norm_name, registers, _ = FAMILIES[family]
    encoder = family_encoder(family)
    model = SimoModel.from_backbone(encoder, TASKS).eval()
    assert type(model.dinov2) is type(encoder) and model.config.backbone_config.model_type == family
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    keys = [*range(1, LAYERS + 1), *range(-LAYERS, 0)]
    with torch.no_grad():
        reference = encoder(x, output_hidden_states=True)
        encoding = model.encode(x, layers=keys, output_hidden_states=True)
        norm = getattr(encoder, norm_name)
        backbone = backbone_class(
            family_config(family, out_indices=list(range(1, LAYERS + 1)), reshape_hidden_states=True)
        ).eval()
        backbone.load_state_dict(encoder.state_dict())
        maps = backbone(x).feature_maps  # transformers drops CLS and registers itself
    assert encoding.grid == (4, 6)
    assert len(encoding.hidden_states) == LAYERS + 1
    for ours, theirs in zip(encoding.hidden_states, reference.hidden_states):
        assert torch.equal(ours, theirs)
    for layer in range(1, LAYERS + 1):
        hidden = reference.hidden_states[layer]
        assert encoding.features[-layer].shape == (2, 1 + 24, 32)
        assert torch.equal(encoding.features[-layer], without_registers(hidden, registers))
        assert torch.equal(encoding.features[layer], without_registers(norm(hidden), registers))
        patches = encoding.features[layer][:, 1:].transpose(1, 2).reshape(2, 32, 4, 6)
        assert torch.equal(patches, maps[layer - 1])
    assert torch.equal(encoding.features[LAYERS], without_registers(reference.last_hidden_state, registers))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_heads_read_cls_and_patches_never_registers(family):
    *_, norm_name, registers, _ = FAMILIES[family]
    encoder = family_encoder(family, seed=2)
    torch.manual_seed(3)
    model = SimoModel.from_backbone(encoder, TASKS).eval()
    linear = model.heads["segmentation"]
    with torch.no_grad():  # non-trivial BatchNorm statistics
        linear.batch_norm.running_mean.normal_()
        linear.batch_norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 24, 40, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        hidden = encoder(x, output_hidden_states=True).hidden_states
        encoding = model.encode(x)
        ours = {name: model.heads[name](encoding.features, encoding.grid) for name in TASKS}
        normed = {layer: getattr(encoder, norm_name)(hidden[layer]) for layer in range(1, LAYERS + 1)}
        # the linear head in NCHW, by hand: per layer [patch grid, CLS broadcast] on channels, BN, 1x1 convolution
        h, w = 3, 5
        parts = []
        for layer in TASKS["segmentation"]["layers"]:
            tokens = normed[layer]
            parts.append(tokens[:, 1 + registers :].transpose(1, 2).reshape(1, 32, h, w))
            parts.append(tokens[:, 0, :, None, None].expand(-1, -1, h, w))
        expected = F.conv2d(
            linear.batch_norm(torch.cat(parts, dim=1)), linear.classifier.weight, linear.classifier.bias
        )
        dpt = model.heads["depth"]
        dpt_in = [without_registers(normed[layer], registers) for layer in model.config.tasks["depth"]["layers"]]
        dpt_expected = dpt.head(dpt.neck(dpt_in, h, w)).unsqueeze(1)
    torch.testing.assert_close(ours["segmentation"], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(ours["depth"], dpt_expected)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_stored_tensor_names_canonicalise_to_module_names(family, tmp_path):
    encoder = family_encoder(family)
    encoder.save_pretrained(tmp_path / "encoder")
    stored = load_file(tmp_path / "encoder" / "model.safetensors")
    assert {canonical_key(k) for k in stored} == set(encoder.state_dict())
    model = SimoModel.from_backbone(encoder, TASKS)
    model.save_pretrained(tmp_path / "simo")
    stored = load_file(tmp_path / "simo" / "model.safetensors")
    assert {canonical_key(k) for k in stored} == set(model.state_dict())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_block_adapters_land_after_every_block(family):
    torch.manual_seed(0)
    model = SimoModel(SimoConfig(backbone_config=family_config(family), tasks=TASKS)).eval()
    layer_class = type(model.encoder_blocks()[0])
    x = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        before = model.dinov2(x, output_hidden_states=True).hidden_states
    model.enable_block_adapters("linear")
    slots = [name for name, _ in model.named_modules() if name.endswith(".adapter_slot")]
    assert len(slots) == LAYERS
    for name in slots:
        assert isinstance(model.get_submodule(name.rsplit(".", 1)[0]), layer_class)
    with torch.no_grad():  # an adapter on block 3 only: the blocks before it unchanged, block 3's output moved
        model.encoder_blocks()[2].adapter_slot.weight.normal_()
        after = model.dinov2(x, output_hidden_states=True).hidden_states
    assert all(torch.equal(a, b) for a, b in zip(before[:3], after[:3]))
    assert not torch.allclose(before[3], after[3])
    peft_model = prepare_representation_realignment(model, rank=4, train_heads=False)
    lora = [name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")]
    assert len(lora) == LAYERS and all(name.endswith(".adapter_slot") for name in lora)
    relu = SimoModel(SimoConfig(backbone_config=family_config(family), tasks=TASKS)).enable_block_adapters("relu", 4)
    assert sum(name.endswith(".relu_adapter") for name, _ in relu.named_modules()) == LAYERS


@pytest.mark.parametrize("family", list(FAMILIES))
def test_layer_groups_and_layer_ids_follow_the_blocks(family):
    model = SimoModel(SimoConfig(backbone_config=family_config(family), tasks=TASKS))
    blocks = model.encoder_blocks()
    in_block = {
        f"dinov2.{model.encoder_family.blocks}.{index}.{name}": index
        for index, block in enumerate(blocks)
        for name, _ in block.named_parameters()
    }
    names = [name for name, _ in model.dinov2.named_parameters()]
    assert any(name.startswith(("norm.", "layernorm.")) for name in names)
    for name in names:
        full = f"dinov2.{name}"
        expected = in_block[full] + 1 if full in in_block else 0 if name.startswith("embeddings.") else LAYERS + 1
        assert layer_group(name, LAYERS) == expected, name
        assert encoder_layer_id(full, LAYERS) == expected, name


def _batches(model, n_batches=3, batch=4, size=(16, 24), seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch, 3, *size, generator=gen)
        labels = {"segmentation": (x[:, 0] > 0).long() + (x[:, 1] > 0).long(), "depth": x[:, :1].abs() + 0.1}
        out.append({"pixel_values": x, "labels": labels})
    return out


def _sources(root: Path, family: str):
    base = family_encoder(family)
    base.save_pretrained(root / "base")
    folders = []
    for index, task in enumerate(TASKS):
        build_task(root / task, base, task, seed=index + 1, base_name=str(root / "base"), spec=TASKS[task])
        folders.append(root / task)
    return base, folders


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_merge_realign_save_load(family, tmp_path):
    base, folders = _sources(tmp_path, family)
    merged_folder = merge_to_folder(tmp_path / "merged", [str(f) for f in folders], str(tmp_path / "base"), alpha=0.5)
    merged = SimoModel.from_pretrained(merged_folder).eval()
    assert type(merged.dinov2) is FAMILIES[family][1]
    singles = [SimoModel.from_pretrained(f) for f in folders]
    base_state = base.state_dict()
    for name, tensor in merged.dinov2.state_dict().items():  # task arithmetic, by hand
        vectors = [single.dinov2.state_dict()[name] - base_state[name] for single in singles]
        torch.testing.assert_close(tensor, base_state[name] + 0.5 * (vectors[0] + vectors[1]), rtol=0, atol=1e-6)
    for task, single in zip(TASKS, singles):
        for name, tensor in single.heads[task].state_dict().items():
            assert torch.equal(merged.heads[task].state_dict()[name], tensor)

    batches = _batches(merged)
    encoder_before = {k: v.clone() for k, v in merged.dinov2.state_dict().items()}
    heads_before = {k: v.clone() for k, v in merged.heads.state_dict().items()}
    realign_heads(merged, batches, epochs=2, batch_size=4, heldout_fraction=0.25, patience=2)
    assert all(torch.equal(v, merged.dinov2.state_dict()[k]) for k, v in encoder_before.items())
    assert any(not torch.equal(v, merged.heads.state_dict()[k]) for k, v in heads_before.items())

    peft_model = prepare_representation_realignment(merged, rank=4)
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    peft_model.train()
    for batch in batches:
        loss = peft_model(batch["pixel_values"], labels=batch["labels"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folded = fold_adapters(peft_model).eval()
    slots = [block.adapter_slot.weight for block in folded.encoder_blocks()]
    assert len(slots) == LAYERS and all(weight.abs().sum() > 0 for weight in slots)
    folded.save_pretrained(tmp_path / "realigned")
    loaded = SimoModel.from_pretrained(tmp_path / "realigned").eval()
    assert loaded.config.block_adapter == "linear" and loaded.config.backbone_config.model_type == family
    x = batches[0]["pixel_values"]
    with torch.no_grad():
        expected, got = folded(x).predictions, loaded(x).predictions
    for task in TASKS:
        assert torch.equal(got[task], expected[task])


def test_merge_refuses_mixed_families_naming_sources_and_families(tmp_path):
    _, (segmentation, _) = _sources(tmp_path / "v3", "dinov3_vit")
    _, (_, depth) = _sources(tmp_path / "reg", "dinov2_with_registers")
    with pytest.raises(CheckpointError) as caught:
        merge_to_folder(tmp_path / "out", [str(segmentation), str(depth)], str(tmp_path / "v3" / "base"))
    message = str(caught.value)
    assert "'dinov2_with_registers'" in message and "'dinov3_vit'" in message
    assert str(depth) in message and str(tmp_path / "v3" / "base") in message
    assert not (tmp_path / "out").exists()


def test_merge_refuses_mismatched_shapes_fields_and_bases(tmp_path):
    _, (segmentation, depth) = _sources(tmp_path / "a", "dinov3_vit")

    def extra_register(state):
        key = next(k for k in state if k.endswith("embeddings.register_tokens"))
        state[key] = torch.cat([state[key], state[key][:, :1]], dim=1)

    rewrite_weights(depth, extra_register)
    with pytest.raises(CheckpointError, match=r"register_tokens' has shape \[1, 3, 32\].*\[1, 2, 32\]"):
        merge_to_folder(tmp_path / "out", [str(segmentation), str(depth)], str(tmp_path / "a" / "base"))

    other = family_encoder("dinov3_vit", num_register_tokens=4)
    other.save_pretrained(tmp_path / "four")
    with pytest.raises(CheckpointError, match="num_register_tokens is 2.*has 4"):
        merge_to_folder(tmp_path / "out", [str(segmentation)], str(tmp_path / "four"))

    family_encoder("dinov3_vit", seed=7).save_pretrained(tmp_path / "unrelated")  # same shapes, another base
    with pytest.raises(NotFineTunedError, match="does not look fine-tuned from the base"):
        merge_to_folder(tmp_path / "out", [str(segmentation)], str(tmp_path / "unrelated"))


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_a_saved_encoder_folder_is_a_base(family, tmp_path):
    """What `--model_name_or_path` of the finetune recipe reaches: `SimoModel.from_backbone(folder)`, for a
    `*Model` and a `*Backbone` checkpoint."""
    encoder = family_encoder(family, seed=5)
    encoder.save_pretrained(tmp_path / "model")
    backbone = FAMILIES[family][2](family_config(family))
    backbone.load_state_dict(encoder.state_dict())
    backbone.save_pretrained(tmp_path / "backbone")
    for folder in ("model", "backbone"):
        model = SimoModel.from_backbone(tmp_path / folder, TASKS)
        assert model.config.base_model_name_or_path == str(tmp_path / folder)
        assert model.config.backbone_config.model_type == family
        for name, tensor in encoder.state_dict().items():
            assert torch.equal(model.dinov2.state_dict()[name], tensor), (folder, name)


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_export_to_transformers_is_refused_for_other_families(family):
    from hf_simo.errors import UnsupportedExportError
    from hf_simo.interop.export import check_exportable

    model = SimoModel(SimoConfig(backbone_config=family_config(family), tasks=TASKS))
    with pytest.raises(UnsupportedExportError, match=rf"the encoder is '{family}'.*register tokens"):
        check_exportable(model, "depth")
