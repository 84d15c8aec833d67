"""Benchmark: how long the `hf-simo` command line takes before it does any work (issue 12, item 2).

    python benchmarks/cli_startup.py                         # every verb's --help, 5 runs each
    python benchmarks/cli_startup.py --repeats 9 --output cli_startup.md

Each measurement is a fresh interpreter, as a user's shell starts one: the wall time of `hf-simo --help`, of
`hf-simo <verb> --help` for every verb, and of `python -c "import hf_simo.cli"` (median and min over `--repeats`
runs, interleaved so that drifts in machine load hit every command alike). For each command, `-X importtime` tells
which heavy packages it imported (torch, transformers, datasets, ...) and what `import hf_simo.cli` spends its time
on, per top-level package (exclusive import time: the packages add up to the total). Target: under 1 s each on the
project's 2-core machines. Prints a Markdown table with the machine, the load average and the date.
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None, help="Markdown file to write (default: print only).")
    args = parser.parse_args(argv)
    todo = commands()
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
