"""The hub tree: where each module goes, atomic writes, and the catalog.

The tree mirrors tfhub.dev, so that a handle's URL path is its path under the root
(``https://tfhub.dev/google/experts/bit/r50x1/in21k/animal/1`` <->
``<root>/google/experts/bit/r50x1/in21k/animal/1``)::

    <root>/<publisher>/experts/bit/<arch>/<upstream>/baseline/<version>/              B
    <root>/<publisher>/experts/bit/<arch>/<upstream>/<expert>/<version>/              full
    <root>/<publisher>/experts/bit-adapter/<arch>/<upstream>/<expert>/<version>/      adapter
    <root>/<publisher>/experts/bit-adapter-packed/<arch>/<upstream>/all/<version>/    all adapters
    <root>/<publisher>/experts/bit-classifier/<arch>/<upstream>/upstream/<version>/   B + head
    <root>/<publisher>/experts/bit-epn/<arch>/<upstream>/epn/<version>/               the EPN

The non-expert modules get collections of their own, so that a collection such as
``bit/<arch>/<upstream>/*`` holds only interchangeable image feature vectors, as on
tfhub.dev. Every module directory holds the SavedModel, ``expert_info.json``, a
``README.md`` model card and the export's marker (``fanout.files``): an export replaces
no directory without it. Names starting with "." are never modules: they are
in-progress writes, which the catalog skips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

from fanout import files
from fanout.registry import Registry

INFO_FILE = "expert_info.json"
CARD_FILE = "README.md"
SAVED_MODEL_FILE = "saved_model.pb"
# Where modules are written before they are renamed into place (same filesystem).
INCOMING_DIR = ".incoming"
# The marker (fanout.files) in every directory an export makes: modules, and the
# staging directories under INCOMING_DIR; the only directories an export replaces or
# removes.
OWNER = "hub_export"

# Every module kind: a class in kinds.py registered by `@KINDS.register` (the package
# imports kinds.py, so this is full whenever the tree is used), with its place in the
# tree as class attributes: `collection`, `module_name` (the fixed name of its one
# module, or None for one module per expert) and `feature_vector` (an expert's image
# feature vector, interchangeable with the others of its collection).
KINDS = Registry("module kind")


def feature_vector_kinds() -> list[str]:
    """The kinds whose modules are image feature vectors (B and the experts)."""
    return KINDS.where(lambda kind: kind.feature_vector)


_UNSAFE = re.compile(r"[^a-z0-9._-]+")


class ExportError(Exception):
    """A problem with the inputs or the tree, reported as one line (no traceback)."""


def slug(name: str) -> str:
    """A path-safe, lower-case module name for a hierarchy node or dataset name:
    '/' becomes '.' ('script/latin' -> 'script.latin', 'embedded_upstream/32px' ->
    'embedded_upstream.32px'); other characters outside [a-z0-9._-] become '_'."""
    safe = _UNSAFE.sub("_", name.strip().lower().replace("/", ".")).strip("._")
    if not safe:
        raise ExportError(f"cannot make a module name from {name!r}")
    return safe


def check_unique_slugs(names: list[str]) -> dict[str, str]:
    """name -> slug; raises when two names would share a directory."""
    seen: dict[str, str] = {}
    for name in names:
        s = slug(name)
        if s in seen and seen[s] != name:
            raise ExportError(f"experts {seen[s]!r} and {name!r} both map to module name {s!r}")
        seen[s] = name
    # The fixed names of the modules sharing a collection with the experts' (B's).
    expert_collections = {k.collection for k in KINDS.values() if k.module_name is None}
    for kind in KINDS.values():
        if kind.module_name in seen and kind.collection in expert_collections:
            raise ExportError(
                f"expert {seen[kind.module_name]!r} clashes with the {kind.name}'s name"
            )
    return {name: s for s, name in seen.items()}


@dataclasses.dataclass(frozen=True)
class Handle:
    """One module's place in the tree."""

    publisher: str
    kind: str
    arch: str
    upstream: str
    name: str
    version: int = 1

    @classmethod
    def make(cls, publisher, kind, arch, upstream, expert=None, version=1) -> Handle:
        if kind not in KINDS:
            raise ExportError(f"unknown module kind {kind!r}; choose one of {', '.join(KINDS)}")
        fixed = KINDS[kind].module_name
        if (fixed is None) == (expert is None):
            raise ExportError(f"kind {kind!r} {'needs' if fixed is None else 'takes no'} expert")
        if int(version) < 1:
            raise ExportError(f"module versions start at 1, got {version}")
        return cls(slug(publisher), kind, arch, slug(upstream), fixed or slug(expert), int(version))

    @property
    def collection(self) -> str:
        return KINDS[self.kind].collection

    @property
    def relpath(self) -> str:
        parts = (self.publisher, "experts", self.collection, self.arch, self.upstream, self.name)
        return "/".join(parts + (str(self.version),))

    @property
    def url(self) -> str:
        """The tfhub.dev-style handle; resolves to ``<root>/<relpath>`` with a mirror."""
        return f"https://tfhub.dev/{self.relpath}"

    def path(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.relpath


@dataclasses.dataclass(frozen=True)
class Target:
    """One module to export: its place in the hub tree and, for an expert, its node."""

    handle: Handle
    node: str | None = None  # the expert's hierarchy node
    index: int | None = None  # adapter experts: the expert id in the adapters model


def inside_root(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` with its symbolic links resolved; ``ExportError`` when that leaves the
    hub root (a link under the root leading elsewhere), where no export may write."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        raise ExportError(
            f"{path} leads outside the hub root {root} (to {real}); remove the link or "
            "choose another --config.hub_root"
        )
    return real


def atomic_write(
    root: str | os.PathLike,
    target: str | os.PathLike,
    write: Callable[[Path], None],
    overwrite: bool = False,
) -> Path:
    """Runs ``write(tmp_dir)`` on a fresh directory under ``<root>/.incoming`` and then
    renames it to ``target``: a reader never sees a half-written module, and a failed
    write leaves nothing but (briefly) a hidden directory, which is removed. Every
    directory it makes carries the export's marker (``fanout.files``), and both
    ``target`` and the staging area must lie inside the root once links are resolved.

    An existing ``target`` is replaced only with ``overwrite``, and only when an export
    wrote it (its marker); it is moved aside first (with a note of where it belongs)
    and deleted after the rename, so for a moment neither version is visible, but a
    mixture of the two never is; a process killed in that moment leaves the old
    version for ``clean_incoming`` to put back.
    """
    root, given = Path(root), Path(target)
    target, incoming = inside_root(root, given), inside_root(root, root / INCOMING_DIR)
    if target.exists() and not overwrite:
        raise ExportError(f"{given} exists; pass --config.overwrite=true to replace it")
    check_replaceable(given)
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = files.make_temp_dir("module-", incoming, owner=OWNER)
    try:
        write(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if target.exists():
            aside = files.make_temp_dir("replaced-", incoming, owner=OWNER)
            (aside / _BELONGS_TO).write_text(str(target))
            old = aside / "module"
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            if old is not None:
                os.rename(old, target)
            raise
        if old is not None:
            shutil.rmtree(old.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            incoming.rmdir()  # only when empty: another export may be running
        except OSError:
            pass
    return given


def check_replaceable(target: str | os.PathLike) -> None:
    """``ExportError`` when ``target`` exists, is not empty, and an export did not write it."""
    if not os.path.lexists(target) or files.is_empty(target):
        return
    if not files.owned(target, OWNER):
        raise ExportError(
            f"{target} was not written by an export (it has no {files.MARKER}); "
            "move it away, or export to another --config.hub_root"
        )


_BELONGS_TO = "target"  # in a replaced-* directory: the path its module came from
_LOCK_FILE = ".export.lock"


@contextlib.contextmanager
def export_lock(root: str | os.PathLike) -> Iterator[None]:
    """Holds the hub root for one export at a time (an operating-system lock, so a
    killed export leaves no stale lock); inside it, ``clean_incoming`` is safe."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(inside_root(root, root / _LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ExportError(f"another export is writing to {root}; wait for it to end") from None
    try:
        yield
    finally:
        lock.release()


def clean_incoming(root: str | os.PathLike) -> list[str]:
    """Removes the half-written modules of interrupted exports, and puts back a module
    that was moved aside for replacement when its replacement never arrived; returns
    what it did, one line each. Only what an export made (its marker) is touched.
    Call it only while no export is writing (export_lock)."""
    incoming, done = inside_root(root, Path(root) / INCOMING_DIR), []
    if not incoming.is_dir():
        return done
    for stale in sorted(incoming.iterdir()):
        if not files.owned(stale, OWNER):
            done.append(f"left {stale} alone: an export did not write it")
            continue
        note, old = stale / _BELONGS_TO, stale / "module"
        target = Path(note.read_text()) if note.exists() else None
        if target is not None and old.is_dir() and not target.exists():
            os.rename(old, inside_root(root, target))
            done.append(f"restored {target} (its replacement was interrupted)")
        shutil.rmtree(stale, ignore_errors=True)
        done.append(f"removed the interrupted write {stale}")
    try:
        incoming.rmdir()
    except OSError:
        pass
    return done


def dir_size(path: str | os.PathLike) -> int:
    """The module's bytes (the export's marker is not part of it)."""
    return sum(
        f.stat().st_size
        for f in Path(path).rglob("*")
        if f.is_file() and f.relative_to(path).as_posix() != files.MARKER
    )


def catalog(root: str | os.PathLike, kind: str | None = None) -> list[dict]:
    """Every module under ``root`` (sorted by handle) as its ``expert_info.json`` plus
    ``path``, ``handle`` (the path under the root) and ``size_bytes``. SavedModels
    without an info file (e.g. a mirrored published module) are listed with kind None."""
    root = Path(root)
    if not root.is_dir():
        raise ExportError(f"hub root {root} does not exist")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if SAVED_MODEL_FILE not in filenames:
            continue
        dirnames[:] = []  # a module's variables/ and assets/ hold no modules
        path = Path(dirpath)
        info = {"kind": None}
        if INFO_FILE in filenames:
            try:
                info = json.loads((path / INFO_FILE).read_text())
            except ValueError as e:
                raise ExportError(f"{path / INFO_FILE}: invalid JSON: {e}") from None
        found.append(
            {
                **info,
                "path": str(path),
                "handle": path.relative_to(root).as_posix(),
                "size_bytes": dir_size(path),
            }
        )
    if kind is not None:
        found = [m for m in found if m.get("kind") == kind]
    return sorted(found, key=lambda m: m["handle"])
