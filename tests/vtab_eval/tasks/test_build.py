import numpy as np
from PIL import Image

from vtab_eval.configs import tasks as tasks_config
from vtab_eval.tasks import build, grid


def _run(**fields):
    config = tasks_config.get_config("cpu")
    config.update(fields)
    return build.run(config)


def test_build_prints_sizes_and_writes_the_sample_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    dsprites = 'mini_dsprites(predicted_attribute="label_orientation",num_classes=16,config="tiny")'
    suite = f"{dsprites};mini_fashion_mnist_typo"
    code = _run(data_dir=str(tmp_path), suite=suite, grid=str(sheet), samples=4)
    out = capsys.readouterr()
    assert code == 1  # the typo fails, and is reported, after the good task is built
    assert "unknown task 'mini_fashion_mnist_typo'" in out.out
    line = next(line for line in out.out.splitlines() if line.startswith("mini_dsprites("))
    assert line.split()[1:6] == ["structured", "16", "12", "6", "12"]
    assert "total build time" in out.out and str(sheet) in out.out
    with Image.open(sheet) as im:
        assert im.size == (grid.NAME_WIDTH + 4 * (grid.TILE + 4), grid.TILE + grid.LABEL_HEIGHT + 4)


def test_suite_config_tiny_is_applied_to_embedded_specs():
    assert build._with_config("mini_mnist", "tiny") == 'mini_mnist(config="tiny")'
    assert build._with_config("dtd", "tiny") == "dtd"
    assert build._with_config("mini_mnist", "full") == "mini_mnist"


def test_grid_is_written_atomically(tmp_path):
    samples = [(np.full((8, 8, 3), 200, np.uint8), 3), (np.zeros((100, 50, 3), np.uint8), 1)]
    path = grid.write_grid([("a", samples), ("b", samples[:1])], str(tmp_path / "g.png"))
    with Image.open(path) as im:
        pixels = np.asarray(im)
    assert pixels.shape == (2 * (grid.TILE + grid.LABEL_HEIGHT + 4), grid.NAME_WIDTH + 2 * 68, 3)
    assert (pixels[: grid.TILE, grid.NAME_WIDTH : grid.NAME_WIDTH + grid.TILE] == 200).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]  # no temporary left
