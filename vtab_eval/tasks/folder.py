"""A task from a user's image folder: one sub-folder per class, VTAB-1k splits derived.

Every image is decoded once when the task is opened, so a corrupt or mislabelled file
(a truncated JPEG, text named ``.png``) is named at once, before any module runs.

Files are ordered by a hash of their path relative to the folder, so the order (and hence
the splits) is deterministic, independent of the machine and of file-system order, and
adding an image moves no other image between splits. In that order the first 800 images
are train800, the next 200 val200 and the rest test. A folder with fewer than 1,250
images keeps 20% for test and splits the rest 80/20, so that every split is non-empty.

A task's spec names the folder by its resolved absolute path (``image_folder(path="t")``
means another folder in another working directory), and its ``key``, which names its
results and cached features, adds a fingerprint of the files: every image's path
relative to the folder, label, size and modification time. Those come from one ``stat``
per image, where a content hash would read every byte on every rerun (gigabytes for a
photograph folder); any edit of an image, an image added, removed, renamed or moved
between classes changes them. A copy that keeps the modification times (``cp -p``,
``rsync -a``) has the same content and keeps its results; one that does not is
recomputed, which is safe.
"""

from __future__ import annotations

import hashlib
import math
import os

import tensorflow as tf

from fanout import image_folders
from vtab_eval.tasks import base
from vtab_eval.tasks.registry import register
from vtab_eval.tasks.spec import format_spec, parse_spec

IMAGE_EXTENSIONS = image_folders.IMAGE_EXTENSIONS  # the upstream builder's too
MIN_TEST_FRACTION = 0.2


def split_counts(total: int) -> tuple[int, int, int]:
    """(train, val, test) counts for a folder of `total` images."""
    if total < 3:
        raise ValueError(f"an image folder needs at least 3 images, found {total}")
    test = max(total - 1000, math.ceil(MIN_TEST_FRACTION * total))
    rest = total - test
    train = min(800, max(1, round(0.8 * rest)))
    val = min(200, rest - train)
    if val == 0:  # Two images left for train and val: one each.
        train, val = train - 1, 1
    return train, val, total - train - val


def list_image_folder(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(path relative to root, label)]) in the deterministic split order."""
    if not os.path.isdir(root):
        raise ValueError(f"image_folder: path {root!r} is not a directory")
    try:
        classes = image_folders.class_folders(root)
    except ValueError as e:
        raise ValueError(f"image_folder: {e}") from None
    if len(classes) < 2:
        raise ValueError(f"image_folder: {root!r} needs >= 2 class sub-folders, found {classes}")
    files = []
    for label, name in enumerate(classes):
        count = 0
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if image_folders.is_image_name(filename):
                    files.append((os.path.relpath(os.path.join(dirpath, filename), root), label))
                    count += 1
        if count == 0:
            raise ValueError(f"image_folder: class folder {name!r} in {root!r} has no images")
    files.sort(key=lambda item: hashlib.sha256(item[0].encode()).hexdigest())
    return classes, files


def check_images_decode(root: str, files: list[tuple[str, int]]) -> None:
    """Decodes every image (the way ``as_dataset`` will), naming the first that fails."""
    for rel, _ in files:
        path = os.path.join(root, rel)
        try:
            _decode(tf.io.read_file(path))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            reason = " ".join(e.message.split()) if e.message else type(e).__name__
            raise ValueError(f"image_folder: {path} is not a readable image ({reason})") from None


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode(data):
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def resolve_root(path: str) -> str:
    """A folder as the user wrote it (``~``, relative) as its resolved absolute path."""
    return os.path.realpath(os.path.expanduser(path))


def absolute_spec(canonical: str, root: str) -> str:
    """The canonical spec with ``path`` replaced by the resolved ``root``."""
    name, kwargs = parse_spec(canonical)
    return format_spec(name, {**kwargs, "path": root})


def files_fingerprint(root: str, files: list[tuple[str, int]]) -> str:
    """A digest of each image's relative path, label, size and mtime (module docstring)."""
    digest = hashlib.sha256()
    for rel, label in sorted(files):
        stat = os.stat(os.path.join(root, rel))
        digest.update(f"{rel}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def task_key(spec: str, files: list[tuple[str, int]], root: str) -> str:
    return f"{spec}#files={files_fingerprint(root, files)}"


class ImageFolderTask(base.Task):
    def __init__(self, spec: str, root: str, group: str):
        self.root = resolve_root(root)
        self.classes, files = list_image_folder(self.root)
        super().__init__(absolute_spec(spec, self.root), len(self.classes), group)
        self.key = task_key(self.spec, files, self.root)
        try:
            train, val, _ = split_counts(len(files))
        except ValueError as e:
            raise ValueError(f"image_folder {self.root!r}: {e}") from None
        check_images_decode(self.root, files)
        self._splits = {
            "train800": files[:train],
            "val200": files[train : train + val],
            "train800val200": files[: train + val],
            "test": files[train + val :],
        }

    def files(self, split: str) -> list[tuple[str, int]]:
        """(relative path, label) of a split's images, in order."""
        self._check_split(split)
        return list(self._splits[split])

    def num_examples(self, split: str) -> int:
        return len(self.files(split))

    def as_dataset(self, split: str, *, shuffle_files: bool = False) -> tf.data.Dataset:
        files = self.files(split)
        paths = [os.path.join(self.root, rel) for rel, _ in files]
        labels = [label for _, label in files]
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
        if shuffle_files:
            ds = ds.shuffle(len(files))

        def load(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return base.to_rgb_uint8(image), label

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _check_path(canonical, path) -> None:
    if not isinstance(path, str) or not path:
        raise ValueError(f"task {canonical}: path must be a non-empty string")


def image_folder_key(canonical, path, **opts) -> str:
    """The key an ``image_folder`` task of this spec would have, from a listing of its
    folder: no image is decoded."""
    del opts
    _check_path(canonical, path)
    root = resolve_root(path)
    _, files = list_image_folder(root)
    return task_key(absolute_spec(canonical, root), files, root)


@register("image_folder", key=image_folder_key)
def image_folder(canonical, path, group="natural", **opts):
    """`image_folder(path="/data/birds")`: data_dir/download options do not apply."""
    del opts
    _check_path(canonical, path)
    return ImageFolderTask(canonical, path, group)
