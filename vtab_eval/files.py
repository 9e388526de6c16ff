"""Atomic file writes and file-system-safe names.

Everything the evaluation writes (feature caches, selection and fine-tuning results,
reports) goes through these helpers: a reader, or a run resumed after a crash, sees
either the old file or the complete new one, never half of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


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


def _atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
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
    return _atomic_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> Path:
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
    again (``allow_nan=False``) and comparable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path}: invalid JSON: {' '.join(str(e).split())}") from None


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return _atomic_bytes(path, buffer.getvalue())


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_bytes(path, data)


def slug(text: str, max_len: int = 60) -> str:
    """A readable, collision-free directory name for any string (task specs carry quotes,
    parentheses and commas; handles carry slashes): its safe characters plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_.")[:max_len] or "x"
    return f"{safe}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"
