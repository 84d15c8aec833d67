import math

import torch
import torch.nn.functional as F

from helpers.tiny import tiny_config
from hf_simo.losses import cosine_loss, cross_entropy_loss, masked_l1_loss, task_loss, valid_mask


SPECS = tiny_config(
    {
        "seg": {"kind": "semantic_segmentation", "num_outputs": 3},
        "depth": {"kind": "depth"},
        "normals": {"kind": "surface_normals"},
        "edges": {"kind": "regression", "num_outputs": 2},
        "masked": {"kind": "regression", "num_outputs": 2, "invalid_value": -1.0},
    }
).task_specs


def test_cross_entropy_ignores_ignore_index():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    labels[0, 0] = 255
    expected = F.cross_entropy(logits, labels, ignore_index=255)
    torch.testing.assert_close(task_loss(SPECS["seg"], logits, labels), expected)


def test_masked_l1_excludes_invalid_pixels_by_hand():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    labels = torch.tensor([[[[0.0, 1.0], [5.0, 4.5]]]])  # pixel (0,0) invalid (depth 0)
    # valid errors: |2-1| = 1, |3-5| = 2, |4-4.5| = 0.5 -> mean 3.5 / 3
    torch.testing.assert_close(task_loss(SPECS["depth"], pred, labels), torch.tensor(3.5 / 3))


def test_masked_l1_multichannel_pixel_invalid_only_if_all_channels_invalid():
    labels = torch.full((1, 2, 1, 2), -1.0)
    labels[0, 0, 0, 1] = 0.5  # second pixel: one channel valid -> the pixel counts
    pred = torch.zeros(1, 2, 1, 2)
    mask = valid_mask(SPECS["masked"], labels)
    assert mask.tolist() == [[[False, True]]]
    # second pixel: |0 - 0.5| + |0 - (-1)| over 2 channels
    torch.testing.assert_close(task_loss(SPECS["masked"], pred, labels), torch.tensor(1.5 / 2))


def test_regression_without_invalid_value_uses_every_pixel():
    pred, labels = torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)
    labels[0, 0, 0, 0] = 4.0
    assert valid_mask(SPECS["edges"], labels).all()
    torch.testing.assert_close(task_loss(SPECS["edges"], pred, labels), torch.tensor(4.0 / 8))


def test_cosine_loss_is_one_minus_mean_dot_over_valid_pixels():
    labels = torch.zeros(1, 3, 1, 3)
    labels[0, :, 0, 0] = torch.tensor([0.0, 0.0, 1.0])
    labels[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # pixel 2 stays (0,0,0): invalid
    pred = torch.zeros(1, 3, 1, 3)
    pred[0, :, 0, 0] = torch.tensor([0.0, 0.0, 2.0])  # same direction: dot 1
    pred[0, :, 0, 1] = torch.tensor([0.0, 1.0, 0.0])  # orthogonal: dot 0
    pred[0, :, 0, 2] = torch.tensor([5.0, 5.0, 5.0])
    torch.testing.assert_close(task_loss(SPECS["normals"], pred, labels), torch.tensor(0.5))


def test_all_invalid_batches_give_finite_zero_loss_and_zero_grad():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    pred = torch.randn(2, 3, 4, 4, requires_grad=True)
    losses = [
        cross_entropy_loss(logits, torch.full((2, 4, 4), 255), 255),
        masked_l1_loss(pred[:, :1], torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool)),
        cosine_loss(pred, torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool)),
        task_loss(SPECS["depth"], pred[:, :1], torch.zeros(2, 1, 4, 4)),
        task_loss(SPECS["normals"], pred, torch.zeros(2, 3, 4, 4)),
    ]
    for loss in losses:
        assert torch.isfinite(loss) and loss.item() == 0.0
        loss.backward(retain_graph=True)
    assert torch.isfinite(logits.grad).all() and torch.isfinite(pred.grad).all()


def test_normals_loss_can_be_l1():
    spec = tiny_config({"n": {"kind": "surface_normals", "loss": "l1"}}).get_task("n")
    labels = F.normalize(torch.randn(1, 3, 2, 2), dim=1)
    assert math.isclose(task_loss(spec, labels, labels).item(), 0.0)
    assert task_loss(spec, -labels, labels).item() > 0


def test_unit_vectors_equals_f_normalize_including_zero_vectors():
    from hf_simo.losses import unit_vectors

    x = torch.randn(2, 3, 5, 7)
    x[0, :, 0, 0] = 0.0
    x[1, :, 1, 1] = 1e-20
    torch.testing.assert_close(unit_vectors(x), F.normalize(x, dim=1))
    assert unit_vectors(x)[0, :, 0, 0].abs().sum() == 0
    y = x.clone().requires_grad_(True)
    z = x.clone().requires_grad_(True)
    (unit_vectors(y) * x).sum().backward()
    (F.normalize(z, dim=1) * x).sum().backward()
    torch.testing.assert_close(y.grad, z.grad)
