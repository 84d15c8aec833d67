"""Atomic writes: an output is replaced only by a complete new version, by one writer at a time, and a writer killed
at any moment loses nothing.

- `atomic_file(path)` / `atomic_write_text` / `atomic_write_json`: the content goes to a temporary file beside
  `path`, is flushed to disk, then renamed over `path` (`os.replace`): readers see the old file or the new one.
- `atomic_folder(target, overwrite=..., wait_for_lock=...)`: a context manager yielding an empty temporary folder
  beside `target`; when the block succeeds it becomes `target`. An existing `target` stays in place and complete
  until the new folder is: then `target` is renamed aside, the new folder renamed in, and the previous one deleted.
  The whole write holds `output_lock(target)`, and starts with `recover_output(target)`.
- `output_lock(target)`: an exclusive lock (`filelock`, an flock the kernel releases when its holder dies) on
  ``.<name>.lock`` beside `target`. A second writer fails at once with `OutputBusyError`, or waits if asked. The
  empty lock file stays after release on purpose: deleting a lock file lets a waiter and a newcomer lock two
  different files at once.
- `recover_output(target)`: what a killed writer left. While the lock is held no other writer is alive, so every
  temporary of `target` belongs to a dead run: the previous output is put back if the kill fell between the two
  renames of a swap, and every other temporary is deleted.

Temporaries are named ``.<name>.<host>-<pid>-<random>.<kind>`` beside their target: ``partial`` (a folder being
written), ``old`` (the previous folder during a swap), ``tmp`` (a file being written; one whose process is gone
from this host is deleted by the next write of that file). Recovery also removes the ``.<name>.<random>.partial``
and ``.old`` folders earlier versions left.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .crashpoints import pause_point
from .errors import OutputBusyError, OutputExistsError


logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _temporary(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def temporaries(target: str | os.PathLike, kind: str) -> list[Path]:
    """The temporaries of `kind` (partial, old, tmp) beside `target`, whoever made them: ``.<name>.<token>.<kind>``
    with a token without dots (so ``.<name>.v2.<token>.<kind>``, a temporary of ``<name>.v2``, is not one)."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"[A-Za-z0-9_-]+\." + re.escape(kind))
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file or a folder entry to disk (best effort: some platforms cannot open folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


# ---------------------------------------------------------------------------------------------------- files


def _remove_dead_file_temporaries(path: Path) -> None:
    import psutil  # an accelerate dependency

    own = re.compile(re.escape(f".{path.name}.{_HOST}-") + r"(?P<pid>\d+)-[0-9a-f]+\.tmp")
    for stale in temporaries(path, "tmp"):
        match = own.fullmatch(stale.name)
        if match and int(match["pid"]) != os.getpid() and not psutil.pid_exists(int(match["pid"])):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` (flushed to disk) when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_file_temporaries(path)
    temporary = _temporary(path, "tmp")
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"nothing was written to the temporary file of {path}")
        _fsync(temporary)
        pause_point(f"atomic:file-written:{path.name}")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_file(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """`json.dumps(data, **dumps)` written to `path` atomically (serialised first: a bad value writes nothing)."""
    return atomic_write_text(path, json.dumps(data, **dumps))


# ---------------------------------------------------------------------------------------------------- folders


@contextmanager
def output_lock(target: str | os.PathLike, *, wait: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of `target` for the block; `OutputBusyError` when another process holds it, unless
    `wait` (then block until it is released)."""
    from filelock import FileLock, Timeout

    target = Path(target)
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise OutputBusyError(
                f"{target} is being written by another process (it holds {path}); wait until it finishes, or pass "
                "wait_for_lock=True (CLI: --wait-for-lock) to wait for it"
            ) from None
        logger.warning("waiting for another process to finish writing %s (lock %s)", target, path)
        lock.acquire(timeout=-1)
    try:
        yield path
    finally:
        lock.release()


def recover_output(target: str | os.PathLike) -> list[str]:
    """Repair what killed writers of `target` left; call it holding `output_lock(target)`. Returns what it did.

    If `target` is missing and a previous version waits aside (a kill between the two renames of a swap), it is put
    back: the interrupted run never reported success, so the previous output is the current one. Every other
    temporary folder of `target` is deleted.
    """
    target = Path(target)
    done: list[str] = []
    olds = temporaries(target, "old")
    if olds and not os.path.lexists(target):
        previous = max(olds, key=os.path.getmtime)
        olds.remove(previous)
        nested = previous / target.name  # earlier versions moved the old folder into a temporary folder
        if nested.is_dir() and len(list(previous.iterdir())) == 1:
            os.rename(nested, target)
            olds.append(previous)
        else:
            os.rename(previous, target)
        done.append(f"restored the previous {target} (a run was killed while replacing it)")
    stale = olds + temporaries(target, "partial")
    for path in stale:
        _remove(path)
    if stale:
        done.append(f"removed {len(stale)} temporary folder(s) of killed runs beside {target}")
    for message in done:
        logger.warning(message)
    return done


def check_can_write(target: str | os.PathLike, overwrite: bool | str, when: str = "") -> None:
    """`OutputExistsError` (a `FileExistsError`) if `target` exists and `overwrite` is off (a quick check before any
    work); ``overwrite="keep"`` (a cache) accepts an existing `target`."""
    target = Path(target)
    if os.path.lexists(target) and not overwrite:
        raise OutputExistsError(
            f"{target} already exists{when}; pass overwrite=True (CLI: --overwrite_output_dir) to replace it"
        )


def _swap_in(temporary: Path, target: Path, overwrite: bool | str) -> None:
    """Rename the complete `temporary` to `target`; an existing `target` is renamed aside first and deleted last
    (``overwrite="keep"``: an existing `target` stays and `temporary` is discarded)."""
    _fsync_tree(temporary)
    if not os.path.lexists(target):
        os.rename(temporary, target)
        _fsync(target.parent)
        return
    if overwrite == "keep":
        _remove(temporary)
        return
    check_can_write(target, overwrite, " (it appeared while this run was writing)")
    previous = _temporary(target, "old")
    os.rename(target, previous)
    pause_point(f"atomic:old-moved-aside:{target.name}")
    try:
        os.rename(temporary, target)
    except BaseException:
        if not os.path.lexists(target):
            os.rename(previous, target)
        raise
    _fsync(target.parent)
    pause_point(f"atomic:swapped:{target.name}")
    _remove(previous)


@contextmanager
def atomic_folder(
    target: str | os.PathLike, *, overwrite: bool | str = False, wait_for_lock: bool = False
) -> Iterator[Path]:
    """Yield an empty folder beside `target` to write into; it becomes `target` when the block succeeds.

    On any error (or a kill) `target` is left as it was. `OutputExistsError` (a `FileExistsError`) if `target`
    exists (also if it appeared while waiting for the lock) unless `overwrite`; ``overwrite="keep"`` is a cache's
    rule: a `target` that exists when the block ends (another process built it meanwhile) is kept and this one
    discarded, without error. `OutputBusyError` if another process is writing it, unless `wait_for_lock`.
    """
    target = Path(target)
    check_can_write(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(target, wait=wait_for_lock):
        recover_output(target)
        check_can_write(target, overwrite, " (written or restored while this run waited for its lock)")
        temporary = _temporary(target, "partial")
        temporary.mkdir()
        try:
            yield temporary
            pause_point(f"atomic:folder-complete:{target.name}")
            _swap_in(temporary, target, overwrite)
        except BaseException:
            _remove(temporary)
            raise


# ------------------------------------------------------------------------------------- several processes


def staging_folder(target: str | os.PathLike, token: str) -> Path:
    """An empty temporary folder beside `target` that several processes write into together (each computes the
    same path from the same `token`, e.g. a step number), before one of them `commit_folder`s it.

    Named like `atomic_folder`'s temporaries (``.<name>.<token>.partial``), so `recover_output` removes what a
    killed run left. The caller orders the processes (barriers); nothing here locks.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        raise ValueError(f"token must be letters, digits, '-' or '_', got {token!r}")
    target = Path(target)
    staging = target.parent / f".{target.name}.{token}.partial"
    if staging.exists():
        _remove(staging)
    staging.mkdir(parents=True)
    return staging


def commit_folder(staging: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool | str = False) -> Path:
    """Make the complete `staging` folder `target` (flushed, swapped in as `atomic_folder` does); one process calls
    it, after every writer has finished."""
    target = Path(target)
    _swap_in(Path(staging), target, overwrite)
    return target


__all__ = [
    "OutputBusyError",
    "OutputExistsError",
    "atomic_file",
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_can_write",
    "commit_folder",
    "lock_path",
    "output_lock",
    "recover_output",
    "staging_folder",
    "temporaries",
]
