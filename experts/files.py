"""Atomic file writes for the upstream side (``experts/`` and ``hub_export/``).

A reader, or a job resumed after a crash, sees either the old file or the complete new
one, never half of it. The byte-level write, the temporary directories and the rule for
replacing a directory (``fanout.files``: only one its command made, or an empty one)
are shared with every package; this module adds the upstream's file formats.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from fanout.files import current_umask, make_temp_dir, write_bytes

__all__ = [
    "current_umask",
    "make_temp_dir",
    "write_bytes",
    "write_json",
    "write_png",
    "write_text",
]


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_png(path: str | os.PathLike, image) -> Path:
    """Writes a PIL image as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_bytes(path, buffer.getvalue())
