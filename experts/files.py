"""Atomic file writes for the upstream side (``experts/`` and ``hub_export/``).

A reader, or a job resumed after a crash, sees either the old file or the complete new
one, never half of it. ``vtab_eval/files.py`` holds the same helpers for the downstream
side, which by design never imports ``experts/`` (DESIGN.md: it sees experts only as hub
handles), so each side keeps its own copy of these few lines.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(prefix: str, parent: str | os.PathLike) -> Path:
    """``tempfile.mkdtemp`` with the permissions a plain ``mkdir`` would give (it makes
    0700 directories), for directories that are renamed into place when complete."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o777 & ~current_umask())
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
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
    return write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_png(path: str | os.PathLike, image) -> Path:
    """Writes a PIL image as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())
