"""Benchmark: wall time and peak RSS of `merge_to_folder` against the number of tasks T, on ViT-B-size checkpoints.

    python benchmarks/merge.py                       # T = 2 3 5 8; TA, TIES (global), TIES (per tensor)
    python benchmarks/merge.py --tasks 2 8 --threads 2 --repeat 3 --workdir /tmp/simo-bench

Random checkpoints in the real format are generated first (DINOv2-B encoder: hidden 768, 12 blocks, 86.6M
parameters, float32; fine-tuned = base + N(0, 1e-3) noise; one linear segmentation head each), then every
configuration runs in a fresh Python process so its peak RSS (VmHWM) is its own. For reference the table also
gives the time to read every checkpoint byte once, tensor by tensor (the floor any merge pays), and the peak RSS of a
process that loads one whole checkpoint into memory. Files are read from the page cache (they
were just written). The generated checkpoints are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


VIT_B = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
}
TASK = {"kind": "semantic_segmentation", "num_outputs": 13}
METHODS = {
    "TA": {"method": "task_arithmetic", "alpha": 0.3},
    "TIES global": {"method": "ties", "density": 0.2, "scope": "global"},
    "TIES per-tensor": {"method": "ties", "density": 0.2, "scope": "tensor"},
}


# ---------------------------------------------------------------------------------------------- generation


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") & (2**63 - 1)


def generate(workdir: Path, num_tasks: int) -> tuple[Path, list[Path], int]:
    """Base Dinov2 folder + `num_tasks` single-task SimoModel folders, written tensor by tensor."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from hf_simo import SimoConfig, SimoModel
    from hf_simo.merging.io.writer import ShardedSafetensorsWriter

    backbone = Dinov2Config(**VIT_B)
    with torch.device("meta"):
        encoder_shapes = {k: tuple(v.shape) for k, v in Dinov2Model(backbone).state_dict().items()}

    def base_tensor(key, shape):
        generator = torch.Generator().manual_seed(_seed("base", key))
        return torch.randn(shape, generator=generator) * 0.02

    base_dir = workdir / "base"
    base_dir.mkdir(parents=True)
    backbone.save_pretrained(base_dir)
    plan = [(k, torch.float32, s) for k, s in sorted(encoder_shapes.items())]
    writer = ShardedSafetensorsWriter(base_dir, plan)
    for key, _, shape in plan:
        writer.write(key, base_tensor(key, shape))
    writer.close()

    task_dirs = []
    for t in range(num_tasks):
        config = SimoConfig(
            backbone_config=backbone.to_dict(), tasks={f"task{t}": TASK}, base_model_name_or_path=str(base_dir)
        )
        config.architectures = ["SimoModel"]
        with torch.device("meta"):
            state = SimoModel(config).state_dict()
        folder = workdir / f"task{t}"
        folder.mkdir()
        config.save_pretrained(folder)
        plan = [(k, v.dtype, tuple(v.shape)) for k, v in state.items()]
        writer = ShardedSafetensorsWriter(folder, plan)
        for key, dtype, shape in plan:
            generator = torch.Generator().manual_seed(_seed("task", t, key))
            if key.startswith("dinov2."):
                value = base_tensor(key[len("dinov2.") :], shape) + 1e-3 * torch.randn(shape, generator=generator)
            elif dtype.is_floating_point:
                value = torch.randn(shape, generator=generator) * 0.02
            else:
                value = torch.zeros(shape, dtype=dtype)
            writer.write(key, value)
        writer.close()
        task_dirs.append(folder)
    size = (task_dirs[0] / "model.safetensors").stat().st_size
    return base_dir, task_dirs, size


# ---------------------------------------------------------------------------------------------- workers


def _peak_rss_mib() -> float:
    """Peak resident set of this process: VmHWM, which exec resets (ru_maxrss keeps the parent's peak across
    fork + exec on Linux, so a small worker started by a large parent would report the parent's size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS: bytes (approximate)


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from hf_simo.merging import merge_to_folder
    from hf_simo.merging.io.reader import TensorReader
    from hf_simo.utils.logging import disable_progress_bars

    disable_progress_bars()

    start = time.perf_counter()
    if spec["kind"] == "import":
        pass
    elif spec["kind"] == "load_one":  # one whole checkpoint in memory
        reader = TensorReader("one", files=[Path(spec["files"][0])])
        state = {key: reader.get(key) for key in reader.keys()}
        del state
    elif spec["kind"] == "read":  # every byte of every checkpoint, once, tensor by tensor
        for path in spec["files"]:
            reader = TensorReader(path, files=[Path(path)])
            for key in reader.keys():
                tensor = reader.get(key)
                del tensor
            reader.close()
    else:
        options = dict(METHODS[spec["method"]])
        merge_to_folder(spec["output"], spec["tasks"], spec["base"], overwrite=True, **options)
    return {"wall_s": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib()}


def run_worker(spec: dict, repeat: int = 1) -> dict:
    """Run a configuration `repeat` times, each in a fresh process; the fastest wall time and the largest peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "HF_HUB_OFFLINE": "1"}
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, env=env
        )
        if result.returncode != 0:
            raise RuntimeError(f"worker {spec} failed:\n{result.stderr[-3000:]}")
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return {"wall_s": min(r["wall_s"] for r in runs), "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


# ---------------------------------------------------------------------------------------------- main


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs{memory}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 3, 5, 8])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration: min wall time, max RSS")
    parser.add_argument("--workdir", default=None, help="where to generate checkpoints (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hf_simo_merge_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        started = time.perf_counter()
        base_dir, task_dirs, size = generate(workdir / "checkpoints", max(args.tasks))
        print(f"generated {max(args.tasks) + 1} checkpoints in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        common = {"threads": args.threads}
        files = [str(task_dirs[0] / "model.safetensors")]
        importing = run_worker({**common, "kind": "import"})
        one = run_worker({**common, "kind": "load_one", "files": files})
        for num_tasks in args.tasks:
            tasks = [str(d) for d in task_dirs[:num_tasks]]
            every = [str(base_dir / "model.safetensors")] + [str(Path(t) / "model.safetensors") for t in tasks]
            floor = run_worker({**common, "kind": "read", "files": every}, args.repeat)
            rows.append((num_tasks, "read all bytes once (floor)", floor))
            for method in args.methods:
                output = workdir / "merged"
                result = run_worker(
                    {
                        **common,
                        "kind": "merge",
                        "method": method,
                        "tasks": tasks,
                        "base": str(base_dir),
                        "output": str(output),
                    },
                    args.repeat,
                )
                shutil.rmtree(output, ignore_errors=True)
                rows.append((num_tasks, method, result))
                print(f"T={num_tasks} {method}: {result}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    one_rss = one["peak_rss_mib"]
    lines = [
        f"Machine: {_machine()}; torch {torch.__version__}, {args.threads} thread(s); "
        f"{datetime.date.today().isoformat()}; best wall time of {args.repeat} run(s), warm page cache.",
        f"Checkpoint: DINOv2-B encoder (86.6M parameters) + linear head, float32, {size / 2**20:.0f} MiB on disk. "
        f"Peak RSS of a process that imports hf_simo: {importing['peak_rss_mib']:.0f} MiB; that also loads one "
        f"whole checkpoint: {one_rss:.0f} MiB (= 1.00x below).",
        "",
        "| T | configuration | wall time (s) | peak RSS (MiB) | peak RSS / one-checkpoint process |",
        "|--:|---|--:|--:|--:|",
    ]
    for num_tasks, name, result in rows:
        lines.append(
            f"| {num_tasks} | {name} | {result['wall_s']:.1f} | {result['peak_rss_mib']:.0f} | "
            f"{result['peak_rss_mib'] / one_rss:.2f}x |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
