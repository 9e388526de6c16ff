"""Feature extraction in reduced precision through TensorFlow's graph rewrite.

What this machine can show: the rewrite's option is on exactly while a store runs its
modules, a reduced-precision store caches apart from float32, and its features keep the
hub contract. Whether the rewrite changes the numbers depends on the machine: without
a GPU (float16) or a CPU with bfloat16 instructions (bfloat16) TensorFlow skips it, and
the test then asserts that the features are float32's bit for bit instead of
pretending to have measured 16-bit features.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from fanout import precision
from tests.vtab_eval import hub_fixtures
from vtab_eval import features, run_dir, runner
from vtab_eval.configs import transfer


def _options():
    return tf.config.optimizer.get_experimental_options()


@pytest.mark.one_pass
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_the_rewrite_is_on_only_inside(name):
    option = precision.REWRITES[name]
    assert not _options().get(option)
    with precision.rewrite(name):
        assert _options()[option] is True
    assert not _options().get(option)
    before = _options()
    with precision.rewrite("float32"):
        assert _options() == before


@pytest.mark.one_pass
def test_an_unknown_precision_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="selection.precision: unknown precision 'half'"):
        features.FeatureStore(tmp_path, image_size=8, precision="half")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_reduced_precision_features(tmp_path, red_task, caplog, name):
    module = tmp_path / "module"
    hub_fixtures.save_module(module, hub_fixtures.TinyModule("conv"), hub_fixtures.expert_info("m"))
    reference = features.FeatureStore(tmp_path / "cache", image_size=8)
    with caplog.at_level(logging.WARNING):
        store = features.FeatureStore(tmp_path / "cache", image_size=8, precision=name)
    assert store.cache_path(str(module), red_task, "test") != reference.cache_path(
        str(module), red_task, "test"
    )
    expected, _, _ = reference.outputs(str(module), red_task, "test")
    got, _, _ = store.outputs(str(module), red_task, "test")
    assert got.shape == expected.shape and got.dtype == np.float32
    if precision.effective(name):
        # Two layers (a convolution, then a matrix product), each rounding its input, its
        # weights and its output once to 16 bits (unit roundoff at most 2^-8, bfloat16's;
        # sums accumulate in float32): 6 units to first order, so 8 bounds it.
        bound = 8 * 2.0**-8
        np.testing.assert_allclose(got, expected, rtol=bound, atol=bound)
    else:
        assert "has no effect on this machine" in caplog.text
        np.testing.assert_array_equal(got, expected)


@pytest.mark.one_pass
def test_the_run_record_keeps_older_directories_valid():
    config = transfer.get_config("smoke")
    assert config.selection.precision == "float32"
    # A directory recorded before the field existed matches a float32 run...
    assert "precision" not in run_dir.run_record(config, ["a"])["config"]["selection"]
    # ...and a run in another precision is another result.
    config.selection.precision = "bfloat16"
    assert run_dir.run_record(config, ["a"])["config"]["selection"]["precision"] == "bfloat16"


SPEC4 = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=4,config="tiny")'


def _finetuned(hub_root, data_dir, workdir, name):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC4, workdir=str(workdir), data_dir=data_dir,
                  selectors="baseline")  # fmt: skip
    config.finetune.precision = name
    runner.run(config, log=lambda message: None)
    return run_dir.RunDir(workdir).task(SPEC4).result()["methods"]["baseline"]


def test_fine_tuning_in_bfloat16(hub_root, tmp_path):
    data_dir = str(tmp_path / "tfds")
    full = _finetuned(hub_root, data_dir, tmp_path / "float32", "float32")
    reduced = _finetuned(hub_root, data_dir, tmp_path / "bfloat16", "bfloat16")
    if precision.effective("bfloat16"):
        assert 0 <= reduced["median_test_accuracy"] <= 1
    else:  # TensorFlow skips the rewrite here: float32's results, bit for bit
        assert reduced["test_accuracies"] == full["test_accuracies"]
    assert run_dir.RunDir(tmp_path / "float32").run_file.exists()


@pytest.mark.one_pass
def test_fine_tuning_refuses_float16(hub_root, tmp_path):
    config = transfer.get_config("smoke")
    config.update(pool=str(hub_root), suite=SPEC4, workdir=str(tmp_path / "run"),
                  data_dir=str(tmp_path / "tfds"), selectors="baseline")  # fmt: skip
    config.finetune.precision = "float16"
    with pytest.raises(ValueError, match="finetune.precision=float16 would need loss scaling"):
        runner.run(config, log=lambda message: None)
