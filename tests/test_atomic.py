"""hf_simo.atomic: files and folders are replaced only by complete new versions, one writer at a time, and what a
killed writer leaves is repaired (previous output restored) or removed by the next one."""

from __future__ import annotations

import json
import threading

import pytest

from helpers.processes import PausedProcess
from hf_simo.atomic import (
    OutputBusyError,
    atomic_file,
    atomic_folder,
    atomic_write_json,
    atomic_write_text,
    lock_path,
    output_lock,
    recover_output,
    temporaries,
)


def _siblings(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name and p != lock_path(path))


def test_a_failed_file_write_keeps_the_previous_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(RuntimeError, match="boom"), atomic_file(path) as temporary:
        temporary.write_text('{"v": 2, "trunc')
        raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"v": 1}
    with pytest.raises(TypeError):  # not serialisable: nothing is written, not even a temporary
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1} and _siblings(path) == []
    atomic_write_text(path, '{"v": 3}')
    assert json.loads(path.read_text()) == {"v": 3} and _siblings(path) == []


def test_a_file_writer_killed_before_the_rename_loses_nothing_and_its_temporary_is_removed_later(tmp_path):
    path = tmp_path / "results.md"
    atomic_write_text(path, "old")
    code = f"from hf_simo.atomic import atomic_write_text; atomic_write_text({str(path)!r}, 'new')"
    writer = PausedProcess(["-c", code], "atomic:file-written:results.md", tmp_path)
    [temporary] = temporaries(path, "tmp")
    assert temporary.read_text() == "new"  # complete, not yet renamed
    writer.kill()
    assert path.read_text() == "old"
    atomic_write_text(path, "newer")  # the dead writer's temporary goes
    assert path.read_text() == "newer" and temporaries(path, "tmp") == []


def test_atomic_folder_replaces_only_a_complete_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as folder:
        (folder / "a.txt").write_text("1")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError, match="overwrite=True"), atomic_folder(target):
        pass
    with pytest.raises(RuntimeError, match="half way"), atomic_folder(target, overwrite=True) as folder:
        (folder / "a.txt").write_text("2")
        raise RuntimeError("half way")
    assert (target / "a.txt").read_text() == "1" and sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_folder(target, overwrite=True) as folder:
        (folder / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert _siblings(target) == []


def test_recovery_restores_an_output_caught_between_the_two_renames_and_removes_the_rest(tmp_path):
    target = tmp_path / "out"
    old = tmp_path / ".out.host-123-0a1b2c3d.old"  # the previous output, renamed aside
    old.mkdir()
    (old / "config.json").write_text("previous")
    partial = tmp_path / ".out.host-123-0a1b2c3d.partial"  # the new one, complete or not
    partial.mkdir()
    (partial / "config.json").write_text("new")
    legacy = tmp_path / ".out.k2j4h5g6.partial"  # an earlier version's temporary
    legacy.mkdir()
    other = tmp_path / ".out.v2.host-1-ff.partial"  # a temporary of the output out.v2: not ours
    other.mkdir()
    done = recover_output(target)
    assert (target / "config.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.v2.host-1-ff.partial", "out"]
    assert any("restored" in line for line in done) and any("removed 2" in line for line in done)

    stale = tmp_path / ".out.host-9-12345678.old"  # killed after the swap: the output is the new one
    stale.mkdir()
    recover_output(target)
    assert (target / "config.json").read_text() == "previous" and not stale.exists()

    legacy_old = tmp_path / ".out2.abcd1234.old"  # earlier versions nested the previous folder
    (legacy_old / "out2").mkdir(parents=True)
    (legacy_old / "out2" / "config.json").write_text("legacy")
    recover_output(tmp_path / "out2")
    assert (tmp_path / "out2" / "config.json").read_text() == "legacy" and not legacy_old.exists()


def test_the_output_lock_admits_one_writer_and_waits_when_asked(tmp_path):
    target = tmp_path / "out"
    acquired = threading.Event()

    def waiter():
        with output_lock(target, wait=True):
            acquired.set()

    with output_lock(target):
        busy = r"being written by another process.*--wait-for-lock"
        with pytest.raises(OutputBusyError, match=busy), output_lock(target):
            pass
        with pytest.raises(OutputBusyError), atomic_folder(target):  # the folder writer takes the same lock
            pass
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not acquired.wait(0.5)  # blocked while the first writer holds the lock
    thread.join(timeout=30)
    assert acquired.is_set()
    assert lock_path(target).stat().st_size == 0 and not target.exists()


def test_bytes_are_written_atomically(tmp_path):
    from hf_simo.atomic import atomic_write_bytes

    target = tmp_path / "weights.bin"
    assert atomic_write_bytes(target, b"\x00\x01") == target and target.read_bytes() == b"\x00\x01"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and temporaries(target, "tmp") == []


def test_a_cache_folder_keeps_what_another_process_built_meanwhile(tmp_path):
    from hf_simo.errors import OutputExistsError

    target = tmp_path / "cache"
    with atomic_folder(target, overwrite="keep") as folder:
        (folder / "data").write_text("first")
    assert (target / "data").read_text() == "first"
    with atomic_folder(target, overwrite="keep") as folder:  # built meanwhile (here: before): kept, no error
        (folder / "data").write_text("second")
    assert (target / "data").read_text() == "first"
    assert temporaries(target, "partial") == [] and temporaries(target, "old") == []
    with pytest.raises(OutputExistsError, match="already exists"), atomic_folder(target):
        pass


def test_a_staging_folder_written_by_several_processes_is_committed_once(tmp_path):
    from hf_simo.atomic import commit_folder, staging_folder

    target = tmp_path / "checkpoint-10"
    staging = staging_folder(target, "step-10")
    assert staging == staging_folder(target, "step-10") and staging.is_dir()  # every process computes the same one
    (staging / "rank0.bin").write_text("a")
    (staging / "rank1.bin").write_text("b")
    assert commit_folder(staging, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["rank0.bin", "rank1.bin"] and not staging.exists()
    stale = staging_folder(target, "step-20")  # a run killed while writing: the next writer's recovery removes it
    (stale / "rank0.bin").write_text("x")
    assert recover_output(target) and not stale.exists() and target.is_dir()
    with pytest.raises(ValueError, match="token must be"):
        staging_folder(target, "../escape")
