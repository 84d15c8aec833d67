"""The feature cache on disk (issue 12): streamed while computed, memory-mapped while read, a storage dtype in its
key, a size given by the documented formula; the files are safetensors files that safetensors itself reads."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers.tiny import random_labels, tiny_model
from hf_simo.errors import OptionError
from hf_simo.realign import FeatureCache, compute_feature_cache, realign_heads
from hf_simo.realign.cache_files import TensorSpool, map_safetensors, read_header, write_safetensors
from hf_simo.realign.feature_cache import feature_cache_bytes, resolve_cache_dtype


def _batches(model, n_batches=3, batch=4, size=(16, 24)):
    generator = torch.Generator().manual_seed(0)
    out = []
    for index in range(n_batches):
        pixels = torch.randn(batch, 3, *size, generator=generator)
        out.append({"pixel_values": pixels, "labels": random_labels(model.config, batch, *size, seed=index)})
    return out


def test_spooled_parts_make_the_safetensors_file_of_their_concatenation(tmp_path):
    generator = torch.Generator().manual_seed(0)
    expected = {
        "a": torch.randn(7, 3, 5, generator=generator).to(torch.bfloat16),
        "b": torch.randint(0, 9, (7, 2), generator=generator),
        "c": torch.randn(7, generator=generator),
        "d": torch.rand(7, 1, generator=generator) > 0.5,
    }
    parts = []
    for index, (start, end) in enumerate([(0, 3), (3, 3), (3, 7)]):  # the middle part holds no rows
        spool = TensorSpool(tmp_path / f"part-{index}")
        if end > start:
            for name, tensor in expected.items():
                spool.append(name, tensor[start : min(start + 2, end)])
                if start + 2 < end:
                    spool.append(name, tensor[start + 2 : end])
            parts.append((spool.folder, spool.entries()))
        else:
            parts.append((spool.folder, {k: {**v, "rows": 0} for k, v in parts[0][1].items()}))
    path = write_safetensors(tmp_path / "out.safetensors", parts, {"note": "x"})
    read = load_file(str(path))  # safetensors' own reader
    assert sorted(read) == sorted(expected)
    for name, tensor in expected.items():
        assert read[name].dtype == tensor.dtype and torch.equal(read[name], tensor), name
    mapped, metadata = map_safetensors(path)
    assert metadata == {"note": "x"}
    for name, tensor in expected.items():
        assert torch.equal(mapped[name], tensor), name
    header, start = read_header(path)
    assert start % 8 == 0
    for name, info in header.items():
        if name != "__metadata__":
            assert (start + info["data_offsets"][0]) % expected[name].element_size() == 0, name  # aligned
    # and safetensors' files map the same way
    save_file(expected, str(tmp_path / "theirs.safetensors"))
    theirs, _ = map_safetensors(tmp_path / "theirs.safetensors")
    assert all(torch.equal(theirs[k], v) for k, v in expected.items())


def test_spool_refuses_rows_of_another_shape(tmp_path):
    spool = TensorSpool(tmp_path / "s")
    spool.append("x", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="rows of shape"):
        spool.append("x", torch.zeros(2, 4))


def test_disk_cache_equals_the_memory_cache_and_is_mapped(tmp_path):
    model = tiny_model(seed=1)
    batches = _batches(model)
    memory = compute_feature_cache(model, batches)
    disk = compute_feature_cache(model, batches, data_fingerprint="d", cache_dir=tmp_path)
    assert disk.key and (tmp_path / f"features-{disk.key}.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [f"features-{disk.key}.safetensors"]  # no parts left
    assert (disk.grid, disk.padding, len(disk)) == (memory.grid, memory.padding, 12)
    for layer, tensor in memory.features.items():
        assert torch.equal(disk.features[layer], tensor)
    for task, tensor in memory.labels.items():
        assert torch.equal(disk.labels[task], tensor)
    # the tensors point into a mapping of the cache file (Linux's /proc/self/maps names it), not into a copy
    path = tmp_path / f"features-{disk.key}.safetensors"
    for cache in (disk, FeatureCache.load(path)):
        for tensor in [*cache.features.values(), *cache.labels.values()]:
            assert _mapped_file(tensor.data_ptr()) == str(path.resolve())


def _mapped_file(address: int) -> str | None:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) == 6 else None
    return None


def test_storage_dtype_is_in_the_key_and_the_size_follows_the_formula(tmp_path):
    model = tiny_model(seed=2)
    batches = _batches(model, n_batches=2, batch=3)
    full = compute_feature_cache(model, batches, data_fingerprint="d", cache_dir=tmp_path)
    half = compute_feature_cache(model, batches, dtype="bfloat16", data_fingerprint="d", cache_dir=tmp_path)
    assert full.key != half.key and len(list(tmp_path.glob("features-*.safetensors"))) == 2
    with torch.no_grad():
        reference = {}
        for batch in batches:
            encoding = model.encode(batch["pixel_values"], layers=model.config.feature_layers())
            for layer, value in encoding.features.items():
                reference.setdefault(layer, []).append(value)
    for layer, values in reference.items():
        assert half.features[layer].dtype == torch.bfloat16
        assert torch.equal(half.features[layer], torch.cat(values).to(torch.bfloat16))
        assert torch.equal(full.features[layer], torch.cat(values))
    encoding = half.encoding(torch.arange(2))
    assert all(f.dtype == torch.float32 for f in encoding.features.values())  # the heads read float32

    label_bytes = sum(v[0].numel() * v.element_size() for v in full.labels.values())
    hidden, layers = model.config.backbone_config.hidden_size, len(model.config.feature_layers())
    for cache, dtype in ((full, "float32"), (half, "bfloat16")):
        path = tmp_path / f"features-{cache.key}.safetensors"
        (length,) = struct.unpack("<Q", path.read_bytes()[:8])
        expected = feature_cache_bytes(6, cache.grid, hidden, layers, dtype, label_bytes)
        assert path.stat().st_size - 8 - length == expected
        assert json.loads(path.read_bytes()[8 : 8 + length])["__metadata__"]["key"] == cache.key
    with pytest.raises(OptionError, match="feature_cache_dtype must be one of"):
        resolve_cache_dtype("int8")
    assert resolve_cache_dtype(torch.float16) == torch.float16


def test_heads_trained_on_the_mapped_cache_equal_those_on_the_memory_cache(tmp_path):
    heads = []
    for kwargs in ({}, {"data_fingerprint": "d", "cache_dir": tmp_path}):
        model = tiny_model(seed=3)  # seeds the global RNG too, which the heads' dropout draws from
        cache = compute_feature_cache(model, _batches(model, n_batches=2, batch=5), **kwargs)
        realign_heads(model, cache, epochs=3)
        heads.append(model.heads.state_dict())
    assert list(tmp_path.glob("features-*.safetensors"))  # the second one trained on the file
    for name, value in heads[0].items():
        assert torch.equal(heads[1][name], value), name
