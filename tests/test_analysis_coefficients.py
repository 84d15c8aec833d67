import pytest
import torch

from helpers.tiny import tiny_model
from hf_simo.analysis.coefficients import encoder_state, learn_layer_coefficients
from hf_simo.losses import task_loss
from hf_simo.merging import merge_state_dicts


TASKS = {"seg": {"kind": "semantic_segmentation", "num_outputs": 3}, "depth": {"kind": "depth"}}


def _setup():
    base_model = tiny_model(TASKS, seed=0)
    base = encoder_state(base_model)
    finetuned = {}
    for i, task in enumerate(TASKS):
        gen = torch.Generator().manual_seed(10 + i)
        finetuned[task] = {
            k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in base.items()
        }
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 16, 16, generator=gen)
    batches = [{"pixel_values": x, "labels": {"seg": (x[:, 0] > 0).long(), "depth": x[:, :1].abs() + 0.1}}]
    return base_model, base, finetuned, batches


def _loss(model, batches):
    with torch.no_grad():
        out = model(batches[0]["pixel_values"])
        return sum(
            task_loss(model.config.get_task(t), out.predictions[t], batches[0]["labels"][t]) for t in TASKS
        ).item()


def test_learned_coefficients_lower_the_loss_and_plug_back_into_merge():
    model, base, finetuned, batches = _setup()
    learned = learn_layer_coefficients(model, base, finetuned, batches, init=0.3, steps=30, learning_rate=0.05)
    assert len(learned.group_names) == 4 + 2 and set(learned.coefficients) == set(TASKS)
    assert all(len(v) == 6 for v in learned.coefficients.values())
    assert len(learned.blocks()["seg"]) == 4
    assert learned.losses[-1] < learned.losses[0]
    # the learned C rebuilds, through the merge engine, an encoder with that lower loss
    start = merge_state_dicts(
        base,
        [finetuned[t] for t in TASKS],
        "task_arithmetic",
        {},
        alpha=1.0,
        coefficients=[[0.3] * 6] * 2,
        num_layers=4,
    )
    end = merge_state_dicts(
        base,
        [finetuned[t] for t in TASKS],
        "task_arithmetic",
        {},
        alpha=1.0,
        coefficients=[learned.coefficients[t] for t in TASKS],
        num_layers=4,
    )
    model.dinov2.load_state_dict(start)
    before = _loss(model, batches)
    model.dinov2.load_state_dict(end)
    after = _loss(model, batches)
    assert after < before


def test_heads_and_encoder_are_untouched_and_errors():
    model, base, finetuned, batches = _setup()
    heads = {k: v.clone() for k, v in model.heads.state_dict().items()}
    learn_layer_coefficients(model, base, finetuned, batches, steps=3)
    assert all(torch.equal(model.heads.state_dict()[k], v) for k, v in heads.items())
    assert all(
        p.requires_grad for n, p in model.named_parameters() if "mask_token" not in n and "residual_layer1" not in n
    )
    with pytest.raises(KeyError, match="no head for task"):
        learn_layer_coefficients(model, base, {"normals": base}, batches, steps=1)
    with pytest.raises(ValueError, match="no batches"):
        learn_layer_coefficients(model, base, finetuned, [], steps=1)
