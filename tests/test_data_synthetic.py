"""The embedded benchmark: determinism, schema, and that the rendered labels are geometrically consistent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_simo.atomic import lock_path
from hf_simo.configuration_simo import TaskSpec
from hf_simo.data import BENCHMARK_CLASS_NAMES, generate_batches, get_task_specs, load_benchmark
from hf_simo.data import synthetic as S
from hf_simo.data.synthetic import image_targets, render, sample_scenes


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def rendered() -> tuple[S.SceneBatch, dict[str, np.ndarray]]:
    scenes = sample_scenes(0, "train", range(48))
    return scenes, render(scenes, 64, return_ids=True)


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_arrays_and_splits_differ():
    a = next(generate_batches("taskonomy", "train", 6, 64, seed=3))
    b = next(generate_batches("taskonomy", "train", 6, 64, seed=3))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    other_split = next(generate_batches("taskonomy", "validation", 6, 64, seed=3))
    other_seed = next(generate_batches("taskonomy", "train", 6, 64, seed=4))
    for other in (other_split, other_seed):
        for i in range(6):  # no sample is shared
            assert not np.array_equal(a["image"][i], other["image"][i])
            assert not np.array_equal(a["depth"][i], other["depth"][i])


def test_sample_does_not_depend_on_batching():
    whole = np.concatenate([b["depth"] for b in generate_batches("nyuv2", "test", 10, 64, batch_size=10)])
    pieces = np.concatenate([b["depth"] for b in generate_batches("nyuv2", "test", 10, 64, batch_size=3)])
    np.testing.assert_array_equal(whole, pieces)
    # sample i of a split is the same whatever range it is generated in
    shifted = next(generate_batches("nyuv2", "test", 4, 64, start=6, batch_size=4))["segmentation"]
    np.testing.assert_array_equal(shifted, next(generate_batches("nyuv2", "test", 10, 64))["segmentation"][6:])


def test_load_benchmark_splits_are_disjoint_and_reproducible(hf_home):
    sizes = {"train": 8, "validation": 4, "test": 4}
    dd = load_benchmark("nyuv2", sizes=sizes, seed=1, use_cache=False)
    again = load_benchmark("nyuv2", sizes=sizes, seed=1, use_cache=False)
    assert {k: len(v) for k, v in dd.items()} == sizes
    torch.testing.assert_close(dd["train"][:]["image"], again["train"][:]["image"], rtol=0, atol=0)
    train = dd["train"][:]["image"].flatten(1)
    for split in ("validation", "test"):
        other = dd[split][:]["image"].flatten(1)
        assert torch.cdist(train, other).min() > 0
    assert not hf_home.exists(), "use_cache=False must not write anything"


# ---------------------------------------------------------------------------------------------- schema


@pytest.mark.parametrize("preset", ["nyuv2", "taskonomy"])
def test_schema_dtypes_shapes_and_specs(preset, hf_home):
    dd = load_benchmark(preset, image_size=(64, 80), sizes={"train": 5, "validation": 3}, use_cache=False)
    specs = get_task_specs(dd)
    assert specs == get_task_specs(preset) == get_task_specs(dd["validation"])
    assert list(dd["train"].column_names) == ["image", *specs]
    batch = dd["train"][:]
    image = batch["image"]
    assert image.dtype == torch.float32 and image.shape == (5, 3, 64, 80)
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.05
    for name, spec in specs.items():
        TaskSpec.from_dict(name, spec).resolved(name, num_hidden_layers=12)  # valid for the model's config
        label = batch[name]
        if spec["kind"] == "semantic_segmentation":
            assert label.dtype == torch.int64 and label.shape == (5, 64, 80)
            assert spec["ignore_index"] == 255 and spec["num_outputs"] == len(BENCHMARK_CLASS_NAMES)
            assert label.min() >= 0 and label.max() < spec["num_outputs"]
        else:
            assert label.dtype == torch.float32 and label.shape == (5, spec["num_outputs"], 64, 80)
        if spec["kind"] == "depth":
            assert label.min() > 0.05 and label.max() < 15  # closed rooms: every pixel valid, metres
        if spec["kind"] == "surface_normals":
            torch.testing.assert_close(label.norm(dim=1), torch.ones(5, 64, 80), atol=1e-5, rtol=0)
        if name in ("edges", "keypoints"):
            assert label.min() >= 0.0 and label.max() <= 1.0 and label.max() > 0.3
    if preset == "taskonomy":
        assert specs["normals"]["loss"] == "l1" and specs["normals"]["metric"] == "abs_err"
        torch.testing.assert_close(batch["reconstruction"], image, rtol=0, atol=0)
    else:
        assert "loss" not in specs["normals"]  # the paper's default (cosine / mean angle)


def test_image_size_96_and_validation_of_arguments():
    out = next(generate_batches("nyuv2", "train", 2, 96))
    assert out["image"].shape == (2, 3, 96, 96) and out["segmentation"].shape == (2, 96, 96)
    with pytest.raises(ValueError, match="unknown benchmark preset"):
        load_benchmark("cityscapes", use_cache=False)
    with pytest.raises(ValueError, match="sizes"):
        load_benchmark("nyuv2", sizes={"training": 10}, use_cache=False)
    with pytest.raises(ValueError, match="positive integer"):
        load_benchmark("nyuv2", sizes={"train": 0}, use_cache=False)
    with pytest.raises(ValueError, match="image_size"):
        load_benchmark("nyuv2", image_size=4, use_cache=False)


def test_get_task_specs_errors_and_copies():
    from datasets import Dataset

    with pytest.raises(ValueError, match="carries no hf_simo task specs"):
        get_task_specs(Dataset.from_dict({"x": [1, 2]}))
    with pytest.raises(ValueError, match="unknown dataset or preset"):
        get_task_specs("kitti")
    specs = get_task_specs("nyuv2")
    specs["segmentation"]["num_outputs"] = 99
    assert get_task_specs("nyuv2")["segmentation"]["num_outputs"] == len(BENCHMARK_CLASS_NAMES)
    assert get_task_specs("cityscapes") == get_task_specs("cityscapes_real")


# ---------------------------------------------------------------------------------------------- ground truth


def _backproject(depth: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """(B, H, W) z-depth -> (B, 3, H, W) camera-frame points (x right, y down, z forward)."""
    b, h, w = depth.shape
    f = (focal * w)[:, None, None]
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return np.stack([depth * (jj - w / 2) / f, depth * (ii - h / 2) / f, depth], axis=1).astype(np.float64)


def _depth_normals(points: np.ndarray) -> np.ndarray:
    """Normals from central differences of back-projected depth, (B, 3, H-2, W-2)."""
    du = points[:, :, 1:-1, 2:] - points[:, :, 1:-1, :-2]
    dv = points[:, :, 2:, 1:-1] - points[:, :, :-2, 1:-1]
    n = np.cross(du, dv, axis=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _same_face_3x3(face_id: np.ndarray) -> np.ndarray:
    h, w = face_id.shape[1:]
    centre = face_id[:, 1:-1, 1:-1]
    same = np.ones_like(centre, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            same &= face_id[:, 1 + di : h - 1 + di, 1 + dj : w - 1 + dj] == centre
    return same


def test_normals_agree_with_depth_on_planar_surfaces(rendered):
    scenes, out = rendered
    normals = out["normals"][:, :, 1:-1, 1:-1].astype(np.float64)
    from_depth = _depth_normals(_backproject(out["depth"][:, 0], scenes.focal))
    from_depth *= np.sign((from_depth * normals).sum(1, keepdims=True))  # orientation is not given by a cross product
    planar = _same_face_3x3(out["face_id"]) & (out["face_id"][:, 1:-1, 1:-1] % 8 != 7)  # 7 = curved surface
    assert planar.mean() > 0.5, "most pixels lie inside a planar face"

    def angles(n: np.ndarray) -> np.ndarray:
        return np.degrees(np.arccos(np.clip((n * from_depth).sum(1), -1, 1)))[planar]

    assert angles(normals).max() < 0.5
    # the check is sharp: a wrong axis convention (x flipped) is caught
    flipped = normals * np.array([-1.0, 1.0, 1.0])[None, :, None, None]
    assert np.mean(angles(flipped) > 5) > 0.3
    # and normals face the camera: n . (point) < 0
    points = _backproject(out["depth"][:, 0], scenes.focal)[:, :, 1:-1, 1:-1]
    assert np.all((normals * points).sum(1) < 0)


def test_depth_is_z_buffer_of_the_room(rendered):
    scenes, out = rendered
    points = _backproject(out["depth"][:, 0], scenes.focal)  # camera frame
    world = np.einsum("bjk,bkhw->bjhw", scenes.cam_rot, points) + scenes.cam_pos[:, :, None, None]
    seg = out["segmentation"]
    floor_y = world[:, 1][seg == S.FLOOR]
    ceiling_y = (world[:, 1] - scenes.room_hi[:, 1, None, None])[seg == S.CEILING]
    assert floor_y.size > 1000 and ceiling_y.size > 100
    assert np.abs(floor_y).max() < 1e-3 and np.abs(ceiling_y).max() < 1e-3
    walls = world[:, [0, 2]].transpose(0, 2, 3, 1)[seg == S.WALL]  # (n, 2) x, z of wall pixels
    bounds = np.stack([scenes.room_lo[:, [0, 2]], scenes.room_hi[:, [0, 2]]], 1)  # (B, 2, 2)
    idx = np.nonzero(seg == S.WALL)[0]
    gap = np.minimum(np.abs(walls - bounds[idx, 0]), np.abs(walls - bounds[idx, 1])).min(1)
    assert gap.max() < 1e-3  # every wall pixel lies on one of the four wall planes


def test_segmentation_boundaries_are_depth_or_normal_discontinuities(rendered):
    _, out = rendered
    seg, depth, normals = out["segmentation"], out["depth"][:, 0], out["normals"]
    n_pairs = 0
    for axis in (1, 2):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        boundary = seg[tuple(a)] != seg[tuple(b)]
        jump = np.abs(depth[tuple(a)] - depth[tuple(b)]) / np.minimum(depth[tuple(a)], depth[tuple(b)]) > 0.01
        na = normals[(slice(None), slice(None), *tuple(a)[1:])]
        nb = normals[(slice(None), slice(None), *tuple(b)[1:])]
        crease = (na * nb).sum(1) < np.cos(np.radians(10))
        n_pairs += boundary.sum()
        assert not np.any(boundary & ~(jump | crease))
    assert n_pairs > 1000


def test_every_class_appears(rendered):
    _, out = rendered
    counts = np.bincount(out["segmentation"].ravel(), minlength=len(BENCHMARK_CLASS_NAMES))
    assert len(counts) == len(BENCHMARK_CLASS_NAMES) and np.all(counts > 0), counts
    present = [(out["segmentation"] == k).any((1, 2)).sum() for k in range(len(counts))]
    assert min(present) >= 3, present  # each class in several of the 48 scenes, not a fluke


def test_edges_and_keypoints_respond_to_image_structure():
    image = np.zeros((1, 3, 32, 32), dtype=np.float32)
    image[:, :, 8:24, 8:24] = 0.6  # a bright square: four edges, four corners
    edges, keypoints = image_targets(image)
    assert edges.shape == keypoints.shape == (1, 1, 32, 32)
    assert edges[0, 0, 2:6, 2:6].max() == 0 and keypoints[0, 0, 2:6, 2:6].max() == 0  # flat: nothing
    assert 0.5 < edges[0, 0, 16, 8] <= 1.0  # a step of contrast 0.6 gives about 0.6
    corner = keypoints[0, 0, 6:11, 6:11].max()
    edge_mid = keypoints[0, 0, 14:18, 6:11].max()
    assert corner > 0.5 and corner > 4 * edge_mid
    # the rendered targets are exactly these functions of the rendered image
    out = next(generate_batches("taskonomy", "train", 3, 64))
    e, k = image_targets(out["image"])
    np.testing.assert_array_equal(out["edges"], e)
    np.testing.assert_array_equal(out["keypoints"], k)


# ---------------------------------------------------------------------------------------------- cache


def test_cache_is_reused_and_written_atomically(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    sizes = {"train": 6, "validation": 2}
    first = load_benchmark("taskonomy", sizes=sizes, cache_dir=cache)
    entries = sorted(cache.iterdir())
    folders = [p for p in entries if p.is_dir()]
    assert len(folders) == 1 and not folders[0].name.startswith(".")  # no temporary folder left behind
    assert [p for p in entries if not p.is_dir()] == [lock_path(folders[0])]  # only hf_simo.atomic's lock file

    def fail(*args, **kwargs):
        raise AssertionError("the cached benchmark must not be re-rendered")

    monkeypatch.setattr(S, "render", fail)
    second = load_benchmark("taskonomy", sizes=sizes, cache_dir=cache)
    torch.testing.assert_close(first["train"][:]["depth"], second["train"][:]["depth"], rtol=0, atol=0)
    assert get_task_specs(second) == get_task_specs("taskonomy")
    monkeypatch.undo()
    load_benchmark("taskonomy", sizes=sizes, seed=1, cache_dir=cache)  # another seed: another folder
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_default_cache_lives_under_hf_home(hf_home):
    load_benchmark("nyuv2", sizes={"validation": 2})
    entries = list((hf_home / "hf_simo" / "benchmark").iterdir())
    folders = [p for p in entries if p.is_dir()]
    assert len(folders) == 1 and folders[0].name.startswith("nyuv2-64x64-seed0")
    assert [p for p in entries if not p.is_dir()] == [lock_path(folders[0])]  # only hf_simo.atomic's lock file
    assert (folders[0] / "dataset_dict.json").is_file()
    assert os.stat(folders[0]).st_mode & 0o755 == 0o755  # an ordinary folder, not mkdtemp's private one


@pytest.mark.parametrize("size", [64, (61, 75)])
def test_screen_space_culling_changes_nothing(size, monkeypatch):
    """The renderer only intersects a primitive with the tiles its projected bounds touch; that must be exact."""
    scenes = sample_scenes(5, "test", range(12))
    culled = render(scenes, size, return_ids=True)

    def every_tile(corners, sid, scenes_, fpix, grid):
        _, _, ty, tx = grid
        prim = np.repeat(np.arange(len(sid)), ty * tx)
        key = sid[prim] * (ty * tx) + np.tile(np.arange(ty * tx), len(sid))
        order = np.argsort(key, kind="stable")
        return prim[order], key[order]

    monkeypatch.setattr(S, "_tile_pairs", every_tile)
    full = render(scenes, size, return_ids=True)
    for key in full:
        np.testing.assert_array_equal(culled[key], full[key], err_msg=key)
    h, w = (size, size) if isinstance(size, int) else size
    assert full["image"].shape == (12, 3, h, w) and full["face_id"].shape == (12, h, w)
    assert len(np.unique(full["segmentation"])) >= 6  # objects are in view, so the comparison means something


def test_culling_is_exact_on_pretraining_scenes_too(monkeypatch):
    scenes = S.sample_pretraining_scenes(0, "train", range(16), varied_fraction=1.0)
    culled = render(scenes, 64)

    def every_tile(corners, sid, scenes_, fpix, grid):
        _, _, ty, tx = grid
        prim = np.repeat(np.arange(len(sid)), ty * tx)
        key = sid[prim] * (ty * tx) + np.tile(np.arange(ty * tx), len(sid))
        order = np.argsort(key, kind="stable")
        return prim[order], key[order]

    monkeypatch.setattr(S, "_tile_pairs", every_tile)
    np.testing.assert_array_equal(culled["image"], render(scenes, 64)["image"])


# ---------------------------------------------------------------------------------------------- pinned samples


def test_task_benchmark_samples_are_pinned():
    """The tasks' data for a given seed must never change (results, caches and the shipped encoder's provenance
    rely on it): scene parameters are pinned bit for bit, rendered arrays to float32 rounding."""
    import hashlib

    digest = hashlib.sha256()
    for split in ("train", "validation", "test"):
        scenes = sample_scenes(0, split, range(12))
        for name in sorted(vars(scenes)):
            digest.update(np.ascontiguousarray(getattr(scenes, name)).tobytes())
    assert digest.hexdigest() == "0d4ec17e2a60d7796904d5db0c6203092dc0b61d9b509115ded9d019526a2d80"
    batch = next(generate_batches("taskonomy", "train", 8, 64, seed=3))
    sums = {key: float(value.astype(np.float64).sum()) for key, value in batch.items()}
    expected = {
        "image": 32485.299468344077,
        "reconstruction": 32485.299468344077,
        "depth": 95843.19624388218,
        "normals": -14391.416448335454,
        "keypoints": 1662.9991934877626,
        "edges": 2424.612365624166,
    }
    for key, value in expected.items():
        assert sums[key] == pytest.approx(value, rel=1e-6), key
    batch = next(generate_batches("nyuv2", "validation", 8, 64, seed=0))
    segmentation = hashlib.sha256(batch["segmentation"].tobytes()).hexdigest()
    assert segmentation == "4f1dbe3c7912deba5fe90adfaa3d38721b9c0bf063ae9ccd1fb16f30ac55262b"


# ---------------------------------------------------------------------------------------------- pre-training set


def test_pretraining_set_is_images_only_reproducible_and_disjoint_from_the_tasks(hf_home):
    sizes = {"train": 12, "validation": 4}
    dd = S.load_pretraining_images(sizes=sizes, use_cache=False)
    again = S.load_pretraining_images(sizes=sizes, use_cache=False)
    assert {k: len(v) for k, v in dd.items()} == sizes and dd["train"].column_names == ["image"]
    assert get_task_specs(dd) == {}
    images = dd["train"][:]["image"]
    assert images.shape == (12, 3, 64, 64) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images, again["train"][:]["image"], rtol=0, atol=0)
    pool = torch.cat([dd["train"][:]["image"], dd["validation"][:]["image"]]).flatten(1)
    for split in ("train", "validation", "test"):  # no task image of the same seed is in the pre-training set
        task = torch.from_numpy(next(generate_batches("nyuv2", split, 12, 64, seed=0))["image"]).flatten(1)
        assert torch.cdist(pool, task).min() > 0
    assert torch.cdist(dd["train"][:]["image"].flatten(1), dd["validation"][:]["image"].flatten(1)).min() > 0
    assert not hf_home.exists()
    with pytest.raises(ValueError, match="splits"):
        S.load_pretraining_images(sizes={"test": 4}, use_cache=False)


def test_pretraining_style_is_wider_than_the_tasks_and_mixed_with_them():
    n = 200
    varied = S.sample_pretraining_scenes(0, "train", range(n), varied_fraction=1.0)
    task = sample_scenes(0, "train", range(n))
    fov = lambda scenes: np.degrees(2 * np.arctan(0.5 / scenes.focal))  # noqa: E731
    assert fov(task).min() >= 55 - 1e-3 and fov(task).max() <= 75 + 1e-3
    assert fov(varied).min() < 45 and fov(varied).max() > 85  # wider and narrower lenses
    assert varied.cam_pos[:, 1].min() < 0.8 and varied.cam_pos[:, 1].max() > 2.0  # low and high cameras
    objects = lambda s: s.box_active.sum(1) + s.sph_active.sum(1) + s.cyl_active.sum(1)  # noqa: E731
    assert objects(varied).mean() > objects(task).mean()
    textures = lambda s: set(np.unique(s.surfaces[..., S._C_TYPE]).astype(int))  # noqa: E731
    assert textures(task) <= {0, 1, 2, 3} and textures(varied) >= {4, 5, 6}  # plaid, dots, rings

    def floating_balls(s):  # spheres off the floor with no lamp pole under them
        off_floor = (s.sph_center[..., 1] - s.sph_radius > 0.05) & s.sph_active
        xz = s.sph_center[..., [0, 2]][:, :, None, :]
        pole = (np.abs(xz - s.cyl_center[:, None, :, :]).max(-1) < 1e-5) & s.cyl_active[:, None, :]
        return int((off_floor & ~pole.any(-1)).sum())

    assert floating_balls(task) == 0 and floating_balls(varied) > 5
    task_like = S.sample_pretraining_scenes(0, "train", range(n), varied_fraction=0.0)
    assert fov(task_like).min() >= 55 - 1e-3 and fov(task_like).max() <= 75 + 1e-3
    mixed = S.sample_pretraining_scenes(0, "train", range(n))
    wide = (fov(mixed) < 55 - 1e-3) | (fov(mixed) > 75 + 1e-3)
    assert 0.2 < wide.mean() < 0.6  # about half the scenes are varied, and a varied fov leaves [55, 75] often
    with pytest.raises(ValueError, match="varied_fraction"):
        S.sample_pretraining_scenes(0, "train", range(2), varied_fraction=1.5)
