import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import DPTForDepthEstimation

from helpers.tiny import TINY_DPT, tiny_backbone_config, tiny_model
from hf_simo.heads import HEAD_BUILDERS, DPTHead, LinearHead, build_head, dpt_config_for


def _dpt_reference(model, task):
    """`DPTForDepthEstimation` on a Dinov2 backbone, holding `model`'s encoder and `task` head weights."""
    backbone_config = copy.deepcopy(model.config.backbone_config)
    backbone_config.out_indices = model.config.tasks[task]["layers"]
    backbone_config.reshape_hidden_states = False
    reference = DPTForDepthEstimation(dpt_config_for(model.config.get_task(task), backbone_config)).eval()
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("dinov2."):
            state["backbone." + key[len("dinov2.") :]] = value
        elif key.startswith(f"heads.{task}."):
            state[key[len(f"heads.{task}.") :]] = value
    result = reference.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return reference


@pytest.mark.parametrize("readout", ["project", "add", "ignore"])
@pytest.mark.parametrize("size", [(32, 32), (40, 48)])
def test_dpt_head_equals_transformers_dpt_for_depth_estimation(readout, size):
    options = {**TINY_DPT, "readout_type": readout}
    tasks = {"depth": {"kind": "depth", "head": "dpt", "head_options": options}}
    model = tiny_model(tasks, seed=7)
    reference = _dpt_reference(model, "depth")
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = reference(x).predicted_depth  # (B, 16 h, 16 w)
        encoding = model.encode(x)
        raw = model.heads["depth"](encoding.features, encoding.grid)
        predicted = model(x).predictions["depth"]
    assert torch.equal(raw[:, 0], expected)  # bit-identical before resizing
    resized = F.interpolate(expected[:, None], size=size, mode="bilinear", align_corners=False)
    assert torch.equal(predicted, resized)


def test_dpt_neck_defaults_follow_dpt_dinov2():
    spec = tiny_model({"d": {"kind": "depth", "head": "dpt"}}).config.get_task("d")
    config = dpt_config_for(spec, tiny_backbone_config())
    assert list(config.neck_hidden_sizes) == [4, 8, 16, 32]  # hidden 32 * (1/8, 1/4, 1/2, 1), as dpt-dinov2
    assert config.fusion_hidden_size == 256 and config.readout_type == "project"


def test_dpt_segmentation_and_regression_heads_output_channels():
    tasks = {
        "seg": {"kind": "semantic_segmentation", "num_outputs": 6, "head": "dpt", "head_options": TINY_DPT},
        "rec": {"kind": "regression", "num_outputs": 3, "head": "dpt", "head_options": TINY_DPT},
    }
    model = tiny_model(tasks)
    out = model(torch.randn(1, 3, 24, 40)).predictions
    assert out["seg"].shape == (1, 6, 24, 40) and out["rec"].shape == (1, 3, 24, 40)
    assert type(model.heads["seg"].head).__name__ == "DPTSemanticSegmentationHead"
    assert type(model.heads["rec"].head).__name__ == "DPTSemanticSegmentationHead"
    depth = tiny_model({"d": {"kind": "disparity", "head": "dpt", "head_options": TINY_DPT}})
    assert type(depth.heads["d"].head).__name__ == "DPTDepthEstimationHead"


def test_dead_dpt_fusion_unit_is_frozen_and_every_trainable_head_weight_gets_a_gradient():
    model = tiny_model({"d": {"kind": "depth", "head": "dpt", "head_options": TINY_DPT}}).train()
    head = model.heads["d"]
    assert isinstance(head, DPTHead)
    assert not any(p.requires_grad for p in head.neck.fusion_stage.layers[0].residual_layer1.parameters())
    model(torch.randn(2, 3, 16, 16)).predictions["d"].sum().backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)


def test_linear_head_is_batchnorm_plus_1x1_conv_over_patch_and_cls_tokens():
    model = tiny_model({"seg": {"kind": "semantic_segmentation", "num_outputs": 4, "layers": [2, 4]}}, seed=2)
    head = model.heads["seg"]
    assert isinstance(head, LinearHead)
    assert head.classifier.in_channels == 32 * 2 * 2  # hidden * (patch + CLS) * layers
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        encoding = model.encode(x)
        out = head(encoding.features, encoding.grid)
        h, w = encoding.grid
        parts = []
        for layer in (2, 4):
            tokens = encoding.features[layer]
            parts.append(tokens[:, 1:].reshape(2, h, w, 32).permute(0, 3, 1, 2))
            parts.append(tokens[:, :1].reshape(2, 1, 1, 32).permute(0, 3, 1, 2).expand(-1, -1, h, w))
        manual = head.classifier(head.batch_norm(torch.cat(parts, dim=1)))
    assert out.shape == (2, 4, h, w)
    torch.testing.assert_close(out, manual)


def test_linear_head_without_cls_token():
    model = tiny_model({"d": {"kind": "depth", "head_options": {"use_cls_token": False}}})
    assert model.heads["d"].classifier.in_channels == 32 * 4


def test_features_are_layernormed_hidden_states():
    model = tiny_model({"d": {"kind": "depth", "layers": [2]}})
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        hidden = model.dinov2(x, output_hidden_states=True).hidden_states
        encoding = model.encode(x)
    torch.testing.assert_close(encoding.features[2], model.dinov2.layernorm(hidden[2]))
    assert set(encoding.features) == {2}


def test_head_registry_is_the_extension_point():
    spec = tiny_model({"d": {"kind": "depth"}}).config.get_task("d")
    assert set(HEAD_BUILDERS) == {"linear", "dpt", "depth_anything"}
    assert isinstance(build_head(spec, tiny_backbone_config()), LinearHead)
    spec.head = "unknown"
    with pytest.raises(ValueError, match="unknown head type 'unknown'"):
        build_head(spec, tiny_backbone_config())
