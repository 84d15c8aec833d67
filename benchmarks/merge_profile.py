"""Profile one merge (cProfile): where a merge's time goes apart from reading, computing and writing tensors.

    python benchmarks/merge_profile.py --encoder tiny --tasks 2 --method ta --top 25

Generates the checkpoints of `benchmarks/merge.py` (untimed), runs `merge_to_folder` once to warm the page cache and
the imports, then once under cProfile, and prints the wall/CPU time and the functions with the largest cumulative
time (the fixed per-merge costs show up as the functions that do not scale with the encoder).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

from merge import METHODS, generate  # noqa: E402  (benchmarks/merge.py, the same checkpoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--method", default="ta", choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative")
    args = parser.parse_args(argv)

    import torch

    from hf_simo.merging import merge_to_folder
    from hf_simo.utils.logging import disable_progress_bars

    torch.set_num_threads(args.threads)
    disable_progress_bars()
    with tempfile.TemporaryDirectory() as workdir:
        base, tasks, size = generate(Path(workdir) / "checkpoints", args.encoder, args.tasks)
        method, options, alpha = METHODS[args.method]

        def run(out: str) -> None:
            merge_to_folder(Path(workdir) / out, [str(t) for t in tasks], str(base), method, options, alpha=alpha)

        run("warm")
        profiler = cProfile.Profile()
        start, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        run("profiled")
        profiler.disable()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        run("unprofiled")
        plain = time.perf_counter() - start
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats(args.sort).print_stats(args.top)
    print(
        f"{args.method}, T = {args.tasks}, encoder {args.encoder} ({size / 2**20:.0f} MiB per checkpoint), "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}: profiled {wall:.2f} s wall, {cpu:.2f} s "
        f"CPU; unprofiled {plain:.2f} s wall"
    )
    print(stream.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
