"""Merges killed (SIGKILL) at the dangerous moments of writing an output, and concurrent merges into one output.

A merge subprocess is held at a `hf_simo.crashpoints` pause point and killed there, as a crash would land; the
previous output must survive every kill, and the next run must repair or remove what the killed one left.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from helpers.checkpoints import build_sources, leftovers
from helpers.processes import PausedProcess
from hf_simo.atomic import temporaries
from hf_simo.cli import main
from hf_simo.merging import merge_to_folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    base, tasks = build_sources(root / "src")
    references = {alpha: merge_to_folder(root / f"ref-{alpha}", tasks, base, alpha=alpha) for alpha in (0.5, 0.9)}
    return base, tasks, {alpha: (folder / "model.safetensors").read_bytes() for alpha, folder in references.items()}


def _cli(base, tasks, out, alpha, *extra) -> list[str]:
    argv = ["merge", "--base_model", str(base), "--output_dir", str(out), "--alpha", str(alpha), "--disable_tqdm"]
    argv += [*extra, "--task_checkpoints", *map(str, tasks)]
    return argv


def _weights(folder) -> bytes:
    return (folder / "model.safetensors").read_bytes()


# at each point: what holds the output path right after the kill (None: nothing, the previous output waits aside).
# (`atomic:folder-complete:out`, the new folder complete beside the previous one, is where the concurrency test holds.)
AFTER_KILL = {
    "merge:writing": "previous",  # part of the new tensors written into the temporary folder
    "atomic:old-moved-aside:out": None,  # between the two renames of the swap
    "atomic:swapped:out": "new",  # the previous one not deleted yet
}


@pytest.mark.parametrize("point", list(AFTER_KILL))
def test_a_merge_killed_while_overwriting_loses_nothing_and_the_next_run_repairs(sources, tmp_path, point):
    base, tasks, reference = sources
    out = tmp_path / "out"
    merge_to_folder(out, tasks, base, alpha=0.5)  # the previous output
    writer = PausedProcess(
        ["-m", "hf_simo.cli", *_cli(base, tasks, out, 0.9, "--overwrite_output_dir")], point, tmp_path
    )
    writer.kill()

    holder = AFTER_KILL[point]
    if holder is None:
        assert not out.exists()
        [aside] = temporaries(out, "old")
        assert _weights(aside) == reference[0.5]  # recoverable
        # the next run, even one that may not overwrite, first puts the previous output back
        with pytest.raises(FileExistsError, match="restored while this run waited"):
            merge_to_folder(out, tasks, base, alpha=0.9)
        assert _weights(out) == reference[0.5]
        assert leftovers(tmp_path, "out") == ["out"]
    else:
        assert _weights(out) == reference[0.5 if holder == "previous" else 0.9]
        assert len(leftovers(tmp_path, "out")) == 2  # the output and one temporary of the killed run

    merge_to_folder(out, tasks, base, alpha=0.9, overwrite=True)  # the same command, again
    assert _weights(out) == reference[0.9]
    assert leftovers(tmp_path, "out") == ["out"]  # nothing of the killed run is left, nothing of this one


def test_two_merges_into_one_output_exactly_one_wins(sources, tmp_path, capsys, caplog):
    base, tasks, reference = sources
    out = tmp_path / "out"
    # the first merge holds the output's lock, its new folder complete, not yet in place
    first = PausedProcess(["-m", "hf_simo.cli", *_cli(base, tasks, out, 0.9)], "atomic:folder-complete:out", tmp_path)

    assert main(_cli(base, tasks, out, 0.5)) == 1  # a second one fails at once, in one line, writing nothing
    err = capsys.readouterr().err
    assert "is being written by another process" in err and "--wait-for-lock" in err and err.count("\n") == 1

    outcome = {}

    def third():  # waits for the lock; without overwrite it must not replace what the first one writes meanwhile
        try:
            merge_to_folder(out, tasks, base, alpha=0.5, wait_for_lock=True)
        except FileExistsError as err:
            outcome["error"] = str(err)

    with caplog.at_level(logging.WARNING, logger="hf_simo.atomic"):
        thread = threading.Thread(target=third)
        thread.start()
        deadline = time.monotonic() + 120
        while not any("waiting for another process" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline and thread.is_alive(), "the third merge never waited for the lock"
            time.sleep(0.05)
        assert first.resume() == 0, first.output()
        thread.join(timeout=120)
    assert "while this run waited for its lock" in outcome["error"]
    assert _weights(out) == reference[0.9]  # the first merge's output, untouched
    assert leftovers(tmp_path, "out") == ["out"]

    # asked to overwrite, a waiting merge replaces it, once the holder is done
    assert main(_cli(base, tasks, out, 0.5, "--overwrite_output_dir", "--wait-for-lock")) == 0
    assert _weights(out) == reference[0.5]
