"""What every bad-input case asserts (tests/*/test_bad_input.py): the program ends with
one line naming the culprit (no traceback) and a non-zero exit status, and leaves
nothing half-written and no earlier result lost."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import runpy
import sys
import tempfile
from pathlib import Path

import pytest

# Locks are the operating system's and may stay behind by design; they hold no data.
IGNORED = (".lock", ".lock.owner", ".export.lock")

# ``run_program`` forks each program from one server process that imported these once:
# the upstream binaries import TensorFlow, which costs seconds per fresh interpreter,
# and the server never runs an op, so each fork starts as a fresh process would.
PRELOADED = ("tensorflow", "tensorflow_datasets", "tf_keras", "experts.jobs", "hub_export.exporter")
_PROGRAMS = multiprocessing.get_context("forkserver")
_PROGRAMS.set_forkserver_preload(list(PRELOADED))


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with a hash of its bytes."""
    files = {}
    for root in map(Path, roots):
        if root.is_file():
            files[str(root)] = hashlib.sha1(root.read_bytes()).hexdigest()
            continue
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and path.name not in IGNORED:
                files[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


def fails_cleanly(call, program: str, *culprits: str, roots=()) -> str:
    """Runs ``call`` (a binary's entry point on a config) and checks the three things;
    returns the message."""
    before = snapshot(*roots)
    with pytest.raises(SystemExit) as exit_info:
        call()
    message = exit_info.value.code
    # sys.exit(<str>) prints the string alone to stderr and exits with status 1.
    assert isinstance(message, str), f"exit code {message!r}: not a one-line error"
    assert message.startswith(f"{program}: error: "), message
    assert "\n" not in message and "Traceback" not in message, message
    for culprit in culprits:
        assert culprit in message, f"{culprit!r} not named in: {message}"
    after = snapshot(*roots)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    return message


def user_files(root: Path) -> Path:
    """A user's notes and photo under ``root``, for the cases where a command must not
    remove what it did not write (compare ``snapshot(root)`` before and after)."""
    (root / "photos").mkdir(parents=True)
    (root / "notes.txt").write_text("my notes\n")
    (root / "photos" / "cat.jpg").write_bytes(bytes(range(256)))
    return root


def run_program(program: str, args, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """``python -m <program> <args>`` run from ``cwd``: its exit status and stderr. The
    program runs as ``__main__`` in a process of its own, as from a shell, but forked from
    a process that has imported the heavy libraries already (``PRELOADED``)."""
    with tempfile.TemporaryDirectory() as scratch:
        stderr = Path(scratch) / "stderr"
        process = _PROGRAMS.Process(
            target=_as_main, args=(program, [str(a) for a in args], str(cwd), str(stderr))
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise AssertionError(f"{program} {args}: still running after {timeout} s")
        return process.exitcode, stderr.read_text()


def _as_main(program: str, args: list[str], cwd: str, stderr: str) -> None:
    """``python -m`` in the forked process: stdout discarded, stderr to a file. A
    ``SystemExit`` ends it as it ends an interpreter (multiprocessing prints a message
    given as a string and exits with 1; a traceback for any other exception)."""
    os.chdir(cwd)
    with open(stderr, "w") as err, open(os.devnull, "w") as out:
        os.dup2(err.fileno(), 2)
        os.dup2(out.fileno(), 1)
    sys.argv = [program, *args]
    runpy.run_module(program, run_name="__main__", alter_sys=True)
