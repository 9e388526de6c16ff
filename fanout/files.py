"""Atomic writes, and the rule for directories a command replaces or removes.

Atomic writes: a reader, or a job resumed after a crash, sees either the old file or
the complete new one, never half of it.

Owned directories: a command of this project replaces or removes a directory only when
it made that directory itself, which it records by writing a marker file (``MARKER``,
holding the command's name) inside it when it makes it, or when the directory is
empty. Anything else is a user's (a ``--probes_dir`` pointed at a folder of notes, a
directory someone put in the hub's staging area) and the command refuses with
``NotOwned``, one line naming the directory, instead of deleting it.

Every package imports these helpers from here (``vtab_eval/files.py`` adds the
downstream's own formats); this module imports no project package.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MARKER = ".written-by"


class NotOwned(RuntimeError):
    """A directory a command would replace or remove holds files it did not write."""


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(prefix: str, parent: str | os.PathLike, owner: str | None = None) -> Path:
    """``tempfile.mkdtemp`` with the permissions a plain ``mkdir`` would give (it makes
    0700 directories), for directories that are renamed into place when complete.
    With ``owner``, the directory is marked as that command's (``mark_owned``)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o777 & ~current_umask())
    if owner is not None:
        mark_owned(path, owner)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the target's directory so the rename stays on one
    # file system (os.replace is atomic only there).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as indented JSON with sorted keys; NaN and infinities are refused (a
    ``ValueError``), since ``read_json`` could not read them back."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of float range")
    return value


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file, read as strictly as ``write_json`` writes: NaN, Infinity and numbers
    beyond float range are invalid JSON here, since a value read back must be writable
    again (``allow_nan=False``) and comparable. Any fault is one ``ValueError`` naming
    the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path}: invalid JSON: {' '.join(str(e).split())}") from None


def write_png(path: str | os.PathLike, image) -> Path:
    """Writes a PIL image as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())


def mark_owned(directory: str | os.PathLike, owner: str) -> None:
    """Records that ``owner`` (a command's name) made ``directory``."""
    write_bytes(Path(directory) / MARKER, f"{owner}\n".encode())


def owned(directory: str | os.PathLike, owner: str) -> bool:
    """Whether ``directory`` is a real directory that ``owner`` marked as its own."""
    directory = Path(directory)
    marker = directory / MARKER
    if directory.is_symlink() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return marker.read_text(encoding="utf-8").strip() == owner
    except (OSError, UnicodeDecodeError):
        return False


def is_empty(directory: str | os.PathLike, ignore: Iterable[str] = ()) -> bool:
    """Whether ``directory`` is a real directory holding nothing but names in ``ignore``."""
    directory, ignore = Path(directory), set(ignore)
    if directory.is_symlink() or not directory.is_dir():
        return False
    return all(entry.name in ignore for entry in directory.iterdir())


def check_replaceable(directory: str | os.PathLike, owner: str, ignore: Iterable[str] = ()):
    """Raises ``NotOwned`` unless ``directory`` is missing, empty (but for ``ignore``)
    or marked as ``owner``'s."""
    directory = Path(directory)
    if not os.path.lexists(directory) or owned(directory, owner) or is_empty(directory, ignore):
        return
    raise NotOwned(
        f"{directory} holds files {owner} did not write (it has no {MARKER} of its own); "
        "move them away or choose another directory"
    )


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike, owner: str) -> Path:
    """Renames the complete directory ``tmp`` to ``target``, replacing ``target`` only
    when ``owner`` may (``check_replaceable``). ``tmp`` must be a sibling of ``target``
    (one file system); the old directory is moved aside before the rename and deleted
    after it, so a reader sees the old or the new one, never a mixture."""
    tmp, target = Path(tmp), Path(target)
    check_replaceable(target, owner)
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return target
    aside = make_temp_dir(f".{target.name}.old-", target.parent)
    os.rename(target, aside / "old")
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(aside / "old", target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target


def remove_dir(directory: str | os.PathLike, owner: str, ignore: Iterable[str] = ()) -> None:
    """Deletes ``directory`` when ``owner`` may (``check_replaceable``); else ``NotOwned``."""
    check_replaceable(directory, owner, ignore)
    if os.path.lexists(directory):
        shutil.rmtree(directory)


def fresh_dir(directory: str | os.PathLike, owner: str) -> Path:
    """``directory`` made anew (empty, marked as ``owner``'s), replacing an earlier one
    only when ``owner`` may."""
    remove_dir(directory, owner)
    Path(directory).mkdir(parents=True)
    mark_owned(directory, owner)
    return Path(directory)
