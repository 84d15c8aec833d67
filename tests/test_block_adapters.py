import pytest
import torch

from helpers.tiny import random_labels, tiny_config, tiny_model
from hf_simo import SimoModel
from hf_simo.block_adapters import SLOT_TARGET_PATTERN, BlockAdapterSlot, ReluBottleneckAdapter
from hf_simo.realign.representation import (
    adapter_parameters,
    fold_adapters,
    load_realignment_adapter,
    prepare_representation_realignment,
    trainable_parameters,
)


def _train(model, steps=3, lr=0.05):
    model.train()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = random_labels(tiny_model().config, 2, 16, 16)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(x, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_zero_initialised_adapters_leave_outputs_unchanged():
    x = torch.randn(2, 3, 24, 16)
    reference = tiny_model(seed=4)
    with torch.no_grad():
        expected = reference(x).predictions
    for kind, rank in (("linear", None), ("relu", 4)):
        model = tiny_model(seed=4).enable_block_adapters(kind, rank)
        assert model.config.block_adapter == kind
        with torch.no_grad():
            out = model(x).predictions
        for name in expected:
            assert torch.equal(out[name], expected[name]), (kind, name)


def test_slot_adapter_output_is_block_plus_bax():
    model = tiny_model(seed=1).enable_block_adapters("linear")
    peft_model = prepare_representation_realignment(model, rank=4)
    layer = peft_model.base_model.model.dinov2.encoder.layer[2]
    slot = layer.adapter_slot
    torch.nn.init.normal_(slot.lora_B["default"].weight)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        block = layer.forward(x)  # forward() bypasses hooks: the block alone
        hooked = layer(x)  # __call__ runs the hook
        a, b = slot.lora_A["default"].weight, slot.lora_B["default"].weight
        scaling = slot.scaling["default"]
    torch.testing.assert_close(hooked, block + scaling * x @ a.T @ b.T)
    # and output_hidden_states sees the adapted output (the hook runs before transformers' recorder)
    pixels = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        hidden = peft_model.base_model.model.dinov2(pixels, output_hidden_states=True).hidden_states
        layer.adapter_slot.lora_B["default"].weight.zero_()
        plain = peft_model.base_model.model.dinov2(pixels, output_hidden_states=True).hidden_states
    assert torch.equal(hidden[2], plain[2]) and not torch.equal(hidden[3], plain[3])


def test_relu_variant_is_o_minus_up_relu_down_o():
    adapter = ReluBottleneckAdapter(8, 3)
    torch.nn.init.normal_(adapter.up.weight)
    o = torch.randn(4, 8)
    expected = o - adapter.up(torch.relu(adapter.down(o)))
    torch.testing.assert_close(adapter(o), expected)


def test_paper_sized_adapter_has_about_0_3m_parameters():
    """Rank 16 after each of ViT-B's 12 blocks: the paper's "0.3M parameters"."""
    from hf_simo import SimoConfig

    with torch.device("meta"):
        model = SimoModel(SimoConfig(tasks={"depth": {"kind": "depth"}}))  # DINOv2-base shapes, no memory
        peft_model = prepare_representation_realignment(model, rank=16)
    lora = peft_model.peft_config["default"]
    assert lora.r == 16 and lora.lora_alpha == 16 and lora.target_modules == SLOT_TARGET_PATTERN
    assert adapter_parameters(peft_model) == 12 * 2 * 768 * 16 == 294_912


def test_only_adapters_and_heads_train_and_they_change():
    model = tiny_model(seed=2)
    encoder_before = {k: v.clone() for k, v in model.dinov2.state_dict().items()}
    peft_model = prepare_representation_realignment(model, rank=4)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".heads." in n for n in trainable)
    assert not any("residual_layer1" in n and "fusion_stage.layers.0" in n for n in trainable)
    assert adapter_parameters(peft_model) == 4 * 2 * 32 * 4  # layers * (A + B) * hidden * rank
    assert trainable_parameters(peft_model) > adapter_parameters(peft_model)
    _train(peft_model)
    folded = fold_adapters(peft_model)
    for key, value in encoder_before.items():
        assert torch.equal(folded.dinov2.state_dict()[key], value), key  # merged encoder untouched
    assert folded.dinov2.encoder.layer[0].adapter_slot.weight.abs().sum() > 0


def test_folding_gives_the_same_outputs_and_a_plain_simo_model(tmp_path):
    peft_model = prepare_representation_realignment(tiny_model(seed=3), rank=4)
    _train(peft_model)
    x = torch.randn(2, 3, 20, 28)
    with torch.no_grad():
        before = peft_model(x).predictions
    folded = fold_adapters(peft_model)
    assert type(folded) is SimoModel and isinstance(folded.dinov2.encoder.layer[1].adapter_slot, BlockAdapterSlot)
    with torch.no_grad():
        after = folded(x).predictions
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-5, rtol=1e-5)
    folded.save_pretrained(tmp_path)
    reloaded = SimoModel.from_pretrained(tmp_path).eval()  # no PEFT needed to load
    assert reloaded.config.block_adapter == "linear"
    with torch.no_grad():
        again = reloaded(x).predictions
    for name in before:
        assert torch.equal(again[name], after[name])


def test_adapters_save_and_reload_identically_through_peft(tmp_path):
    peft_model = prepare_representation_realignment(tiny_model(seed=5), rank=4)
    _train(peft_model)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {"adapter_model.safetensors", "adapter_config.json"}
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        expected = peft_model(x).predictions
    fresh = tiny_model(seed=5)  # the same merged model, heads as before training
    reloaded = load_realignment_adapter(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        out = reloaded(x).predictions
    for name in expected:
        assert torch.equal(out[name], expected[name]), name  # adapters and retrained heads both restored


def test_adapter_for_a_different_encoder_shape_is_a_clear_error(tmp_path):
    from hf_simo import CheckpointError
    from hf_simo.realign.representation import load_realignment_adapter as load

    peft_model = prepare_representation_realignment(tiny_model(), rank=4)
    peft_model.save_pretrained(tmp_path / "adapter")
    other = SimoModel(
        tiny_config().__class__(
            backbone_config={**tiny_config().backbone_config.to_dict(), "hidden_size": 16},
            tasks=tiny_config().tasks,
        )
    )
    with pytest.raises(CheckpointError, match="saved for a different encoder"):
        load(other, tmp_path / "adapter")


def test_user_lora_config_on_attention_and_mlp_folds_into_dinov2_weights():
    from peft import LoraConfig

    model = tiny_model(seed=6)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"])
    peft_model = prepare_representation_realignment(model, lora_config=config)
    assert model.config.block_adapter is None  # no slots needed
    assert config.modules_to_save  # heads train too
    _train(peft_model)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        before = peft_model(x).predictions
    folded = fold_adapters(peft_model)
    assert not any("lora" in k for k in folded.state_dict())
    with torch.no_grad():
        after = folded(x).predictions
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-5, rtol=1e-5)


def test_relu_variant_trains_native_modules(tmp_path):
    model = prepare_representation_realignment(tiny_model(seed=7), variant="relu", rank=4)
    assert isinstance(model, SimoModel)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".relu_adapter." in n or n.startswith("heads.") for n in trainable)
    _train(model)
    assert model.dinov2.encoder.layer[0].relu_adapter.up.weight.abs().sum() > 0
    model.save_pretrained(tmp_path)
    reloaded = SimoModel.from_pretrained(tmp_path)
    assert reloaded.config.block_adapter == "relu" and reloaded.config.block_adapter_rank == 4


@pytest.mark.parametrize("rank", [0, -1, 33, 2.5])
def test_bad_ranks(rank):
    with pytest.raises(ValueError, match="rank"):
        prepare_representation_realignment(tiny_model(), rank=rank)
    with pytest.raises(ValueError, match="rank"):
        prepare_representation_realignment(tiny_model(), rank=rank, variant="relu")


def test_bad_variant_and_double_enable():
    with pytest.raises(ValueError, match="variant must be one of"):
        prepare_representation_realignment(tiny_model(), variant="dora")
    model = tiny_model().enable_block_adapters("linear")
    with pytest.raises(ValueError, match="already has 'linear' block adapters"):
        model.enable_block_adapters("relu", 4)
    with pytest.raises(ValueError, match="block_adapter must be"):
        tiny_config(block_adapter="mlp")
    with pytest.raises(ValueError, match="block_adapter_rank must be"):
        tiny_config(block_adapter="relu", block_adapter_rank=None)
