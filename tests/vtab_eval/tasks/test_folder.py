import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vtab_eval import tasks
from vtab_eval.tasks import folder


@pytest.mark.parametrize(
    "total, counts",
    [
        (5000, (800, 200, 4000)),
        (1250, (800, 200, 250)),
        (1000, (640, 160, 200)),
        (15, (10, 2, 3)),
        (4, (2, 1, 1)),
        (3, (1, 1, 1)),
    ],
)
def test_split_counts(total, counts):
    assert folder.split_counts(total) == counts
    assert sum(counts) == total


def test_split_counts_refuses_tiny_folders():
    with pytest.raises(ValueError, match="at least 3 images, found 2"):
        folder.split_counts(2)


def _make_folder(root, per_class=5):
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "eel"]):
        os.makedirs(root / name / "nested")
        for i in range(per_class):
            pixels = rng.integers(0, 256, (9 + c, 7, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if i == 0:
                image.convert("L").save(root / name / "grey.png")  # single-channel file
            elif i == 1:
                image.save(root / name / "nested" / "deep.jpg", quality=95)
            else:
                image.save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image")
    os.makedirs(root / ".hidden")
    Image.new("RGB", (4, 4)).save(root / ".hidden" / "x.png")


def test_image_folder_task(tmp_path):
    _make_folder(tmp_path)
    task = tasks.get_task(f'image_folder(path="{tmp_path}")')
    task.prepare()  # as a fan-out does for every task before its jobs: nothing to do
    assert task.classes == ["cat", "dog", "eel"]
    assert (task.num_classes, task.group) == (3, "natural")
    sizes = {split: task.num_examples(split) for split in tasks.SPLITS}
    assert sizes == {"train800": 10, "val200": 2, "train800val200": 12, "test": 3}
    train = {rel for rel, _ in task.files("train800")}
    val = {rel for rel, _ in task.files("val200")}
    test = {rel for rel, _ in task.files("test")}
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 15
    for split in tasks.SPLITS:
        files = task.files(split)
        for (rel, label), (image, got) in zip(files, task.as_dataset(split), strict=True):
            assert image.dtype == tf.uint8 and image.shape[-1] == 3
            assert image.shape[0] == 9 + label  # the class's own image height
            assert int(got) == label == task.classes.index(rel.split(os.sep)[0])
    # Deterministic: a second task (another process would hash alike) gives the same order.
    again = tasks.get_task(f'image_folder(path="{tmp_path}",group="specialized")')
    assert again.files("test") == task.files("test") and again.group == "specialized"


def test_adding_an_image_moves_no_other(tmp_path):
    _make_folder(tmp_path, per_class=400)  # 1,200 images: test takes 240
    before = tasks.get_task(f'image_folder(path="{tmp_path}")')
    Image.new("RGB", (5, 5)).save(tmp_path / "dog" / "zz_new.png")
    after = tasks.get_task(f'image_folder(path="{tmp_path}")')
    order_before = [
        rel for split in ("train800", "val200", "test") for rel, _ in before.files(split)
    ]
    order_after = [rel for split in ("train800", "val200", "test") for rel, _ in after.files(split)]
    assert [rel for rel in order_after if rel != os.path.join("dog", "zz_new.png")] == order_before


def test_image_folder_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        tasks.get_task(f'image_folder(path="{tmp_path / "missing"}")')
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="needs >= 2 class sub-folders"):
        tasks.get_task(f'image_folder(path="{tmp_path}")')
    (tmp_path / "empty").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(ValueError, match="class folder 'empty' .* has no images"):
        tasks.get_task(f'image_folder(path="{tmp_path}")')
    with pytest.raises(ValueError, match="group 'fancy' is not one of"):
        _make_folder(tmp_path / "ok")
        tasks.get_task(f'image_folder(path="{tmp_path / "ok"}",group="fancy")')
    with pytest.raises(ValueError, match="path must be a non-empty string"):
        tasks.get_task('image_folder(path="")')


def _two_classes(root, per_class=3, suffix=".png"):
    for c, name in enumerate(["a", "b"]):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (5, 5), (100 * c, i, 0)).save(root / name / f"{i}{suffix}")
    return root


def test_webp_images_are_images_as_upstream(tmp_path):
    task = tasks.get_task(f'image_folder(path="{_two_classes(tmp_path, suffix=".webp")}")')
    assert sum(task.num_examples(s) for s in ("train800", "val200", "test")) == 6


def test_a_class_linked_from_outside_the_folder_is_kept(tmp_path):
    root = _two_classes(tmp_path / "task")
    _two_classes(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere" / "a", root / "c")
    assert tasks.get_task(f'image_folder(path="{root}")').classes == ["a", "b", "c"]


def test_the_spec_names_the_absolute_folder_and_the_key_its_files(tmp_path, monkeypatch):
    root = _two_classes(tmp_path / "t")
    monkeypatch.chdir(tmp_path)
    task = tasks.get_task('image_folder(path="t")')
    assert task.spec == f'image_folder(path="{root}")'
    assert task.key.startswith(task.spec) and tasks.task_key('image_folder(path="t")') == task.key
    Image.new("RGB", (5, 5)).save(root / "b" / "new.png")
    assert tasks.task_key(task.spec) != task.key  # an image added: another task
    assert tasks.task_key("mini_mnist( config = 'tiny' )") == 'mini_mnist(config="tiny")'
