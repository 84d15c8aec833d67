"""Qualitative grids (Figure 4): layout, and the colour convention of every task kind."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.tiny import tiny_model
from hf_simo import normalize_images
from hf_simo.analysis.qualitative import (
    MISSING_CELL,
    build_qualitative_grid,
    collect_predictions,
    plot_qualitative,
    segmentation_palette,
)


SPECS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 3, "class_names": ["floor", "wall", "box"]},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
    "edges": {"kind": "regression", "num_outputs": 2},
}
B, H, W = 2, 4, 5


def make_batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, H, W, generator=gen)
    seg = torch.randint(0, 3, (B, H, W), generator=gen)
    seg[0, 0, 0] = 255  # ignored
    depth = torch.rand(B, 1, H, W, generator=gen) * 5 + 1
    depth[0, 0, 1, 1] = 0.0  # invalid
    normals = torch.nn.functional.normalize(torch.randn(B, 3, H, W, generator=gen), dim=1)
    normals[1, :, 2, 2] = torch.tensor([0.0, 0.0, 1.0])
    normals[1, :, 3, 3] = 0.0  # invalid
    edges = torch.rand(B, 2, H, W, generator=gen)
    labels = {"segmentation": seg, "depth": depth, "normals": normals, "edges": edges}
    logits = torch.nn.functional.one_hot(seg.clamp(max=2), 3).permute(0, 3, 1, 2).float()  # perfect model
    perfect = {"segmentation": logits, "depth": depth.clone(), "normals": normals.clone(), "edges": edges.clone()}
    off = {"segmentation": torch.zeros(B, H, W, dtype=torch.long), "depth": torch.full((B, 1, H, W), 1e3)}
    return images, labels, {"perfect": perfect, "off": off}


def test_grid_layout_and_input_denormalisation():
    images, labels, predictions = make_batch()
    grid = build_qualitative_grid(normalize_images(images), labels, predictions, SPECS)
    assert grid.shape == (B, 1 + 4 * 3)  # input + per task (ground truth + 2 models)
    assert grid.column_titles[:4] == [
        "input",
        "segmentation\nground truth",
        "segmentation\nperfect",
        "segmentation\noff",
    ]
    assert grid.row_titles == ["sample 0", "sample 1"]
    for row in grid.cells:
        assert len(row) == grid.shape[1]
        for cell in row:
            assert cell.shape == (H, W, 3) and cell.dtype == np.float32
            assert cell.min() >= 0.0 and cell.max() <= 1.0
    np.testing.assert_allclose(grid.cells[1][0], images[1].permute(1, 2, 0).numpy(), atol=1e-5)
    assert grid.legends["segmentation"][1][0] == "wall"
    assert build_qualitative_grid(
        images, labels, predictions, SPECS, images_normalized=False, max_samples=1
    ).shape == (1, 13)


def test_segmentation_colours_and_ignore_is_black():
    images, labels, predictions = make_batch()
    grid = build_qualitative_grid(images, labels, predictions, SPECS, images_normalized=False)
    palette = segmentation_palette(3)
    gt = grid.cells[0][grid.column("segmentation", "ground truth")]
    perfect = grid.cells[0][grid.column("segmentation", "perfect")]
    ids = labels["segmentation"][0].numpy()
    assert (gt[0, 0] == 0).all()  # ignore index -> black
    for y, x in [(1, 1), (2, 3), (3, 4)]:
        np.testing.assert_allclose(gt[y, x], palette[ids[y, x]])
        np.testing.assert_allclose(perfect[y, x], palette[ids[y, x]])  # logits -> argmax -> same palette
    off = grid.cells[0][grid.column("segmentation", "off")]
    assert (off == palette[0]).all()  # (B, H, W) class ids accepted
    big = segmentation_palette(40)
    assert len({tuple(c) for c in np.round(big, 4)}) == 40 and big.max(axis=1).min() > 0.5  # distinct, never black


def test_depth_shared_range_per_row_and_invalid_black():
    images, labels, predictions = make_batch()
    grid = build_qualitative_grid(images, labels, predictions, SPECS, images_normalized=False)
    gt = grid.cells[0][grid.column("depth", "ground truth")]
    perfect = grid.cells[0][grid.column("depth", "perfect")]
    off = grid.cells[0][grid.column("depth", "off")]
    assert (gt[1, 1] == 0).all()  # invalid depth -> black
    valid = labels["depth"][0, 0].numpy() != 0
    np.testing.assert_allclose(gt[valid], perfect[valid])  # same values, same colours: one range for the row
    assert not (perfect[1, 1] == 0).all()  # predictions are shown everywhere
    assert np.allclose(off, off[0, 0]) and not np.allclose(off[0, 0], 0)  # clipped to the top of the row's range


def test_normals_rgb_and_regression_grey():
    images, labels, predictions = make_batch()
    grid = build_qualitative_grid(images, labels, predictions, SPECS, images_normalized=False)
    gt = grid.cells[1][grid.column("normals", "ground truth")]
    np.testing.assert_allclose(gt[2, 2], [0.5, 0.5, 1.0])  # (n + 1) / 2
    assert (gt[3, 3] == 0).all()  # invalid normals -> black
    n = labels["normals"][0, :, 1, 2].numpy()
    np.testing.assert_allclose(grid.cells[0][grid.column("normals", "perfect")][1, 2], (n + 1) / 2, atol=1e-6)
    edges = grid.cells[0][grid.column("edges", "ground truth")]
    assert np.allclose(edges[..., 0], edges[..., 1]) and np.allclose(edges[..., 1], edges[..., 2])  # grey
    mean = labels["edges"][0].mean(0).numpy()
    assert np.argmax(edges[..., 0]) == np.argmax(mean)  # brighter where the channel mean is larger
    missing = grid.cells[0][grid.column("edges", "off")]
    assert np.allclose(missing, MISSING_CELL)  # the "off" model has no edges head


def test_plot_and_collect_predictions(tmp_path):
    model = tiny_model({k: SPECS[k] for k in ("segmentation", "depth")})
    images, labels, _ = make_batch()
    images = torch.nn.functional.interpolate(images, size=(16, 16))
    labels = {"segmentation": torch.zeros(B, 16, 16, dtype=torch.long), "depth": torch.ones(B, 1, 16, 16)}
    predictions = collect_predictions({"tiny": model}, normalize_images(images))
    assert set(predictions["tiny"]) == {"segmentation", "depth"}
    assert predictions["tiny"]["segmentation"].shape == (B, 3, 16, 16)
    grid = build_qualitative_grid(normalize_images(images), labels, predictions, model.config)
    paths = plot_qualitative(grid, tmp_path / "qualitative")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qualitative.png", "qualitative.svg"]
    with Image.open(paths[0]) as image:
        assert image.info["dpi"][0] >= 120 and image.width > 500
    svg = paths[1].read_text()
    assert "segmentation classes" in svg and ">floor<" in svg and ">ignored<" in svg  # class legend
    assert "segmentation\ntiny" in grid.column_titles


def test_grid_errors():
    images, labels, predictions = make_batch()
    with pytest.raises(KeyError, match="no ground truth for task 'depth'"):
        build_qualitative_grid(images, {"segmentation": labels["segmentation"]}, predictions, SPECS, tasks=["depth"])
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        build_qualitative_grid(images[:, :2], labels, predictions, SPECS)
    with pytest.raises(ValueError, match="have 1 samples, images have 2"):
        build_qualitative_grid(images, {**labels, "depth": labels["depth"][:1]}, predictions, SPECS)
