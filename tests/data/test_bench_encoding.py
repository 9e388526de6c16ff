"""The encoding benchmark's code path on a few small generated JPEGs (its figures mean
something only on real photographs)."""

import os
import shutil

import pytest

from experts.bench import encoding as bench_encoding
from experts.data.builders.image_folder_upstream import encoded_image
from tests.data.conftest import draw


@pytest.fixture
def folder(tmp_path):
    draw("red_circle", 0, (40, 30)).save(tmp_path / "a.jpg", quality=90)
    draw("blue_square", 1, (40, 30)).convert("CMYK").save(tmp_path / "c.jpg", quality=90)
    (tmp_path / "sub").mkdir()
    shutil.copy(tmp_path / "a.jpg", tmp_path / "sub" / "b.JPG")  # the same bytes again
    draw("triangle", 2).save(tmp_path / "d.png")
    shutil.copy(tmp_path / "a.jpg", tmp_path / ".hidden.jpg")
    return str(tmp_path)


def test_finds_each_distinct_jpeg_once(folder):
    paths = bench_encoding.find_jpegs(folder)
    assert [os.path.relpath(p, folder) for p in paths] == ["a.jpg", "c.jpg"]


def test_measures_both_versions(folder):
    paths = bench_encoding.find_jpegs(folder)
    results = bench_encoding.measure(paths, max_size=None, rounds=1)
    assert results["2.0.0"]["kept"] == 1 and results["1.0.0"]["kept"] == 0  # CMYK converted
    stored = os.path.getsize(paths[0]) + len(encoded_image(paths[1], None))
    assert results["2.0.0"]["bytes"] == stored
    assert all(r["images_per_second"] > 0 for r in results.values())
    shrunk = bench_encoding.measure(paths, max_size=20, rounds=1)
    assert shrunk["2.0.0"]["kept"] == 0
    assert shrunk["1.0.0"]["bytes"] < results["1.0.0"]["bytes"]


def test_folder_without_jpegs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no \.jpg/\.jpeg files"):
        bench_encoding.find_jpegs(str(tmp_path))
