"""Loads an expert by handle as a ``hub.KerasLayer``: our exported modules and the
published BiT experts take the same path.

A handle is either

* a local module directory (one holding ``saved_model.pb``), e.g. one listed by
  ``python -m hub_export.catalog``; or
* a tfhub.dev URL such as ``https://tfhub.dev/google/experts/bit/r50x1/in21k/animal/1``.
  With a hub root (the ``hub_root`` argument or ``$EXPERTS_HUB_ROOT``) holding
  ``<root>/google/experts/bit/r50x1/in21k/animal/1/``, the URL loads that local mirror:
  hub_export writes exactly this layout, so ``https://tfhub.dev/local/experts/bit/...``
  names one of our modules. Without a mirror the URL goes to ``tensorflow_hub``, which
  downloads it into ``$TFHUB_CACHE_DIR``. This project's machines cannot reach
  tfhub.dev (now served from Kaggle), so the published experts are used by
  downloading them elsewhere and copying them into the mirror layout.

A module is code: before it is loaded, ``module_check`` refuses graphs with ops that
touch files, the network or processes (see there).

Every module follows the image feature-vector contract (DESIGN.md): float32 images
``[batch, h, w, 3]`` in [0, 1], any size, ``[batch, dim]`` out. This module must not
import ``experts`` or ``hub_export``: the evaluation side sees experts only as handles.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import tensorflow_hub as hub

from vtab_eval import files, module_check

HUB_ROOT_ENV = "EXPERTS_HUB_ROOT"
TFHUB_HOSTS = ("tfhub.dev", "www.tfhub.dev")
INFO_FILE = "expert_info.json"  # written by hub_export beside saved_model.pb
SAVED_MODEL_FILE = "saved_model.pb"


class HubLoadError(Exception):
    """A handle that cannot be loaded, explained in one line."""


def _root(hub_root: str | os.PathLike | None) -> Path | None:
    root = hub_root if hub_root is not None else os.environ.get(HUB_ROOT_ENV)
    return Path(root) if root else None


def resolve(handle: str | os.PathLike, hub_root: str | os.PathLike | None = None) -> str:
    """A local module directory for ``handle`` when there is one, else the URL itself."""
    text = os.fspath(handle)
    url = urlparse(text)
    if url.scheme in ("http", "https"):
        if url.netloc.lower() not in TFHUB_HOSTS:
            raise HubLoadError(f"{text}: only tfhub.dev URLs and local paths are handles")
        if ".." in url.path.split("/"):
            raise HubLoadError(f"{text}: a handle's path may not contain '..'")
        root = _root(hub_root)
        if root is not None:
            mirror = root / url.path.strip("/")
            if (mirror / SAVED_MODEL_FILE).is_file():
                return str(mirror)
        return text
    if url.scheme not in ("", "file"):
        raise HubLoadError(f"{text}: unsupported handle scheme {url.scheme!r}")
    path = Path(url.path if url.scheme == "file" else text).expanduser()
    if not (path / SAVED_MODEL_FILE).is_file():
        what = "does not exist" if not path.exists() else f"has no {SAVED_MODEL_FILE}"
        raise HubLoadError(f"{path} {what}: not a hub module directory")
    return str(path)


def load(
    handle: str | os.PathLike,
    trainable: bool = False,
    hub_root: str | os.PathLike | None = None,
    **kwargs,
) -> hub.KerasLayer:
    """``hub.KerasLayer`` for ``handle``; ``kwargs`` go to it (e.g. ``arguments`` for the
    packed adapter module's ``{"expert": i}``). ``trainable=True`` fine-tunes the module."""
    where = resolve(handle, hub_root)
    if "://" in where:
        where = _fetch(where)
    module_check.check_module(where)  # before any of its graphs runs
    return hub.KerasLayer(where, trainable=trainable, **kwargs)


def _fetch(url: str) -> str:
    """The local copy tensorflow_hub downloads a URL to (``$TFHUB_CACHE_DIR``), so the
    module is checked like a local one before it is loaded."""
    try:
        return hub.resolve(url)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HubLoadError(
            f"cannot fetch {url} ({first}); without network access, mirror it under "
            f"${HUB_ROOT_ENV}/{urlparse(url).path.strip('/')}"
        ) from e


def read_info(handle: str | os.PathLike, hub_root: str | os.PathLike | None = None) -> dict | None:
    """The module's ``expert_info.json``, or None (a remote or published module has none)."""
    where = resolve(handle, hub_root)
    info = Path(where) / INFO_FILE
    if "://" in where or not info.is_file():
        return None
    return files.read_json(info)  # a corrupt file is named


def find_modules(root: str | os.PathLike, kind: str | None = None) -> list[tuple[str, dict]]:
    """``(path, info)`` for every module under a hub root, sorted by path; ``kind`` keeps
    only modules whose info has that kind (``full``, ``adapter``, ``baseline``, ...).
    Directories starting with "." (writes in progress) are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise HubLoadError(f"hub root {root} does not exist")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if SAVED_MODEL_FILE in filenames:
            dirnames[:] = []
            path = Path(dirpath)
            info = files.read_json(path / INFO_FILE) if INFO_FILE in filenames else {}
            if kind is None or info.get("kind") == kind:
                found.append((str(path), info))
    return sorted(found)
