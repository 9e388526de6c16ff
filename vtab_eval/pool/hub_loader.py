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
  downloading them elsewhere and copying them into the mirror layout; or
* a Kaggle Models handle, in one of the forms Kaggle shows (the framework is
  ``tensorFlow2`` or ``tensorFlow1``, any case: the TensorFlow SavedModels
  ``hub.KerasLayer`` loads):

  - ``kaggle:<owner>/<model>/<framework>/<variation>[/<version>]``: kagglehub's handle
    with a ``kaggle:`` prefix. The prefix is what makes it a Kaggle handle: without it
    the same text is a relative local path (whether such a directory exists is never
    consulted);
  - ``https://www.kaggle.com/models/<owner>/<model>/<framework>/<variation>[/<version>]``
    (or ``kaggle.com``), and the long form Kaggle redirects to,
    ``.../models/<owner>/<model>/frameworks/<framework>/variations/<variation>[/versions/<version>]``.

  The mirror is ``<root>/kaggle/<owner>/<model>/<framework>/<variation>/<version>/`` with
  kagglehub's spelling of the framework (``tensorFlow2``): the layout of kagglehub's own
  cache under ``models/``, so a download made elsewhere is copied in as it is. A handle
  without a version takes the highest ``<version>`` the mirror holds, as Kaggle serves
  its newest. Without a mirror, ``kagglehub.model_download`` fetches it when kagglehub is
  installed (the ``kaggle`` extra). There is no mapping of tfhub.dev handles onto Kaggle
  ones: Kaggle's names for the published BiT experts could not be checked from here, so
  mirror each under the handle you load it by.

A module is code: ``load`` hands the local directory to ``fanout.module_check.load``,
the one loader of the project, which refuses a module whose graphs hold an op off its
allow-list before any of them runs (see there); a downloaded module is checked in its
downloaded copy.

Every module follows the image feature-vector contract (DESIGN.md): float32 images
``[batch, h, w, 3]`` in [0, 1], any size, ``[batch, dim]`` out. This module must not
import ``experts`` or ``hub_export``: the evaluation side sees experts only as handles.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import tensorflow_hub as hub

from fanout import module_check
from vtab_eval import files

HUB_ROOT_ENV = "EXPERTS_HUB_ROOT"
TFHUB_HOSTS = ("tfhub.dev", "www.tfhub.dev")
KAGGLE_SCHEME = "kaggle"
KAGGLE_HOSTS = ("www.kaggle.com", "kaggle.com")
KAGGLE_MIRROR_DIR = "kaggle"  # <hub_root>/kaggle/<owner>/<model>/<framework>/...
# hub.KerasLayer loads TensorFlow SavedModels only; the values are kagglehub's spelling
# (its enum_to_str of ModelFramework), keyed case- and separator-free.
KAGGLE_FRAMEWORKS = {"tensorflow2": "tensorFlow2", "tensorflow1": "tensorFlow1"}
_KAGGLE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_KAGGLE_FORM = "<owner>/<model>/<framework>/<variation>[/<version>]"
INFO_FILE = "expert_info.json"  # written by hub_export beside saved_model.pb
SAVED_MODEL_FILE = "saved_model.pb"


class HubLoadError(Exception):
    """A handle that cannot be loaded, explained in one line."""


@dataclasses.dataclass(frozen=True)
class KaggleHandle:
    """A Kaggle Models handle; ``str()`` is the form ``kagglehub.model_download`` takes."""

    owner: str
    model: str
    framework: str
    variation: str
    version: int | None = None

    def __str__(self) -> str:
        parts = [self.owner, self.model, self.framework, self.variation]
        return "/".join(parts + ([str(self.version)] if self.version is not None else []))

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/models/{self}"

    def mirror(self, root: Path) -> Path:
        """The directory holding the mirror's versions of this model variation."""
        return root.joinpath(
            KAGGLE_MIRROR_DIR, self.owner, self.model, self.framework, self.variation
        )


def parse_kaggle(handle: str | os.PathLike) -> KaggleHandle | None:
    """The Kaggle handle ``handle`` names (see the module docstring), None when it is not
    of a Kaggle form; a Kaggle form that is malformed raises a HubLoadError naming it."""
    text = os.fspath(handle)
    url = urlparse(text)
    if url.scheme == KAGGLE_SCHEME:
        parts = text[len(KAGGLE_SCHEME) + 1 :].split("/")
    elif url.scheme in ("http", "https") and url.netloc.lower() in KAGGLE_HOSTS:
        parts = url.path.strip("/").split("/")
        if parts[0] != "models":
            raise HubLoadError(
                f"{text}: a Kaggle URL names a model as https://www.kaggle.com/models/{_KAGGLE_FORM}"
            )
        parts = _short_form(parts[1:])
    else:
        return None
    if ".." in parts:
        raise HubLoadError(f"{text}: a handle's path may not contain '..'")
    if len(parts) not in (4, 5):
        raise HubLoadError(f"{text}: a Kaggle model handle is {_KAGGLE_FORM}")
    for part in parts[:4]:
        if not _KAGGLE_SLUG.match(part):
            raise HubLoadError(f"{text}: {part!r} is not a Kaggle name (letters, digits, ._-)")
    framework = KAGGLE_FRAMEWORKS.get(re.sub(r"[-_]", "", parts[2]).lower())
    if framework is None:
        raise HubLoadError(
            f"{text}: framework {parts[2]!r} is not a TensorFlow SavedModel one; "
            f"hub modules are {' or '.join(KAGGLE_FRAMEWORKS.values())}"
        )
    version = None
    if len(parts) == 5:
        if not (parts[4].isascii() and parts[4].isdecimal()) or int(parts[4]) < 1:
            raise HubLoadError(f"{text}: version {parts[4]!r} is not a positive integer")
        version = int(parts[4])
    return KaggleHandle(parts[0], parts[1], framework, parts[3], version)


def module_name(handle: str | os.PathLike) -> str:
    """The module name a handle gives: a Kaggle handle's variation, else the last part of
    its path or URL that is not a version number (``.../animal/1`` -> ``animal``)."""
    kaggle = parse_kaggle(handle)
    if kaggle is not None:
        return kaggle.variation  # the URL's long form ends in versions/<n>
    parts = [p for p in os.fspath(handle).rstrip("/").split("/") if p]
    return parts[-2] if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _short_form(parts: list[str]) -> list[str]:
    """``<owner>/<model>/frameworks/<f>/variations/<v>[/versions/<n>]`` (the form of the
    pages tfhub.dev's links redirect to) as ``<owner>/<model>/<f>/<v>[/<n>]``; other parts as given."""
    long_form = len(parts) in (6, 8) and parts[2] == "frameworks" and parts[4] == "variations"
    if not long_form or (len(parts) == 8 and parts[6] != "versions"):
        return parts
    return parts[:2] + [parts[3], parts[5]] + parts[7:]


def _kaggle_mirror(handle: KaggleHandle, root: Path | None) -> Path | None:
    """The mirrored module for ``handle``: its version, or the newest one without."""
    if root is None:
        return None
    base = handle.mirror(root)
    if handle.version is not None:
        candidates = [base / str(handle.version)]
    else:
        names = os.listdir(base) if base.is_dir() else []
        candidates = [base / n for n in names if n.isascii() and n.isdecimal()]
    found = [p for p in candidates if (p / SAVED_MODEL_FILE).is_file()]
    return max(found, key=lambda p: int(p.name)) if found else None


def is_path(handle: str | os.PathLike) -> bool:
    """Whether ``handle`` is of a local path's form (no scheme, or ``file:``), the only
    form that can name a hub root; URLs and ``kaggle:`` handles never do."""
    return urlparse(os.fspath(handle)).scheme in ("", "file")


def _root(hub_root: str | os.PathLike | None) -> Path | None:
    root = hub_root if hub_root is not None else os.environ.get(HUB_ROOT_ENV)
    return Path(root) if root else None


def resolve(handle: str | os.PathLike, hub_root: str | os.PathLike | None = None) -> str:
    """A local module directory for ``handle`` when there is one (the handle's own, or
    its mirror), else a URL to download: the tfhub.dev URL itself, a Kaggle handle's
    ``https://www.kaggle.com/models/...`` URL. Never reaches the network."""
    text = os.fspath(handle)
    kaggle = parse_kaggle(text)
    if kaggle is not None:
        mirrored = _kaggle_mirror(kaggle, _root(hub_root))
        return str(mirrored) if mirrored is not None else kaggle.url
    url = urlparse(text)
    if url.scheme in ("http", "https"):
        if url.netloc.lower() not in TFHUB_HOSTS:
            raise HubLoadError(
                f"{text}: only tfhub.dev and kaggle.com/models URLs, kaggle: handles and "
                "local paths are handles"
            )
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
    packed adapter module's ``{"expert": i}``). ``trainable=True`` fine-tunes the module.
    The module is checked before any of its graphs runs (``fanout.module_check``)."""
    return module_check.load(local_dir(handle, hub_root), trainable=trainable, **kwargs)


def local_dir(handle: str | os.PathLike, hub_root: str | os.PathLike | None = None) -> str:
    """The local module directory ``handle`` loads from: its own, its mirror, or the
    copy a URL downloads to (only then is the network reached)."""
    where = resolve(handle, hub_root)
    return _fetch(where) if "://" in where else where


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fetch(url: str) -> str:
    """The local copy a URL downloads to, so the module is checked like a local one
    before it is loaded: tensorflow_hub's (``$TFHUB_CACHE_DIR``) for tfhub.dev,
    kagglehub's for Kaggle."""
    kaggle = parse_kaggle(url)
    if kaggle is not None:
        return _download_kaggle(kaggle)
    try:
        return hub.resolve(url)
    except Exception as e:
        raise HubLoadError(
            f"cannot fetch {url} ({_first_line(e)}); without network access, mirror it under "
            f"${HUB_ROOT_ENV}/{urlparse(url).path.strip('/')}"
        ) from e


def _download_kaggle(handle: KaggleHandle) -> str:
    """``kagglehub.model_download``'s copy of ``handle`` (its newest version without one)."""
    version = str(handle.version) if handle.version is not None else "<version>"
    mirror = handle.mirror(Path(f"${HUB_ROOT_ENV}")) / version
    try:
        import kagglehub  # an optional extra: only this path needs it
    except ImportError:
        raise HubLoadError(
            f"Kaggle model {handle} is not mirrored and kagglehub is not installed: "
            f"pip install 'expert-transfer[kaggle]', or mirror the module under {mirror}"
        ) from None
    try:
        where = kagglehub.model_download(str(handle))
    except Exception as e:
        raise HubLoadError(
            f"cannot download Kaggle model {handle} ({_first_line(e)}); without network "
            f"access, mirror it under {mirror}"
        ) from e
    if not (Path(where) / SAVED_MODEL_FILE).is_file():
        raise HubLoadError(
            f"Kaggle model {handle}: its download {where} has no {SAVED_MODEL_FILE}, so it "
            "is not a TensorFlow hub module"
        )
    return str(where)


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
