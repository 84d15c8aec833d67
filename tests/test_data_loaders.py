"""Real-dataset loaders on tiny fixtures in the exact on-disk formats, the augmentation, and bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_simo.configuration_simo import TaskSpec
from hf_simo.data import (
    DataFormatError,
    DatasetNotFoundError,
    get_task_specs,
    load_benchmark,
    load_cityscapes,
    load_nyuv2,
    load_taskonomy,
    make_collate_fn,
    random_scale_crop,
)
from hf_simo.data.transforms import sample_crop_params


@pytest.fixture(autouse=True)
def _hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def _unit(rng: np.random.Generator, shape: tuple[int, ...], axis: int) -> np.ndarray:
    n = rng.normal(size=shape)
    return (n / np.linalg.norm(n, axis=axis, keepdims=True)).astype(np.float32)


def _all_specs_valid(specs: dict) -> None:
    for name, spec in specs.items():
        TaskSpec.from_dict(name, spec).resolved(name, num_hidden_layers=12)


# ---------------------------------------------------------------------------------------------- NYUv2 (npy)

NYU_H, NYU_W = 12, 16


def write_nyuv2_npy(root: Path, n_train: int = 6, n_val: int = 10, seed: int = 0) -> dict:
    """MTAN/LibMTL layout: channel-last float images, -1 ignore labels, (H, W, 1) depth with holes."""
    rng = np.random.default_rng(seed)
    arrays: dict = {}
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("image", "label", "depth", "normal"):
            (root / split / folder).mkdir(parents=True)
        for i in range(n):
            image = rng.random((NYU_H, NYU_W, 3)).astype(np.float32)
            label = rng.integers(-1, 13, (NYU_H, NYU_W)).astype(np.float32)
            depth = (rng.random((NYU_H, NYU_W, 1)) * 5).astype(np.float32)
            depth[:2] = 0.0
            normal = _unit(rng, (NYU_H, NYU_W, 3), axis=-1)
            for folder, value in (("image", image), ("label", label), ("depth", depth), ("normal", normal)):
                np.save(root / split / folder / f"{i}.npy", value)
            arrays[(split, i)] = {"image": image, "label": label, "depth": depth, "normal": normal}
    return arrays


def _match_rows(dataset, expected: list[dict]) -> list[int]:
    """Index into `expected` of each row of `dataset`, matched by image content."""
    images = [torch.from_numpy(np.moveaxis(e["image"], -1, 0)) for e in expected]
    out = []
    for row in dataset:
        hits = [i for i, img in enumerate(images) if torch.equal(row["image"], img)]
        assert len(hits) == 1
        out.append(hits[0])
    return out


def test_nyuv2_npy_values_splits_and_specs(tmp_path):
    arrays = write_nyuv2_npy(tmp_path / "nyuv2")
    dd = load_nyuv2(tmp_path / "nyuv2", layout="npy")
    assert {k: len(v) for k, v in dd.items()} == {"train": 6, "validation": 6, "test": 4}  # 10 * 400/654 -> 6
    specs = get_task_specs(dd)
    assert specs == get_task_specs("nyuv2_real") and specs["segmentation"]["num_outputs"] == 13
    _all_specs_valid(specs)
    val = [arrays[("val", i)] for i in range(10)]
    val_rows = _match_rows(dd["validation"], val)
    test_rows = _match_rows(dd["test"], val)
    assert sorted(val_rows + test_rows) == list(range(10))  # a partition of the official test images
    row, src = dd["validation"][0], val[val_rows[0]]
    assert row["image"].shape == (3, NYU_H, NYU_W) and row["image"].dtype == torch.float32
    seg = row["segmentation"]
    assert seg.dtype == torch.int64 and seg.shape == (NYU_H, NYU_W)
    expected_seg = np.where(src["label"] < 0, 255, src["label"]).astype(np.int64)
    np.testing.assert_array_equal(seg.numpy(), expected_seg)
    np.testing.assert_allclose(row["depth"].numpy(), np.moveaxis(src["depth"], -1, 0))
    assert row["depth"].shape == (1, NYU_H, NYU_W) and (row["depth"][:, :2] == 0).all()
    np.testing.assert_allclose(row["normals"].numpy(), np.moveaxis(src["normal"], -1, 0), atol=1e-6)
    # deterministic carve, and the seed changes it
    again = load_nyuv2(tmp_path / "nyuv2", layout="npy")
    assert _match_rows(again["validation"], val) == val_rows
    other = load_nyuv2(tmp_path / "nyuv2", layout="npy", split_seed=1)
    assert _match_rows(other["validation"], val) != val_rows


def test_nyuv2_task_subset_skips_missing_folder(tmp_path):
    write_nyuv2_npy(tmp_path / "nyuv2", n_train=2, n_val=3)
    for split in ("train", "val"):
        for f in (tmp_path / "nyuv2" / split / "normal").iterdir():
            f.unlink()
        (tmp_path / "nyuv2" / split / "normal").rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"normal.*does not exist.*task 'normals'"):
        load_nyuv2(tmp_path / "nyuv2")
    dd = load_nyuv2(tmp_path / "nyuv2", tasks=["segmentation", "depth"])
    assert dd["train"].column_names == ["image", "segmentation", "depth"]
    assert list(get_task_specs(dd)) == ["segmentation", "depth"]


# ---------------------------------------------------------------------------------------------- NYUv2 (parquet)


def write_nyuv2_parquet(folder: Path, with_readme: bool, n_train: int = 4, n_val: int = 5, bad_label: bool = False):
    """The tanganke/nyuv2 layout: channel-first arrays (plus its `noise` column) in data/{train,val}-*.parquet."""
    from datasets import Array2D, Array3D, Dataset, Features

    h, w = NYU_H, NYU_W
    features = Features(
        {
            "image": Array3D((3, h, w), "float32"),
            "segmentation": Array2D((h, w), "int64"),
            "depth": Array3D((1, h, w), "float32"),
            "normal": Array3D((3, h, w), "float32"),
            "noise": Array3D((1, h, w), "float32"),
        }
    )
    rng = np.random.default_rng(1)
    data = {}
    for split, n in (("train", n_train), ("val", n_val)):
        cols = {
            "image": rng.random((n, 3, h, w)).astype(np.float32),
            "segmentation": rng.integers(-1, 13, (n, h, w)),
            "depth": (rng.random((n, 1, h, w)) * 4).astype(np.float32),
            "normal": _unit(rng, (n, 3, h, w), axis=1),
            "noise": rng.random((n, 1, h, w)).astype(np.float32),
        }
        if bad_label and split == "val":
            cols["segmentation"][2, 0, 0] = 20
        data[split] = cols
        (folder / "data").mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(cols, features=features).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    if with_readme:  # the dataset card's config, as on the Hub
        (folder / "README.md").write_text(
            "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
            "  - split: val\n    path: data/val-*\n---\n# nyuv2\n"
        )
    return data


@pytest.mark.parametrize("with_readme", [True, False])
def test_nyuv2_parquet_local_folder(tmp_path, with_readme):
    data = write_nyuv2_parquet(tmp_path / "nyuv2", with_readme)
    dd = load_nyuv2(tmp_path / "nyuv2", layout="parquet")
    assert {k: len(v) for k, v in dd.items()} == {"train": 4, "validation": 3, "test": 2}
    assert dd["train"].column_names == ["image", "segmentation", "depth", "normals"]
    assert get_task_specs(dd) == get_task_specs("nyuv2_real")
    row = dd["train"][1]
    np.testing.assert_array_equal(row["image"].numpy(), data["train"]["image"][1])
    seg = data["train"]["segmentation"][1]
    np.testing.assert_array_equal(row["segmentation"].numpy(), np.where(seg < 0, 255, seg))
    np.testing.assert_allclose(row["normals"].numpy(), data["train"]["normal"][1], atol=1e-6)
    assert row["depth"].shape == (1, NYU_H, NYU_W) and row["depth"].dtype == torch.float32
    val_images = torch.from_numpy(data["val"]["image"]).flatten(1)
    picked = torch.cat([dd["validation"][:]["image"].flatten(1), dd["test"][:]["image"].flatten(1)])
    assert torch.cdist(picked, val_images).min(1).values.max() == 0 and len(picked) == 5


def test_nyuv2_parquet_from_hub_id_uses_snapshot_download(tmp_path, monkeypatch):
    import hf_simo.hub

    write_nyuv2_parquet(tmp_path / "snapshot", with_readme=True)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path / "snapshot")

    # patched where hf_simo looks it up: the one read boundary, hf_simo.hub (resolve_repo)
    monkeypatch.setattr(hf_simo.hub, "snapshot_download", fake_snapshot_download)
    dd = load_nyuv2(layout="parquet")  # default repo id
    assert [(repo_id, kwargs["repo_type"]) for repo_id, kwargs in calls] == [("tanganke/nyuv2", "dataset")]
    assert "*.parquet" in calls[0][1]["allow_patterns"]  # the dataset's files, not a model's safetensors
    assert len(dd["train"]) == 4


def test_nyuv2_parquet_bad_inputs(tmp_path):
    write_nyuv2_parquet(tmp_path / "bad", with_readme=True, bad_label=True)
    with pytest.raises(DataFormatError, match=r"split 'val', row 2.*value\(s\) \[20\] outside the 13 classes"):
        load_nyuv2(tmp_path / "bad", layout="parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no .parquet files"):
        load_nyuv2(tmp_path / "empty", layout="parquet")
    with pytest.raises(DatasetNotFoundError, match="neither an existing folder nor a Hub dataset id"):
        load_nyuv2(str(tmp_path / "missing" / "deeper" / "x"), layout="parquet")
    with pytest.raises(ValueError, match="layout must be"):
        load_nyuv2(tmp_path / "bad", layout="hdf5")


# ---------------------------------------------------------------------------------------------- NYUv2 bad npy


def test_nyuv2_npy_bad_inputs(tmp_path):
    root = tmp_path / "nyuv2"
    with pytest.raises(DatasetNotFoundError, match=r"NYUv2 root .*nyuv2 does not exist"):
        load_nyuv2(root)
    write_nyuv2_npy(root, n_train=3, n_val=4)

    (root / "val" / "depth" / "2.npy").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing file .*val/depth/2\.npy"):
        load_nyuv2(root)
    np.save(root / "val" / "depth" / "2.npy", np.ones((NYU_H, NYU_W, 1), np.float32))

    np.save(root / "train" / "label" / "1.npy", np.zeros((NYU_H - 2, NYU_W), np.float32))
    with pytest.raises(DataFormatError, match=r"train/label/1\.npy: segmentation label is 10x16 but the image"):
        load_nyuv2(root)
    label = np.zeros((NYU_H, NYU_W), np.float32)
    label[3, 4] = 13
    np.save(root / "train" / "label" / "1.npy", label)
    with pytest.raises(DataFormatError, match=r"train/label/1\.npy: .*value\(s\) \[13\] outside the 13 classes"):
        load_nyuv2(root)
    np.save(root / "train" / "label" / "1.npy", np.zeros((NYU_H, NYU_W), np.float32))

    np.save(root / "train" / "image" / "0.npy", np.full((NYU_H, NYU_W, 3), 200.0, np.float32))
    with pytest.raises(DataFormatError, match=r"train/image/0\.npy: image values span .* expected floats in \[0, 1\]"):
        load_nyuv2(root)
    np.save(root / "train" / "image" / "0.npy", np.zeros((NYU_H, NYU_W), np.float32))
    with pytest.raises(DataFormatError, match=r"train/image/0\.npy: image has shape \(12, 16\)"):
        load_nyuv2(root)
    np.save(root / "train" / "image" / "0.npy", np.zeros((NYU_H, NYU_W, 3), np.float32))
    assert len(load_nyuv2(root)["train"]) == 3  # fixed: loads again


# ---------------------------------------------------------------------------------------------- Cityscapes

CS_H, CS_W = 16, 32


def write_cityscapes(root: Path, n_train: int = 10, n_val: int = 3) -> dict:
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("image", "label_19", "part_seg", "depth"):
            (root / split / folder).mkdir(parents=True)
        for i in range(n):
            image = rng.random((CS_H, CS_W, 3)).astype(np.float32)
            label = rng.integers(-1, 19, (CS_H, CS_W)).astype(np.float32)
            part = rng.integers(-1, 10, (CS_H, CS_W)).astype(np.float32)
            disp = (rng.random((CS_H, CS_W, 1)) * 0.2).astype(np.float32)
            disp[0] = 0.0
            disp[1] = -1.0  # Auto-Lambda's marker for missing disparity
            for folder, value in (("image", image), ("label_19", label), ("part_seg", part), ("depth", disp)):
                np.save(root / split / folder / f"{i}.npy", value)
            arrays[(split, i)] = {"image": image, "label": label, "part": part, "disp": disp}
    return arrays


def test_cityscapes_values_splits_and_resize(tmp_path):
    arrays = write_cityscapes(tmp_path / "cs")
    dd = load_cityscapes(tmp_path / "cs", image_size=None)
    assert {k: len(v) for k, v in dd.items()} == {"train": 8, "validation": 2, "test": 3}
    specs = get_task_specs(dd)
    assert list(specs) == ["segmentation", "part_segmentation", "disparity"]
    assert specs["segmentation"]["num_outputs"] == 19 and specs["part_segmentation"]["num_outputs"] == 10
    assert specs["disparity"]["kind"] == "disparity"
    assert specs["disparity"]["metric"] == "abs_err"  # the paper's unaligned error (pixels), not the kind's SSI one
    _all_specs_valid(specs)
    test = [arrays[("val", i)] for i in range(3)]
    assert _match_rows(dd["test"], test) == [0, 1, 2]  # official val = paper test, in order
    train = [arrays[("train", i)] for i in range(10)]
    assert sorted(_match_rows(dd["train"], train) + _match_rows(dd["validation"], train)) == list(range(10))
    row, src = dd["test"][1], test[1]
    np.testing.assert_array_equal(row["segmentation"].numpy(), np.where(src["label"] < 0, 255, src["label"]))
    np.testing.assert_array_equal(row["part_segmentation"].numpy(), np.where(src["part"] < 0, 255, src["part"]))
    disp = row["disparity"].numpy()
    assert disp.shape == (1, CS_H, CS_W) and (disp[:, :2] == 0).all()  # 0 and -1 both become invalid (0)
    np.testing.assert_allclose(disp[0, 2:], src["disp"][2:, :, 0])

    half = load_cityscapes(tmp_path / "cs", image_size=(CS_H // 2, CS_W // 2))
    small = half["test"][1]
    assert small["image"].shape == (3, CS_H // 2, CS_W // 2) and small["segmentation"].shape == (CS_H // 2, CS_W // 2)
    assert set(small["segmentation"].unique().tolist()) <= set(row["segmentation"].unique().tolist())  # nearest
    # disparity is a pixel offset: halving the width halves it (nearest sampling picks stored values)
    stored = set(np.round(src["disp"][src["disp"] > 0] * 0.5, 5).tolist())
    got = small["disparity"][small["disparity"] > 0].numpy()
    assert got.size > 0 and set(np.round(got, 5).tolist()) <= stored


def test_cityscapes_bad_inputs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Cityscapes root .* does not exist"):
        load_cityscapes(tmp_path / "nowhere")
    root = tmp_path / "cs"
    write_cityscapes(root, n_train=3, n_val=2)
    part = np.zeros((CS_H, CS_W), np.float32)
    part[0, 0] = 10
    np.save(root / "val" / "part_seg" / "1.npy", part)
    with pytest.raises(DataFormatError, match=r"val/part_seg/1\.npy: .*\[10\] outside the 10 classes"):
        load_cityscapes(root)
    assert len(load_cityscapes(root, tasks=["segmentation", "disparity"])["test"]) == 2  # the bad task is not read
    np.save(root / "train" / "depth" / "0.npy", np.zeros((CS_H, CS_W, 2), np.float32))
    with pytest.raises(DataFormatError, match=r"train/depth/0\.npy: disparity has shape \(16, 32, 2\)"):
        load_cityscapes(root, tasks=["disparity"])
    with pytest.raises(ValueError, match="unknown Cityscapes task"):
        load_cityscapes(root, tasks=["depth"])


# ---------------------------------------------------------------------------------------------- Taskonomy

TK = 16
BUILDINGS = {"train": ["allensville", "coffeen"], "validation": ["beechwood"], "test": ["ihlen"]}


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_taskonomy(root: Path, per_building: int = 3, mask: bool = True, buildings=None) -> dict:
    """Taskonomy PNG trees: 8-bit rgb/normal, 16-bit depth (1/512 m, 65535 invalid), keypoints and edges."""
    rng = np.random.default_rng(3)
    arrays = {}
    for names in (buildings or BUILDINGS).values():
        for building in names:
            for k in range(per_building):
                point, view = 10 - k, k % 2  # numeric, not lexicographic, order: point_8, point_9, point_10
                stem = f"point_{point}_view_{view}_domain_"
                rgb = rng.integers(0, 256, (TK, TK, 3), dtype=np.uint8)
                depth = rng.integers(256, 8192, (TK, TK)).astype(np.uint16)
                depth[0, :4] = 65535
                normal = rng.integers(0, 256, (TK, TK, 3), dtype=np.uint8)
                keypoints = rng.integers(0, 65536, (TK, TK)).astype(np.uint16)
                edges = rng.integers(0, 65536, (TK, TK)).astype(np.uint16)
                valid = np.ones((TK, TK), np.uint8) * 255
                valid[5, 5:9] = 0
                _png(root / "rgb" / building / f"{stem}rgb.png", rgb)
                _png(root / "depth_zbuffer" / building / f"{stem}depth_zbuffer.png", depth)
                _png(root / "normal" / building / f"{stem}normal.png", normal)
                _png(root / "keypoints2d" / building / f"{stem}keypoints2d.png", keypoints)
                _png(root / "edge_texture" / building / f"{stem}edge_texture.png", edges)
                if mask:
                    _png(root / "mask_valid" / building / f"{stem}mask_valid.png", valid)
                arrays[(building, point, view)] = dict(
                    rgb=rgb, depth=depth, normal=normal, keypoints=keypoints, edges=edges, valid=valid
                )
    return arrays


def test_taskonomy_decoding_lazy_and_eager(tmp_path):
    arrays = write_taskonomy(tmp_path / "tk")
    lazy = load_taskonomy(tmp_path / "tk", buildings=BUILDINGS)
    eager = load_taskonomy(tmp_path / "tk", buildings=BUILDINGS, decode="eager")
    assert {k: len(v) for k, v in lazy.items()} == {"train": 6, "validation": 3, "test": 3}
    specs = get_task_specs(lazy)
    assert specs == get_task_specs(eager) == get_task_specs("taskonomy_real")
    assert all(spec.get("metric", "abs_err") == "abs_err" for spec in specs.values())
    _all_specs_valid(specs)
    row = lazy["train"][0]
    src = arrays[("allensville", 8, 0)]  # numeric (point, view) order: point 8 first
    image = torch.from_numpy(src["rgb"]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(row["image"], image)
    torch.testing.assert_close(row["reconstruction"], image)
    valid = (src["valid"] > 0) & (src["depth"] != 65535)
    expected_depth = np.where(valid, src["depth"] / 512.0, 0.0)[None].astype(np.float32)
    np.testing.assert_allclose(row["depth"].numpy(), expected_depth, rtol=1e-6)
    normals = row["normals"]
    assert normals.shape == (3, TK, TK) and (normals[:, ~torch.from_numpy(valid)] == 0).all()
    raw = src["normal"].transpose(2, 0, 1) / 255.0 * 2 - 1
    raw = raw / np.linalg.norm(raw, axis=0, keepdims=True)
    np.testing.assert_allclose(normals.numpy()[:, valid], raw[:, valid], atol=1e-5)
    np.testing.assert_allclose(row["keypoints"].numpy(), src["keypoints"][None] / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(row["edges"].numpy(), src["edges"][None] / 65535.0, rtol=1e-6)
    for split in lazy:  # the two decoding modes agree
        for key in specs:
            torch.testing.assert_close(lazy[split][:][key], eager[split][:][key], rtol=0, atol=0)
    loader = torch.utils.data.DataLoader(lazy["train"], batch_size=4)
    batch = next(iter(loader))
    assert batch["depth"].shape == (4, 1, TK, TK) and batch["image"].dtype == torch.float32
    subset = lazy["train"].select_columns(["image", "depth"])  # as single-task training does
    assert sorted(subset[0]) == ["depth", "image"]
    torch.testing.assert_close(subset[0]["depth"], row["depth"], rtol=0, atol=0)


def test_taskonomy_caps_and_mask_from_depth(tmp_path):
    arrays = write_taskonomy(tmp_path / "tk", per_building=5, mask=False)
    dd = load_taskonomy(tmp_path / "tk", buildings=BUILDINGS, max_per_building={"train": 3}, tasks=["depth"])
    assert {k: len(v) for k, v in dd.items()} == {"train": 6, "validation": 5, "test": 5}  # val/test: cap 1000
    again = load_taskonomy(tmp_path / "tk", buildings=BUILDINGS, max_per_building={"train": 3}, tasks=["depth"])
    torch.testing.assert_close(dd["train"][:]["depth"], again["train"][:]["depth"])  # deterministic subset
    depth = dd["validation"][0]["depth"][0]
    assert (depth[0, :4] == 0).all() and (depth[5, 5:9] > 0).all()  # no mask: only 65535 is invalid
    assert list(get_task_specs(dd)) == ["depth"]
    del arrays


def test_taskonomy_default_buildings_and_bad_inputs(tmp_path):
    root = tmp_path / "tk"
    with pytest.raises(DatasetNotFoundError, match="Taskonomy root .* does not exist"):
        load_taskonomy(root)
    write_taskonomy(root)
    with pytest.raises(DatasetNotFoundError, match=r"rgb/collierville does not exist"):
        load_taskonomy(root)  # the paper's buildings: only two train buildings were written
    (root / "normal" / "coffeen" / "point_9_view_1_domain_normal.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing file .*normal/coffeen/point_9_view_1_domain_normal\.png"):
        load_taskonomy(root, buildings=BUILDINGS)
    assert len(load_taskonomy(root, buildings=BUILDINGS, tasks=["depth", "edges"])["train"]) == 6
    _png(root / "normal" / "coffeen" / "point_9_view_1_domain_normal.png", np.zeros((TK, TK + 2, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"point_9_view_1_domain_normal\.png: normal is 16x18 but the image"):
        load_taskonomy(root, buildings=BUILDINGS, decode="eager")
    lazy = load_taskonomy(root, buildings=BUILDINGS)  # lazy: the error comes when the sample is read
    with pytest.raises(DataFormatError, match=r"normal is 16x18"):
        lazy["train"][4]
    _png(root / "depth_zbuffer" / "ihlen" / "point_8_view_0_domain_depth_zbuffer.png", np.zeros((TK, TK), np.uint8))
    with pytest.raises(
        DataFormatError, match=r"ihlen/point_8_view_0_domain_depth_zbuffer\.png: depth_zbuffer must be"
    ):
        load_taskonomy(root, buildings=BUILDINGS, tasks=["depth"])["test"][0]
    with pytest.raises(ValueError, match="decode must be"):
        load_taskonomy(root, buildings=BUILDINGS, decode="sometimes")


# ---------------------------------------------------------------------------------------------- augmentation

SPECS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 13, "ignore_index": 255},
    "depth": {"kind": "depth", "num_outputs": 1, "invalid_value": 0.0},
    "disparity": {"kind": "disparity", "num_outputs": 1, "invalid_value": 0.0},
    "normals": {"kind": "surface_normals", "num_outputs": 3, "invalid_value": 0.0},
    "edges": {"kind": "regression", "num_outputs": 1, "invalid_value": None},
}


def _batch(b: int = 6, h: int = 24, w: int = 32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    image = torch.stack([xs / w, ys / h, torch.rand(h, w, generator=gen)]).expand(b, 3, h, w).clone()
    seg = torch.randint(0, 13, (b, h, w), generator=gen)
    seg[:, :3] = 255
    depth = torch.rand(b, 1, h, w, generator=gen) + 1
    depth[:, :, :, :2] = 0
    normals = torch.nn.functional.normalize(torch.randn(b, 3, h, w, generator=gen), dim=1)
    return {
        "image": image,
        "segmentation": seg,
        "depth": depth,
        "disparity": 1 / depth.clamp(min=1),
        "normals": normals,
        "edges": torch.rand(b, 1, h, w, generator=gen),
        "name": ["a"] * b,
    }


def test_random_scale_crop_shapes_determinism_and_label_rules():
    batch = _batch()
    out = random_scale_crop(batch, SPECS, generator=torch.Generator().manual_seed(7))
    again = random_scale_crop(batch, SPECS, generator=torch.Generator().manual_seed(7))
    other = random_scale_crop(batch, SPECS, generator=torch.Generator().manual_seed(8))
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            assert out[key].shape == value.shape and out[key].dtype == value.dtype
            torch.testing.assert_close(out[key], again[key], rtol=0, atol=0)
    assert out["name"] is batch["name"]
    assert not torch.equal(out["image"], other["image"])
    scale, *_ = sample_crop_params(6, 24, 32, (1.0, 1.2, 1.5), torch.Generator().manual_seed(7))
    assert set(scale.tolist()) <= {1.0, 1.2, 1.5} and len(set(scale.tolist())) > 1
    for i in range(6):  # nearest: every label value comes from the same sample's input, unchanged or rescaled
        s = float(scale[i])
        assert set(out["segmentation"][i].unique().tolist()) <= set(batch["segmentation"][i].unique().tolist())
        d_in = set((batch["depth"][i] / s).flatten().tolist())
        assert set(out["depth"][i].flatten().tolist()) <= d_in | {0.0}  # depth divided by the scale
        p_in = torch.unique(batch["disparity"][i] * s)
        assert torch.isin(out["disparity"][i], p_in).all()  # disparity multiplied by the scale
        assert torch.isin(out["normals"][i], batch["normals"][i]).all()  # unchanged vectors
    torch.testing.assert_close(out["normals"].norm(dim=1), torch.ones(6, 24, 32))
    assert batch["depth"][:, :, :, :2].eq(0).all()  # input untouched


def test_random_scale_crop_matches_resize_then_crop_and_keeps_alignment():
    batch = _batch()
    gen_seed = 11
    out = random_scale_crop(batch, SPECS, generator=torch.Generator().manual_seed(gen_seed))
    scale, new_h, new_w, top, left = sample_crop_params(
        6, 24, 32, (1.0, 1.2, 1.5), torch.Generator().manual_seed(gen_seed)
    )
    for i in range(6):
        h, w, t, lft = int(new_h[i]), int(new_w[i]), int(top[i]), int(left[i])
        resized = torch.nn.functional.interpolate(batch["image"][i : i + 1], size=(h, w), mode="bilinear")
        torch.testing.assert_close(out["image"][i], resized[0, :, t : t + 24, lft : lft + 32], atol=1e-5, rtol=0)
    # image and labels move together: the x-ramp image channel and a nearest-sampled x-ramp label agree within a pixel
    xs = torch.arange(32, dtype=torch.float32).expand(6, 1, 24, 32) / 32
    ramp = random_scale_crop(
        {"image": batch["image"], "depth": xs + 1},
        {"depth": SPECS["depth"]},
        generator=torch.Generator().manual_seed(gen_seed),
    )
    label_x = ramp["depth"] * scale.view(-1, 1, 1, 1) - 1
    assert (label_x - out["image"][:, :1]).abs().max() <= 1.0 / 32 + 1e-6
    # scale 1 is the identity
    same = random_scale_crop(batch, SPECS, scales=(1.0,), generator=torch.Generator().manual_seed(0))
    for key in ["image", *SPECS]:
        torch.testing.assert_close(same[key], batch[key], rtol=0, atol=0)


def test_random_scale_crop_errors():
    batch = _batch()
    with pytest.raises(ValueError, match="scales must be"):
        random_scale_crop(batch, SPECS, scales=(0.5, 1.0))
    with pytest.raises(ValueError, match="'depth' looks like a dense label but has no task spec"):
        random_scale_crop(batch, {"segmentation": SPECS["segmentation"]})
    bad = dict(batch, depth=batch["depth"][:, :, :10])
    with pytest.raises(ValueError, match="label 'depth' has shape"):
        random_scale_crop({"image": bad["image"], "depth": bad["depth"]}, {"depth": SPECS["depth"]})


def test_collate_fn_augments_benchmark_batches():
    dd = load_benchmark("nyuv2", sizes={"validation": 8}, use_cache=False)
    specs = get_task_specs(dd)
    collate = make_collate_fn(specs, augment=True, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dd["validation"], batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    plain = next(iter(torch.utils.data.DataLoader(dd["validation"], batch_size=4)))
    assert batch["image"].shape == plain["image"].shape == (4, 3, 64, 64)
    assert batch["segmentation"].dtype == torch.int64 and batch["depth"].shape == (4, 1, 64, 64)
    assert not torch.equal(batch["depth"], plain["depth"])  # augmented (scale 1.0 for all four is 1/81)
    with pytest.raises(ValueError, match="augment=True needs task_specs"):
        make_collate_fn(None, augment=True)
