"""Benchmark: merge time, peak RSS and the ratio to the I/O floor against the number of tasks T, side by side with
FusionBench, PEFT and mergekit when they are installed (the `bench` extra, or their own interpreters).

    python benchmarks/merge.py --encoder base --tasks 2 4 8 --peers            # the issue-12 table (ViT-B)
    python benchmarks/merge.py --encoder small --tasks 2 4 --methods ta ties ties_mean --peers --repeat 2
    python benchmarks/merge.py --peers --peer-python fusionbench=/path/venv/bin/python mergekit=/path/bin/python

Random checkpoints in the real format are generated first (a DINOv2-shaped encoder, float32; fine-tuned = base +
N(0, 1e-3); one linear head each) and, for the peers, exported once as plain Dinov2 folders with transformers-5
tensor names (untimed). Every configuration runs in a fresh process (its own peak RSS, VmHWM): `floor` reads every
input byte once (1 MiB `preadv` into one reused buffer) and writes + fsyncs as many bytes as the merged folder holds
(hf_simo's atomic folder fsyncs), in the same page-cache state as the merges (warm: the checkpoints were just
written or read). Each merge is timed end to end from folders to a written folder, excluding interpreter start and
imports (the `import` figure). Repeats are interleaved (every configuration once, then again) so that load changes
on a shared machine hit all alike; the table gives the fastest wall time, its process CPU time, the ratio to the
floor, the largest peak RSS, the load average around the run and the thread count. Peer outputs are compared with
hf_simo's (encoder tensors, bit for bit, or how many entries differ).

Peers (a peer runs where `--peer-python NAME=PYTHON` names its interpreter, or in this interpreter when its package
imports here):
- FusionBench 0.2.33: `TaskArithmeticAlgorithm(scaling_factor=a)`, `TiesMergingAlgorithm(scaling_factor=a,
  threshold=100*density, remove_keys=[], merge_func="mean"|"sum")` on a `BaseModelPool` of `Dinov2Model`s loaded
  with `from_pretrained`; result saved with `save_pretrained`. Global TIES like hf_simo's default scope.
- PEFT (peft.utils.merge_utils, the functions PEFT's `add_weighted_adapter` uses) per tensor on state dicts loaded
  whole: `task_arithmetic(taus, weights=ones)`, `ties(taus, ones, density)`; theta = theta_0 + a * merged,
  `save_file`. Per-tensor TIES: PEFT keeps exactly int(n * density) entries by `topk` and elects +1 on a zero sum;
  hf_simo (as the TIES reference) keeps every entry >= the k-th value (one more with distinct magnitudes) and gives
  zero sums the majority sign, so outputs differ by design; the match check calls PEFT with the per-tensor density
  that keeps the same count, (int(n * density) + 1) / n, and expects equality away from exact zero sums.
- mergekit 0.1.5: `run_merge(MergeConfiguration(merge_method=..., base_model=base, models=[{model: task_t,
  parameters: {weight: 1, density: d}}], parameters={lambda: a, normalize: true}, dtype=float32))` on the Dinov2
  folders (transformers-5 names: with transformers-4 names mergekit silently drops the attention tensors).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
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


ENCODERS = {
    "tiny": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
}
COMMON = {"mlp_ratio": 4, "patch_size": 14, "image_size": 518}
TASK = {"kind": "semantic_segmentation", "num_outputs": 13}
# name -> (hf_simo method, options, alpha); the peers run the same settings
METHODS = {
    "ta": ("task_arithmetic", {}, 0.3),
    "ties": ("ties", {"density": 0.2, "scope": "global", "aggregate": "sum"}, 0.3),  # FusionBench's defaults
    "ties_mean": ("ties", {"density": 0.2, "scope": "global"}, 1.0),  # hf_simo's defaults
    "ties_tensor": ("ties", {"density": 0.2, "scope": "tensor"}, 1.0),
    "magnitude": ("magnitude", {"density": 0.2}, 1.0),
    "dare": ("dare", {"density": 0.5, "seed": 0}, 0.3),
    "breadcrumbs": ("breadcrumbs", {"density": 0.9, "gamma": 0.01}, 1.0),
    "consensus": ("consensus", {"tall_lambda": 0.4}, 0.3),
    "lines": ("lines", {"beta": 0.5}, 1.0),
}
# which peer runs which method (same semantics; see the module docstring for the documented differences)
PEER_METHODS = {
    "fusionbench": {"ta", "ties", "ties_mean"},
    "peft": {"ta", "ties_tensor", "magnitude"},
    "mergekit": {"ta", "ties_tensor", "breadcrumbs"},
}
PEER_MODULES = {"fusionbench": "fusion_bench", "peft": "peft", "mergekit": "mergekit"}


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------------- generation


def generate(workdir: Path, encoder: str, num_tasks: int) -> tuple[Path, list[Path], int]:
    """Base Dinov2 folder + single-task SimoModel folders (benchmarks/merge.py's recipe), written tensor by tensor."""
    import torch  # noqa: F401  (imported before the timed call, as the peers import it)
    from transformers import Dinov2Config, Dinov2Model

    from hf_simo import SimoConfig, SimoModel
    from hf_simo.merging.io.writer import ShardedSafetensorsWriter

    backbone = Dinov2Config(**ENCODERS[encoder], **COMMON)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Dinov2Model(backbone).state_dict().items()}

    def base_tensor(key, shape):
        return torch.randn(shape, generator=torch.Generator().manual_seed(_seed("base", key))) * 0.02

    base_dir = workdir / "base"
    base_dir.mkdir(parents=True)
    backbone.save_pretrained(base_dir)
    plan = [(k, torch.float32, s) for k, s in sorted(shapes.items())]
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
    return base_dir, task_dirs, (task_dirs[0] / "model.safetensors").stat().st_size


def export_for_peers(workdir: Path, base_dir: Path, task_dirs: list[Path]) -> tuple[Path, list[Path]]:
    """Plain Dinov2 folders (config + encoder tensors under transformers-5 names) for FusionBench/PEFT/mergekit."""
    from safetensors.torch import load_file, save_file
    from transformers import Dinov2Config

    from hf_simo.merging.io.sources import canonical_encoder_keys

    config = Dinov2Config.from_pretrained(base_dir)
    config.architectures = ["Dinov2Model"]  # mergekit picks the architecture from this field
    out = []
    for source in [base_dir, *task_dirs]:
        target = workdir / f"{source.name}-dinov2"
        if not target.exists():
            target.mkdir()
            state = load_file(source / "model.safetensors")
            encoder = {}
            for key, value in state.items():
                if key.startswith("heads."):
                    continue
                raw = key[len("dinov2.") :] if key.startswith("dinov2.") else key
                ((name, _),) = canonical_encoder_keys(raw)
                encoder[name] = value
            save_file(encoder, target / "model.safetensors", metadata={"format": "pt"})
        config.save_pretrained(target)
        out.append(target)
    return out[0], out[1:]


# ---------------------------------------------------------------------------------------------- workers


def _peak_rss_mib() -> float:
    """VmHWM (exec resets it; ru_maxrss would carry the parent's peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)


def _floor(spec: dict):
    """Read every input byte once, write + fsync the output's byte count: the least any merge must do."""
    return lambda: _floor_run(spec)


def _floor_run(spec: dict) -> None:
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    for path in spec["files"]:
        fd = os.open(path, os.O_RDONLY)
        position = 0
        while True:
            got = os.preadv(fd, [view], position)
            if got <= 0:
                break
            position += got
        os.close(fd)
    out = Path(spec["output"])
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / "floor.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    remaining = spec["output_bytes"]
    while remaining > 0:
        remaining -= os.write(fd, view[: min(len(view), remaining)])
    os.fsync(fd)
    os.close(fd)


def _hf_simo(spec: dict):
    from hf_simo.merging import merge_to_folder
    from hf_simo.utils.logging import disable_progress_bars

    disable_progress_bars()
    method, options, alpha = METHODS[spec["method"]]
    threads = {"num_threads": spec["threads"]} if spec.get("num_threads_option") else {}
    return lambda: merge_to_folder(
        spec["output"], spec["tasks"], spec["base"], method, options, alpha=alpha, overwrite=True, **threads
    )


def _fusionbench(spec: dict):
    import torch  # noqa: F401  (imported before the timed call, as the peers import it)
    from fusion_bench.method import TaskArithmeticAlgorithm, TiesMergingAlgorithm  # noqa: F401
    from fusion_bench.modelpool import BaseModelPool  # noqa: F401
    from transformers import Dinov2Model  # noqa: F401

    return lambda: _fusionbench_run(spec)


def _fusionbench_run(spec: dict) -> None:
    import torch  # noqa: F401  (imported before the timed call, as the peers import it)
    from fusion_bench.method import TaskArithmeticAlgorithm, TiesMergingAlgorithm
    from fusion_bench.modelpool import BaseModelPool
    from transformers import Dinov2Model

    method, options, alpha = METHODS[spec["method"]]
    models = {"_pretrained_": Dinov2Model.from_pretrained(spec["peer_base"])}
    for index, folder in enumerate(spec["peer_tasks"]):
        models[f"task{index}"] = Dinov2Model.from_pretrained(folder)
    pool = BaseModelPool(models)
    if method == "task_arithmetic":
        algorithm = TaskArithmeticAlgorithm(scaling_factor=alpha)
    else:
        algorithm = TiesMergingAlgorithm(
            scaling_factor=alpha,
            threshold=100 * options["density"],
            remove_keys=[],
            merge_func=options.get("aggregate", "mean"),
        )
    with torch.no_grad():
        merged = algorithm.run(pool)
    merged.save_pretrained(spec["output"])


def _peft(spec: dict):
    import peft.utils.merge_utils  # noqa: F401
    import safetensors.torch  # noqa: F401

    return lambda: _peft_run(spec)


def _peft_run(spec: dict) -> None:
    import torch  # noqa: F401  (imported before the timed call, as the peers import it)
    from peft.utils import merge_utils
    from safetensors.torch import load_file, save_file

    method, options, alpha = METHODS[spec["method"]]
    base = load_file(Path(spec["peer_base"]) / "model.safetensors")
    tasks = [load_file(Path(folder) / "model.safetensors") for folder in spec["peer_tasks"]]
    weights = torch.ones(len(tasks))
    out = {}
    for key in sorted(base):
        taus = [task[key] - base[key] for task in tasks]
        n = base[key].numel()
        density = options.get("density")
        if spec.get("match") and density is not None:  # same kept count as the reference trim (see the docstring)
            density = min(1.0, (int(n * density) + 1) / n)
        if method == "task_arithmetic":
            merged = merge_utils.task_arithmetic(taus, weights)
        elif method == "ties":
            merged = merge_utils.ties(taus, weights, density)
        elif method == "magnitude":
            merged = merge_utils.magnitude_prune(taus, weights, density)
        else:
            raise ValueError(method)
        out[key] = base[key] + alpha * merged
    Path(spec["output"]).mkdir(parents=True, exist_ok=True)
    save_file(out, Path(spec["output"]) / "model.safetensors", metadata={"format": "pt"})


def _mergekit(spec: dict):
    import mergekit.merge  # noqa: F401

    return lambda: _mergekit_run(spec)


def _mergekit_run(spec: dict) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    method, options, alpha = METHODS[spec["method"]]
    name = {"task_arithmetic": "task_arithmetic", "ties": "ties", "breadcrumbs": "breadcrumbs"}[method]
    parameters = {"weight": 1.0}
    if "density" in options:
        density = options["density"]
        parameters["density"] = density
    if method == "breadcrumbs":
        parameters["gamma"] = options["gamma"]
    config = MergeConfiguration.model_validate(
        {
            "merge_method": name,
            "base_model": spec["peer_base"],
            "models": [{"model": folder, "parameters": parameters} for folder in spec["peer_tasks"]],
            "parameters": {"lambda": alpha, **({"normalize": True} if method == "ties" else {})},
            "dtype": "float32",
        }
    )
    run_merge(
        config, spec["output"], options=MergeOptions(copy_tokenizer=False, lazy_unpickle=True, allow_crimes=True)
    )


def _import(spec: dict):
    start = time.perf_counter()
    import hf_simo.merging  # noqa: F401

    elapsed = time.perf_counter() - start
    return lambda: time.sleep(0) or elapsed


KINDS = {
    "floor": _floor,
    "hf_simo": _hf_simo,
    "fusionbench": _fusionbench,
    "peft": _peft,
    "mergekit": _mergekit,
    "import": _import,
}


def worker(spec: dict) -> dict:
    """Imports happen in `KINDS[kind](spec)` (untimed, except for the `import` kind); the returned call is timed."""
    if spec["kind"] != "floor":
        import torch

        torch.set_num_threads(spec["threads"])
    run = KINDS[spec["kind"]](spec)
    start, cpu = time.perf_counter(), time.process_time()
    value = run()
    wall = time.perf_counter() - start
    if spec["kind"] == "import":
        wall = value
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu, "peak_rss_mib": _peak_rss_mib()}


def run_worker(spec: dict, python: str = sys.executable) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(spec.get("threads", 1)),
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    load = os.getloadavg()[0]
    result = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        return {
            "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        }
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["load"] = (load + os.getloadavg()[0]) / 2
    return out


# ---------------------------------------------------------------------------------------------- matching


def encoder_tensors(folder: Path) -> dict:
    """Encoder tensors of an output folder under canonical (transformers-5, unprefixed) names."""
    from safetensors.torch import load_file

    from hf_simo.merging.io.sources import canonical_encoder_keys

    state = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(path))
    out = {}
    for key, value in state.items():
        if key.startswith("heads."):
            continue
        raw = key[len("dinov2.") :] if key.startswith("dinov2.") else key
        ((name, _),) = canonical_encoder_keys(raw)
        out[name] = value
    return out


def compare(reference: Path, other: Path) -> str:
    import torch  # noqa: F401  (imported before the timed call, as the peers import it)

    expected, got = encoder_tensors(reference), encoder_tensors(other)
    missing = sorted(set(expected) - set(got))
    if missing:
        return f"missing {len(missing)} tensors (e.g. {missing[0]})"
    differing = total = 0
    worst = 0.0
    for key, value in expected.items():
        theirs = got[key].to(value.dtype)
        same = value.reshape(-1).view(torch.int32) == theirs.reshape(-1).view(torch.int32)
        differing += int((~same).sum())
        total += value.numel()
        worst = max(worst, float((theirs - value).abs().max()))
    if differing == 0:
        return "bitwise"
    return f"{differing}/{total} entries differ (max |diff| {worst:.2e})"


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
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=list(ENCODERS), default="base")
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--methods", nargs="+", default=["ta", "ties"], choices=list(METHODS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="hf_simo thread counts (--num_threads)")
    parser.add_argument("--peer-python", nargs="*", default=[], metavar="NAME=PYTHON", help="a peer's interpreter")
    parser.add_argument("--peers", action="store_true", help="also run FusionBench, PEFT, mergekit where installed")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hf_simo_merge_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    pythons = dict(item.split("=", 1) for item in args.peer_python)
    for name, module in PEER_MODULES.items():
        if name not in pythons and importlib.util.find_spec(module) is not None:
            pythons[name] = sys.executable  # installed here (the `bench` extra)
    peers = [p for p in PEER_METHODS if args.peers and p in pythons]
    if args.peers:
        print(f"peers: {peers or 'none installed'}", file=sys.stderr)
    started = time.perf_counter()
    checkpoints = workdir / f"checkpoints-{args.encoder}"
    if not (checkpoints / f"task{max(args.tasks) - 1}" / "model.safetensors").exists():
        shutil.rmtree(checkpoints, ignore_errors=True)
        generate(checkpoints, args.encoder, max(args.tasks))
    base_dir = checkpoints / "base"
    task_dirs = [checkpoints / f"task{t}" for t in range(max(args.tasks))]
    size = (task_dirs[0] / "model.safetensors").stat().st_size
    peer_base, peer_tasks = export_for_peers(checkpoints, base_dir, task_dirs) if peers else (None, [])
    print(f"checkpoints ready in {time.perf_counter() - started:.0f}s ({size / 2**20:.0f} MiB each)", file=sys.stderr)

    rows: dict[tuple, list[dict]] = {}
    configs = []
    for num_tasks in args.tasks:
        tasks = [str(d) for d in task_dirs[:num_tasks]]
        files = [str(p) for d in [base_dir, *task_dirs[:num_tasks]] for p in sorted(Path(d).glob("*.safetensors"))]
        configs.append(
            (
                (num_tasks, "floor", "-", 1),
                {"kind": "floor", "files": files, "output": str(workdir / "floor"), "output_bytes": size},
                sys.executable,
            )
        )
        for method in args.methods:
            for threads in args.threads:
                spec = {
                    "kind": "hf_simo",
                    "method": method,
                    "tasks": tasks,
                    "base": str(base_dir),
                    "threads": threads,
                    "num_threads_option": len(args.threads) > 1 or threads != 1,
                }
                configs.append(((num_tasks, method, "hf_simo", threads), spec, sys.executable))
            for peer in peers:
                if method in PEER_METHODS[peer]:
                    spec = {
                        "kind": peer,
                        "method": method,
                        "peer_base": str(peer_base),
                        "peer_tasks": [str(p) for p in peer_tasks[:num_tasks]],
                        "threads": 1,
                    }
                    configs.append(((num_tasks, method, peer, 1), spec, pythons[peer]))
    imports = run_worker({"kind": "import", "threads": 1})
    for repeat in range(args.repeat):
        for name, spec, python in configs:
            output = workdir / "out" / "-".join(map(str, name)).replace(" ", "_")
            shutil.rmtree(output, ignore_errors=True)
            result = run_worker({**spec, "output": str(output)}, python)
            rows.setdefault(name, []).append(result)
            print(f"{name}: {result}", file=sys.stderr)
            if repeat == args.repeat - 1 and "error" not in result and name[1] != "floor":
                rows[name][-1]["output"] = str(output)
    # match: every output against hf_simo's (1 thread) at the same method and T
    matches = {}
    for name, results in rows.items():
        if name[1] == "floor" or "output" not in results[-1]:
            continue
        reference = next(
            (
                rows[k][-1].get("output")
                for k in rows
                if k[:2] == name[:2] and k[2] == "hf_simo" and k[3] == args.threads[0]
            ),
            None,
        )
        if reference is None or reference == results[-1]["output"]:
            continue
        matches[name] = compare(Path(reference), Path(results[-1]["output"]))
    if args.peers and "peft" in peers and "ties_tensor" in args.methods:
        for num_tasks in args.tasks:  # PEFT with the reference's kept count per tensor (see the docstring)
            output = workdir / "out" / f"peft-match-{num_tasks}"
            spec = {
                "kind": "peft",
                "method": "ties_tensor",
                "peer_base": str(peer_base),
                "peer_tasks": [str(p) for p in peer_tasks[:num_tasks]],
                "threads": 1,
                "match": True,
                "output": str(output),
            }
            if "error" not in run_worker(spec, pythons["peft"]):
                reference = rows.get((num_tasks, "ties_tensor", "hf_simo", args.threads[0]), [{}])[-1].get("output")
                if reference:
                    matches[(num_tasks, "ties_tensor", "peft (same kept count)", 1)] = compare(Path(reference), output)
    if not args.keep:
        shutil.rmtree(workdir / "out", ignore_errors=True)

    import torch  # noqa: F401  (imported before the timed call, as the peers import it)

    lines = [
        f"Machine: {_machine()}; torch {torch.__version__}; {datetime.datetime.now().isoformat(timespec='minutes')}; "
        f"encoder {args.encoder} ({size / 2**20:.0f} MiB per checkpoint, float32); best of {args.repeat} interleaved "
        f"run(s), warm page cache; `import` (interpreter + hf_simo): {imports.get('wall_s', float('nan')):.2f} s, "
        f"{imports.get('peak_rss_mib', float('nan')):.0f} MiB.",
        "",
        "| T | method | implementation | threads | wall (s) | CPU (s) | x floor | peak RSS (MiB) | load avg | output vs hf_simo |",
        "|--:|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    floors = {}
    for name, results in rows.items():
        good = [r for r in results if "error" not in r]
        if name[1] == "floor" and good:
            floors[name[0]] = min(r["wall_s"] for r in good)
    for name, results in rows.items():
        good = [r for r in results if "error" not in r]
        if not good:
            lines.append(
                f"| {name[0]} | {name[1]} | {name[2]} | {name[3]} | error: {results[-1]['error'][:80]} | | | | | |"
            )
            continue
        best = min(good, key=lambda r: r["wall_s"])
        ratio = best["wall_s"] / floors[name[0]] if name[0] in floors else float("nan")
        lines.append(
            f"| {name[0]} | {name[1]} | {name[2]} | {name[3]} | {best['wall_s']:.2f} | {best['cpu_s']:.2f} | {ratio:.1f} | "
            f"{max(r['peak_rss_mib'] for r in good):.0f} | {best['load']:.1f} | {matches.get(name, '')} |"
        )
    for name, verdict in matches.items():
        if name not in rows:
            lines.append(f"| {name[0]} | {name[1]} | {name[2]} | {name[3]} | | | | | | {verdict} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
