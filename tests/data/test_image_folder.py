"""The image-folder builder on a tiny generated folder."""

import os

import numpy as np
import pytest

from experts.data import upstream
from experts.data.hierarchy import HierarchyError
from tests.data.conftest import IMAGES_PER_CLASS, make_folder, prepare_folder_builder


def test_splits_labels_and_images(folder_builder):
    info = folder_builder.info
    train, val = info.splits["train"].num_examples, info.splits["validation"].num_examples
    assert train + val == 5 * IMAGES_PER_CLASS
    assert 0 < val < train
    labels = info.features["label"].names
    assert labels == ["blue_circle", "blue_square", "red_circle", "red_square", "triangle"]
    seen = set()
    for ex in folder_builder.as_dataset(split="train").as_numpy_iterator():
        assert ex["image"].dtype == np.uint8 and ex["image"].shape == (20, 24, 3)  # RGB always
        seen.add(ex["style"].decode())
    assert len(seen) == train  # style is the source file


def test_metadata_round_trip(folder_builder):
    info = upstream.load_info(folder_builder)
    assert info.hierarchy.parents("red_circle") == ("circle", "red")
    total = {
        lab: info.label_counts["train"][lab] + info.label_counts["validation"][lab]
        for lab in info.labels
    }
    assert total == dict.fromkeys(info.labels, IMAGES_PER_CLASS)
    counts = info.node_counts("train")
    assert counts["thing"] == folder_builder.info.splits["train"].num_examples
    assert (
        counts["circle"]
        == info.label_counts["train"]["red_circle"] + info.label_counts["train"]["blue_circle"]
    )
    # The recorded choice is the default one, re-computable from the counts.
    assert list(info.experts) == info.choose_experts(upstream.ExpertChoice())
    small = info.choose_experts(upstream.ExpertChoice(num_experts=3, min_images=1))
    assert "thing" not in small and small[0] == "shape" and len(small) == 3


def test_split_is_deterministic(folder_builder, tmp_path):
    manual = make_folder(str(tmp_path / "manual"))
    again = prepare_folder_builder(manual, str(tmp_path / "tfds"))
    keys = {
        b: sorted(ex["style"] for ex in b.as_dataset(split="validation").as_numpy_iterator())
        for b in (folder_builder, again)
    }
    assert keys[folder_builder] == keys[again]


def test_max_size_shrinks(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle", "red_circle"))
    builder = prepare_folder_builder(manual, str(tmp_path / "tfds"), max_size=12)
    ex = next(builder.as_dataset(split="train").as_numpy_iterator())
    assert ex["image"].shape == (10, 12, 3)


def test_label_with_no_node(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.makedirs(os.path.join(manual, "images", "hexagon"))
    with pytest.raises(HierarchyError, match=r"images/hexagon: label 'hexagon' has no node in"):
        prepare_folder_builder(manual, str(tmp_path / "tfds"))


def test_missing_hierarchy_file(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.remove(os.path.join(manual, "hierarchy.txt"))
    with pytest.raises(FileNotFoundError, match=r"hierarchy.txt is missing"):
        prepare_folder_builder(manual, str(tmp_path / "tfds"))


def test_empty_class_folder(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.makedirs(os.path.join(manual, "images", "red_square"))
    with pytest.raises(FileNotFoundError, match=r"red_square holds no images"):
        prepare_folder_builder(manual, str(tmp_path / "tfds"))


def test_bad_hierarchy_file(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    with open(os.path.join(manual, "hierarchy.txt"), "a") as f:
        f.write("shape: triangle\n")
    with pytest.raises(HierarchyError, match=r"hierarchy.txt:\d+: duplicate node 'shape'"):
        prepare_folder_builder(manual, str(tmp_path / "tfds"))


def test_unreadable_image(tmp_path):
    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    with open(os.path.join(manual, "images", "triangle", "broken.jpg"), "wb") as f:
        f.write(b"not an image")
    with pytest.raises(ValueError, match=r"broken.jpg: not a readable image"):
        prepare_folder_builder(manual, str(tmp_path / "tfds"))


def test_hidden_files_and_folders_are_not_images(tmp_path):
    from experts.data.builders.image_folder_upstream import scan_folder

    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    images = os.path.join(manual, "images")
    with open(os.path.join(images, "triangle", ".DS_Store.png"), "w") as f:
        f.write("not an image")  # what a file manager leaves behind
    os.makedirs(os.path.join(images, ".thumbnails"))
    _, labels, files = scan_folder(manual, validation_percent=2)
    assert labels == ["triangle"]
    assert not any(".DS_Store" in path for split in files.values() for path, _ in split)


def test_a_class_folder_linked_inside_the_tree_is_refused(tmp_path):
    """A link to another class would put its images in two classes (the downstream
    image_folder task refuses it alike: fanout.image_folders)."""
    from experts.data.builders.image_folder_upstream import scan_folder

    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    os.symlink("triangle", os.path.join(manual, "images", "red_square"))
    with pytest.raises(ValueError, match=r"images/red_square is a symlink to .*triangle"):
        scan_folder(manual, validation_percent=2)


def test_webp_images_are_read(tmp_path):
    from PIL import Image

    from experts.data.builders.image_folder_upstream import scan_folder

    manual = make_folder(str(tmp_path / "manual"), labels=("triangle",))
    Image.new("RGB", (8, 8)).save(os.path.join(manual, "images", "triangle", "x.webp"))
    _, _, files = scan_folder(manual, validation_percent=2)
    assert any(path.endswith("x.webp") for split in files.values() for path, _ in split)
