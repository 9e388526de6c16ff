"""The downstream's file formats beside the shared atomic writes.

Everything the evaluation writes (feature caches, selection and fine-tuning results,
reports) goes through atomic writes: a reader, or a run resumed after a crash, sees
either the old file or the complete new one, never half of it. Those, and the strict
JSON reader, are ``fanout.files``'s, re-exported here for the modules that import
them from this one; this module adds NumPy archives and file-system-safe names.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np

from fanout.files import (
    current_umask,
    make_temp_dir,
    read_json,
    write_bytes,
    write_json,
    write_text,
)

__all__ = [
    "current_umask",
    "make_temp_dir",
    "read_json",
    "slug",
    "write_bytes",
    "write_json",
    "write_npz",
    "write_text",
]


def write_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def slug(text: str, max_len: int = 60) -> str:
    """A readable, collision-free directory name for any string (task specs carry quotes,
    parentheses and commas; handles carry slashes): its safe characters plus a short hash."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_.")[:max_len] or "x"
    return f"{safe}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"
