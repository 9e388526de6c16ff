"""What an image folder is, for every reader of one: the upstream builder
(experts/data/builders/image_folder_upstream.py) and the downstream task
(vtab_eval/tasks/folder.py) read ``<root>/<class>/...`` folders alike. It lives here
because ``fanout`` imports no project package and every package may import it, so both
readers share one list of extensions and one rule for class folders.
"""

from __future__ import annotations

import os

# Every format TensorFlow's ``decode_image`` reads (the downstream task decodes with it)
# and Pillow converts (the upstream builder stores the others as PNG).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_image_name(name: str) -> bool:
    """Whether a file name is an image's: a known extension, and not hidden (``.DS_Store``,
    macOS's ``._x.jpg`` and the like belong to the file system, not to the data)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def class_folders(root: str) -> list[str]:
    """The sorted class folder names under ``root``: its non-hidden sub-folders.

    A symlinked class folder is followed when it leads outside ``root`` (data kept
    elsewhere), and refused when it leads to ``root``, above it or inside it: such a
    link (``loop -> .``) would make a class of images that belong to other classes, or
    to all of them. Refused rather than skipped, since skipping would quietly change
    the task's classes."""
    real_root = os.path.realpath(root)
    names = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        if os.path.islink(path):
            target = os.path.realpath(path)
            inside = os.path.commonpath([target, real_root]) in (target, real_root)
            if inside:
                raise ValueError(
                    f"{path} is a symlink to {target}, which is {root} itself, above it or "
                    "inside it: its images would be counted in two classes; remove the link"
                )
        names.append(name)
    return names
