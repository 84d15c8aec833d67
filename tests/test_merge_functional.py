"""Merged encoder parameters as a differentiable function of per-task, per-layer coefficients."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from helpers.checkpoints import build_sources, encoder_state
from hf_simo import SimoModel
from hf_simo.merging import LayerwiseMerge, coefficient_groups, functional_merge, merge, stack_task_vectors


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("functional"))


def test_functional_merge_is_differentiable_and_usable_with_functional_call(sources):
    base_folder, task_folders = sources
    base = encoder_state(base_folder)
    vectors = stack_task_vectors(base, [encoder_state(f) for f in task_folders])
    merger = LayerwiseMerge(base, vectors, num_layers=4, init=0.3, task_names=["segmentation", "depth", "normals"])
    assert merger.coefficients.shape == (3, 6) and merger.coefficients.requires_grad
    model = SimoModel.from_pretrained(task_folders[0]).eval()
    x = torch.randn(2, 3, 32, 32)
    out = functional_call(model, merger(prefix="dinov2."), (x,), strict=False)
    out.predictions["segmentation"].square().mean().backward()
    grad = merger.coefficients.grad
    assert grad is not None and grad.shape == (3, 6)
    assert torch.isfinite(grad).all() and (grad.abs() > 0).all()  # every task and every layer group matters


def test_functional_merge_matches_the_closed_form(sources):
    base_folder, task_folders = sources
    base = encoder_state(base_folder)
    tasks = [encoder_state(f) for f in task_folders]
    vectors = stack_task_vectors(base, tasks)
    groups = coefficient_groups(list(base), 4)
    coefficients = torch.rand(3, 6)
    merged = functional_merge(base, vectors, coefficients, groups)
    for key in base:
        expected = base[key] + sum(coefficients[t, groups[key]] * (tasks[t][key] - base[key]) for t in range(3))
        torch.testing.assert_close(merged[key], expected)
    taskwise = functional_merge(base, vectors, torch.tensor([0.1, 0.2, 0.3]))
    key = "encoder.layer.1.mlp.fc1.weight"
    torch.testing.assert_close(
        taskwise[key], base[key] + sum(c * (tasks[t][key] - base[key]) for t, c in enumerate([0.1, 0.2, 0.3]))
    )
    with pytest.raises(ValueError, match="groups"):
        functional_merge(base, vectors, coefficients)


def test_learned_coefficients_plug_into_merge_bit_for_bit(sources):
    base_folder, task_folders = sources
    base = encoder_state(base_folder)
    vectors = stack_task_vectors(base, [encoder_state(f) for f in task_folders])
    merger = LayerwiseMerge(base, vectors, num_layers=4, task_names=["segmentation", "depth", "normals"])
    with torch.no_grad():
        merger.coefficients.copy_(torch.rand(3, 6))
    learned = merger()
    merged = merge(task_folders, base_folder, coefficients=merger.coefficients.detach())
    for key, value in merged.dinov2.state_dict().items():
        assert torch.equal(value, learned[key]), key
    by_name = merge(task_folders, base_folder, coefficients=merger.coefficient_dict())
    assert by_name.config.merge["coefficients"] == merger.coefficients.detach().double().tolist()
    assert by_name.config.merge["coefficient_groups"] == [
        "embeddings",
        "layer.0",
        "layer.1",
        "layer.2",
        "layer.3",
        "layernorm",
    ]
