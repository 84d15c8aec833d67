"""Benchmark: how long the `hf-simo` command line takes before it does any work (issue 12, item 2).

    python benchmarks/cli_startup.py                         # every verb's --help, 5 runs each
    python benchmarks/cli_startup.py --repeats 9 --output cli_startup.md

Each measurement is a fresh interpreter, as a user's shell starts one: the wall time of `hf-simo --help`, of
`hf-simo <verb> --help` for every verb, and of `python -c "import hf_simo.cli"` (median and min over `--repeats`
runs, interleaved so that drifts in machine load hit every command alike). For each command, `-X importtime` tells
which heavy packages it imported (torch, transformers, datasets, ...) and what `import hf_simo.cli` spends its time
on, per top-level package (exclusive import time: the packages add up to the total). Target: under 1 s each on the
project's 2-core machines. Prints a Markdown table with the machine, the load average and the date.

`--overhead` also measures what the command line adds to the work itself: `hf-simo merge` of two tiny
checkpoints (Task Arithmetic, written to a folder) against the same merge through the API
(`hf_simo.merging.merge_to_folder`) in a fresh interpreter, each timed from process start to exit (median and
fastest of the repeats, interleaved); the difference is the CLI's overhead over the API call (target ≤ 1 s).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict


HEAVY = ("torch", "transformers", "datasets", "accelerate", "peft", "matplotlib", "safetensors", "numpy")
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def verbs() -> list[str]:
    from hf_simo.cli import VERBS

    return list(VERBS)


def commands() -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "hf_simo.cli"]
    out = {"import hf_simo.cli": [sys.executable, "-c", "import hf_simo.cli"], "hf-simo --help": [*cli, "--help"]}
    out.update({f"hf-simo {verb} --help": [*cli, verb, "--help"] for verb in verbs()})
    return out


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def import_profile(argv: list[str]) -> tuple[float, dict[str, float], list[str]]:
    """Total import time (s), exclusive seconds per top-level package, and the heavy packages imported."""
    result = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    exclusive: dict[str, float] = defaultdict(float)
    total = 0.0
    for line in result.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        top = match.group(4).split(".")[0]
        exclusive[top] += int(match.group(1)) / 1e6
        if len(match.group(3)) == 1:  # a root of the import tree: its cumulative time counts once
            total += int(match.group(2)) / 1e6
    heavy = [name for name in HEAVY if name in exclusive]
    return total, dict(exclusive), heavy


def tiny_checkpoints(folder: str) -> dict[str, str]:
    """A tiny random θ_0 and two single-task checkpoints fine-tuned from it (perturbed encoders)."""
    import torch

    from hf_simo.modeling_simo import SimoModel
    from hf_simo.testing_utils import save_tiny_encoder

    base = save_tiny_encoder(os.path.join(folder, "base"))
    out = {"base": str(base)}
    for index, (task, spec) in enumerate({"depth": {"kind": "depth"}, "normals": {"kind": "surface_normals"}}.items()):
        torch.manual_seed(index)
        model = SimoModel.from_backbone(str(base), tasks={task: spec})
        with torch.no_grad():
            for param in model.dinov2.parameters():
                param.add_(0.01 * torch.randn_like(param))
        model.save_pretrained(os.path.join(folder, task))
        out[task] = os.path.join(folder, task)
    return out


def overhead_commands(paths: dict[str, str], folder: str) -> dict[str, list[str]]:
    sources = [f"depth={paths['depth']}", f"normals={paths['normals']}"]
    api = (
        "from hf_simo.merging import merge_to_folder\n"
        f"merge_to_folder({os.path.join(folder, 'api')!r}, {sources!r}, {paths['base']!r}, alpha=0.5, overwrite=True)"
    )
    cli = [sys.executable, "-m", "hf_simo.cli", "merge", "--task_checkpoints", *sources, "--base_model", paths["base"]]
    cli += [
        "--alpha",
        "0.5",
        "--output_dir",
        os.path.join(folder, "cli"),
        "--overwrite_output_dir",
        "--log_level",
        "error",
    ]
    return {"merge through the API": [sys.executable, "-c", api], "hf-simo merge": cli}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None, help="Markdown file to write (default: print only).")
    parser.add_argument("--overhead", action="store_true", help="Also time hf-simo merge against the API call.")
    args = parser.parse_args(argv)
    todo = commands()
    if args.overhead:
        import tempfile

        scratch = tempfile.mkdtemp(prefix="cli_overhead_")
        todo.update(overhead_commands(tiny_checkpoints(scratch), scratch))
    times: dict[str, list[float]] = {name: [] for name in todo}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, command in todo.items():
            times[name].append(wall_time(command))
    load_after = os.getloadavg()[0]
    profiles = {name: import_profile(command) for name, command in todo.items()}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Command-line start-up ({platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, {now}, load average {load_before:.1f} before / {load_after:.1f} after, "
        f"{args.repeats} runs each, interleaved):",
        "",
        "| command | wall median (s) | wall min (s) | imports (s, -X importtime) | heavy packages imported |",
        "|---|--:|--:|--:|---|",
    ]
    for name in todo:
        total, _, heavy = profiles[name]
        lines.append(
            f"| `{name}` | {statistics.median(times[name]):.2f} | {min(times[name]):.2f} | {total:.2f} | "
            f"{', '.join(heavy) or 'none'} |"
        )
    if args.overhead:
        cli, api = (statistics.median(times[name]) for name in ("hf-simo merge", "merge through the API"))
        cli_min, api_min = (min(times[name]) for name in ("hf-simo merge", "merge through the API"))
        lines += [
            "",
            f"The CLI's overhead over the API call (merge of two tiny checkpoints): {cli - api:+.2f} s by the medians "
            f"(`hf-simo merge` {cli:.2f} s, the API in a fresh interpreter {api:.2f} s), {cli_min - api_min:+.2f} s "
            f"by the fastest runs ({cli_min:.2f} s, {api_min:.2f} s).",
        ]
    total, exclusive, _ = profiles["import hf_simo.cli"]
    lines += ["", f"`import hf_simo.cli` ({total:.3f} s of imports), by top-level package:", ""]
    lines += ["| package | exclusive s | share |", "|---|--:|--:|"]
    for package, seconds in sorted(exclusive.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"| {package} | {seconds:.3f} | {seconds / total:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
