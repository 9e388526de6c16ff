"""A PNG contact sheet: one row of sample images per task, with their labels."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from vtab_eval import files
from vtab_eval.tasks.base import Task

TILE = 64
LABEL_HEIGHT = 12
NAME_WIDTH = 330


def task_samples(task: Task, split: str, count: int) -> list[tuple[np.ndarray, int]]:
    return [(image.numpy(), int(label)) for image, label in task.as_dataset(split).take(count)]


def write_grid(rows: Sequence[tuple[str, list[tuple[np.ndarray, int]]]], path: str) -> str:
    """Writes the sheet atomically (temporary file, then rename) and returns the path."""
    from PIL import Image, ImageDraw, ImageFont

    per_row = max((len(samples) for _, samples in rows), default=0)
    row_height = TILE + LABEL_HEIGHT + 4
    sheet = Image.new("RGB", (NAME_WIDTH + per_row * (TILE + 4), len(rows) * row_height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, (name, samples) in enumerate(rows):
        top = r * row_height
        draw.text((4, top + TILE // 2 - 6), name, fill="black", font=font)
        for c, (image, label) in enumerate(samples):
            left = NAME_WIDTH + c * (TILE + 4)
            # Nearest keeps 8x8 digits and binary sprites crisp; larger images are averaged.
            resample = Image.Resampling.NEAREST if image.shape[0] < TILE else Image.Resampling.BOX
            tile = Image.fromarray(image).resize((TILE, TILE), resample)
            sheet.paste(tile, (left, top))
            draw.text((left + 2, top + TILE + 1), str(label), fill="black", font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    files.write_bytes(path, buffer.getvalue())
    return path
