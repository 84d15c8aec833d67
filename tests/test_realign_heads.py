import pytest
import torch

from helpers.tiny import tiny_model
from hf_simo.losses import task_loss
from hf_simo.realign import FeatureCache, compute_feature_cache, encoder_fingerprint, realign_heads


def _batches(model, n_batches=4, batch=6, size=(16, 24), seed=0):
    """Learnable data: labels are a fixed function of the image, so heads can fit them."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch, 3, *size, generator=gen)
        labels = {}
        for name, spec in model.config.task_specs.items():
            if spec.kind == "semantic_segmentation":
                labels[name] = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
            elif spec.kind == "surface_normals":
                labels[name] = torch.nn.functional.normalize(x.clone() + 0.1, dim=1)
            else:
                labels[name] = x[:, : spec.num_outputs].abs() + 0.1
        out.append({"pixel_values": x, "labels": labels})
    return out


def _loss(model, batches):
    model.eval()
    total = {}
    with torch.no_grad():
        for batch in batches:
            preds = model(batch["pixel_values"]).predictions
            for name, value in batch["labels"].items():
                total[name] = total.get(name, 0.0) + task_loss(model.config.get_task(name), preds[name], value).item()
    return total


def test_feature_cache_matches_the_encoder_and_round_trips(tmp_path):
    model = tiny_model(seed=1)
    batches = _batches(model, n_batches=2, batch=3)
    cache = compute_feature_cache(model, batches)
    assert len(cache) == 6 and cache.grid == (2, 3)
    with torch.no_grad():
        encoding = model.encode(batches[1]["pixel_values"])
    for layer, feats in encoding.features.items():
        assert torch.equal(cache.features[layer][3:], feats)
    decoded = model.decode(cache.encoding(torch.arange(3, 6)))
    with torch.no_grad():
        direct = model(batches[1]["pixel_values"]).predictions
    for name in direct:
        torch.testing.assert_close(decoded[name], direct[name])
    cache.save(tmp_path / "c.safetensors")
    again = FeatureCache.load(tmp_path / "c.safetensors")
    assert again.grid == cache.grid and again.padding == cache.padding
    assert all(torch.equal(again.features[k], v) for k, v in cache.features.items())
    assert all(torch.equal(again.labels[k], v) for k, v in cache.labels.items())


def test_disk_cache_is_keyed_by_encoder_weights_and_data(tmp_path, monkeypatch):
    model = tiny_model(seed=2)
    batches = _batches(model, n_batches=1, batch=2)
    first = compute_feature_cache(model, batches, data_fingerprint="data-v1", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("features-*.safetensors"))) == 1
    calls = []
    original = model.encode
    monkeypatch.setattr(model, "encode", lambda *a, **k: calls.append(1) or original(*a, **k))
    second = compute_feature_cache(model, batches, data_fingerprint="data-v1", cache_dir=tmp_path)
    assert calls == [] and second.key == first.key  # reused, the encoder did not run
    compute_feature_cache(model, batches, data_fingerprint="data-v2", cache_dir=tmp_path)
    fingerprint = encoder_fingerprint(model)
    with torch.no_grad():
        model.dinov2.layernorm.weight.add_(1.0)
    assert encoder_fingerprint(model) != fingerprint
    compute_feature_cache(model, batches, data_fingerprint="data-v1", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("features-*.safetensors"))) == 3
    assert calls  # new weights or new data: recomputed


def test_cached_head_training_lowers_loss_and_leaves_the_encoder_alone():
    model = tiny_model(seed=3)
    batches = _batches(model)
    encoder = {k: v.clone() for k, v in model.dinov2.state_dict().items()}
    before = _loss(model, batches)
    result = realign_heads(model, batches, epochs=15, learning_rate=3e-3, heldout_fraction=0.25, patience=20)
    after = _loss(model, batches)
    for name in before:
        assert after[name] < before[name], name
    assert all(torch.equal(model.dinov2.state_dict()[k], v) for k, v in encoder.items())
    assert result.train_samples == 18 and result.heldout_samples == 6
    assert result.steps == result.epochs_run * 2  # 18 samples, batch 16
    assert result.trainable_parameters == sum(
        p.numel() for n, p in model.heads.named_parameters() if "fusion_stage.layers.0.residual_layer1" not in n
    )
    assert set(result.best_epoch) == set(model.task_names)


def test_early_stopping_keeps_the_best_heldout_epoch():
    model = tiny_model(seed=4, tasks={"depth": {"kind": "depth"}})
    batches = _batches(model, n_batches=2, batch=8)
    result = realign_heads(model, batches, epochs=30, learning_rate=0.5, patience=2)  # lr too high
    assert result.epochs_run < 30
    heldout = [h["heldout/depth"] for h in result.history]
    epoch = result.best_epoch["depth"]
    if epoch > 0:  # the kept head is the one of the best held-out epoch
        assert result.best_loss["depth"] == heldout[epoch - 1] == min(heldout)
    else:  # no epoch beat the initial head, which is kept
        assert result.best_loss["depth"] < min(heldout)
    assert len(heldout) - max(epoch, 0) >= 2  # stopped after `patience` epochs without improvement


def test_encoder_in_the_loop_matches_cached_training_without_augmentation():
    torch.manual_seed(0)
    a = tiny_model(
        seed=5, tasks={"depth": {"kind": "depth"}, "seg": {"kind": "semantic_segmentation", "num_outputs": 3}}
    )
    b = tiny_model(
        seed=5, tasks={"depth": {"kind": "depth"}, "seg": {"kind": "semantic_segmentation", "num_outputs": 3}}
    )
    batches = _batches(a, n_batches=2, batch=5)
    ra = realign_heads(a, batches, epochs=3)
    rb = realign_heads(b, batches, epochs=3, encoder_in_the_loop=True)
    assert ra.steps == rb.steps
    for name, value in a.heads.state_dict().items():
        torch.testing.assert_close(b.heads.state_dict()[name], value, atol=1e-5, rtol=1e-4)


def test_augmentation_needs_the_encoder_in_the_loop():
    model = tiny_model(seed=6, tasks={"depth": {"kind": "depth"}})
    batches = _batches(model, n_batches=1, batch=4)
    flips = []

    def flip(pixels, labels):
        flips.append(1)
        return pixels.flip(-1), {k: v.flip(-1) for k, v in labels.items()}

    with pytest.raises(ValueError, match="cached features cannot be reused"):
        realign_heads(model, batches, augment=flip)
    realign_heads(model, batches, augment=flip, encoder_in_the_loop=True, epochs=2)
    assert len(flips) == 2  # one training batch per epoch


def test_bad_inputs():
    model = tiny_model(seed=7)
    batches = _batches(model, n_batches=1, batch=4)
    without_depth = [
        {"pixel_values": b["pixel_values"], "labels": {k: v for k, v in b["labels"].items() if k != "depth"}}
        for b in batches
    ]
    with pytest.raises(KeyError, match=r"no labels for task\(s\) \['depth'\]"):
        realign_heads(model, without_depth)
    with pytest.raises(KeyError, match="unknown task"):
        realign_heads(model, batches, tasks=["nope"])
    with pytest.raises(ValueError, match="data is empty"):
        realign_heads(model, [])
    mixed = batches + _batches(model, n_batches=1, batch=2, size=(24, 24))
    with pytest.raises(ValueError, match="one image size"):
        compute_feature_cache(model, mixed)
    with pytest.raises(ValueError, match="heldout_fraction"):
        realign_heads(model, batches, heldout_fraction=1.0)
