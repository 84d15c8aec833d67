"""DARE is reproducible (issue 12, item 3): masks keyed by the seed, the task's name and the tensor's canonical name,
from a full-entropy generator; the same bits from `merge_state_dicts`, the streamed merge, any task order and any
spelling of the tensor names. The reference below re-derives the masks from their definition with numpy."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers.checkpoints import TASKS, build_sources, encoder_state
from hf_simo.merging import merge_methods as M
from hf_simo.merging import merge_state_dicts, merge_to_folder


def ref_mask(numel: int, density: float, seed: int, task: str, key: str) -> torch.Tensor:
    """The documented definition: PCG64(SeedSequence(sha256("hf_simo.dare.v2\\0seed\\0task\\0key"))), raw 64-bit
    outputs split low half first into 32-bit words; keep iff the word's top 24 bits / 2^24 < density."""
    entropy = int.from_bytes(hashlib.sha256(f"hf_simo.dare.v2\0{seed}\0{task}\0{key}".encode()).digest(), "little")
    raw = np.random.PCG64(np.random.SeedSequence(entropy)).random_raw((numel + 1) // 2)
    words = np.stack([raw & 0xFFFFFFFF, raw >> 32], axis=1).reshape(-1)[:numel]
    return torch.from_numpy((words >> 8).astype(np.float64) / 2**24 < density)


def ref_dare(base, tasks, *, density, seed, rescale=True, alpha=1.0):
    """Plain in-memory DARE-linear: per tensor, per task in name order, tau * mask / density, summed."""
    out = {}
    for key in sorted(base):
        total = torch.zeros_like(base[key], dtype=torch.float32)
        for name in sorted(tasks):
            tau = tasks[name][key].float() - base[key].float()
            mask = ref_mask(tau.numel(), density, seed, name, key).reshape(tau.shape)
            dropped = tau * mask
            total += dropped / density if rescale else dropped
        out[key] = base[key].float() + alpha * total
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp("dare"))


@pytest.mark.parametrize("density", [0.3, 0.5, 0.9, 1.0])
def test_mask_follows_its_definition_and_rate(density):
    mask = M.dare_mask((101, 99), density, M.dare_seed(7, "depth", "encoder.layer.0.mlp.fc1.weight"))
    expected = ref_mask(101 * 99, density, 7, "depth", "encoder.layer.0.mlp.fc1.weight").reshape(101, 99)
    assert torch.equal(mask, expected)
    assert abs(mask.float().mean().item() - density) < 5 * math.sqrt(density * (1 - density) / mask.numel()) + 1e-9


def test_mask_ranges_equal_the_whole_mask_and_seeds_keep_all_their_bits():
    seed = M.dare_seed(3, "normals", "w")
    whole = M.dare_mask((1001,), 0.4, seed)
    parts = [M.dare_mask((stop - start,), 0.4, seed, start=start) for start, stop in [(0, 64), (64, 500), (500, 1001)]]
    assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(ValueError, match="even"):
        M.dare_mask((10,), 0.4, seed, start=3)
    # torch's CPU generator keeps the low 32 bits of a seed: seeds s and s + 2^32 must still give other masks
    for other in (3 + 2**32, 3 + 2**40, 2**70):
        assert not torch.equal(M.dare_mask((1001,), 0.4, M.dare_seed(other, "normals", "w")), whole)
    assert M.dare_seed(0, "a", "w") != M.dare_seed(0, "b", "w") != M.dare_seed(0, "a", "b")


def test_merge_state_dicts_equals_the_reference_any_task_order(sources):
    base_folder, task_folders = sources
    base = encoder_state(base_folder)
    tasks = {name: encoder_state(folder) for name, folder in zip(TASKS, task_folders)}
    expected = ref_dare(base, tasks, density=0.4, seed=11, alpha=0.5)
    for order in (list(TASKS), list(reversed(TASKS))):
        merged = merge_state_dicts(base, {n: tasks[n] for n in order}, "dare", {"density": 0.4, "seed": 11}, alpha=0.5)
        for key in expected:
            assert torch.equal(merged[key], expected[key]), key


def test_any_spelling_of_the_tensor_names_draws_the_same_masks(sources):
    base_folder, task_folders = sources
    options = {"density": 0.5, "seed": 2}
    canonical = merge_state_dicts(
        encoder_state(base_folder), {n: encoder_state(f) for n, f in zip(TASKS, task_folders)}, "dare", options
    )
    # as stored on disk: transformers-4 attention names under the `dinov2.` prefix
    stored = {
        n: {k: v for k, v in load_file(f / "model.safetensors").items() if k.startswith("dinov2.")}
        for n, f in zip(TASKS, task_folders)
    }
    stored_base = {f"dinov2.{k}": v for k, v in load_file(base_folder / "model.safetensors").items()}
    assert set(stored_base) == set(stored[TASKS[0]])
    assert set(stored_base) != {f"dinov2.{k}" for k in canonical}, "the test needs names that differ"
    merged = merge_state_dicts(stored_base, stored, "dare", options)
    assert set(merged) == set(stored_base)
    by_canonical = encoder_state_from({k[len("dinov2.") :]: v for k, v in merged.items()})
    for key in canonical:
        assert torch.equal(by_canonical[key], canonical[key]), key


def encoder_state_from(state):
    from hf_simo.merging.io.sources import canonical_encoder_keys

    return {canonical_encoder_keys(k)[0][0]: v for k, v in state.items()}


@pytest.mark.parametrize("options", [{"density": 0.4, "seed": 5}, {"density": 0.4, "sign_election": True}])
def test_streamed_merge_equals_in_memory_for_any_task_order(sources, tmp_path, options):
    base_folder, task_folders = sources
    forward = merge_to_folder(tmp_path / "forward", task_folders, base_folder, "dare", options, alpha=0.7)
    backward = merge_to_folder(tmp_path / "backward", task_folders[::-1], base_folder, "dare", options, alpha=0.7)
    expected = merge_state_dicts(
        encoder_state(base_folder),
        {n: encoder_state(f) for n, f in zip(TASKS, task_folders)},
        "dare",
        options,
        alpha=0.7,
    )
    for folder in (forward, backward):
        streamed = encoder_state(folder)
        assert streamed.keys() == expected.keys()
        for key in expected:
            assert torch.equal(streamed[key], expected[key]), key
    config = json.loads((forward / "config.json").read_text())
    assert config["merge"]["dare_masks"] == "hf_simo.dare.v2"
    if not options.get("sign_election"):
        ref = ref_dare(
            encoder_state(base_folder),
            {n: encoder_state(f) for n, f in zip(TASKS, task_folders)},
            density=0.4,
            seed=5,
            alpha=0.7,
        )
        for key in ref:
            assert torch.equal(expected[key], ref[key]), key


def test_task_names_must_be_distinct():
    x = torch.ones(4)
    with pytest.raises(M.MergeOptionError, match="distinct"):
        M.merge_task_vectors("dare", M.resolve_method("dare", {"density": 0.5})[1], [x, x], key="w", tasks=["a", "a"])
