"""Re-alignment speed (issue 5): head re-alignment per epoch on cached features vs with the encoder in the loop, and
representation re-alignment step time and peak memory vs full MTL fine-tuning at the same batch size.

    python benchmarks/realign_speed.py                      # demo and small encoders, 1 thread
    python benchmarks/realign_speed.py --encoders base --samples 64 --epochs 1 --steps 2 --warmup 1   # ViT-B, slow
    python benchmarks/realign_speed.py --encoders demo --threads 2

Encoders (random weights: speed does not depend on them): `demo` is the embedded benchmark's (hidden 128, 4 blocks,
patch 8, 64 px); `small` is DINOv2-S-shaped (hidden 384, 12 blocks, 6 heads, patch 14) at 112 px; `base` is
DINOv2-B-shaped (hidden 768, 12 blocks, patch 14) at 224 px, the paper's regime (it uses 280×378). Three linear heads
(segmentation 10 classes, depth, normals). Each representation/MTL configuration runs in a fresh subprocess so its
peak RSS (VmHWM) is its own; step times are medians over the timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time


ENCODERS = {
    "demo": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 8, "size": 64},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "patch_size": 14, "size": 112},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 14, "size": 224},
}
TASKS = {
    "segmentation": {"kind": "semantic_segmentation", "num_outputs": 10},
    "depth": {"kind": "depth"},
    "normals": {"kind": "surface_normals"},
}


def build(encoder: str):
    import torch
    from transformers import Dinov2Config

    from hf_simo import SimoConfig, SimoModel

    spec = dict(ENCODERS[encoder])
    size = spec.pop("size")
    torch.manual_seed(0)
    config = SimoConfig(backbone_config=Dinov2Config(image_size=size, **spec), tasks=TASKS)
    return SimoModel(config), size


def batches(size: int, samples: int, batch: int, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, samples, batch):
        n = min(batch, samples - start)
        x = torch.randn(n, 3, size, size, generator=gen)
        labels = {
            "segmentation": torch.randint(0, 10, (n, size, size), generator=gen),
            "depth": torch.rand(n, 1, size, size, generator=gen) + 0.1,
            "normals": torch.nn.functional.normalize(torch.randn(n, 3, size, size, generator=gen), dim=1),
        }
        out.append({"pixel_values": x, "labels": labels})
    return out


def head_speed(encoder: str, samples: int, epochs: int) -> dict:
    """Seconds per head re-alignment epoch, cached features vs encoder in the loop (same data, same heads)."""
    from hf_simo.realign import compute_feature_cache, realign_heads

    model, size = build(encoder)
    data = batches(size, samples, 32)
    start = time.perf_counter()
    cache = compute_feature_cache(model, data)
    cache_seconds = time.perf_counter() - start
    kwargs = {"epochs": epochs, "heldout_fraction": 0.0, "batch_size": 16}
    start = time.perf_counter()
    realign_heads(model, cache, **kwargs)
    cached = (time.perf_counter() - start) / epochs
    model, _ = build(encoder)
    start = time.perf_counter()
    realign_heads(model, data, encoder_in_the_loop=True, **kwargs)
    online = (time.perf_counter() - start) / epochs
    return {"cache_seconds": cache_seconds, "cached_epoch": cached, "online_epoch": online}


def step_speed(encoder: str, mode: str, batch: int, steps: int, warmup: int) -> dict:
    """One configuration (run in its own process): median step time and peak RSS."""
    import torch

    from hf_simo.modeling_simo import freeze_unused_parameters
    from hf_simo.realign import prepare_representation_realignment

    model, size = build(encoder)
    if mode == "representation":
        trainable = prepare_representation_realignment(model, rank=16)
    else:  # MTL: everything trains
        trainable = freeze_unused_parameters(model.requires_grad_(True))
    trainable.train()
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    data = batches(size, batch * 2, batch)
    times = []
    for step in range(warmup + steps):
        item = data[step % len(data)]
        start = time.perf_counter()
        loss = trainable(pixel_values=item["pixel_values"], labels=item["labels"]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 25.0)
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {
        "step_seconds": statistics.median(times),
        "peak_rss_mib": peak_kib / 1024,
        "trainable": sum(p.numel() for p in params),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["demo", "small"], choices=sorted(ENCODERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=160, help="re-alignment samples (the demo's 80% of 200)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args._child:
        encoder, mode = args._child
        print(json.dumps(step_speed(encoder, mode, args.batch, args.steps, args.warmup)))
        return

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    head_rows, step_rows = [], []
    for encoder in args.encoders:
        head = head_speed(encoder, args.samples, args.epochs)
        head_rows.append((encoder, head))
        for mode in ("representation", "mtl"):
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--batch", str(args.batch)]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--_child", encoder, mode]
            result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            step_rows.append((encoder, mode, json.loads(result.stdout.strip().splitlines()[-1])))

    cpu = platform.processor() or platform.machine()
    print(f"Machine: {cpu}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, {args.threads} thread(s); ")
    print(f"{datetime.date.today().isoformat()}; {args.samples} re-alignment samples, batch {args.batch}.\n")
    print("Head re-alignment, seconds per epoch (3 linear heads):\n")
    print(
        "| encoder | feature cache, once (s) | epoch on cached features (s) | epoch, encoder in the loop (s) | speed-up |"
    )
    print("|---|--:|--:|--:|--:|")
    for encoder, row in head_rows:
        ratio = row["online_epoch"] / row["cached_epoch"]
        print(
            f"| {encoder} | {row['cache_seconds']:.2f} | {row['cached_epoch']:.3f} | {row['online_epoch']:.3f} "
            f"| {ratio:.1f}× |"
        )
    print("\nRepresentation re-alignment vs full MTL fine-tuning, one optimizer step at the same batch size:\n")
    print("| encoder | training | trainable params | step (s) | peak RSS (MiB) |")
    print("|---|---|--:|--:|--:|")
    for encoder, mode, row in step_rows:
        name = "representation re-align (rank 16 + heads)" if mode == "representation" else "MTL (everything)"
        print(f"| {encoder} | {name} | {row['trainable']:,} | {row['step_seconds']:.3f} | {row['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
