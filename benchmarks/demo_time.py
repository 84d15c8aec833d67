"""How long `hf-simo demo` takes against the size of its encoder: chooses the size of the shipped encoder.

Each run is the README's main job as a user runs it — `hf-simo demo` in a fresh subprocess, with a fresh `HF_HOME`
(so the benchmark data is generated, as on a new machine) and a fresh output folder — fine-tuning from a random
`Dinov2Model` of the given width and depth (patch 8, 64 px, head dim 32, MLP ratio 4) saved as a folder and passed
with `--model_name_or_path`. A random encoder times the demo like a pre-trained one of the same size: the schedules
are fixed epochs; only early stopping of the re-alignment stages depends on the weights.

The size `pretrain` is the demo as it was before an encoder shipped with the package: `--pretrain_encoder`, which
pre-trains the 128x4 default encoder first; its wall time on a quiet 2-core machine was measured before (7.0, 8.0 and
7.2 minutes, `benchmarks/realign_results.py`), which makes it the reference that projects every size to a quiet
machine: projected minutes = reference minutes x CPU time(size) / CPU time(reference), from runs under the same
conditions (interleaved, same thread count).

Recorded per run: wall time, the process's CPU time (user + sys of the demo and its children, from `os.wait4`), the
torch thread count, the load average before, during (sampled every 5 s) and after, and the demo's own stage timings.
The machine is shared: wall time is noisy, and on a loaded machine 2 torch threads without `OMP_WAIT_POLICY=PASSIVE`
spin (several times slower), so sizes are compared by CPU time at 1 thread, interleaved so that load affects them
alike; two benchmark processes can run side by side (`--records` of both to one file) to halve the wall time.

    python benchmarks/demo_time.py --sizes pretrain 128x4 160x4 128x6 --threads 1 --output demo_time.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median


def make_encoder(folder: Path, hidden: int, layers: int, image_size: int = 64, patch: int = 8) -> int:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(
        Dinov2Config(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 32),
            mlp_ratio=4,
            patch_size=patch,
            image_size=image_size,
        )
    )
    model.save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


class LoadSampler:
    """Samples the 1-minute load average every `period` seconds while a run is going."""

    def __init__(self, period: float = 5.0):
        self.period, self.samples, self._stop = period, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_demo(encoder: Path | None, threads: int, extra: list[str], keep: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="demo-time-"))
    env = {**os.environ, "HF_HOME": str(work / "hf_home"), "MPLCONFIGDIR": str(work / "mpl"), "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # the demo's --num_threads decides
    hf_simo = shutil.which("hf-simo", path=str(Path(sys.executable).parent)) or "hf-simo"
    out = work / "demo"
    command = [hf_simo, "demo", "--output_dir", str(out)]
    command += ["--pretrain_encoder"] if encoder is None else ["--model_name_or_path", str(encoder)]
    command += ["--num_threads", str(threads), "--disable_tqdm", *extra]
    load_before = os.getloadavg()
    start = time.perf_counter()
    with LoadSampler() as sampler, open(work / "log.txt", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    record = {
        "returncode": process.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "user_s": round(usage.ru_utime, 1),
        "sys_s": round(usage.ru_stime, 1),
        "max_rss_mib": round(usage.ru_maxrss / 1024),
        "load_before": round(load_before[0], 2),
        "load_during": round(sum(sampler.samples) / len(sampler.samples), 2) if sampler.samples else None,
        "load_max": round(max(sampler.samples), 2) if sampler.samples else None,
        "load_after": round(os.getloadavg()[0], 2),
    }
    results = out / "results.json"
    if results.is_file():
        record["stage_timings"] = json.loads(results.read_text()).get("timings")
    if process.returncode != 0:
        record["log_tail"] = (work / "log.txt").read_text()[-3000:]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "log.txt", keep / f"log-{int(time.time())}.txt")
    shutil.rmtree(work, ignore_errors=True)
    return record


def summarize(records: list[dict], reference: str, reference_minutes: float) -> str:
    sizes: dict[str, list[dict]] = {}
    for record in records:
        sizes.setdefault(record["size"], []).append(record)
    ref = [r["cpu_s"] for r in sizes.get(reference, []) if r["returncode"] == 0]
    ref_cpu = median(ref) if ref else None
    threads = sorted({r["threads"] for r in records})
    lines = [
        f"`hf-simo demo` with a random encoder of each size ({', '.join(map(str, threads))} torch thread(s), fresh "
        f"HF_HOME per run, {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {os.cpu_count()} logical "
        f"CPUs). Projected = {reference_minutes} min (the reference `{reference}` on a quiet 2-core machine) x CPU "
        "time / the reference's CPU time.",
        "",
        "| encoder (hidden × blocks) | parameters | fp32 / bf16 MB | runs | wall median (min) "
        "| CPU user+sys median (min) | CPU / reference | projected quiet 2-core demo (min) | load avg during |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for size, runs in sizes.items():
        ok = [r for r in runs if r["returncode"] == 0]
        if not ok:
            lines.append(f"| {size} | | | 0 of {len(runs)} succeeded | | | | | |")
            continue
        params = ok[0]["parameters"]
        cpu = median(r["cpu_s"] for r in ok)
        loads = [r["load_during"] for r in ok if r["load_during"] is not None]
        ratio = cpu / ref_cpu if ref_cpu else float("nan")
        lines.append(
            f"| {size} | {params / 1e6:.2f}M | {params * 4 / 1e6:.1f} / {params * 2 / 1e6:.1f} | {len(ok)} "
            f"| {median(r['wall_s'] for r in ok) / 60:.2f} | {cpu / 60:.2f} | {ratio:.2f} "
            f"| {reference_minutes * ratio:.1f} | {', '.join(f'{x:.1f}' for x in loads)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", nargs="+", default=["pretrain", "128x4", "160x4", "128x6"], help="HIDDENxBLOCKS, or pretrain"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference", default="pretrain", help="The size whose quiet time is known.")
    parser.add_argument(
        "--reference-minutes", type=float, default=7.4, help="Its quiet 2-core wall time (7.0, 8.0, 7.2 min: 7.4)."
    )
    parser.add_argument("--summarize", default=None, help="Only print the summary of this --records file.")
    parser.add_argument("--output", default=None, help="Markdown summary file (default: print only).")
    parser.add_argument("--records", default=None, help="JSONL file of every run (appended).")
    parser.add_argument("--keep-logs", default=None, help="Folder to keep each run's log in.")
    parser.add_argument("demo_args", nargs="*", help="Extra `hf-simo demo` options (after --).")
    args = parser.parse_args(argv)
    if args.summarize:
        records = [json.loads(line) for line in Path(args.summarize).read_text().splitlines() if line.strip()]
        print(summarize(records, args.reference, args.reference_minutes))
        return
    root = Path(tempfile.mkdtemp(prefix="demo-time-encoders-"))
    encoders: dict[str, tuple[Path | None, int]] = {}
    for size in args.sizes:
        if size == "pretrain":
            encoders[size] = (None, make_encoder(root / size, 128, 4))  # what --pretrain_encoder builds
            continue
        hidden, layers = (int(x) for x in size.lower().split("x"))
        encoders[size] = (root / size, make_encoder(root / size, hidden, layers))
    records = []
    for repeat in range(args.repeats):
        for size, (folder, params) in encoders.items():
            record = {"size": size, "parameters": params, "repeat": repeat, "threads": args.threads}
            record.update(
                run_demo(folder, args.threads, args.demo_args, Path(args.keep_logs) if args.keep_logs else None)
            )
            record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            print(json.dumps(record), flush=True)
            records.append(record)
            if args.records:
                with open(args.records, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
    if args.records:
        records = [json.loads(line) for line in Path(args.records).read_text().splitlines() if line.strip()]
    table = summarize(records, args.reference, args.reference_minutes)
    print(table)
    if args.output:
        Path(args.output).write_text(table)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
