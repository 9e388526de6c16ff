"""A work directory held by the one job or run working in it.

The lock is the operating system's (``filelock``), so a killed holder leaves nothing to
clean up and a retried job can take it at once; beside it, ``.lock.owner`` says who
holds it, for the message of whoever finds it taken. On a cluster the directories must
be on a shared file system whose locks reach every machine (NFS with lockd, most
cluster file systems).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

LOCK_FILE = ".lock"


class Busy(RuntimeError):
    """The directory is held by someone else and the caller would not wait."""


def _holder(owner: Path) -> str:
    try:
        return owner.read_text().strip() or "another process"
    except OSError:
        return "another process"


def _write_owner(owner: Path) -> None:
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    text = f"pid {os.getpid()} on {socket.gethostname()} since {when}"
    fd, temp = tempfile.mkstemp(dir=owner.parent, prefix=f".{owner.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temp, owner)


@contextlib.contextmanager
def hold(
    directory: str | os.PathLike,
    wait: bool = False,
    log: Callable[[str], None] = print,
    name: str = LOCK_FILE,
) -> Iterator[None]:
    """Holds ``directory`` (created if missing) for the ``with`` block, through the lock
    file ``name`` in it (one directory may hold several locks, one per job writing in
    it). When another process holds it: ``wait`` blocks until it is free (logging who
    holds it once), otherwise ``Busy`` is raised naming the holder."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    path, owner = root / name, root / f"{name}.owner"
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = _holder(owner)
        if not wait:
            raise Busy(f"{root} is in use by {holder}; wait for it to end") from None
        log(f"{root} is in use by {holder}; waiting for it")
        lock.acquire()
    try:
        _write_owner(owner)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
